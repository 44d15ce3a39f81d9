"""What every sampler returns, and the bookkeeping they share."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from seqtree.diffusion import Denoiser, MaskedDiffusion, check_log_probs


@dataclass(frozen=True)
class SampleOutput:
    tokens: Tensor  # [B, L] fully unmasked sequences (fixed positions unchanged)
    log_prob: Tensor  # [B] sum of log-probabilities of the tokens chosen, under the distribution sampled from
    log_prob_model: Tensor  # [B] the same choices under the untempered, untruncated model
    nfe: int  # denoiser rows evaluated (a call on a batch of B rows costs B)
    num_calls: int  # denoiser forward calls (batched)


class _Accumulator:
    """Running log-probabilities and compute of one batched sampling run."""

    def __init__(self, batch: int, device: torch.device) -> None:
        self.log_prob = torch.zeros(batch, device=device)
        self.log_prob_model = torch.zeros(batch, device=device)
        self.nfe = 0
        self.num_calls = 0

    def denoise(self, diffusion: MaskedDiffusion, denoiser: Denoiser, x: Tensor, t: Tensor) -> Tensor:
        self.nfe += x.shape[0]
        self.num_calls += 1
        log_probs = diffusion.denoise(denoiser, x, t)
        check_log_probs(log_probs, denoiser, t)
        return log_probs

    def add(self, step_log_prob: Tensor, step_log_prob_model: Tensor, rows: Tensor | slice = slice(None)) -> None:
        self.log_prob[rows] += step_log_prob
        self.log_prob_model[rows] += step_log_prob_model

    def output(self, tokens: Tensor) -> SampleOutput:
        return SampleOutput(tokens, self.log_prob, self.log_prob_model, self.nfe, self.num_calls)
