"""Saving and resuming a tree search exactly: the tree plus everything else the run's future depends on.

A resumed run must equal an uninterrupted one with the same seed (the anytime property DTS is built on, Jain et
al. 2025, Sec. 4), so the saved file holds, besides the tree's arrays: the NFE / oracle-call / iteration counters,
the reward statistics and anytime curve, the generator state, and any archive the algorithm keeps outside the tree
(MCTS's rollouts). The oracle memo is rebuilt from every scored sequence, so memo hits (and with them oracle-call
counts) are the same after the resume.
"""

from __future__ import annotations

import numpy as np
import torch
from pydantic import Field

from seqtree.search.engine import Engine
from seqtree.search.params import SearchParams
from seqtree.search.result import CurvePoint
from seqtree.search.tree import Tree

ARCHIVE_PREFIX = "archive."


class ResumableParams(SearchParams):
    """Parameters of the algorithms whose state can be saved and continued (the CLI sets both for ``--resume``)."""

    resume_from: str | None = Field(None, description="a tree file saved by an earlier run to continue from")
    save_to: str | None = Field(None, description="write the tree, counters and generator state here at the end")


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
    curve = [[c.nfe, c.oracle_calls, c.seconds, c.best_reward, c.mean_reward] for c in engine.curve]
    tree.extras = {
        "counters": np.array([m.nfe, m.oracle_calls, iterations], np.int64),
        "reward_stats": np.array([engine.best, engine.reward_sum, engine.reward_count], np.float64),
        "curve": np.array(curve, np.float64).reshape(-1, 5),
        "generator_state": generator.get_state().numpy(),
        **{ARCHIVE_PREFIX + k: v.numpy() for k, v in (archive or {}).items()},
    }
    tree.save(path)


def restore_state(engine: Engine, tree: Tree, generator: torch.Generator) -> tuple[int, dict[str, torch.Tensor]]:
    """Put a saved run's counters, curve, oracle memo and generator state into ``engine`` and ``generator``.

    Returns the iteration count and the archive tensors saved with the tree (empty for DTS/DTS*). The memo is
    rebuilt from the tree's scored terminal nodes and, when present, the archive's ``tokens`` / ``rewards``."""
    extras = tree.extras
    nfe, oracle_calls, iterations = (int(v) for v in extras["counters"])
    engine.meter.nfe, engine.meter.oracle_calls = nfe, oracle_calls
    best, reward_sum, reward_count = (float(v) for v in extras["reward_stats"])
    engine.best, engine.reward_sum, engine.reward_count = best, reward_sum, int(reward_count)
    engine.curve = [CurvePoint(int(r[0]), int(r[1]), float(r[2]), float(r[3]), float(r[4])) for r in extras["curve"]]
    archive = {k.removeprefix(ARCHIVE_PREFIX): torch.from_numpy(v.copy()) for k, v in extras.items()
               if k.startswith(ARCHIVE_PREFIX)}  # fmt: skip
    scored = np.nonzero(tree.terminal[: tree.size] & ~np.isnan(tree.reward[: tree.size, 0]))[0]
    if scored.size:
        sequences = engine.decode(tree.token_tensor(scored))
        engine.memo.update(zip(sequences, torch.from_numpy(tree.reward[scored].copy())))
    if "tokens" in archive and len(archive["tokens"]):
        engine.memo.update(zip(engine.decode(archive["tokens"]), archive["rewards"]))
    generator.set_state(torch.from_numpy(extras["generator_state"].copy()))
    return iterations, archive
