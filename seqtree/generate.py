"""Sampling designs from a loaded model: build the initial masked tokens (prompt, scaffold, length) and decode.

A scaffold is a template in which ``_`` marks a free position and every other character is fixed, e.g.
``MKT____GG__`` (one character per token, for character-level tokenizers). A prompt is a fixed prefix; the
remaining ``length`` tokens are free. :func:`model_root` puts the design in its model's frame
(:mod:`seqtree.models.framing`): ESM-2's ``<cls> ... <eos>``, BERT's ``[CLS] ... [SEP]``, or seqtree's own rows
padded to the model's length, as in training.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from seqtree.models.loading import LoadedModel
from seqtree.models.tokenizers import Tokenizer
from seqtree.samplers import SampleOutput, get_sampler

FREE = "_"


def initial_tokens(
    tokenizer: Tokenizer,
    *,
    length: int | None = None,
    prompt: str = "",
    scaffold: str | None = None,
    row_length: int | None = None,
    prefix: tuple[int, ...] = (),
    suffix: tuple[int, ...] = (),
) -> Tensor:
    """The root of sampling: Long[L] with masks at free positions, fixed tokens elsewhere, ``prefix`` / ``suffix``
    (a model's frame) around them and padding to row_length."""
    if scaffold is not None:
        if prompt or length is not None:
            raise ValueError("give either a scaffold or prompt/length, not both")
        ids = []
        for position, char in enumerate(scaffold):
            if char == FREE:
                ids.append(tokenizer.mask_id)
            else:
                encoded = tokenizer.encode(char)
                if len(encoded) != 1:
                    raise ValueError(f"scaffold character {char!r} at position {position} is not one token")
                ids.extend(encoded)
    else:
        if length is None or length < 1:
            raise ValueError(f"length must be a positive number of free tokens, got {length}")
        ids = tokenizer.encode(prompt) + [tokenizer.mask_id] * length
    ids = [*prefix, *ids, *suffix]
    if row_length is not None:
        if len(ids) > row_length:
            raise ValueError(f"the design needs {len(ids)} tokens but the model takes at most {row_length}")
        ids = ids + [tokenizer.pad_id] * (row_length - len(ids))
    return torch.tensor(ids, dtype=torch.long)


def roots_of_lengths(
    tokenizer: Tokenizer,
    lengths: list[int],
    prompt: str,
    row_length: int | None,
    prefix: tuple[int, ...] = (),
    suffix: tuple[int, ...] = (),
) -> Tensor:
    """One root row per length: the prompt, then that many masks, then padding to the common row length."""
    row_length = row_length or len(prefix) + len(tokenizer.encode(prompt)) + max(lengths) + len(suffix)
    return torch.stack([
        initial_tokens(tokenizer, prompt=prompt, length=n, row_length=row_length, prefix=prefix, suffix=suffix)
        for n in lengths
    ])  # fmt: skip


def model_root(model: LoadedModel, *, length: int | None = None, prompt: str = "", scaffold: str | None = None):
    """The root of a design for ``model``, in its frame: Long[L] with the frame's special tokens around the prompt
    or scaffold and the free positions, padded to the model's length only for families trained on padded rows."""
    framing = model.framing
    root = initial_tokens(
        model.tokenizer, length=length, prompt=prompt, scaffold=scaffold,
        row_length=model.max_length if framing.pad_rows else None, prefix=framing.prefix, suffix=framing.suffix,
    )  # fmt: skip
    if model.max_length is not None and len(root) > model.max_length:
        raise ValueError(
            f"the design needs {len(root)} tokens with {model.framing.family}'s {framing.size} special tokens, but "
            f"model {model.source!r} takes at most {model.max_length}"
        )
    return root


def model_roots(model: LoadedModel, lengths: list[int], prompt: str = "") -> Tensor:
    """One root per design length, in the model's frame, padded to the longest (``seqtree sample``)."""
    framing = model.framing
    row = model.max_length if framing.pad_rows else None
    return roots_of_lengths(model.tokenizer, lengths, prompt, row, framing.prefix, framing.suffix)


@dataclass(frozen=True)
class Samples:
    sequences: list[str]
    output: SampleOutput


@torch.no_grad()
def sample_sequences(
    model: LoadedModel,
    root: Tensor,
    num_samples: int,
    *,
    sampler: str = "ancestral",
    generator: torch.Generator | None = None,
    batch_size: int = 64,
    **options,
) -> Samples:
    """Draw ``num_samples`` completions of ``root`` in batches; returns decoded strings and the raw output.

    ``root`` is one row Long[L] shared by all samples, or Long[num_samples, L] with one row each (e.g. lengths).
    """
    sample = get_sampler(sampler)
    roots = root.expand(num_samples, -1) if root.dim() == 1 else root
    if roots.shape[0] != num_samples:
        raise ValueError(f"root has {roots.shape[0]} rows for {num_samples} samples")
    outputs, device, denoiser = [], model.device, model.inference_denoiser
    for start in range(0, num_samples, batch_size):
        batch = roots[start : start + batch_size].to(device, copy=True)
        outputs.append(sample(denoiser, model.diffusion, batch, generator=generator, **options))
    tokens = torch.cat([o.tokens for o in outputs])
    merged = SampleOutput(
        tokens=tokens,
        log_prob=torch.cat([o.log_prob for o in outputs]),
        log_prob_model=torch.cat([o.log_prob_model for o in outputs]),
        nfe=sum(o.nfe for o in outputs),
        num_calls=sum(o.num_calls for o in outputs),
    )
    sequences = [model.tokenizer.decode(row) for row in tokens.tolist()]
    return Samples(sequences, merged)
