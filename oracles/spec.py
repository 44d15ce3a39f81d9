"""Build an oracle pipeline from a plain dict (the ``oracle:`` section of a recipe YAML).

The format is documented in the package docstring (:mod:`seqtree.oracles`). Validation is pydantic: unknown keys
and wrong types are errors naming the field, and a leaf's ``params`` are checked against the registered
constructor. The result is always maximise-oriented: minimise leaves are negated (or flipped by ``normalize``).
"""

from __future__ import annotations

from typing import Any

import pydantic
from pydantic import BaseModel, ConfigDict, Field, model_validator

from seqtree.oracles.base import Oracle
from seqtree.oracles.cache import CachedOracle
from seqtree.oracles.compose import (
    Clip,
    Constrained,
    Constraint,
    Normalize,
    ParetoVector,
    WeightedSum,
    Window,
    as_reward,
)
from seqtree.oracles.custom import load_callable
from seqtree.oracles.pool import PooledOracle
from seqtree.oracles.registry import build_oracle


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TermSpec(_Strict):
    """One registered oracle with its transforms (a leaf, or a term of ``sum`` / ``pareto``)."""

    name: str
    params: dict[str, Any] = Field(default_factory=dict)
    weight: float = 1.0
    clip: tuple[float, float] | None = None
    normalize: bool = False
    bounds: tuple[float, float] | None = None
    window: tuple[float, float] | None = None
    window_scale: float | None = None

    @model_validator(mode="after")
    def _one_shaping(self) -> TermSpec:
        if self.normalize and self.window is not None:
            raise ValueError("give either normalize or window, not both")
        if self.window_scale is not None and self.window is None:
            raise ValueError("window_scale needs window")
        return self


class ConstraintSpec(_Strict):
    """Feasible when ``min <= name(x) <= max``; or when the explicit Python predicate ``function`` is true."""

    name: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    min: float | None = None
    max: float | None = None
    function: str | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> ConstraintSpec:
        if (self.name is None) == (self.function is None):
            raise ValueError("a constraint needs exactly one of name (a registered oracle) or function")
        if self.name is not None and self.min is None and self.max is None:
            raise ValueError(f"constraint {self.name!r} needs min and/or max")
        return self


class OracleSpec(_Strict):
    """The whole pipeline: exactly one of ``name`` (a leaf), ``sum`` or ``pareto``, plus wrappers."""

    name: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    clip: tuple[float, float] | None = None
    normalize: bool = False
    bounds: tuple[float, float] | None = None
    window: tuple[float, float] | None = None
    window_scale: float | None = None
    sum: list[TermSpec] | None = None
    pareto: list[TermSpec] | None = None
    constraints: list[ConstraintSpec] = Field(default_factory=list)
    cache: bool = True
    workers: int = Field(default=0, ge=0)
    chunk_size: int = Field(default=16, ge=1)
    timeout_s: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _one_kind(self) -> OracleSpec:
        kinds = [k for k in ("name", "sum", "pareto") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError(f"give exactly one of name, sum or pareto (got {kinds or 'none'})")
        if self.name is None and (self.params or self.clip or self.normalize or self.bounds or self.window):
            raise ValueError("params/clip/normalize/bounds/window belong to a leaf or to each term of sum/pareto")
        if self.timeout_s is not None and self.workers == 0:
            raise ValueError("timeout_s needs workers >= 1 (time-outs are enforced in worker processes)")
        return self


def build_term(term: TermSpec) -> Oracle:
    """One leaf: build, clip, then window or normalize, then orient for maximisation."""
    oracle = build_oracle(term.name, **term.params)
    if term.clip is not None:
        oracle = Clip(oracle, *term.clip)
    if term.window is not None:
        return Window(oracle, *term.window, scale=term.window_scale)
    if term.normalize:
        return Normalize(oracle, term.bounds)
    if term.bounds is not None:
        raise ValueError(f"term {term.name!r}: bounds is only used with normalize")
    return as_reward(oracle)


def _build_constraint(spec: ConstraintSpec) -> Constraint:
    if spec.function is not None:
        return Constraint(name=spec.function, predicate=load_callable(spec.function))
    assert spec.name is not None
    return Constraint(name=spec.name, oracle=build_oracle(spec.name, **spec.params), lo=spec.min, hi=spec.max)


def build_oracle_from_spec(spec: dict[str, Any] | OracleSpec) -> Oracle:
    """Validate a spec dict and build the maximise-oriented oracle pipeline it describes."""
    if not isinstance(spec, OracleSpec):
        try:
            spec = OracleSpec.model_validate(spec)
        except pydantic.ValidationError as err:
            raise ValueError(f"invalid oracle spec\n{err}") from err
    if spec.name is not None:
        leaf = TermSpec(
            name=spec.name, params=spec.params, clip=spec.clip, normalize=spec.normalize,
            bounds=spec.bounds, window=spec.window, window_scale=spec.window_scale,
        )
        oracle = build_term(leaf)
    elif spec.sum is not None:
        oracle = WeightedSum([build_term(t) for t in spec.sum], [t.weight for t in spec.sum])
    else:
        assert spec.pareto is not None
        oracle = ParetoVector([build_term(t) for t in spec.pareto])
    if spec.constraints:
        oracle = Constrained(oracle, [_build_constraint(c) for c in spec.constraints])
    if spec.workers > 0:
        oracle = PooledOracle(oracle, workers=spec.workers, chunk_size=spec.chunk_size, timeout_s=spec.timeout_s)
    if spec.cache:
        oracle = CachedOracle(oracle)
    return oracle
