"""DTS* — the search (optimisation) variant of Diffusion Tree Sampling (Jain et al. 2025, "Diffusion Tree
Sampling: Scalable inference-time alignment of diffusion models", Sec. 4.2).

Same tree, widening, rollouts and backups as :mod:`seqtree.search.dts`; selection is greedy instead of Boltzmann:
child = argmax_c V(c) + c_uct sqrt(log N(x) / N(c)) (a UCT bonus, Kocsis & Szepesvari 2006). ``backup`` picks the
value selection reads: ``soft`` (DTS's soft Bellman value alpha log mean exp(V / alpha)) or ``max`` (the
max-backup variant, V(x) = max_c V(c), the best reward found below x). Both are maintained by the shared backup.
Designs are the best distinct terminal sequences found.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from pydantic import Field

from seqtree.search.budget import Budget
from seqtree.search.dts import ChildSelector, TreeSearchParams, finish_from_nodes, grow_tree
from seqtree.search.params import build_params
from seqtree.search.problem import SearchProblem
from seqtree.search.result import SearchResult
from seqtree.search.tree import Tree


class DTSStarParams(TreeSearchParams):
    exploration: float = Field(1.0, ge=0, description="c_uct, weight of the UCT bonus in reward units")
    backup: Literal["soft", "max"] = Field("soft", description="value read by selection: soft or max backup")


def greedy_child(exploration: float, backup: str) -> ChildSelector:
    """argmax_c V(c) + exploration sqrt(log N(x) / N(c)); ties go to the oldest child."""

    def select(tree: Tree, node: int, children: np.ndarray) -> int:
        values = tree.soft_value[children] if backup == "soft" else tree.value[children]
        visits = np.maximum(tree.visits[children], 1)
        bonus = exploration * np.sqrt(np.log(max(int(tree.visits[node]), 1)) / visits)
        return int(children[int(np.argmax(values + bonus))])

    return select


def best_terminals(tree: Tree, scores: np.ndarray, count: int) -> np.ndarray:
    """Ids of up to ``count`` scored terminal nodes with the highest scores, one per distinct sequence."""
    order = np.argsort(-scores, kind="stable")
    seen, out = set(), []
    for node in order.tolist():
        key = tree.tokens[node].tobytes()
        if key not in seen:
            seen.add(key)
            out.append(node)
        if len(out) == count:
            break
    return np.array(out, np.int64)


def run_dts_star(
    problem: SearchProblem,
    budget: Budget,
    *,
    generator: torch.Generator,
    params: DTSStarParams | None = None,
    **overrides,
) -> SearchResult:
    p = build_params(DTSStarParams, params, overrides)
    engine, tree, iterations = grow_tree(
        problem, budget, generator, p, lambda _host: greedy_child(p.exploration, p.backup)
    )
    size = tree.size
    scored = np.nonzero(tree.terminal[:size] & ~np.isnan(tree.reward[:size, 0]))[0]
    scores = np.full(size, -np.inf)
    scores[scored] = engine.node_scores(tree, scored)
    nodes = best_terminals(tree, scores, p.num_samples)
    nodes = nodes[np.isfinite(scores[nodes])] if nodes.size else nodes
    return finish_from_nodes(engine, tree, nodes, "dts_star", iterations)
