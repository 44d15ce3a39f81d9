"""TR2-D2's weighted denoising cross-entropy (WDCE), as a pure loss function and as a ``LightningModule``.

Given buffer sequences x_b with self-normalised importance weights w_b = softmax(log w)_b (no gradient through them;
log w as in :mod:`seqtree.buffer`), WDCE (Tang et al. 2025, "Tree Reward-Aligned Search: TR2-D2", Sec. 3.3, Eq. 10;
after Zhu et al.'s weighted denoising cross-entropy for masked diffusion neural samplers) is

    L(theta) = - sum_b w_b E_{lambda ~ U(0, 1)} [ min(1 / lambda, cap) sum_{l masked} log p_theta(x_b^l | x_b^lambda) ],

where x^lambda masks each designed position independently with probability lambda. With exact weights its minimiser
over all denoisers is the denoiser of the tilted law pi*(x) ~ p_pre(x) exp(r(x) / alpha): the bracket is the
denoising cross-entropy whose minimiser is the data law's denoiser, and the weights make the "data" pi*. Each
sequence is replicated R times with its own lambda; the R lambdas of one sequence are stratified over (0, 1) (one
uniform offset, R equal strata), which keeps the expectation and lowers its variance.

Minibatches are drawn uniformly from the buffer and each row carries N * w_b (N = buffer rows), so the minibatch mean
is an unbiased estimate of N times the sum above: the loss then sits on the scale of an unweighted denoising
cross-entropy, and a learning rate tuned for pretraining stays sensible. (The reference code takes the mean over the
whole buffer of w_b * (...), which is the same quantity divided by N; AdamW is invariant to that constant.)
"""

from __future__ import annotations

import copy

import lightning as L
import torch
from torch import Tensor, nn

from seqtree.diffusion import MaskedDiffusion
from seqtree.training.ranks import rank_seed
from seqtree.trajectory import replay_log_probs


def stratified_mask_rates(count: int, replicates: int, generator: torch.Generator | None, device=None) -> Tensor:
    """[count * replicates] masking rates in (0, 1]: per sequence one uniform offset and R equal strata."""
    offset = torch.rand(count, 1, generator=generator, device=device)
    strata = torch.arange(replicates, device=device, dtype=torch.float32).unsqueeze(0) / replicates
    rates = torch.remainder(offset / replicates + strata, 1.0)
    return (1.0 - rates).flatten()  # (0, 1]: never an all-clean row with weight 1 / 0


def wdce_loss(
    denoiser,
    diffusion: MaskedDiffusion,
    tokens: Tensor,
    designed: Tensor,
    weights: Tensor,
    *,
    replicates: int = 16,
    cap: float = 1e5,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Weighted denoising cross-entropy of a minibatch (TR2-D2 Eq. 10; see the module docstring).

    tokens, designed: [B, L]; weights: [B] the rows' N * w_b (detached here). Returns a scalar: the mean over the
    B * R replicas of - weight * min(1 / lambda, cap) * sum over masked designed positions of log p_theta(x^l | .).
    """
    count = tokens.shape[0]
    x0 = tokens.repeat_interleave(replicates, 0)  # [B*R, L]
    maskable = designed.repeat_interleave(replicates, 0)
    rate = stratified_mask_rates(count, replicates, generator, tokens.device)  # [B*R]
    draw = torch.rand(x0.shape, generator=generator, device=tokens.device)
    masked = maskable & (draw < rate.unsqueeze(1))
    x_t = x0.masked_fill(masked, diffusion.mask_id)
    t = diffusion.schedule.inverse_alpha(1.0 - rate)  # the diffusion time whose masking rate is lambda
    log_probs = diffusion.denoise(denoiser, x_t, t)  # [B*R, L, V]
    token_log_probs = log_probs.gather(-1, x0.unsqueeze(-1)).squeeze(-1).masked_fill(~masked, 0.0)
    row_weight = weights.detach().to(log_probs.dtype).repeat_interleave(replicates, 0)
    scale = (1.0 / rate).clamp(max=cap)
    return -(row_weight * scale * token_log_probs.sum(-1)).mean()


class WDCEFineTuner(L.LightningModule):
    """Fine-tunes ``policy`` with WDCE on batches (tokens, designed, N * w) of a replay buffer.

    Keeps a frozen copy of the starting model (``pretrained``) for the importance weights of later rounds
    (:meth:`pretrained_path_log_prob`) and for the pretrained log-likelihood of evaluation samples. ``ema_decay``
    keeps an exponential moving average of the policy's weights, which :meth:`export_model` returns instead.
    """

    def __init__(
        self,
        policy: nn.Module,
        diffusion: MaskedDiffusion,
        *,
        pretrained: nn.Module | None = None,
        lr: float = 1e-4,
        weight_decay: float = 0.0,
        replicates: int = 16,
        cap: float = 1e5,
        ema_decay: float | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.policy = policy
        self.diffusion = diffusion
        self.pretrained = pretrained if pretrained is not None else copy.deepcopy(policy)
        self.pretrained.requires_grad_(False).eval()
        self.lr = lr
        self.weight_decay = weight_decay
        self.replicates = replicates
        self.cap = cap
        self.ema = None
        if ema_decay is not None:
            from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

            self.ema = AveragedModel(policy, multi_avg_fn=get_ema_multi_avg_fn(ema_decay), use_buffers=True)
            self.ema.requires_grad_(False)
        self.seed = seed
        self.generator: torch.Generator | None = None

    def reseed(self, seed: int) -> None:
        """Fix the masking draws of the next fit (one seed per round makes a resumed run repeat its rounds)."""
        self.seed = seed

    def on_train_start(self) -> None:
        # Created here, on the device Lightning chose, so that the draws live where the batch does; under DDP rank r
        # draws from its own stream (rank 0 keeps the single-process one).
        self.generator = torch.Generator(device=self.device).manual_seed(rank_seed(self.seed, self.global_rank))

    def forward(self, tokens: Tensor, t: Tensor) -> Tensor:
        return self.policy(tokens, t)

    def training_step(self, batch: tuple[Tensor, Tensor, Tensor], batch_idx: int) -> Tensor:
        tokens, designed, weights = batch
        self.pretrained.eval()
        loss = wdce_loss(
            self.policy, self.diffusion, tokens, designed, weights, replicates=self.replicates, cap=self.cap,
            generator=self.generator,
        )  # fmt: skip
        self.log("wdce", loss, prog_bar=True, batch_size=tokens.shape[0], sync_dist=True)  # DDP: the ranks' mean
        return loss

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        if self.ema is not None:
            self.ema.update_parameters(self.policy)

    def configure_optimizers(self):
        return torch.optim.AdamW(self.policy.parameters(), lr=self.lr, weight_decay=self.weight_decay)

    def export_model(self) -> nn.Module:
        """The weights to sample from next: the EMA when kept, else the policy."""
        return self.ema.module if self.ema is not None else self.policy

    @torch.no_grad()
    def pretrained_path_log_prob(self, tokens: Tensor, unmask_step: Tensor, num_steps: int) -> tuple[Tensor, int]:
        """([N] float64 log p_pre of each recorded path, NFE spent) by replaying it under the frozen model."""
        device = next(self.pretrained.parameters()).device
        replay = replay_log_probs(self.pretrained, self.diffusion, tokens.to(device), unmask_step.to(device), num_steps)
        return replay.step_log_prob.double().sum(-1).cpu(), replay.nfe
