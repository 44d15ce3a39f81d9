"""Fluency of a completion given its prompt: minus bits per byte, from the design model itself or a causal LM.

A higher reward can come from better text or from text the reward model likes for the wrong reasons (reward
hacking); fluency is the check. Its unit is **minus bits per byte of the completion's UTF-8 text** (0 is perfect,
about -2 is readable English under a good model, -8 is uniform random bytes): bytes are the one unit in which a
byte-level diffusion model, a sub-word diffusion model and a GPT-2 tokenizer can be compared.

- ``self``: the design model's own masked-diffusion NELBO of the completion with the prompt fixed. The continuous-time
  NELBO (MDLM, Sahoo et al. 2024, Eq. 10; MD4, Shi et al. 2024, Eq. 5), E_t [ w(t) sum_{i masked in x_t} -log
  p(x_0^i | x_t) ] with w(t) = -alpha'(t) / (1 - alpha(t)), is an upper bound on -log p(completion | prompt) when
  only the completion's positions are masked (the prompt is always visible, as in sampling; padding and a model's
  frame are never masked): :meth:`seqtree.diffusion.MaskedDiffusion.nelbo`'s ``maskable``. It is estimated with
  ``samples`` stratified times per completion (MDLM's antithetic times) and masks drawn from a generator seeded
  with ``seed`` for every completion, so a completion's fluency is a function of its text alone (never of which
  other completions shared its batch); the estimate's rows are batched across completions. The bound is loose by
  the model's own ELBO gap, so fluency from ``self`` reads low against a causal LM's exact likelihood.
- a causal LM by path or hub id (``AutoModelForCausalLM``, GPT-2 style): the exact log-likelihood
  sum_j log p(c_j | BOS, prompt, c_<j) of the completion's tokens, the prompt and the completion tokenised apart (so
  the boundary is where the prompt ends), BOS first when the tokenizer has one. Its perplexity per token is
  exp(-log-likelihood / tokens); bits per byte divide by the completion's bytes instead. Sequences of equal length
  are evaluated together, without padding.

:class:`CompletionFluency` is the oracle of one prompt's completions (it receives the design's whole text, as every
oracle of a design run does, and strips the decoded prompt); :func:`guard` puts it into a reward as a constraint
(``min_fluency``: a completion below it gets the floor and the reason ``fluency below min_fluency X``)
and / or a weighted term. Every model row and forward call is counted (:class:`FluencyCount`).
"""

from __future__ import annotations

import math
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np
import torch

from seqtree.oracles.base import Oracle
from seqtree.oracles.compose import Constrained, Constraint, WeightedSum

LN2 = math.log(2.0)
SELF = "self"


@dataclass
class FluencyCount:
    """Compute spent on fluency: model rows evaluated, forward calls, and their wall time."""

    rows: int = 0
    calls: int = 0
    seconds: float = 0.0

    def add(self, other: FluencyCount) -> None:
        self.rows += other.rows
        self.calls += other.calls
        self.seconds += other.seconds


class FluencyScorer(ABC):
    """Bits per byte of completions given a prompt. Thread-safe: one lock around the model."""

    name: str

    def __init__(self) -> None:
        self.lock = threading.Lock()

    @abstractmethod
    def check(self, prompt: str, completion: str) -> str | None:
        """Why ``completion`` cannot be scored (empty, too long for the model, not encodable), or None."""

    @abstractmethod
    def bits_per_byte(self, prompt: str, completions: list[str], count: FluencyCount) -> np.ndarray:
        """float64 [B]: -log2 p(completion | prompt) / bytes (or its NELBO bound) of completions that pass ``check``."""


class SelfNelboFluency(FluencyScorer):
    """The design model's NELBO of the completion with the prompt fixed (module docstring)."""

    def __init__(self, model, *, samples: int = 8, seed: int = 0, max_rows: int = 512) -> None:
        super().__init__()
        if samples < 1:
            raise ValueError(f"samples must be >= 1, got {samples}")
        self.model, self.samples, self.seed, self.max_rows = model, samples, seed, max_rows
        self.name = SELF

    def _row(self, prompt: str, completion: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(x0 Long[L], maskable Bool[L]): the prompt in the model's frame, then the completion's tokens."""
        from seqtree.generate import model_root

        ids = self.model.tokenizer.encode(completion)
        root = model_root(self.model, length=len(ids), prompt=prompt)
        maskable = root == self.model.diffusion.mask_id
        x0 = root.clone()
        x0[maskable] = torch.tensor(ids, dtype=torch.long)
        return x0, maskable

    def check(self, prompt: str, completion: str) -> str | None:
        if not completion:
            return "empty completion"
        try:
            self._row(prompt, completion)
        except ValueError as error:  # a character the tokenizer lacks, or longer than the model takes
            return f"fluency: {' '.join(str(error).split())[:120]}"
        return None

    def bits_per_byte(self, prompt: str, completions: list[str], count: FluencyCount) -> np.ndarray:
        diffusion, device = self.model.diffusion, self.model.device
        denoiser = self.model.inference_denoiser
        groups: dict[int, list[tuple[int, torch.Tensor, torch.Tensor, torch.Tensor]]] = {}
        for index, completion in enumerate(completions):
            x0, maskable = self._row(prompt, completion)
            x0 = x0.to(device).expand(self.samples, -1)
            maskable = maskable.to(device).expand(self.samples, -1)
            generator = torch.Generator(device=device).manual_seed(self.seed)  # the same draws for every completion
            t = diffusion.sample_times(self.samples, generator, device)
            x_t = diffusion.forward_mask(x0, t, generator, maskable)
            groups.setdefault(x0.shape[1], []).append((index, x0, x_t, t))
        nats = np.zeros(len(completions), dtype=np.float64)
        for parts in groups.values():
            x0 = torch.cat([p[1] for p in parts])
            x_t = torch.cat([p[2] for p in parts])
            t = torch.cat([p[3] for p in parts])
            per_row = []
            for start in range(0, len(x0), self.max_rows):
                rows = slice(start, start + self.max_rows)
                began = time.perf_counter()
                with torch.no_grad():
                    log_probs = diffusion.denoise(denoiser, x_t[rows], t[rows])
                count.seconds += time.perf_counter() - began
                count.calls += 1
                count.rows += int(x_t[rows].shape[0])
                token = log_probs.gather(-1, x0[rows].unsqueeze(-1)).squeeze(-1)
                masked = x_t[rows] == diffusion.mask_id
                cross_entropy = -token.masked_fill(~masked, 0.0).sum(-1)
                per_row.append(diffusion.schedule.nelbo_weight(t[rows]) * cross_entropy)
            estimates = torch.cat(per_row).double().view(len(parts), self.samples).mean(-1).cpu()
            for (index, *_), value in zip(parts, estimates.tolist()):
                nats[index] = value
        sizes = np.array([len(c.encode("utf-8")) for c in completions], dtype=np.float64)
        return nats / LN2 / sizes


class CausalLMFluency(FluencyScorer):
    """A causal LM's log-likelihood of the completion after BOS and the prompt (module docstring)."""

    def __init__(self, path: str, *, device: torch.device | str = "cpu") -> None:
        super().__init__()
        self.path, self.device, self.name = path, torch.device(device), path
        self._model = None
        self._tokenizer = None

    def load(self) -> None:
        """Load the model and tokenizer (never with remote code); OSError / ValueError for a bad path."""
        if self._model is not None:
            return
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self._tokenizer = AutoTokenizer.from_pretrained(self.path, trust_remote_code=False)
        self._model = AutoModelForCausalLM.from_pretrained(self.path, trust_remote_code=False).to(self.device).eval()
        config = self._model.config
        self.max_positions = getattr(config, "n_positions", None) or getattr(config, "max_position_embeddings", None)

    def _ids(self, prompt: str, completion: str) -> tuple[list[int], list[int]]:
        self.load()
        tokenizer = self._tokenizer
        context = list(tokenizer(prompt, add_special_tokens=False)["input_ids"]) if prompt else []
        if tokenizer.bos_token_id is not None:
            context = [int(tokenizer.bos_token_id), *context]
        return context, list(tokenizer(completion, add_special_tokens=False)["input_ids"])

    def check(self, prompt: str, completion: str) -> str | None:
        if not completion:
            return "empty completion"
        context, ids = self._ids(prompt, completion)
        if not context:
            return "fluency: the causal LM has no BOS token and the prompt is empty"
        if not ids:
            return "empty completion"
        if self.max_positions is not None and len(context) + len(ids) > self.max_positions:
            return f"fluency: {len(context) + len(ids)} tokens exceed the causal LM's {self.max_positions}"
        return None

    def bits_per_byte(self, prompt: str, completions: list[str], count: FluencyCount) -> np.ndarray:
        rows = [self._ids(prompt, c) for c in completions]
        nats = np.zeros(len(completions), dtype=np.float64)
        groups: dict[int, list[int]] = {}
        for index, (context, ids) in enumerate(rows):
            groups.setdefault(len(context) + len(ids), []).append(index)
        for indices in groups.values():
            tokens = torch.tensor([rows[i][0] + rows[i][1] for i in indices], device=self.device)
            began = time.perf_counter()
            with torch.no_grad():
                logits = self._model(input_ids=tokens).logits
            count.seconds += time.perf_counter() - began
            count.calls += 1
            count.rows += len(indices)
            log_probs = torch.log_softmax(logits[:, :-1].double(), -1).gather(-1, tokens[:, 1:].unsqueeze(-1))[..., 0]
            for row, i in enumerate(indices):
                start = len(rows[i][0]) - 1  # the prediction of the completion's first token
                nats[i] = -float(log_probs[row, start:].sum())
        sizes = np.array([len(c.encode("utf-8")) for c in completions], dtype=np.float64)
        return nats / LN2 / sizes


class CompletionFluency(Oracle):
    """Fluency (minus bits per byte) of the completions of one prompt. Sequences are whole design texts: the
    decoded prompt ``prefix`` is stripped; a text without it is floored. Memoised per text, so a constraint and a
    reward term on the same completion cost one evaluation; ``count`` is this prompt's fluency compute."""

    name = "fluency"
    direction = "maximize"
    optimum = 0.0

    def __init__(self, scorer: FluencyScorer, prompt: str, prefix: str) -> None:
        self.scorer, self.prompt, self.prefix = scorer, prompt, prefix
        self.memo: dict[str, float] = {}
        self.count = FluencyCount()
        super().__init__()

    def _check(self, sequence: str) -> str | None:
        if not sequence.startswith(self.prefix):
            return "the text does not start with its prompt"
        completion = sequence[len(self.prefix) :]
        if completion in self.memo:
            return None
        with self.scorer.lock:
            return self.scorer.check(self.prompt, completion)

    def _evaluate(self, sequences: list[str]) -> np.ndarray:
        completions = [s[len(self.prefix) :] for s in sequences]
        todo = list(dict.fromkeys(c for c in completions if c not in self.memo))
        if todo:
            with self.scorer.lock:
                bits = self.scorer.bits_per_byte(self.prompt, todo, self.count)
            self.memo.update(zip(todo, (-bits).tolist()))
        return np.array([self.memo[c] for c in completions], dtype=np.float64)


def guard(objective: Oracle, fluency: CompletionFluency, *, weight: float, min_fluency: float | None) -> Oracle:
    """``objective`` with fluency as a reward term (``weight`` != 0: objective + weight * fluency) and / or a hard
    constraint (``min_fluency``: a completion below it gets the floor, checked before the objective is called)."""
    out = objective
    if weight:
        if objective.num_objectives != 1:
            raise ValueError("fluency.weight adds to one reward; the oracle has several objectives")
        out = WeightedSum([objective, fluency], [1.0, weight], name=f"{objective.name}+{weight:g}*fluency")
    if min_fluency is not None:
        out = Constrained(out, [_MinFluency("fluency", fluency, lo=min_fluency)])
    return out


@dataclass(frozen=True)
class _MinFluency(Constraint):
    """``fluency >= lo``, with one reason for every completion below it (the run summary counts reasons, and the
    generic constraint's reason names each value)."""

    def violations(self, sequences: list[str]) -> list[str | None]:
        scored = self.oracle.score(sequences)
        below = f"fluency below min_fluency {self.lo:g}"
        return [
            f"fluency: {reason}" if reason is not None else (below if value < self.lo else None)
            for value, reason in zip(scored.values.tolist(), scored.reasons)
        ]
