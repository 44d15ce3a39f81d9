"""Diffusion Tree Sampling (DTS) — Jain, Fortuin, Tran, Tiwari, Rosenbaum, Gal, Ghahramani, Wilson, Ko,
"Diffusion Tree Sampling: Scalable inference-time alignment of diffusion models", 2025.

Target: pi*(x_0) ~ p_theta(x_0) exp(r(x_0) / alpha). With the soft value V(x_t) = alpha log E_{p_theta(x_0|x_t)}
exp(r(x_0) / alpha), the target's reverse transitions are p*(x_s | x_t) ~ p_theta(x_s | x_t) exp(V(x_s) / alpha)
(DTS Sec. 3, soft Bellman equation V(x_t) = alpha log E_{p_theta(x_s|x_t)} exp(V(x_s) / alpha)). DTS estimates V
on a tree whose children are samples of p_theta(x_s | x_t) (DTS Alg. 1):

- selection: from the root, at a node with N visits, widen (sample a new child) while its number of children is
  below C N^a (progressive widening, defaults C = 2, a = 0.75); otherwise pick a child c with probability
  ~ exp(V(c) / alpha) (Boltzmann selection);
- expansion and rollout: the new child is denoised segment by segment to a clean sequence and *every* state of the
  rollout is added to the tree; the clean sequence is scored, V(leaf) = r(x_0);
- backup: up the path, V(x) = alpha log (1/|C(x)|) sum_{c in C(x)} exp(V(c) / alpha) (the Monte Carlo soft Bellman
  backup over the children, which are i.i.d. draws of p_theta(. | x)).

Proposal correction. The children are drawn from the proposal q actually sampled (the recipe's temperature, top-k,
top-p), not from p_theta. Every exp(V(c) / alpha) above, in selection, backup and the tree's law, is therefore
multiplied by the child's segment ratio p_theta(c | x) / q(c | x) (recorded per node; 1 when q = p_theta): the
backup is the importance-sampling estimate of E_{p_theta} exp(V / alpha) from q's draws and the selection the
matching importance resampling. Without it the tree targets q(x) exp(r(x) / alpha) (issue 12).

Sampling from the finished tree needs no model call: descend from the root picking children ~ exp(V(c) / alpha);
:func:`terminal_probabilities` computes the law of that descent exactly for every terminal node, which is
consistent for pi* as the tree grows. The tree can be saved and resumed (``save_to`` / ``resume_from``): the saved
file holds the tree, the counters, the curve and the generator state, so a resumed run equals an uninterrupted one.

Departure: growth. The paper grows the tree by the same Boltzmann descent it samples with. Measured on an
enumerable toy (1,024 sequences, alpha 0.25, TV(p, pi*) = 0.76; 3 seeds), the law of the tree grown that way stays
far from pi* as compute grows (TV 0.24-0.53 at 8k NFE, 0.30-0.42 at 32k), while the same tree grown by uniform
descent converges (0.08-0.12 at 8k, 0.05-0.07 at 32k; weighted best-of-N 0.06 and 0.04-0.06). The cause is
adaptive allocation: a node whose first rollouts were lucky is visited more, widened, and its soft value regresses
towards the truth, while an unlucky node is rarely visited and keeps its low estimate, so with heavy-tailed
exp(r / alpha) high-value regions end up underweighted (an optional-stopping bias that vanishes only as every node's
children grow without bound, at the rate C N^a of its own, value-dependent, visits). With ``growth: uniform`` (the
default) which nodes widen does not depend on any value, so the tree is a stratified sample of p_theta and its
Boltzmann law a consistent self-normalised estimate of pi*. ``growth: boltzmann`` keeps the paper's rule; DTS* keeps
value-guided growth for optimisation, where a biased law does not matter.

Departure: widening. The paper widens while children < C N^a with C = 2 and a = 0.7 (text) or 0.8 (images); DTS
here defaults to a = 0.9 (DTS* keeps 0.75). Grown uniformly, the tree's law is a self-normalised importance sample
whose leaves share prefixes: a leaf that branches deep is cheap but correlated with its siblings. On the toy above at
alpha 0.25 (3 seeds, TV to pi*), a = 0.9 gives 0.045 at 32k NFE and 0.032 at 64k against 0.071 and 0.048 for a = 0.75
(and 0.075 at 32k for C = 1): faster widening buys more nearly independent leaves per NFE. At a = 1 and C = 2 the
root widens at every visit and DTS becomes best-of-N.

Simplifications: several leaves per iteration (``leaves_per_iteration``) are selected one after another with their
visit counts incremented at selection time (so widening accounts for them) and expanded as one batch; duplicate
children (the same state drawn twice) are kept as separate i.i.d. draws, which keeps the backup unbiased.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import Literal

import numpy as np
import torch
from pydantic import Field

from seqtree.search.budget import Budget
from seqtree.search.engine import Engine
from seqtree.search.params import build_params
from seqtree.search.problem import SearchProblem
from seqtree.search.result import SearchResult
from seqtree.search.state import TreeParams, TreeRun
from seqtree.search.tree import NO_NODE, Tree

# select(tree, node, children) -> child; children are the node's children with a value
ChildSelector = Callable[[Tree, int, np.ndarray], int]


class TreeSearchParams(TreeParams):
    """Fields shared by DTS and DTS*."""

    alpha: float = Field(1.0, gt=0, description="temperature of the target p(x) exp(r(x) / alpha)")
    widening_c: float = Field(2.0, gt=0, description="progressive widening: widen while children < C N^a")
    widening_a: float = Field(0.75, ge=0, le=1, description="progressive widening exponent a")
    leaves_per_iteration: int = Field(1, ge=1, description="leaves selected and rolled out together")
    num_samples: int = Field(16, ge=1, description="designs returned")


class DTSParams(TreeSearchParams):
    growth: Literal["uniform", "boltzmann"] = Field(
        "uniform", description="how a descent picks among children while growing the tree (see the module docstring)"
    )
    # DTS widens faster than DTS* (module docstring, "Departure: widening")
    widening_a: float = Field(0.9, ge=0, le=1, description="progressive widening exponent a")


# ------------------------------------------------------------------------------------------- pure functions
def soft_backup(values: np.ndarray, alpha: float, log_ratio: np.ndarray | None = None) -> float:
    """alpha log mean exp(values / alpha + log_ratio) over a node's children (DTS soft Bellman backup; ``log_ratio``
    = log p_theta - log q of each child's segment, the proposal correction), stable."""
    scaled = values / alpha if log_ratio is None else values / alpha + log_ratio
    top = scaled.max()
    return float(alpha * (top + math.log(np.exp(scaled - top).mean())))


def soft_backups(scaled: np.ndarray, counts: np.ndarray, alpha: float) -> np.ndarray:
    """:func:`soft_backup` of many nodes at once: ``scaled`` holds each node's known children's V / alpha +
    log_ratio, one node after another, ``counts`` [n] how many each has (at least one). Equal to one call per node
    up to rounding (the sums add in another order: a relative 1e-16 per child)."""
    starts = np.cumsum(counts) - counts
    top = np.maximum.reduceat(scaled, starts)
    means = np.add.reduceat(np.exp(scaled - np.repeat(top, counts)), starts) / counts
    return alpha * (top + np.log(means))


def proposal_log_ratio(tree: Tree, nodes: np.ndarray) -> np.ndarray:
    """log p_theta - log q of the segment that made each node (0 when the proposal is the model), float64."""
    return tree.log_prob_model[nodes].astype(np.float64) - tree.log_prob[nodes].astype(np.float64)


def widen(num_children: int, visits: int, c: float, a: float) -> bool:
    """Progressive widening: a node with ``visits`` visits may get a new child while children < C N^a."""
    return num_children < max(1.0, c * visits**a)


def boltzmann_child(generator: torch.Generator, alpha: float) -> ChildSelector:
    """Pick a child with probability ~ exp(V(c) / alpha) p_theta(c) / q(c) (one uniform draw from ``generator``)."""

    def select(tree: Tree, node: int, children: np.ndarray) -> int:
        logits = tree.soft_value[children] / alpha + proposal_log_ratio(tree, children)
        weights = np.exp(logits - logits.max())
        cumulative = np.cumsum(weights)
        u = float(torch.rand((), generator=generator)) * cumulative[-1]
        return int(children[min(int(np.searchsorted(cumulative, u, side="right")), len(children) - 1)])

    return select


def uniform_child(generator: torch.Generator) -> ChildSelector:
    """Pick a child uniformly (one draw from ``generator``): growth that does not depend on the values."""

    def select(tree: Tree, node: int, children: np.ndarray) -> int:
        return int(children[min(int(float(torch.rand((), generator=generator)) * len(children)), len(children) - 1)])

    return select


def terminal_probabilities(tree: Tree, alpha: float) -> np.ndarray:
    """Probability of reaching each node [size] by descending from the root with children ~ exp(V(c) / alpha)
    p_theta(c) / q(c).

    Restricted to terminal nodes (and renormalised), this is the law of a sample drawn from the finished tree.
    """
    size = tree.size
    value = tree.soft_value[:size]
    parent = tree.parent[:size].astype(np.int64)
    depth = tree.depth[:size]
    prob = np.zeros(size)
    prob[0] = 1.0
    valued = ~np.isnan(value)
    for d in range(1, int(depth.max()) + 1 if size > 1 else 1):
        nodes = np.nonzero((depth == d) & valued)[0]
        if not nodes.size:
            break
        par = parent[nodes]
        logits = value[nodes] / alpha + proposal_log_ratio(tree, nodes)
        top = np.full(size, -np.inf)
        np.maximum.at(top, par, logits)
        weights = np.exp(logits - top[par])
        total = np.zeros(size)
        np.add.at(total, par, weights)
        prob[nodes] = prob[par] * weights / total[par]
    return prob


# -------------------------------------------------------------------------------------------- the search
def _select_path(engine: Engine, tree: Tree, p: TreeSearchParams, select: ChildSelector) -> tuple[int, bool]:
    """Descend from the root; returns (node, expand): widen at ``node`` or stop at a terminal node."""
    node = 0
    while True:
        tree.visits[node] += 1
        if tree.terminal[node]:
            return node, False
        count = int(tree.num_children[node])
        if widen(count, int(tree.visits[node]), p.widening_c, p.widening_a):
            return node, True
        children = tree.children(node)
        children = children[~np.isnan(tree.soft_value[children])]
        if not children.size:
            return node, True
        node = select(tree, node, children)


def _backup(engine: Engine, tree: Tree, ends: np.ndarray, alpha: float) -> None:
    """Set V(end) = r for the newly scored ``ends`` and recompute the soft (DTS) and max (DTS*) values of their
    ancestors, each once and deepest first; new nodes get 1 visit.

    This equals backing the ends up one path at a time: there, an ancestor's last recomputation already saw its
    children's final values (a child's value changes only on paths through the ancestor), and here its only one
    does, from the same values. One pass over the distinct ancestors instead of one walk per end (DTS* with 64
    leaves per iteration recomputed the root 64 times), one level of the tree at a time in a few array operations
    (a loop over the ancestors took 20 ms per iteration there: host time, which a GPU waits on)."""
    ends = np.unique(np.asarray(ends, np.int64))
    if not ends.size:
        return
    scores = engine.node_scores(tree, ends)
    tree.soft_value[ends] = scores
    tree.value[ends] = scores
    tree.visits[ends] = np.maximum(tree.visits[ends], 1)
    ancestors = []
    level = np.unique(tree.parent[ends])
    while (level := level[level != NO_NODE]).size:
        ancestors.append(level)
        level = np.unique(tree.parent[level])
    if not ancestors:
        return
    nodes = np.unique(np.concatenate(ancestors)).astype(np.int64)
    tree.visits[nodes] = np.maximum(tree.visits[nodes], 1)
    depth = tree.depth[nodes]
    for level in sorted(set(depth.tolist()), reverse=True):  # a node's children are one level deeper: done
        _backup_level(tree, nodes[depth == level], alpha)


def _backup_level(tree: Tree, nodes: np.ndarray, alpha: float) -> None:
    """Soft and max values of ``nodes`` (one depth, children's values final) from their children, all at once."""
    counts = tree.num_children[nodes].astype(np.int64)
    first = np.repeat(tree.child_start[nodes].astype(np.int64) - np.cumsum(counts) + counts, counts)
    children = tree.child_pool[first + np.arange(counts.sum())].astype(np.int64)  # node after node, in order
    owner = np.repeat(np.arange(len(nodes)), counts)
    values = tree.soft_value[children]
    known = ~np.isnan(values)
    scaled = values[known] / alpha + proposal_log_ratio(tree, children[known])
    tree.soft_value[nodes] = soft_backups(scaled, np.bincount(owner[known], minlength=len(nodes)), alpha)
    tree.value[nodes] = np.fmax.reduceat(tree.value[children], np.cumsum(counts) - counts)  # nanmax


def grow_tree(
    problem: SearchProblem,
    budget: Budget,
    generator: torch.Generator,
    p: TreeSearchParams,
    make_select: Callable[[torch.Generator], ChildSelector],
) -> tuple[Engine, Tree, int]:
    """The DTS loop (select, expand + rollout into the tree, score, back up) until a limit; shared with DTS*.

    ``make_select`` builds the child selector from the run's host generator (selection runs on host arrays)."""
    run = TreeRun.open("DTS", problem, budget, generator, p)
    engine, tree = run.engine, run.tree
    select = make_select(engine.host_generator)
    while run.go_on(p):
        before = run.spent()
        leaves = [_select_path(engine, tree, p, select) for _ in range(p.leaves_per_iteration)]
        run.iterations += 1
        ends = [node for node, expand in leaves if not expand]
        grow = np.array([node for node, expand in leaves if expand], np.int64)
        if grow.size:
            grown = engine.expand(tree, grow, keep_final=True)
            ends.extend(int(e) for e in engine.rollout_in_tree(tree, grown.ids, grown.final_log_probs) if e >= 0)
        if not ends:
            run.idle += 1
            continue
        ends_array = np.array(ends, np.int64)
        # A terminal node scored in an earlier iteration changes no value when reached again (its visits were
        # counted on the way down), so only newly scored ends are backed up: the same tree, without re-walks.
        fresh = np.isnan(tree.reward[ends_array, 0])
        known = engine.score_nodes(tree, ends_array)
        _backup(engine, tree, ends_array[known & fresh], p.alpha)
        run.count_idle(before)
    run.close(generator, p)
    return engine, tree, run.iterations


def finish_from_nodes(
    engine: Engine, tree: Tree, nodes: np.ndarray, name: str, iterations: int, *, sort: bool = True
) -> SearchResult:
    """A result whose designs are the terminal ``nodes`` of the tree (with their paths as trajectories)."""
    if not nodes.size:
        return engine.finish(name, iterations=iterations, tree=tree, **engine.empty_columns())
    log_prob, log_prob_model = tree.paths_step_log_probs(nodes)
    return engine.finish(
        name,
        tokens=tree.token_tensor(nodes),
        rewards=torch.from_numpy(tree.reward[nodes].copy()),
        log_prob=log_prob,
        log_prob_model=log_prob_model,
        unmask_step=tree.paths_unmask_steps(nodes),
        iterations=iterations,
        tree=tree,
        sort=sort,
    )


def sample_tree(tree: Tree, num_samples: int, alpha: float, generator: torch.Generator) -> np.ndarray:
    """Terminal node ids drawn from the finished tree (no model call): the law of Boltzmann descent."""
    prob = terminal_probabilities(tree, alpha)
    terminals = np.nonzero(tree.terminal[: tree.size] & (prob > 0))[0]
    if not terminals.size:
        return terminals
    weights = torch.from_numpy(prob[terminals])
    draws = torch.multinomial(weights, num_samples, replacement=True, generator=generator)
    return terminals[draws.numpy()]


def run_dts(
    problem: SearchProblem,
    budget: Budget,
    *,
    generator: torch.Generator,
    params: DTSParams | None = None,
    **overrides,
) -> SearchResult:
    """DTS: grow the tree until the budget (or ``max_iterations``), then draw ``num_samples`` designs from it."""
    p = build_params(DTSParams, params, overrides)
    grow = uniform_child if p.growth == "uniform" else partial(boltzmann_child, alpha=p.alpha)
    engine, tree, iterations = grow_tree(problem, budget, generator, p, grow)
    nodes = sample_tree(tree, p.num_samples, p.alpha, engine.host_generator)
    return finish_from_nodes(engine, tree, nodes, "dts", iterations)
