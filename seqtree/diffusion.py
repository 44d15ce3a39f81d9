"""Masked (absorbing) discrete diffusion: forward masking, the SUBS output rule, the NELBO and reverse steps.

Notation follows MDLM (Sahoo et al., "Simple and Effective Masked Diffusion Language Models", NeurIPS 2024) and
MD4 (Shi et al., "Simplified and Generalized Masked Diffusion for Discrete Data", NeurIPS 2024):

- forward process q(x_t | x_0) = prod_i Cat(x_t^i; alpha_t x_0^i + (1 - alpha_t) m)           (MDLM Eq. 2)
- SUBS parameterisation: the denoiser's clean-token distribution gives the mask zero mass, and an unmasked token
  is copied through unchanged                                                                   (MDLM Sec. 3.2.3)
- continuous-time NELBO  E_t [ alpha'_t / (1 - alpha_t) sum_{i: x_t^i = m} log p_theta(x_0^i | x_t) ]
                                                                                  (MDLM Eq. 10, MD4 Eq. 5)
- reverse step t -> s < t for a masked position:
  q(x_s = m | x_t = m) = (1 - alpha_s) / (1 - alpha_t),
  q(x_s = v | x_t = m) = (alpha_s - alpha_t) / (1 - alpha_t) * p_theta(x_0 = v | x_t)                 (MDLM Eq. 7)

Positions that are unmasked at the start of sampling (a prompt prefix, a scaffold, padding) are fixed: the
absorbing process never changes an unmasked token, and the SUBS rule copies it through.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

from seqtree.schedules import LogLinearSchedule, NoiseSchedule


class Denoiser(Protocol):
    """Any network mapping partially masked tokens and times to logits over clean tokens.

    tokens: Long[B, L], t: Float[B] -> logits: Float[B, L, V]. Time-independent denoisers ignore ``t``.
    """

    def __call__(self, tokens: Tensor, t: Tensor) -> Tensor: ...


@dataclass(frozen=True)
class NelboOutput:
    nats: Tensor  # [B] NELBO of each sequence in nats (an upper bound on -log p(x_0))
    num_tokens: Tensor  # [B] tokens that could be masked (the denominator of bits per token)
    t: Tensor  # [B] the diffusion times drawn


@dataclass(frozen=True)
class StepOutput:
    tokens: Tensor  # [B, L] x_s
    log_prob: Tensor  # [B] log-probability of the tokens chosen, under the distribution sampled from
    log_prob_model: Tensor  # [B] log-probability of the same tokens under the untempered, untruncated model
    num_unmasked: Tensor  # [B] positions unmasked by this step


def filter_log_probs(
    log_probs: Tensor, *, temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None
) -> Tensor:
    """Temperature, then top-k, then nucleus (top-p) truncation, renormalised. log_probs: [..., V].

    temperature 0 is greedy: all mass on the argmax.
    """
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if temperature == 0:
        greedy = torch.full_like(log_probs, float("-inf"))
        return greedy.scatter(-1, log_probs.argmax(-1, keepdim=True), 0.0)
    scores = log_probs / temperature if temperature != 1.0 else log_probs
    if top_k is not None:
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        k = min(top_k, scores.shape[-1])
        kth = scores.topk(k, dim=-1).values[..., -1:]
        scores = scores.masked_fill(scores < kth, float("-inf"))
    if top_p is not None:
        if not 0.0 < top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {top_p}")
        sorted_scores, order = scores.sort(dim=-1, descending=True)
        cumulative = sorted_scores.softmax(-1).cumsum(-1)
        # Drop a token when the mass before it already reaches top_p; the most likely token always stays.
        drop_sorted = (cumulative - sorted_scores.softmax(-1)) >= top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        scores = scores.masked_fill(drop, float("-inf"))
    return scores.log_softmax(-1)


class DenoiserOutputError(ValueError):
    """A denoiser returned NaN or infinite logits (caught before sampling, with the model and the step named)."""


def denoiser_name(denoiser) -> str:
    """The model a denoiser was loaded from (its config's path), else its class."""
    config = getattr(denoiser, "config", None)
    return str(getattr(config, "_name_or_path", "") or type(denoiser).__name__)


def check_log_probs(log_probs: Tensor, denoiser, t: Tensor, steps: Tensor | None = None) -> None:
    """Refuse a clean-token distribution with NaN in it (NaN or +inf logits, or no finite logit at a masked
    position) with an error naming the model and the step, instead of a crash inside ``torch.multinomial``
    (issue 14: ESM-2's token dropout on a fully masked row without its frame divides by zero)."""
    # One reduction first: log-probabilities are finite or -inf, so their sum is NaN exactly when one of them is
    # (a boolean [B, L, V] isnan costs as much as the SUBS rule itself); rows are looked for only then.
    if not bool(torch.isnan(log_probs.sum())):
        return
    broken = torch.isnan(log_probs).flatten(1).any(-1)  # [B]
    rows = broken.nonzero().squeeze(1)
    times = sorted({round(float(v), 4) for v in t[rows].tolist()})
    where = "" if steps is None else f" at reverse step(s) {sorted(set(steps[rows].tolist()))[:4]}"
    raise DenoiserOutputError(
        f"denoiser {denoiser_name(denoiser)!r} returned NaN or infinite logits for {rows.numel()} of "
        f"{len(broken)} rows{where} (t = {', '.join(map(str, times[:4]))}); check the model and its frame "
        "(seqtree models inspect)"
    )


def sample_categorical(log_probs: Tensor, generator: torch.Generator | None, *, nan_safe: bool = False) -> Tensor:
    """One draw per row of log_probs [N, V] -> Long[N], through ``generator``; ``nan_safe``: NaN entries count as
    probability 1 (a broken row is still a distribution; see :meth:`MaskedDiffusion.unmask_positions`)."""
    if log_probs.shape[0] == 0:
        return torch.zeros(0, dtype=torch.long, device=log_probs.device)
    probs = log_probs.float().exp()
    if nan_safe:
        probs = probs.nan_to_num_(nan=1.0)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


class MaskedDiffusion:
    """The absorbing-state diffusion process for one vocabulary.

    ``forbidden_ids`` are ids the denoiser may never produce at a masked position (the mask itself, padding and
    other special tokens); the SUBS rule gives them zero probability.
    """

    def __init__(
        self,
        *,
        mask_id: int,
        vocab_size: int,
        forbidden_ids: Iterable[int] = (),
        schedule: NoiseSchedule | None = None,
    ) -> None:
        if not 0 <= mask_id < vocab_size:
            raise ValueError(f"mask_id {mask_id} is outside the vocabulary of size {vocab_size}")
        self.mask_id = mask_id
        self.vocab_size = vocab_size
        self.schedule = schedule or LogLinearSchedule()
        forbidden = torch.zeros(vocab_size, dtype=torch.bool)
        forbidden[mask_id] = True
        for token in forbidden_ids:
            forbidden[token] = True
        self.forbidden = forbidden  # [V]
        self._forbidden_ids_on: dict[torch.device, Tensor] = {}  # one copy per device, not a transfer per call

    def forbidden_ids_on(self, device: torch.device) -> Tensor:
        """The forbidden ids, Long[F], as a tensor on ``device`` (copied there once)."""
        if device not in self._forbidden_ids_on:
            self._forbidden_ids_on[device] = self.forbidden.nonzero().squeeze(1).to(device)
        return self._forbidden_ids_on[device]

    @classmethod
    def for_tokenizer(
        cls,
        tokenizer,
        schedule: NoiseSchedule | None = None,
        vocab_size: int | None = None,
        forbidden_ids: Iterable[int] = (),
    ):
        """The process of a tokenizer. ``vocab_size`` may exceed the tokenizer's (padded embedding tables);
        ids beyond the tokenizer are forbidden like special ids, so they are never sampled, and so are
        ``forbidden_ids`` (a model family's non-design tokens, :mod:`seqtree.models.framing`)."""
        vocab_size = vocab_size or tokenizer.vocab_size
        unused = range(tokenizer.vocab_size, vocab_size)
        return cls(
            mask_id=tokenizer.mask_id,
            vocab_size=vocab_size,
            forbidden_ids=[*tokenizer.special_ids, *unused, *forbidden_ids],
            schedule=schedule,
        )

    # ----------------------------------------------------------------------------------------------- forward
    def forward_mask(
        self, x0: Tensor, t: Tensor, generator: torch.Generator | None = None, maskable: Tensor | None = None
    ) -> Tensor:
        """Draw x_t ~ q(x_t | x_0): each maskable token is masked with probability 1 - alpha(t). x0: [B, L], t: [B]."""
        p_mask = (1.0 - self.schedule.alpha(t)).unsqueeze(-1)  # [B, 1]
        draw = torch.rand(x0.shape, generator=generator, device=x0.device)
        masked = draw < p_mask
        if maskable is not None:
            masked &= maskable
        return x0.masked_fill(masked, self.mask_id)

    def subs_log_probs(self, logits: Tensor, x_t: Tensor) -> Tensor:
        """SUBS output rule: log p_theta(x_0 | x_t) with forbidden ids at -inf and unmasked tokens copied through.

        logits: [B, L, V'] with V' >= V (extra columns are dropped); x_t: [B, L] -> [B, L, V] float32.
        """
        logits = logits[..., : self.vocab_size].float()
        # By index, not by a broadcast [V] mask: the same values, in a copy plus a few columns (a masked_fill
        # broadcast over [B, L, V] costs as much as the log_softmax).
        logits = logits.index_fill(-1, self.forbidden_ids_on(logits.device), float("-inf"))
        log_probs = logits.log_softmax(-1)
        # Unmasked rows become one-hot in place (two passes over [B, L, V], not four): the scatter writes 0 at an
        # unmasked position's own token and -inf at a masked position's mask id, which the forbidden ids hold anyway.
        unmasked = (x_t != self.mask_id).unsqueeze(-1)
        if log_probs.requires_grad:  # training: log_softmax's backward reads its output, which must stay as it is
            log_probs = log_probs.masked_fill(unmasked, float("-inf"))
        else:
            log_probs.masked_fill_(unmasked, float("-inf"))
        return log_probs.scatter_(-1, x_t.unsqueeze(-1), torch.where(unmasked, 0.0, float("-inf")))

    def denoise(self, denoiser: Denoiser, x_t: Tensor, t: Tensor) -> Tensor:
        """One denoiser call followed by the SUBS rule: log p_theta(x_0 | x_t), [B, L, V]. Costs B NFE."""
        return self.subs_log_probs(denoiser(x_t, t), x_t)

    # ------------------------------------------------------------------------------------------------- NELBO
    def sample_times(self, batch: int, generator: torch.Generator | None, device=None) -> Tensor:
        """Low-discrepancy (antithetic) times in (0, 1]: a shared uniform offset plus a stratified grid (MDLM)."""
        offset = torch.rand((), generator=generator, device=device)
        grid = torch.arange(batch, device=device, dtype=torch.float32) / batch
        return 1.0 - torch.remainder(offset + grid, 1.0)

    def nelbo(
        self,
        denoiser: Denoiser,
        x0: Tensor,
        *,
        generator: torch.Generator | None = None,
        maskable: Tensor | None = None,
        t: Tensor | None = None,
    ) -> NelboOutput:
        """One-sample Monte Carlo estimate of the continuous-time NELBO of each sequence (MDLM Eq. 10).

        ``maskable`` [B, L] excludes positions (padding, a fixed prompt) from masking and from the token count.
        """
        if t is None:
            t = self.sample_times(x0.shape[0], generator, x0.device)
        if maskable is None:
            maskable = torch.ones_like(x0, dtype=torch.bool)
        x_t = self.forward_mask(x0, t, generator, maskable)
        log_probs = self.denoise(denoiser, x_t, t)
        token_log_probs = log_probs.gather(-1, x0.unsqueeze(-1)).squeeze(-1)  # [B, L]
        masked = x_t == self.mask_id
        cross_entropy = -(token_log_probs.masked_fill(~masked, 0.0)).sum(-1)  # [B]
        nats = self.schedule.nelbo_weight(t) * cross_entropy
        return NelboOutput(nats=nats, num_tokens=maskable.sum(-1), t=t)

    # ------------------------------------------------------------------------------------------------ reverse
    def reverse_step(
        self,
        log_probs: Tensor,
        x_t: Tensor,
        t: Tensor,
        s: Tensor,
        *,
        generator: torch.Generator | None = None,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        p_unmask: Tensor | None = None,
    ) -> StepOutput:
        """Draw x_s ~ p_theta(x_s | x_t) for s < t (MDLM Eq. 7), given log p_theta(x_0 | x_t) [B, L, V].

        Each masked position unmasks with probability (alpha_s - alpha_t) / (1 - alpha_t) and then takes a token
        from the (optionally tempered / truncated) clean-token distribution. At s = 0 every position unmasks.
        ``p_unmask`` [B]: :meth:`unmask_probability` of (t, s) when the caller has it already (a search's steps lie
        on a fixed grid: one lookup instead of a dozen small kernels per step).
        """
        if p_unmask is None:
            p_unmask = self.unmask_probability(t, s)
        unmask = self.draw_unmask(x_t, p_unmask, generator)
        return self.unmask_positions(
            log_probs, x_t, unmask, generator=generator, temperature=temperature, top_k=top_k, top_p=top_p
        )

    def unmask_probability(self, t: Tensor, s: Tensor) -> Tensor:
        """Probability that a masked position unmasks between t and s < t, (alpha_s - alpha_t) / (1 - alpha_t)
        (MDLM Eq. 7), and 1 at s = 0; elementwise."""
        alpha_t, alpha_s = self.schedule.alpha(t), self.schedule.alpha(s)
        p_unmask = ((alpha_s - alpha_t) / (1.0 - alpha_t).clamp_min(1e-12)).clamp(0.0, 1.0)
        return torch.where(s <= 0, torch.ones_like(p_unmask), p_unmask)

    def draw_unmask(self, x_t: Tensor, p_unmask: Tensor, generator: torch.Generator | None) -> Tensor:
        """Bool[B, L]: the masked positions of x_t that unmask in this step, each with probability p_unmask [B]
        (MDLM Eq. 7's first factor). It needs no clean-token distribution, so a search draws it before the
        denoiser call whose output fills the positions (:meth:`unmask_positions`)."""
        draw = torch.rand(x_t.shape, generator=generator, device=x_t.device)
        return (x_t == self.mask_id) & (draw < p_unmask.unsqueeze(-1))

    def unmask_positions(
        self,
        log_probs: Tensor,
        x_t: Tensor,
        unmask: Tensor,
        *,
        generator: torch.Generator | None = None,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        positions: Tensor | None = None,
        nan_safe: bool = False,
    ) -> StepOutput:
        """Fill the positions in ``unmask`` [B, L] with tokens drawn from log_probs; everything else stays.

        ``positions``: ``unmask.nonzero()`` when the caller has it already (found before the denoiser call, it is
        not a wait for that call to finish). ``nan_safe``: draw from a uniform distribution where a row of
        log_probs holds NaN instead of failing inside the sampler, for a caller that checks the denoiser's output
        later (on a GPU the failure would be a device assert that no error message survives)."""
        if positions is None:
            positions = unmask.nonzero()  # row-major, as boolean indexing; one host sync, not three
        rows, columns = positions.unbind(1)
        selected_model = log_probs[rows, columns]  # [N, V]
        selected = filter_log_probs(selected_model, temperature=temperature, top_k=top_k, top_p=top_p)
        tokens = sample_categorical(selected, generator, nan_safe=nan_safe)
        x_s = x_t.clone()
        x_s[rows, columns] = tokens
        chosen = selected.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
        chosen_model = selected_model.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
        batch = x_t.shape[0]
        log_prob = torch.zeros(batch, device=x_t.device).index_add(0, rows, chosen)
        log_prob_model = torch.zeros(batch, device=x_t.device).index_add(0, rows, chosen_model)
        return StepOutput(x_s, log_prob, log_prob_model, unmask.sum(-1))
