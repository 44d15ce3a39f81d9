"""Composition: transforms, weighted sums, hard constraints and reward vectors, all themselves oracles.

Every composite keeps the floor contract: a sequence that is invalid for any part gets the floor, and its reason is
prefixed with the part's name (``"qed: invalid SMILES"``). Transforms act on valid values only.

- :func:`as_reward` (and ``Negate``): turn a minimise objective into a maximise one; search always maximises.
- ``Normalize``: min-max to [0, 1] with the oracle's (or given) bounds, flipped for minimise objectives, clipped.
- ``Clip``, ``Window``: clamp to [lo, hi]; reward ``exp(-d / scale)`` where d is the distance to [lo, hi]
  (1 inside the window, so the window is the optimum).
- ``WeightedSum``: sum of weight * value over maximise-oriented scalar terms.
- ``Constrained``: feasibility predicates checked first; an infeasible sequence gets the floor without being
  scored by the objective.
- ``ParetoVector``: K maximise-oriented scalar terms stacked into ``[B, K]`` for Pareto search.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from seqtree.oracles.base import Oracle, OracleOutput


def as_reward(oracle: Oracle) -> Oracle:
    """A maximise-oriented oracle: ``oracle`` itself, or its negation when it minimises."""
    return oracle if oracle.direction == "maximize" else Negate(oracle)


class _Composite(Oracle):
    """Shared machinery: ``score`` delegates to ``_combine`` instead of ``_check`` / ``_evaluate``."""

    def _evaluate(self, sequences: list[str]) -> torch.Tensor:  # pragma: no cover - not used by composites
        return self(sequences)

    def _score_uncounted(self, sequences: list[str]) -> OracleOutput:
        return self._combine(sequences)

    def _combine(self, sequences: list[str]) -> OracleOutput:
        raise NotImplementedError


class _Transform(_Composite):
    """Apply ``_map`` to the valid values of one inner oracle."""

    def __init__(self, inner: Oracle, *, name: str) -> None:
        self.inner = inner
        self.name = name
        self.num_objectives = inner.num_objectives
        self.objective_names = [name] if inner.num_objectives == 1 else list(inner.objective_names)
        self.floor = inner.floor
        super().__init__()

    def _map(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _combine(self, sequences: list[str]) -> OracleOutput:
        out = self.inner.score(sequences)
        values = out.values.clone()
        if out.valid.any():
            values[out.valid] = self._map(out.values[out.valid])
        return OracleOutput(values, out.valid, out.reasons)


class Negate(_Transform):
    """Negate values: a minimise objective becomes a maximise reward (and vice versa)."""

    def __init__(self, inner: Oracle) -> None:
        super().__init__(inner, name=f"neg_{inner.name}")
        self.direction = "minimize" if inner.direction == "maximize" else "maximize"
        self.optimum = None if inner.optimum is None else -inner.optimum
        self.bounds = None if inner.bounds is None else (-inner.bounds[1], -inner.bounds[0])

    def _map(self, x: torch.Tensor) -> torch.Tensor:
        return -x


class Clip(_Transform):
    """Clamp values to [lo, hi]."""

    def __init__(self, inner: Oracle, lo: float, hi: float) -> None:
        if not lo <= hi:
            raise ValueError(f"clip: lo={lo} must be <= hi={hi}")
        super().__init__(inner, name=inner.name)
        self.direction, self.lo, self.hi = inner.direction, lo, hi
        self.bounds = (lo, hi)
        self.optimum = None if inner.optimum is None else min(max(inner.optimum, lo), hi)

    def _map(self, x: torch.Tensor) -> torch.Tensor:
        return x.clamp(self.lo, self.hi)


class Normalize(_Transform):
    """Min-max normalise to [0, 1] by ``bounds`` (default: the oracle's), flipped for minimise; clipped."""

    def __init__(self, inner: Oracle, bounds: tuple[float, float] | None = None) -> None:
        lo, hi = _need_bounds(inner, bounds)
        super().__init__(inner, name=inner.name)
        self.lo, self.hi, self.flip = lo, hi, inner.direction == "minimize"
        self.direction, self.bounds = "maximize", (0.0, 1.0)
        self.optimum = None if inner.optimum is None else float(self._map(torch.tensor(inner.optimum)).item())

    def _map(self, x: torch.Tensor) -> torch.Tensor:
        z = ((x - self.lo) / (self.hi - self.lo)).clamp(0.0, 1.0)
        return 1.0 - z if self.flip else z


class Window(_Transform):
    """Target window: reward ``exp(-d / scale)``, 1 inside [lo, hi], decaying with the distance d outside."""

    def __init__(self, inner: Oracle, lo: float, hi: float, scale: float | None = None) -> None:
        if not lo <= hi:
            raise ValueError(f"window: lo={lo} must be <= hi={hi}")
        if inner.num_objectives != 1:
            raise ValueError("window applies to scalar oracles")
        super().__init__(inner, name=f"{inner.name}_in_[{lo:g},{hi:g}]")
        self.lo, self.hi = lo, hi
        self.scale = scale if scale is not None else (hi - lo if hi > lo else 1.0)
        if self.scale <= 0:
            raise ValueError("window: scale must be positive")
        self.direction, self.optimum, self.bounds = "maximize", 1.0, (0.0, 1.0)

    def _map(self, x: torch.Tensor) -> torch.Tensor:
        d = torch.clamp(self.lo - x, min=0.0) + torch.clamp(x - self.hi, min=0.0)
        return torch.exp(-d / self.scale)


def _need_bounds(oracle: Oracle, bounds: tuple[float, float] | None) -> tuple[float, float]:
    b = bounds if bounds is not None else oracle.bounds
    if b is None:
        raise ValueError(f"normalize: oracle {oracle.name!r} has no known bounds; give bounds: [lo, hi]")
    lo, hi = float(b[0]), float(b[1])
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"normalize: bounds of {oracle.name!r} must be finite with lo < hi, got {b}")
    return lo, hi


def _require_scalar_max(terms: list[Oracle], what: str) -> None:
    for t in terms:
        if t.num_objectives != 1:
            raise ValueError(f"{what}: term {t.name!r} has {t.num_objectives} objectives; terms must be scalar")
        if t.direction != "maximize":
            raise ValueError(f"{what}: term {t.name!r} minimises; wrap it with as_reward() or normalize it")


def _merge_terms(outs: list[OracleOutput], names: list[str], n: int) -> tuple[torch.Tensor, list[str | None]]:
    """Stack term values to [B, K] and merge reasons (first failing term wins)."""
    stacked = torch.stack([o.values for o in outs], dim=1) if outs else torch.zeros(n, 0, dtype=torch.float64)
    reasons: list[str | None] = [None] * n
    for o, name in zip(outs, names, strict=True):
        for i, r in enumerate(o.reasons):
            if r is not None and reasons[i] is None:
                reasons[i] = f"{name}: {r}"
    return stacked, reasons


class WeightedSum(_Composite):
    """Sum of ``weight * value`` over maximise-oriented scalar terms; any invalid term floors the sum."""

    def __init__(self, terms: list[Oracle], weights: list[float], *, name: str = "weighted_sum") -> None:
        if not terms or len(terms) != len(weights):
            raise ValueError("weighted sum needs at least one term and one weight per term")
        _require_scalar_max(terms, "weighted sum")
        self.terms, self.weights, self.name = terms, [float(w) for w in weights], name
        self.direction = "maximize"
        self.floor = min(t.floor for t in terms)
        super().__init__()
        if all(t.optimum is not None for t in terms) and all(w >= 0 for w in self.weights):
            self.optimum = sum(w * t.optimum for w, t in zip(self.weights, terms, strict=True))  # type: ignore[operator]
        if all(t.bounds is not None for t in terms):
            lo = sum(min(w * t.bounds[0], w * t.bounds[1]) for w, t in zip(self.weights, terms, strict=True))  # type: ignore[index]
            hi = sum(max(w * t.bounds[0], w * t.bounds[1]) for w, t in zip(self.weights, terms, strict=True))  # type: ignore[index]
            self.bounds = (lo, hi)

    def _combine(self, sequences: list[str]) -> OracleOutput:
        outs = [t.score(sequences) for t in self.terms]
        stacked, reasons = _merge_terms(outs, [t.name for t in self.terms], len(sequences))
        w = torch.tensor(self.weights, dtype=torch.float64)
        values = (stacked * w).sum(dim=1)
        valid = torch.tensor([r is None for r in reasons], dtype=torch.bool)
        values[~valid] = self.floor
        return OracleOutput(values, valid, reasons)


class ParetoVector(_Composite):
    """Stack K maximise-oriented scalar terms into a reward vector ``[B, K]`` (for Pareto search)."""

    def __init__(self, terms: list[Oracle], *, name: str = "pareto") -> None:
        if len(terms) < 1:
            raise ValueError("a reward vector needs at least one term")
        _require_scalar_max(terms, "pareto")
        self.terms, self.name = terms, name
        self.direction, self.num_objectives = "maximize", len(terms)
        self.objective_names = [t.name for t in terms]
        self.floor = min(t.floor for t in terms)
        super().__init__()

    def _combine(self, sequences: list[str]) -> OracleOutput:
        outs = [t.score(sequences) for t in self.terms]
        values, reasons = _merge_terms(outs, self.objective_names, len(sequences))
        valid = torch.tensor([r is None for r in reasons], dtype=torch.bool)
        values[~valid] = self.floor
        return OracleOutput(values, valid, reasons)


@dataclass(frozen=True)
class Constraint:
    """Feasible when ``lo <= oracle(x) <= hi`` (either bound may be None), or when ``predicate(x)`` is true."""

    name: str
    oracle: Oracle | None = None
    lo: float | None = None
    hi: float | None = None
    predicate: Callable[[str], bool] | None = None

    def __post_init__(self) -> None:
        if (self.oracle is None) == (self.predicate is None):
            raise ValueError(f"constraint {self.name!r}: give exactly one of oracle or predicate")
        if self.oracle is not None and self.lo is None and self.hi is None:
            raise ValueError(f"constraint {self.name!r}: give min and/or max")
        if self.oracle is not None and self.oracle.num_objectives != 1:
            raise ValueError(f"constraint {self.name!r}: constraint oracles must be scalar")

    def violations(self, sequences: list[str]) -> list[str | None]:
        """Per sequence: why it is infeasible, or None."""
        if self.predicate is not None:
            out: list[str | None] = []
            for s in sequences:
                try:
                    ok = bool(self.predicate(s))
                    out.append(None if ok else f"constraint {self.name} violated")
                except Exception as err:
                    out.append(f"constraint {self.name}: {type(err).__name__}: {err}"[:160])
            return out
        assert self.oracle is not None
        res = self.oracle.score(sequences)
        out = []
        for v, r in zip(res.values.tolist(), res.reasons, strict=True):
            if r is not None:
                out.append(f"{self.name}: {r}")
            elif (self.lo is not None and v < self.lo) or (self.hi is not None and v > self.hi):
                lo = "-inf" if self.lo is None else f"{self.lo:g}"
                hi = "inf" if self.hi is None else f"{self.hi:g}"
                out.append(f"constraint {self.name}={v:.4g} outside [{lo}, {hi}]")
            else:
                out.append(None)
        return out


class Constrained(_Composite):
    """Hard constraints around an objective: infeasible sequences get the floor and are never scored."""

    def __init__(self, objective: Oracle, constraints: list[Constraint]) -> None:
        self.objective, self.constraints = objective, constraints
        for attr in ("name", "direction", "optimum", "bounds", "num_objectives", "floor"):
            setattr(self, attr, getattr(objective, attr))
        self.objective_names = list(objective.objective_names)
        super().__init__()

    def _combine(self, sequences: list[str]) -> OracleOutput:
        n = len(sequences)
        reasons: list[str | None] = [None] * n
        live = list(range(n))
        for c in self.constraints:
            if not live:
                break
            viol = c.violations([sequences[i] for i in live])
            for i, r in zip(live, viol, strict=True):
                reasons[i] = r
            live = [i for i in live if reasons[i] is None]
        values = self._empty(n)
        if live:
            out = self.objective.score([sequences[i] for i in live])
            values[live] = out.values
            for i, r in zip(live, out.reasons, strict=True):
                reasons[i] = r
        valid = torch.tensor([r is None for r in reasons], dtype=torch.bool)
        return OracleOutput(values, valid, reasons)
