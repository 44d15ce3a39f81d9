"""One budget and one meter shared by every search algorithm, so that algorithms are compared honestly.

NFE counts denoiser *rows* evaluated (a call on B rows costs B); oracle calls count sequences submitted to the
oracle. Before a batched call the engine shrinks the batch to what the budget still allows (or stops), so neither
count ever exceeds its limit. Wall-clock time is checked between calls: a call that starts in time finishes.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

STOP_NFE = "nfe"
STOP_ORACLE = "oracle_calls"
STOP_SECONDS = "seconds"
STOP_ITERATIONS = "iterations"
STOP_COMPLETED = "completed"
STOP_INTERRUPTED = "interrupted"
STOP_STALLED = "stalled"  # a tree search spent nothing for `patience` iterations in a row


@dataclass(frozen=True)
class Budget:
    """Limits on a search; ``None`` means unlimited. The search stops at the first limit reached."""

    nfe: int | None = None
    oracle_calls: int | None = None
    seconds: float | None = None

    def __post_init__(self) -> None:
        for name in ("nfe", "oracle_calls", "seconds"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"Budget.{name} must be >= 0 or None, got {value}")

    @property
    def bounded(self) -> bool:
        return any(v is not None for v in (self.nfe, self.oracle_calls, self.seconds))


class Meter:
    """Running totals of one search. ``nfe`` and ``oracle_calls`` start from earlier totals on resume."""

    def __init__(self, budget: Budget, *, nfe: int = 0, oracle_calls: int = 0, seconds: float = 0.0) -> None:
        self.budget = budget
        self.nfe = nfe
        self.oracle_calls = oracle_calls
        self.denoiser_calls = 0
        self.denoiser_seconds = 0.0  # time spent inside the denoiser (for the engine-overhead benchmark)
        self._seconds_before = seconds
        self._start = time.perf_counter()
        self.stop_reason: str | None = None
        self.stop_requested = False  # set by an observer (Ctrl-C); honoured at the next exhausted() check

    @property
    def seconds(self) -> float:
        return self._seconds_before + time.perf_counter() - self._start

    @property
    def nfe_left(self) -> float:
        return math.inf if self.budget.nfe is None else self.budget.nfe - self.nfe

    @property
    def oracle_left(self) -> float:
        return math.inf if self.budget.oracle_calls is None else self.budget.oracle_calls - self.oracle_calls

    def halt(self, reason: str) -> None:
        """Record why the search stops (the first reason wins)."""
        if self.stop_reason is None:
            self.stop_reason = reason

    def exhausted(self) -> bool:
        """True once any limit is reached (and records which)."""
        if self.stop_reason is not None:
            return True
        if self.stop_requested:
            self.halt(STOP_INTERRUPTED)
        elif self.nfe_left <= 0:
            self.halt(STOP_NFE)
        elif self.oracle_left <= 0:
            self.halt(STOP_ORACLE)
        elif self.budget.seconds is not None and self.seconds >= self.budget.seconds:
            self.halt(STOP_SECONDS)
        return self.stop_reason is not None

    def charge_nfe(self, rows: int) -> None:
        if rows > self.nfe_left:
            raise RuntimeError(f"internal error: {rows} denoiser rows exceed the {self.nfe_left} left")
        self.nfe += rows
        self.denoiser_calls += 1

    def charge_oracle(self, sequences: int) -> None:
        if sequences > self.oracle_left:
            raise RuntimeError(f"internal error: {sequences} oracle calls exceed the {self.oracle_left} left")
        self.oracle_calls += sequences
