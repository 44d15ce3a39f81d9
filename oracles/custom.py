"""Custom oracles: a Python callable named ``"module:function"``, used only when a recipe names it explicitly.

The callable takes ``list[str]`` and returns one float per sequence (any sequence of numbers, a numpy array or a
tensor; ``[B, K]`` when ``num_objectives > 1``). Importing a module runs its code, so nothing is imported unless
the recipe says ``name: custom`` with a ``function`` parameter (or a constraint with ``function:``).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import numpy as np

from seqtree.oracles.base import Direction, Oracle
from seqtree.oracles.registry import register_oracle


def load_callable(path: str) -> Callable[..., Any]:
    """Import ``"package.module:function"`` (attributes may be dotted: ``"mod:Class.method"``)."""
    module_name, sep, attr = path.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"expected 'module:function', got {path!r}")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    if not callable(obj):
        raise TypeError(f"{path!r} is not callable")
    return obj


@register_oracle("custom", family="custom", domain="any")
class CustomOracle(Oracle):
    """A user Python callable 'module:function' mapping list[str] to floats (explicit recipes only)."""

    def __init__(
        self,
        function: str,
        direction: Direction = "maximize",
        optimum: float | None = None,
        bounds: tuple[float, float] | None = None,
        num_objectives: int = 1,
        name: str | None = None,
    ) -> None:
        self.function = function
        self.name = name or function.rsplit(":", 1)[-1]
        self.direction, self.optimum, self.bounds = direction, optimum, bounds
        if num_objectives < 1:
            raise ValueError("num_objectives must be >= 1")
        self.num_objectives = num_objectives
        self.objective_names = (
            [self.name] if num_objectives == 1 else [f"{self.name}_{k}" for k in range(num_objectives)]
        )
        super().__init__()
        self._fn = load_callable(function)

    def _evaluate(self, sequences: list[str]) -> np.ndarray:
        return np.asarray(self._fn(sequences), dtype=np.float64)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_fn": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._fn = load_callable(self.function)


def example_length(sequences: list[str]) -> list[float]:
    """Sequence length: the example callable used by the contract tests and ``seqtree oracles list``."""
    return [float(len(s)) for s in sequences]
