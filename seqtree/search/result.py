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
_OWN_NUMBERS = 0x5EED_0000_0000_0000  # rows left out of a grouping are numbered from here (a clash is checked for)


def _projection(width: int, device: torch.device) -> Tensor:
    """Fixed random int64 weights in [1, 2^30) per column (seeded: the same on every run and device)."""
    key = (width, str(device))
    if key not in _PROJECTIONS:
        weights = torch.randint(1, 1 << 30, (width,), generator=torch.Generator().manual_seed(width), dtype=torch.long)
        _PROJECTIONS[key] = weights.to(device)
    return _PROJECTIONS[key]


def hash_groups(rows: Tensor, include: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Equal rows of the integer matrix ``rows`` [N, L] (N > 0) among the ``include`` ones (Bool[N], default all),
    found on the rows' device without waiting for it: (rep Long[N], exact Bool[]). ``rep[i]`` is the smallest index
    of a row equal to row i (i itself for a row not included); ``exact`` says the grouping was checked against the
    rows and holds. A search reads both with whatever else it reads at that point (issue 13: one wait per reverse
    step), and :func:`exact_groups` redoes the grouping when ``exact`` is False.

    One stable sort of N numbers (a fixed random projection of each row, rows not included given numbers of their
    own) instead of a sort of N rows of L columns: on a GPU ``torch.unique(dim=0)`` costs about 1 ms of host and
    device time per call at 64 rows of 257. Different rows with the same projection are improbable, and the check
    catches them, so the answer never depends on the projection."""
    n = rows.shape[0]
    index = torch.arange(n, device=rows.device)
    hashed = (rows.long() * _projection(rows.shape[1], rows.device)).sum(-1)
    if include is not None:
        hashed = torch.where(include, hashed, index + _OWN_NUMBERS)
    ordered, order = hashed.sort(stable=True)  # stable: equal numbers keep index order, so a run begins at its min
    starts = torch.ones(n, dtype=torch.bool, device=rows.device)
    starts[1:] = ordered[1:] != ordered[:-1]
    run_start = torch.where(starts, index, 0).cummax(0).values  # sorted position where each one's run begins
    rep = torch.empty_like(order).scatter_(0, order, order[run_start])
    same = (rows == rows[rep]).all(-1)
    if include is not None:
        same = ~include | (same & include[rep])
    return rep, same.all()


def exact_groups(rows: Tensor, include: Tensor | None = None) -> Tensor:
    """:func:`hash_groups`' ``rep`` by a sort of whole rows (what it falls back to; one wait for the device)."""
    n = rows.shape[0]
    index = torch.arange(n, device=rows.device)
    keys = rows.long() if include is None else torch.cat([rows.long(), torch.where(include, -1, index)[:, None]], 1)
    _, group = torch.unique(keys, dim=0, return_inverse=True)
    first = _first_index(group, n)
    return first[group]


def row_groups(rows: Tensor) -> tuple[Tensor, Tensor]:
    """Equal rows of the integer matrix ``rows`` [N, L] (N > 0): (group Long[N], first Long[G]), group ids 0..G-1
    equal exactly for equal rows and numbered in order of first appearance, first[g] the index of group g's first
    row. One wait for the device: :func:`hash_groups`' group count and check are read together."""
    index = torch.arange(rows.shape[0], device=rows.device)
    rep, exact = hash_groups(rows)
    groups, exact = torch.stack(((rep == index).sum(), exact.long())).tolist()  # the call's one wait
    if not exact:
        rep = exact_groups(rows)
        groups = int((rep == index).sum())
    group = ((rep == index).cumsum(0) - 1)[rep]
    return group, _first_index(group, groups)


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
