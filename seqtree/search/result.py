"""What every search returns: designs, the anytime curve, trajectories for a replay buffer, and the accounting."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from seqtree.search.tree import Tree

CURVE_COLUMNS = ("nfe", "oracle_calls", "seconds", "best_reward", "mean_reward", "invalid_fraction")


@dataclass(frozen=True)
class CurvePoint:
    """One point of the anytime curve, recorded after every oracle call (and once at the end)."""

    nfe: int
    oracle_calls: int
    seconds: float
    best_reward: float  # best scalarised reward of any sequence scored so far
    mean_reward: float  # mean scalarised reward of the valid sequences produced so far (NaN while none is valid)
    # fraction of the sequences produced so far that got the oracle's floor (invalid, failed, infinite reward); the
    # floor is left out of mean_reward, which would otherwise read as the floor times this fraction
    invalid_fraction: float


@dataclass(frozen=True)
class Designs:
    """Designs as columns, sorted by scalarised reward (best first)."""

    sequences: list[str]
    tokens: Tensor  # [N, L] long
    rewards: Tensor  # [N, K] float64 oracle rewards (K objectives)
    scores: Tensor  # [N] float64 scalarised rewards
    log_prob_model: Tensor  # [N] float32 log-probability of the sampling path under the untempered model
    weights: Tensor | None  # [N] float64 normalised weights of the algorithm (SMC, DTS, best-of-N), else None

    def __len__(self) -> int:
        return len(self.sequences)

    def to_dataframe(self):
        import pandas as pd

        data: dict[str, object] = {"sequence": self.sequences, "reward": self.scores.tolist()}
        if self.rewards.shape[1] > 1:
            for j in range(self.rewards.shape[1]):
                data[f"reward_{j}"] = self.rewards[:, j].tolist()
        data["log_prob_model"] = self.log_prob_model.tolist()
        if self.weights is not None:
            data["weight"] = self.weights.tolist()
        return pd.DataFrame(data)


UNKNOWN_STEP = -2  # unmask_step of a designed position whose path is not known (imported data, a remask child)


@dataclass(frozen=True)
class Trajectories:
    """Sampling paths of the designs (same rows), as a replay buffer needs them."""

    tokens: Tensor  # [N, L] final tokens
    log_prob: Tensor  # [N, T] per reverse step, under the distribution sampled from (T = num_steps)
    log_prob_model: Tensor  # [N, T] per reverse step, under the untempered model
    # [N, L] long, reverse step at which each position was unmasked; -1 for positions fixed from the root (prompt,
    # scaffold, padding), UNKNOWN_STEP where no path is known (its log-probabilities are then 0). With the tokens it
    # replays the path under another model (seqtree.trajectory).
    unmask_step: Tensor


@dataclass
class SearchResult:
    algorithm: str
    designs: Designs
    trajectories: Trajectories
    curve: list[CurvePoint]
    nfe: int
    oracle_calls: int
    seconds: float
    stop_reason: str  # "nfe", "oracle_calls", "seconds", "iterations" or "completed"
    iterations: int = 0
    pareto_front: Designs | None = None  # non-dominated designs when the oracle has several objectives
    tree: Tree | None = None  # the search tree (tree algorithms)
    extras: dict[str, object] = field(default_factory=dict)

    @property
    def best_reward(self) -> float:
        """Best scalarised reward seen by the search (any sequence scored), NaN if none."""
        return self.curve[-1].best_reward if self.curve else float("nan")

    def curve_dataframe(self):
        import pandas as pd

        return pd.DataFrame([vars(p) for p in self.curve], columns=list(CURVE_COLUMNS))

    def designs_dataframe(self):
        return self.designs.to_dataframe()


_PROJECTIONS: dict[tuple[int, str], Tensor] = {}


def _projection(width: int, device: torch.device) -> Tensor:
    """Fixed random int64 weights in [1, 2^30) per column (seeded: the same on every run and device)."""
    key = (width, str(device))
    if key not in _PROJECTIONS:
        weights = torch.randint(1, 1 << 30, (width,), generator=torch.Generator().manual_seed(width), dtype=torch.long)
        _PROJECTIONS[key] = weights.to(device)
    return _PROJECTIONS[key]


def row_groups(rows: Tensor) -> tuple[Tensor, Tensor]:
    """Equal rows of the integer matrix ``rows`` [N, L] (N > 0): (group Long[N], first Long[G]), group ids 0..G-1
    equal exactly for equal rows, and first[g] the index of group g's first row.

    One sort of N numbers (a fixed random projection of each row) instead of a sort of N rows of L columns: on a GPU
    ``torch.unique(dim=0)`` costs about 1 ms of host and device time per call at 64 rows of 257 (issue 13). The
    grouping is then checked exactly against the rows; different rows with the same projection (improbable) fall
    back to the sort of whole rows, so the answer never depends on the projection. The number of groups and the
    check's outcome are read from the device together: one synchronisation (``torch.unique`` plus the check took
    two)."""
    n = rows.shape[0]
    hashed = (rows.long() * _projection(rows.shape[1], rows.device)).sum(-1)
    ordered, order = hashed.sort(stable=True)
    starts = torch.ones(n, dtype=torch.bool, device=rows.device)
    starts[1:] = ordered[1:] != ordered[:-1]
    ranks = starts.cumsum(0) - 1  # group ids in increasing projection order, as torch.unique numbers them
    group = torch.empty_like(ranks).scatter_(0, order, ranks)
    first = _first_index(group, n)  # groups beyond the last hold n
    exact = (rows == rows[first[group]]).all()
    groups, exact = torch.stack((ranks[-1] + 1, exact.long())).tolist()  # the call's one wait for the device
    if not exact:
        values, group = torch.unique(rows, dim=0, return_inverse=True)
        return group, _first_index(group, values.shape[0])
    return group, first[:groups]


def _first_index(group: Tensor, groups: int) -> Tensor:
    n = group.shape[0]
    index = torch.arange(n, device=group.device)
    return torch.full((groups,), n, dtype=torch.long, device=group.device).scatter_reduce(0, group, index, "amin")


def first_copies(rows: Tensor, rank: Tensor | None = None) -> Tensor:
    """Indices into ``rows`` [N, L], one per distinct row: its copy with the smallest non-negative integer ``rank``
    (ties and the default: the earliest copy), listed in the order of each distinct row's first copy. One sort on
    whatever device ``rows`` live on, instead of hashing Python tuples row by row."""
    n = len(rows)
    if n == 0:
        return torch.zeros(0, dtype=torch.long, device=rows.device)
    group, first = row_groups(rows)
    index = torch.arange(n, device=rows.device)
    if rank is None:
        return first.sort().values
    key = rank.to(device=rows.device, dtype=torch.long) * n + index
    best = torch.full_like(first, int(key.max()) + 1).scatter_reduce(0, group, key, "amin") % n
    return best[first.argsort()]


def pareto_mask(points: Tensor) -> Tensor:
    """[N, K] -> Bool[N]: rows not dominated by any other row (maximisation; duplicates all kept)."""
    if points.shape[0] == 0:
        return torch.zeros(0, dtype=torch.bool)
    a = points.unsqueeze(1)  # [N, 1, K]
    b = points.unsqueeze(0)  # [1, N, K]
    dominated = ((b >= a).all(-1) & (b > a).any(-1)).any(1)
    return ~dominated
