"""What a search is asked to solve: a denoiser and its diffusion process, an oracle, and a root to complete.

A node of every search is the state of the reverse process at a *branch point*: the diffusion steps
0 = k_0 < k_1 < ... < k_D = ``num_steps`` spaced ``branch_every`` apart (the last segment may be shorter), with
diffusion time t_k = 1 - k / num_steps. A child is one segment of ``branch_every`` reverse steps (as in DTS, Jain et
al. 2025, Sec. 4: branching only at scheduled steps). Unmasked positions of the root (prompt, scaffold, padding)
are never changed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import torch
from torch import Tensor

from seqtree.diffusion import Denoiser, MaskedDiffusion

if TYPE_CHECKING:
    from seqtree.search.result import CurvePoint


class Oracle(Protocol):
    """``oracle(sequences) -> Float64[B]`` or ``[B, K]`` (K objectives, attribute ``num_objectives``), maximised.

    Invalid sequences get a finite floor value, never an exception.
    """

    def __call__(self, sequences: list[str]) -> Tensor: ...


class Decoder(Protocol):
    """The part of a seqtree tokenizer a search needs: ids -> design string (special ids dropped)."""

    def decode(self, ids: list[int]) -> str: ...


@dataclass(frozen=True)
class SearchProblem:
    """Everything an algorithm needs besides its budget, its generator and its own parameters.

    ``objective_weights`` scalarise a K-objective reward (default: the mean of the objectives) for algorithms
    that need one number (DTS, SMC, SVDD, beam, the anytime curve); MCTS keeps the vector for Pareto selection.
    ``cache`` reuses a row's clean-token distribution while its tokens do not change (MDLM's no-change cache,
    exact for time-independent denoisers). ``memoize_oracle`` scores each distinct sequence once per run.
    """

    denoiser: Denoiser
    diffusion: MaskedDiffusion
    tokenizer: Decoder
    oracle: Oracle
    root: Tensor  # [L] long; masked positions are designed, the others are fixed
    num_steps: int = 32
    branch_every: int = 4
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    cache: bool = True
    memoize_oracle: bool = True
    objective_weights: tuple[float, ...] | None = None
    # The value an infinite reward from the oracle becomes (``seqtree.oracles.FLOOR``'s value): soft-value backups
    # take exp(V / alpha) and log-sum-exp over children, where -inf meets -inf and turns into NaN (issue 12)
    reward_floor: float = -1e3
    # Called with every new point of the anytime curve (progress bars); returning True asks the search to stop
    # at its next iteration boundary, as if a budget were spent (stop reason "interrupted").
    observer: Callable[[CurvePoint], bool | None] | None = None

    def __post_init__(self) -> None:
        if self.root.dim() != 1 or self.root.dtype != torch.long:
            raise ValueError(f"root must be a Long[L] tensor, got {tuple(self.root.shape)} {self.root.dtype}")
        if self.num_steps < 1:
            raise ValueError(f"num_steps must be >= 1, got {self.num_steps}")
        if self.branch_every < 1:
            raise ValueError(f"branch_every must be >= 1, got {self.branch_every}")
        if int(self.root.max()) >= self.diffusion.vocab_size or int(self.root.min()) < 0:
            raise ValueError("root holds ids outside the diffusion's vocabulary")

    @property
    def length(self) -> int:
        return int(self.root.shape[0])

    @property
    def num_objectives(self) -> int:
        if self.objective_weights is not None:
            return len(self.objective_weights)
        return int(getattr(self.oracle, "num_objectives", 1))

    @property
    def num_segments(self) -> int:
        return -(-self.num_steps // self.branch_every)

    def next_branch_step(self, step: Tensor) -> Tensor:
        """The branch point after diffusion step ``step`` (any shape, long): min(step + branch_every, N)."""
        return (step + self.branch_every).clamp(max=self.num_steps)

    def scalarize(self, rewards: Tensor) -> Tensor:
        """[B, K] float64 rewards -> [B] float64 scores (weighted sum; the mean when no weights are given)."""
        if rewards.shape[-1] == 1:
            return rewards[..., 0]
        if self.objective_weights is None:
            return rewards.mean(-1)
        weights = torch.tensor(self.objective_weights, dtype=rewards.dtype, device=rewards.device)
        return rewards @ weights
