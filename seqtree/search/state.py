"""Saving and resuming a tree search exactly: the tree plus everything else the run's future depends on.

A resumed run must equal an uninterrupted one with the same seed (the anytime property DTS is built on, Jain et
al. 2025, Sec. 4), so the saved file holds, besides the tree's arrays: the NFE / oracle-call / iteration counters,
the reward statistics and anytime curve, the generator state, and any archive the algorithm keeps outside the tree
(MCTS's rollouts). The oracle memo is rebuilt from every scored sequence, so memo hits (and with them oracle-call
counts) are the same after the resume, and the node cache is refilled (its ids are saved; their distributions are
recomputed without charge), so a resumed search skips the calls the uninterrupted one skips.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from pydantic import Field

from seqtree.search.budget import STOP_ITERATIONS, STOP_STALLED, Budget
from seqtree.search.engine import Engine
from seqtree.search.node_cache import NodeCache
from seqtree.search.params import SearchParams
from seqtree.search.problem import SearchProblem
from seqtree.search.result import CURVE_COLUMNS, CurvePoint
from seqtree.search.tree import Tree

HOST_STATE = "host_generator_state"  # a device run's CPU generator (tree selection), beside the device one
ARCHIVE_PREFIX = "archive."
NODE_CACHE = "node_cache"  # the kept node ids, least recently used first (seqtree.search.node_cache)


class ResumableParams(SearchParams):
    """Parameters of the algorithms whose state can be saved and continued (the CLI sets both for ``--resume``)."""

    resume_from: str | None = Field(None, description="a tree file saved by an earlier run to continue from")
    save_to: str | None = Field(None, description="write the tree, counters and generator state here at the end")


class TreeParams(ResumableParams):
    """What every tree search (DTS, DTS*, MCTS) shares: resuming, the iteration cap, the tree's first size and the
    stall guard."""

    max_iterations: int | None = Field(None, ge=0, description="stop after this many iterations (cumulative)")
    tree_capacity: int = Field(1024, ge=1, description="initial node capacity (doubles when full)")
    patience: int = Field(1000, ge=1, description="stop after this many iterations in a row that cost nothing")
    node_cache_mb: float = Field(
        64.0, ge=0, description="MiB of nodes' clean-token distributions kept for their next widening (0: off)"
    )


@dataclass
class TreeRun:
    """One tree search's state between iterations: the engine, the tree, the iteration count, the iterations in a
    row that spent nothing, and the archive an algorithm keeps outside the tree (MCTS's rollouts)."""

    engine: Engine
    tree: Tree
    iterations: int = 0
    idle: int = 0
    archive: dict[str, torch.Tensor] = field(default_factory=dict)

    @classmethod
    def open(cls, name: str, problem: SearchProblem, budget: Budget, generator: torch.Generator, p: TreeParams):
        """A new tree, or the saved one of ``p.resume_from`` with its counters, curve, memo and generator state."""
        if not budget.bounded and p.max_iterations is None:
            raise ValueError(f"{name}: a tree search needs a bounded budget or max_iterations")
        engine = Engine(problem, budget, generator)
        engine.node_cache = NodeCache(int(p.node_cache_mb * 2**20))
        if p.resume_from is None:
            return cls(engine, engine.new_tree(p.tree_capacity))
        tree = Tree.load(p.resume_from)
        iterations, archive = restore_state(engine, tree, generator)
        return cls(engine, tree, iterations, archive=archive)

    def go_on(self, p: TreeParams) -> bool:
        """True while no budget, the iteration cap or the stall guard stops the search (recording which did)."""
        meter = self.engine.meter
        if meter.exhausted():
            return False
        if p.max_iterations is not None and self.iterations >= p.max_iterations:
            meter.halt(STOP_ITERATIONS)
            return False
        if self.idle >= p.patience:
            meter.halt(STOP_STALLED)
            return False
        return True

    def spent(self) -> tuple[int, int]:
        return self.engine.meter.nfe, self.engine.meter.oracle_calls

    def count_idle(self, before: tuple[int, int]) -> None:
        """After an iteration: one more idle iteration in a row if it spent nothing since ``before``, else none."""
        self.idle = self.idle + 1 if self.spent() == before else 0

    def close(self, generator: torch.Generator, p: TreeParams, archive: dict[str, torch.Tensor] | None = None) -> None:
        """Save the run to ``p.save_to`` when asked (the tree, counters, curve, generator state and ``archive``)."""
        if p.save_to is not None:
            save_state(self.engine, self.tree, generator, self.iterations, p.save_to, archive=archive)


def save_state(
    engine: Engine,
    tree: Tree,
    generator: torch.Generator,
    iterations: int,
    path: str,
    archive: dict[str, torch.Tensor] | None = None,
) -> None:
    """Write the tree with the run's counters, curve, generator state and ``archive`` tensors to ``path``."""
    m = engine.meter
    curve = [[getattr(c, name) for name in CURVE_COLUMNS] for c in engine.curve]
    stats = [engine.best, engine.reward_sum, engine.reward_count, engine.invalid_count]
    tree.extras = {
        "counters": np.array([m.nfe, m.oracle_calls, iterations], np.int64),
        "reward_stats": np.array(stats, np.float64),
        "curve": np.array(curve, np.float64).reshape(-1, len(CURVE_COLUMNS)),
        "generator_state": generator.get_state().numpy(),
        **({} if engine.host_generator is generator else {HOST_STATE: engine.host_generator.get_state().numpy()}),
        **{ARCHIVE_PREFIX + k: v.numpy() for k, v in (archive or {}).items()},
        NODE_CACHE: engine.node_cache.ids(),
    }
    tree.save(path)


def restore_state(engine: Engine, tree: Tree, generator: torch.Generator) -> tuple[int, dict[str, torch.Tensor]]:
    """Put a saved run's counters, curve, oracle memo and generator state into ``engine`` and ``generator``.

    Returns the iteration count and the archive tensors saved with the tree (empty for DTS/DTS*). The memo is
    rebuilt from the tree's scored terminal nodes and, when present, the archive's ``tokens`` / ``rewards``."""
    extras = tree.extras
    nfe, oracle_calls, iterations = (int(v) for v in extras["counters"])
    engine.meter.nfe, engine.meter.oracle_calls = nfe, oracle_calls
    # states saved before the curve counted invalid sequences apart hold three statistics and five columns
    best, reward_sum, reward_count, invalid_count = [*(float(v) for v in extras["reward_stats"]), 0.0][:4]
    engine.best, engine.reward_sum = best, reward_sum
    engine.reward_count, engine.invalid_count = int(reward_count), int(invalid_count)
    missing = [math.nan] * (len(CURVE_COLUMNS) - extras["curve"].shape[1])  # an old curve: invalid fraction unknown
    engine.curve = [CurvePoint(int(r[0]), int(r[1]), *(float(v) for v in r[2:]), *missing) for r in extras["curve"]]
    archive = {k.removeprefix(ARCHIVE_PREFIX): torch.from_numpy(v.copy()) for k, v in extras.items()
               if k.startswith(ARCHIVE_PREFIX)}  # fmt: skip
    scored = np.nonzero(tree.terminal[: tree.size] & ~np.isnan(tree.reward[: tree.size, 0]))[0]
    if scored.size:
        sequences = engine.decode(tree.token_tensor(scored))
        engine.memo.update(zip(sequences, torch.from_numpy(tree.reward[scored].copy())))
    if "tokens" in archive and len(archive["tokens"]):
        engine.memo.update(zip(engine.decode(archive["tokens"]), archive["rewards"]))
    if NODE_CACHE in extras and engine.node_cache:
        engine.refill_node_cache(tree, extras[NODE_CACHE])
    generator.set_state(torch.from_numpy(extras["generator_state"].copy()))
    if HOST_STATE in extras and engine.host_generator is not generator:  # a device run's host-side stream
        engine.host_generator.set_state(torch.from_numpy(extras[HOST_STATE].copy()))
    return iterations, archive
