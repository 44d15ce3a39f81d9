"""First-hitting sampler (Zheng et al., "Masked Diffusion Models are Secretly Time-Agnostic Masked Models and
Exploit Inaccurate Categorical Sampling", 2024, Sec. 4.1, Alg. 1).

Given n masked tokens at time t, each became masked at an independent time tau with
P(tau <= s | tau <= t) = (1 - alpha_s) / (1 - alpha_t), so the next unmasking event happens at the s solving
1 - alpha_s = (1 - alpha_t) u^{1/n}, u ~ U(0, 1). Exactly one position, uniform among the masked ones, is revealed
then, with a token from p_theta(x_0 | x_t). One denoiser call per unmasking event, no wasted steps; with an exact
denoiser the samples follow the data distribution exactly (any-order autoregressive factorisation).
"""

from __future__ import annotations

import torch
from torch import Tensor

from seqtree.diffusion import Denoiser, MaskedDiffusion
from seqtree.samplers.base import SampleOutput, _Accumulator


def sample_first_hitting(
    denoiser: Denoiser,
    diffusion: MaskedDiffusion,
    x_init: Tensor,
    *,
    generator: torch.Generator | None = None,
    num_steps: int | None = None,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
) -> SampleOutput:
    """Reveal one token per denoiser call per row. ``num_steps`` is accepted for the shared signature and unused:
    the number of calls is the number of masked positions."""
    del num_steps
    x = x_init.clone()
    batch = x.shape[0]
    acc = _Accumulator(batch, x.device)
    schedule = diffusion.schedule
    t = torch.ones(batch, device=x.device)
    while True:
        masked = x == diffusion.mask_id
        counts = masked.sum(-1)
        rows = (counts > 0).nonzero().squeeze(-1)
        if rows.numel() == 0:
            break
        n = counts[rows].float()
        u = torch.rand(rows.shape[0], generator=generator, device=x.device)
        one_minus_alpha_s = (1.0 - schedule.alpha(t[rows])) * u.pow(1.0 / n)
        s = torch.where(n > 1, schedule.inverse_alpha(1.0 - one_minus_alpha_s), torch.zeros_like(n))
        log_probs = acc.denoise(diffusion, denoiser, x[rows], t[rows])
        # Choose one masked position per row uniformly: the argmax of random keys over masked positions.
        keys = torch.rand(masked[rows].shape, generator=generator, device=x.device).masked_fill(~masked[rows], -1.0)
        reveal = torch.zeros_like(masked[rows]).scatter(-1, keys.argmax(-1, keepdim=True), True)
        step = diffusion.unmask_positions(
            log_probs, x[rows], reveal, generator=generator, temperature=temperature, top_k=top_k, top_p=top_p
        )
        x[rows] = step.tokens
        acc.add(step.log_prob, step.log_prob_model, rows)
        t[rows] = s
    return acc.output(x)
