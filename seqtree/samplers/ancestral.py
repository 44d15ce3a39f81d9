"""Ancestral sampling of MDLM with the no-change cache (Sahoo et al. 2024, Sec. 4.2, Eq. 7).

The time grid 1 = t_N > ... > t_0 = 0 is split into ``num_steps`` equal steps; each step draws
x_{t_{k-1}} ~ p_theta(x_{t_{k-1}} | x_{t_k}) by :meth:`MaskedDiffusion.reverse_step`.

No-change cache (MDLM Sec. 4.2): when a step unmasks nothing in a row, the row's input to the denoiser is the same
at the next step, so its clean-token distribution is reused and no denoiser call is spent on it. This is exact for
a time-independent denoiser (MDLM shows time conditioning is unnecessary under SUBS; RADD, Ou et al. 2024, proves
the optimal denoiser is time-independent); for a time-conditioned denoiser it reuses the output at the earlier time,
as MDLM does. Only the rows whose tokens changed are sent to the denoiser, so NFE counts rows actually evaluated.
"""

from __future__ import annotations

import torch
from torch import Tensor

from seqtree.diffusion import Denoiser, MaskedDiffusion
from seqtree.samplers.base import SampleOutput, _Accumulator


def sample_ancestral(
    denoiser: Denoiser,
    diffusion: MaskedDiffusion,
    x_init: Tensor,
    *,
    generator: torch.Generator | None = None,
    num_steps: int = 128,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    cache: bool = True,
) -> SampleOutput:
    """Sample every masked position of ``x_init`` [B, L]; unmasked positions are fixed."""
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    x = x_init.clone()
    batch = x.shape[0]
    acc = _Accumulator(batch, x.device)
    cached: Tensor | None = None  # [B, L, V] log p(x_0 | x) of the current rows
    stale = torch.ones(batch, dtype=torch.bool, device=x.device)  # rows whose cache is invalid
    grid = torch.linspace(1.0, 0.0, num_steps + 1, device=x.device)
    for k in range(num_steps):
        active = (x == diffusion.mask_id).any(-1)
        if not active.any():
            break
        t = grid[k].expand(batch)
        s = grid[k + 1].expand(batch)
        need = active & (stale | (not cache))
        if need.any():
            rows = need.nonzero().squeeze(-1)
            fresh = acc.denoise(diffusion, denoiser, x[rows], t[rows])
            if cached is None:
                cached = fresh.new_empty((batch, *fresh.shape[1:]))
            cached[rows] = fresh
            stale[rows] = False
        step = diffusion.reverse_step(
            cached, x, t, s, generator=generator, temperature=temperature, top_k=top_k, top_p=top_p
        )
        acc.add(step.log_prob, step.log_prob_model)
        stale |= step.num_unmasked > 0
        x = step.tokens
    return acc.output(x)
