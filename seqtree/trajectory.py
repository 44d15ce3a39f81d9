"""Replaying a recorded unmasking path under another denoiser: the per-step log-probabilities a trajectory would
have had under a different model (the pretrained one, for TR2-D2's importance weights).

A path of the reverse process is fully described by its final tokens and, for every designed position, the reverse
step k at which it was unmasked (``unmask_step``; -1 for positions fixed from the start). The state just before step
k is the final sequence with every position unmasked at step >= k masked again. The probability of the path under a
model factorises over steps into (i) which positions unmask, which depends only on the noise schedule and so is the
same for every model, and (ii) the clean-token probabilities of the tokens chosen (MDLM Eq. 7). The log-ratio of two
models along one path is therefore the sum over steps of the difference of (ii), and replaying (ii) under a second
model needs one denoiser row per step at which something unmasked, batched across rows and steps.

With a time-independent denoiser (all shipped checkpoints, RADD) the replay under the model that sampled the path
reproduces the recorded per-step log-probabilities exactly, the no-change cache included; a time-conditioned model
under the cache saw a stale time on steps where nothing changed, so replays then differ by that approximation.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from seqtree.diffusion import Denoiser, MaskedDiffusion

FIXED = -1  # unmask_step of a position that was never masked (prompt, scaffold, padding)


@dataclass(frozen=True)
class Replay:
    step_log_prob: Tensor  # [N, T] float32 log-probability of the tokens unmasked at each step, under the model
    nfe: int  # denoiser rows evaluated


def path_states(tokens: Tensor, unmask_step: Tensor, step: Tensor, mask_id: int) -> Tensor:
    """The states just before reverse step ``step`` [M] of paths (tokens, unmask_step) [M, L]: positions unmasked at
    that step or later are masked. Pure function."""
    return tokens.masked_fill(unmask_step >= step.unsqueeze(1), mask_id)


@torch.no_grad()
def replay_log_probs(
    denoiser: Denoiser,
    diffusion: MaskedDiffusion,
    tokens: Tensor,
    unmask_step: Tensor,
    num_steps: int,
    *,
    batch_size: int = 256,
) -> Replay:
    """Per-step log p(tokens unmasked at step k | state before k) under ``denoiser`` (untempered, SUBS rule).

    tokens, unmask_step: [N, L] long; steps are absolute reverse steps 0..num_steps-1 with t_k = 1 - k / num_steps.
    """
    if tokens.shape != unmask_step.shape:
        raise ValueError(f"tokens {tuple(tokens.shape)} and unmask_step {tuple(unmask_step.shape)} differ in shape")
    if unmask_step.numel() and int(unmask_step.max()) >= num_steps:
        raise ValueError(f"unmask_step holds a step >= num_steps ({num_steps})")
    device = tokens.device
    steps = torch.arange(num_steps, device=device)
    events = (unmask_step.unsqueeze(1) == steps.view(1, -1, 1)).any(-1)  # [N, T]: something unmasked at step k
    rows, ks = events.nonzero(as_tuple=True)
    out = torch.zeros(tokens.shape[0], num_steps, device=device)
    grid = torch.linspace(1.0, 0.0, num_steps + 1, device=device)
    for start in range(0, rows.numel(), batch_size):
        r, k = rows[start : start + batch_size], ks[start : start + batch_size]
        x = tokens[r]
        states = path_states(x, unmask_step[r], k, diffusion.mask_id)
        log_probs = diffusion.denoise(denoiser, states, grid[k])  # [M, L, V]
        chosen = log_probs.gather(-1, x.unsqueeze(-1)).squeeze(-1)  # [M, L]
        at_step = unmask_step[r] == k.unsqueeze(1)
        out[r, k] = chosen.masked_fill(~at_step, 0.0).sum(-1)
    return Replay(out, int(rows.numel()))
