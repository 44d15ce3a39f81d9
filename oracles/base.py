"""The oracle contract: a batched, deterministic, fault-tolerant scoring function over strings.

An oracle maps ``list[str]`` of length B to a float64 tensor of shape ``[B]`` (or ``[B, K]`` for K objectives).
Subclasses implement two small methods:

- ``_check(sequence) -> str | None``: a cheap validity test returning the reason a sequence is invalid, or None;
- ``_evaluate(sequences) -> array[B] or [B, K]``: the real scorer, called only on valid sequences.

:meth:`Oracle.score` wraps them so that nothing a sequence does can raise: invalid inputs, exceptions, NaN and
infinite values all become :data:`FLOOR` with a recorded reason (``OracleOutput.reasons`` per sequence, and the
running ``oracle.failures`` counter for the run summary). When ``_evaluate`` raises on a batch, the batch is
re-scored one sequence at a time so that only the culprits get the floor. A scorer that returns the wrong number
of values or objectives for its batch is a bug of the oracle, not of a sequence: :class:`OracleShapeError` names the
oracle and both counts, and nothing is broadcast.

Direction: an oracle reports its natural direction (``"maximize"`` or ``"minimize"``) and returns natural values.
Search always maximises, so recipes pass oracles through :func:`seqtree.oracles.as_reward` (the spec builder
:func:`seqtree.oracles.build_oracle_from_spec` always does), which negates minimise objectives.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np
import torch

Direction = Literal["maximize", "minimize"]

# The value every invalid or failed sequence receives. It is finite on purpose: soft-value backups compute
# exp(V / alpha) and log-sum-exp over children, where -inf turns into NaN once it meets another -inf or a 0 weight.
# -1e3 lies far below every normalised reward (composites with ``normalize`` live in [0, 1], windows in (0, 1],
# log-probabilities of classifiers in [-30, 0]) so a floored child is never preferred, while a mean backup over
# a few floored rollouts stays within float64 precision of the valid ones. Objectives with a larger raw range
# (a protein's molecular weight in Da) should be normalised, windowed or given their own ``floor``.
FLOOR: float = -1e3


@dataclass(frozen=True)
class OracleOutput:
    """The result of scoring one batch."""

    values: torch.Tensor  # [B] or [B, K] float64; FLOOR where not valid
    valid: torch.Tensor  # [B] bool
    reasons: list[str | None]  # [B] why a sequence got the floor, None when valid


class Oracle(ABC):
    """Base class of every oracle. Subclasses set the class attributes and implement ``_evaluate``.

    Counters (for the run summary; the search counts submitted sequences itself):
    ``calls`` is the number of sequences this oracle has scored (for :class:`CachedOracle`, cache misses only),
    ``failures`` counts the reasons of floored sequences.
    """

    name: str = "oracle"
    direction: Direction = "maximize"
    optimum: float | None = None
    bounds: tuple[float, float] | None = None
    num_objectives: int = 1
    objective_names: list[str]
    floor: float = FLOOR
    domain: ClassVar[str] = "any"  # "protein", "dna", "smiles", "text", "ehrlich" or "any": used for examples

    def __init__(self) -> None:
        self.calls: int = 0
        self.failures: Counter[str] = Counter()
        if not hasattr(self, "objective_names") or not self.objective_names:
            self.objective_names = [self.name]

    # ---- to implement -------------------------------------------------------------------------------------
    def _setup(self) -> None:
        """Load models or data on first use (so constructing and pickling stay cheap).

        Errors here are configuration errors (a missing model, an unknown label): they raise, they are not floored.
        """
        return None

    def _check(self, sequence: str) -> str | None:
        """Return why ``sequence`` cannot be scored, or None. Default: every string is valid."""
        return None

    @abstractmethod
    def _evaluate(self, sequences: list[str]) -> np.ndarray | torch.Tensor | Sequence[float]:
        """Score valid sequences. Returns values of shape [B] (or [B, K]); NaN or +-inf entries get the floor."""

    # ---- public -------------------------------------------------------------------------------------------
    def __call__(self, sequences: list[str]) -> torch.Tensor:
        """Score a batch; returns float64 values of shape [B] (or [B, K])."""
        return self.score(sequences).values

    def score(self, sequences: list[str]) -> OracleOutput:
        """Score a batch, never raising for a bad sequence; returns values, validity and reasons."""
        if isinstance(sequences, str):
            raise TypeError(f"{self.name}: expected a list of strings, got a single string")
        sequences = list(sequences)
        out = self._score_uncounted(sequences)
        self.calls += len(sequences)
        self.failures.update(r for r in out.reasons if r is not None)
        return out

    def as_reward(self) -> Oracle:
        """A maximise-oriented view of this oracle (negated when ``direction == "minimize"``)."""
        from seqtree.oracles.compose import as_reward

        return as_reward(self)

    def parts(self) -> list[Oracle]:
        """The oracles this one wraps or combines (empty for a leaf)."""
        found: list[Oracle] = []
        for attr in ("inner", "objective", "terms", "constraints"):
            value = self.__dict__.get(attr)
            items = value if isinstance(value, list) else [value]
            for item in items:
                item = getattr(item, "oracle", item)  # a Constraint holds its oracle
                if isinstance(item, Oracle):
                    found.append(item)
        return found

    def describe(self) -> dict[str, object]:
        """Plain metadata and counters for the run summary, with those of every part, recursively."""
        out: dict[str, object] = {
            "name": self.name,
            "type": type(self).__name__,
            "direction": self.direction,
            "optimum": self.optimum,
            "bounds": self.bounds,
            "objectives": list(self.objective_names),
            "calls": self.calls,
            "failures": dict(self.failures),
        }
        parts = self.parts()
        if parts:
            out["parts"] = [p.describe() for p in parts]
        return out

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, direction={self.direction!r})"

    # ---- machinery ----------------------------------------------------------------------------------------
    def _empty(self, n: int) -> torch.Tensor:
        shape = (n,) if self.num_objectives == 1 else (n, self.num_objectives)
        return torch.full(shape, self.floor, dtype=torch.float64)

    def _score_uncounted(self, sequences: list[str]) -> OracleOutput:
        if not getattr(self, "_ready", False):
            self._setup()
            self._ready = True
        n = len(sequences)
        values = self._empty(n)
        reasons: list[str | None] = [None] * n
        todo: list[int] = []
        for i, s in enumerate(sequences):
            reason = _safe_check(self, s)
            if reason is None:
                todo.append(i)
            else:
                reasons[i] = reason
        if todo:
            batch = [sequences[i] for i in todo]
            try:
                raw = self._as_tensor(self._evaluate(batch))
            except Exception:  # isolate the failing sequences one by one
                raw = None
            if raw is not None:
                got = self._check_shape(raw, len(batch))
            else:
                got = self._empty(len(batch))
                for j, s in enumerate(batch):
                    try:
                        one = self._as_tensor(self._evaluate([s]))
                    except Exception as err:
                        reasons[todo[j]] = _exception_reason(err)
                        continue
                    got[j] = self._check_shape(one, 1)[0]
            for j, i in enumerate(todo):
                if reasons[i] is not None:
                    continue
                row = got[j]
                bad = _nonfinite_reason(row)
                if bad is None:
                    values[i] = row
                else:
                    reasons[i] = bad
        valid = torch.tensor([r is None for r in reasons], dtype=torch.bool)
        return OracleOutput(values=values, valid=valid, reasons=reasons)

    def _as_tensor(self, raw: np.ndarray | torch.Tensor | Sequence[float]) -> torch.Tensor:
        t = torch.as_tensor(np.asarray(raw, dtype=np.float64) if not isinstance(raw, torch.Tensor) else raw)
        return t.detach().to(dtype=torch.float64, device="cpu")

    def _check_shape(self, t: torch.Tensor, n: int) -> torch.Tensor:
        """``t`` as [n] (or [n, K]); any other shape is an :class:`OracleShapeError`, never a broadcast or a floor:
        a scorer that answers for the wrong number of sequences or objectives is a bug, not a bad sequence."""
        k = self.num_objectives
        if k == 1 and t.dim() == 2 and t.shape[1] == 1:
            t = t[:, 0]  # [n, 1] is one objective per sequence
        if t.dim() == 0 or t.shape[0] != n:
            got = "one value" if t.dim() == 0 else f"{t.shape[0]} value{'s' * (t.shape[0] != 1)}"
            raise OracleShapeError(
                f"oracle {self.name!r} returned {got} (shape {tuple(t.shape)}) for a batch of {n} sequences; "
                f"an oracle must return one value per sequence, in order (shape [{n}] or [{n}, K])"
            )
        width = 1 if t.dim() == 1 else int(t.shape[1]) if t.dim() == 2 else None
        if width != k:
            got = f"{width} objective{'s' * (width != 1)}" if width is not None else "more than two dimensions"
            raise OracleShapeError(
                f"oracle {self.name!r} returned {got} per sequence, expected {k} (its num_objectives): "
                f"shape {tuple(t.shape)} for a batch of {n} sequences"
            )
        return t


class OracleShapeError(ValueError):
    """An oracle's scorer returned the wrong number of values or objectives for its batch (a bug in the oracle,
    raised rather than floored: no sequence is to blame)."""


class ForwardingOracle(Oracle):
    """Base of wrappers that score through ``self.inner`` by overriding ``score`` (cache, process pool): the
    wrapped oracle's extras (e.g. Ehrlich's ``optimal_solution``) stay reachable through the wrapper."""

    inner: Oracle

    def _adopt(self, oracle: Oracle) -> None:
        """Wrap ``oracle``: take over its name, direction, optimum, bounds, objectives, floor and domain."""
        self.inner = oracle
        for attr in ("name", "direction", "optimum", "bounds", "num_objectives", "floor", "domain"):
            if hasattr(oracle, attr):
                setattr(self, attr, getattr(oracle, attr))
        self.objective_names = list(oracle.objective_names)

    def __getattr__(self, attr: str) -> object:
        # Reached only for attributes this wrapper lacks: expose the wrapped oracle's extras
        # (e.g. ``optimal_solution`` of Ehrlich). Private and dunder names are not forwarded.
        if attr.startswith("_") or attr == "inner":
            raise AttributeError(attr)
        return getattr(self.inner, attr)

    def _evaluate(self, sequences: list[str]) -> torch.Tensor:  # pragma: no cover - score() is overridden
        return self.inner(sequences)


def _safe_check(oracle: Oracle, sequence: object) -> str | None:
    if not isinstance(sequence, str):
        return f"not a string: {type(sequence).__name__}"
    try:
        return oracle._check(sequence)
    except Exception as err:
        return _exception_reason(err)


def _exception_reason(err: BaseException) -> str:
    msg = str(err).splitlines()[0][:120] if str(err) else ""
    return f"exception: {type(err).__name__}" + (f": {msg}" if msg else "")


def _nonfinite_reason(row: torch.Tensor) -> str | None:
    vals = row.reshape(-1).tolist()
    if any(math.isnan(v) for v in vals):
        return "nan"
    if any(v == -math.inf for v in vals):
        return "infeasible (-inf)"
    if any(v == math.inf for v in vals):
        return "inf"
    return None


def check_alphabet(sequence: str, alphabet: str, what: str) -> str | None:
    """Reason string for an empty sequence, lowercase letters or a letter outside ``alphabet``; None if valid."""
    if not sequence:
        return "empty sequence"
    allowed = set(alphabet)
    for i, c in enumerate(sequence):
        if c not in allowed:
            if c.upper() in allowed:
                return f"lowercase letter {c!r} at position {i} (uppercase {what} expected)"
            return f"non-standard letter {c!r} at position {i} for {what}"
    return None
