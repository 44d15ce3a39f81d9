"""Sampling designs from a loaded model: build the initial masked tokens (prompt, scaffold, length) and decode.

A scaffold is a template in which ``_`` marks a free position and every other character is fixed, e.g.
``MKT____GG__`` (one character per token, for character-level tokenizers). A prompt is a fixed prefix; the
remaining ``length`` tokens are free. Padding after the design keeps the row at the model's length, as in training.
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
) -> Tensor:
    """The root of sampling: Long[L] with masks at free positions, fixed tokens elsewhere, padding to row_length."""
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
    if row_length is not None:
        if len(ids) > row_length:
            raise ValueError(f"the design needs {len(ids)} tokens but the model takes at most {row_length}")
        ids = ids + [tokenizer.pad_id] * (row_length - len(ids))
    return torch.tensor(ids, dtype=torch.long)


def roots_of_lengths(tokenizer: Tokenizer, lengths: list[int], prompt: str, row_length: int | None) -> Tensor:
    """One root row per length: the prompt, then that many masks, then padding to the common row length."""
    row_length = row_length or len(tokenizer.encode(prompt)) + max(lengths)
    return torch.stack([initial_tokens(tokenizer, prompt=prompt, length=n, row_length=row_length) for n in lengths])


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
