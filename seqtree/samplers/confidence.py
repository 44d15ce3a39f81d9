"""Confidence-ordered unmasking: MaskGIT (Chang et al. 2022, Sec. 3.2) and the top-probability-margin order of
Kim et al. ("Train for the Worst, Plan for the Best", ICML 2025, Sec. 4).

At every step each masked position draws a candidate token from the (tempered, truncated) model; the k positions
whose score is highest are unmasked and the rest stay masked. Scores: ``confidence`` = probability of the drawn
token; ``margin`` = difference between the two most likely tokens. Order is adaptive, so this is a planner, not a
sampler of p_theta: its log-probabilities are those of the tokens chosen, not of the path.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from seqtree.diffusion import Denoiser, MaskedDiffusion, filter_log_probs, sample_categorical
from seqtree.samplers.base import SampleOutput, _Accumulator

SCORES = ("confidence", "margin")


def sample_confidence(
    denoiser: Denoiser,
    diffusion: MaskedDiffusion,
    x_init: Tensor,
    *,
    generator: torch.Generator | None = None,
    num_steps: int | None = None,
    tokens_per_step: int | None = None,
    score: str = "confidence",
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
) -> SampleOutput:
    """Unmask ``tokens_per_step`` positions per call, or enough that ``num_steps`` calls finish every row.

    With neither given, one token per step (as many calls as masked positions).
    """
    if score not in SCORES:
        raise ValueError(f"score must be one of {SCORES}, got {score!r}")
    x = x_init.clone()
    batch = x.shape[0]
    acc = _Accumulator(batch, x.device)
    most_masked = int((x == diffusion.mask_id).sum(-1).max()) if x.numel() else 0
    if tokens_per_step is None:
        tokens_per_step = math.ceil(most_masked / num_steps) if num_steps else 1
    if tokens_per_step < 1:
        raise ValueError(f"tokens_per_step must be >= 1, got {tokens_per_step}")
    while True:
        masked = x == diffusion.mask_id
        rows = masked.any(-1).nonzero().squeeze(-1)
        if rows.numel() == 0:
            break
        remaining = masked[rows].sum(-1)
        t = (remaining.float() / max(most_masked, 1)).clamp(0.0, 1.0)  # fraction masked as the time
        model = acc.denoise(diffusion, denoiser, x[rows], t)  # [R, L, V]
        proposal = filter_log_probs(model, temperature=temperature, top_k=top_k, top_p=top_p)
        flat = proposal.reshape(-1, proposal.shape[-1])
        candidates = sample_categorical(flat, generator).view(model.shape[:2])  # [R, L]
        chosen = proposal.gather(-1, candidates.unsqueeze(-1)).squeeze(-1)
        chosen_model = model.gather(-1, candidates.unsqueeze(-1)).squeeze(-1)
        if score == "confidence":
            ranking = chosen_model.exp()
        else:
            top2 = model.exp().topk(2, dim=-1).values
            ranking = top2[..., 0] - top2[..., 1]
        ranking = ranking.masked_fill(~masked[rows], float("-inf"))
        k = int(min(tokens_per_step, int(remaining.max())))
        top = ranking.topk(k, dim=-1).indices
        reveal = torch.zeros_like(masked[rows]).scatter(-1, top, True) & masked[rows]
        x[rows] = torch.where(reveal, candidates, x[rows])
        acc.add(chosen.masked_fill(~reveal, 0.0).sum(-1), chosen_model.masked_fill(~reveal, 0.0).sum(-1), rows)
    return acc.output(x)
