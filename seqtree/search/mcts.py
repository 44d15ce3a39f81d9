"""Monte Carlo tree search over unmasking steps, as in PepTune (Tang et al., "PepTune: De Novo Generation of
Therapeutic Peptides with Multi-Objective-Guided Discrete Diffusion", 2024/2025, Sec. 4 and Alg. 1) and TR2-D2
(Tang et al., "TR2-D2: Tree Search Guided Trajectory-Aware Fine-Tuning for Discrete Diffusion", 2025, Sec. 3.1).

- selection: from the root, descend to a leaf choosing at each node the child maximising the PUCT-style score
  U(c) = W(c) / N(c) + c_explore * pi(c) * sqrt(N(x)) / (1 + N(c)), where pi(c) is the model's probability of the
  step x -> c normalised over the siblings (softmax of the children's step log-probabilities under the model).
  With K > 1 objectives U is a vector and the child is drawn uniformly among the Pareto-non-dominated children
  (PepTune's multi-objective selection);
- expansion: the leaf gets ``num_children`` children, one segment of reverse steps each (one batched call per step);
- rollout: each child is denoised to a clean sequence (batched, not added to the tree) and scored by the oracle;
- closing: a terminal child is closed, and so is a node whose children are all closed; selection skips closed
  children, so no iteration is spent revisiting an explored clean sequence (the rule of MCTS solvers);
- backup: ``sum`` adds the children's summed reward vectors to W and their number to N on every ancestor
  (PepTune), ``mean`` adds their mean and one visit.
All scored rollouts form the archive; designs are its best distinct sequences and the global Pareto front. The
tree and the archive can be saved and resumed (``save_to`` / ``resume_from``, :mod:`seqtree.search.state`).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from pydantic import Field

from seqtree.device import to_device
from seqtree.search.budget import STOP_STALLED, Budget
from seqtree.search.engine import Engine
from seqtree.search.params import build_params
from seqtree.search.problem import SearchProblem
from seqtree.search.result import SearchResult, pareto_mask
from seqtree.search.state import TreeParams, TreeRun
from seqtree.search.tree import NO_NODE, Tree

# every scored rollout, kept for designs
ARCHIVE_COLUMNS = ("tokens", "rewards", "log_prob", "log_prob_model", "unmask_step")


class MCTSParams(TreeParams):
    num_children: int = Field(4, ge=1, description="K, children sampled per expansion")
    exploration: float = Field(1.0, ge=0, description="c_explore of the PUCT bonus")
    backup: Literal["sum", "mean"] = Field("sum", description="back up the children's summed or mean reward")
    leaves_per_iteration: int = Field(1, ge=1, description="leaves selected per iteration (virtual visits)")
    num_designs: int = Field(16, ge=1, description="best distinct designs returned (plus the Pareto front)")


def puct_scores(tree: Tree, node: int, children: np.ndarray, exploration: float) -> np.ndarray:
    """U(c) per child and objective, [C, K]: mean backed-up reward plus the prior-weighted exploration bonus."""
    visits = tree.visits[children].astype(np.float64)
    mean = tree.value_sum[children] / np.maximum(visits, 1.0)[:, None]
    logp = tree.log_prob_model[children].astype(np.float64)
    prior = np.exp(logp - logp.max())
    prior /= prior.sum()
    bonus = exploration * prior * np.sqrt(max(float(tree.visits[node]), 1.0)) / (1.0 + visits)
    return mean + bonus[:, None]


def select_child(
    tree: Tree, node: int, exploration: float, generator: torch.Generator, busy: np.ndarray | None = None
) -> int:
    """The PUCT choice among the open children (argmax, or uniform over the Pareto set for K objectives), skipping
    those ``busy`` marks (already taken by this iteration's earlier selections)."""
    children = tree.children(node)
    children = children[~tree.closed[children] & (True if busy is None else ~busy[children])]
    scores = puct_scores(tree, node, children, exploration)
    if scores.shape[1] == 1:
        return int(children[int(np.argmax(scores[:, 0]))])
    front = np.nonzero(pareto_mask(torch.from_numpy(scores)).numpy())[0]
    pick = int(torch.randint(len(front), (), generator=generator))
    return int(children[front[pick]])


def _mark_busy(tree: Tree, leaf: int, busy: np.ndarray) -> None:
    """Take ``leaf`` for this iteration, and every ancestor whose open children are all taken.

    With several leaves per iteration, PUCT is deterministic and a virtual visit rarely moves its argmax (the
    prior concentrates on one child), so repeated descents returned the same leaf and an iteration expanded one
    leaf's K children instead of ``leaves_per_iteration`` leaves' (on a GPU, 2% of the forward rate). Excluding
    taken leaves is batched MCTS's virtual loss taken to its limit: each descent finds the best leaf not yet taken."""
    busy[leaf] = True
    node = int(tree.parent[leaf])
    while node != NO_NODE:
        children = tree.children(node)
        if not busy[children[~tree.closed[children]]].all():
            return
        busy[node] = True
        node = int(tree.parent[node])


def _close(tree: Tree, node: int) -> None:
    """Close ``node`` and its ancestors while all their children are closed (an MCTS-solver style rule: a
    fully explored subtree of clean sequences has nothing left to teach and is skipped by selection)."""
    while node != NO_NODE and tree.num_children[node] > 0 and tree.closed[tree.children(node)].all():
        tree.closed[node] = True
        node = int(tree.parent[node])


def _backup(tree: Tree, node: int, rewards: np.ndarray, mode: str) -> None:
    """Add rewards [n, K] to W and n (sum) or their mean and 1 (mean) to N from ``node`` up to the root."""
    total, count = (rewards.sum(0), len(rewards)) if mode == "sum" else (rewards.mean(0), 1)
    while node != NO_NODE:
        tree.value_sum[node] += total
        tree.visits[node] += count
        node = int(tree.parent[node])


def run_mcts(
    problem: SearchProblem,
    budget: Budget,
    *,
    generator: torch.Generator,
    params: MCTSParams | None = None,
    **overrides,
) -> SearchResult:
    p = build_params(MCTSParams, params, overrides)
    run = TreeRun.open("MCTS", problem, budget, generator, p)
    engine, tree = run.engine, run.tree
    archive: dict[str, list[torch.Tensor]] = {k: [] for k in ARCHIVE_COLUMNS}
    for key in ARCHIVE_COLUMNS:
        if key in run.archive and len(run.archive[key]):
            archive[key].append(run.archive[key])
    while run.go_on(p):
        before = run.spent()
        run.iterations += 1
        leaves = []
        busy = np.zeros(tree.size, dtype=bool)  # leaves taken by this iteration (and ancestors with all taken)
        for _ in range(p.leaves_per_iteration):
            node = 0
            if tree.closed[0] or busy[0]:
                break
            while tree.num_children[node] > 0 and not tree.closed[node]:
                node = select_child(tree, node, p.exploration, engine.host_generator, busy)
            leaves.append(node)
            _mark_busy(tree, node, busy)
            tree.visits[tree.path(node)] += 1  # virtual visit, removed before the backup
        for node in leaves:
            tree.visits[tree.path(node)] -= 1
        if not leaves:
            engine.meter.halt(STOP_STALLED)  # every path ends in an explored clean sequence
            break
        leaves = list(dict.fromkeys(leaves))
        done = [n for n in leaves if tree.terminal[n]]
        grow = np.array([n for n in leaves if not tree.terminal[n]], np.int64)
        if done:
            known = engine.score_nodes(tree, np.array(done, np.int64))
            for node in np.array(done)[known].tolist():
                _backup(tree, node, tree.reward[[node]], p.backup)
        if not grow.size:
            run.count_idle(before)
            continue
        run.idle = 0
        grown = engine.expand(tree, np.repeat(grow, p.num_children), keep_final=True)
        children = grown.ids
        if not children.size:
            break
        x = to_device(tree.token_tensor(children), engine.device)
        start = to_device(tree.step[children].astype(np.int64), engine.device)
        out = engine.advance(x, start, torch.full_like(start, problem.num_steps), log_probs0=grown.final_log_probs)
        tokens, step_lp, step_lpm, unmask_step = (  # the rollouts' one read
            torch.from_numpy(a)
            for a in engine.read(out.tokens, out.step_log_prob, out.step_log_prob_model, out.unmask_step)
        )
        scored = engine.score(tokens)
        finished = children[out.host_rows][scored.rows.numpy()]
        rewards = scored.rewards.numpy()
        is_terminal = tree.terminal[finished]
        tree.reward[finished[is_terminal]] = rewards[is_terminal]  # a terminal child is its own rollout
        for child, reward in zip(finished.tolist(), rewards):
            tree.value_sum[child] += reward
            tree.visits[child] += 1
        for parent in np.unique(tree.parent[finished]).tolist():
            mine = tree.parent[finished] == parent
            _backup(tree, parent, rewards[mine], p.backup)
            _close(tree, parent)
        if not finished.size:
            continue
        tree_lp, tree_lpm = tree.paths_step_log_probs(finished)  # [n, T] root -> child
        archive["tokens"].append(tokens[scored.rows])
        archive["rewards"].append(scored.rewards)
        archive["log_prob"].append(step_lp[scored.rows] + tree_lp)
        archive["log_prob_model"].append(step_lpm[scored.rows] + tree_lpm)
        tree_steps = tree.paths_unmask_steps(finished)  # [n, L] root -> child
        archive["unmask_step"].append(torch.maximum(unmask_step[scored.rows], tree_steps))
    run.close(generator, p, archive={k: torch.cat(v) for k, v in archive.items() if v})
    if not archive["tokens"]:
        return engine.finish("mcts", iterations=run.iterations, tree=tree, **engine.empty_columns())
    cols = {k: torch.cat(v) for k, v in archive.items()}
    keep = _designs_to_keep(engine, cols, p.num_designs)
    return engine.finish("mcts", iterations=run.iterations, tree=tree, **{k: v[keep] for k, v in cols.items()})


def _designs_to_keep(engine: Engine, cols: dict[str, torch.Tensor], count: int) -> torch.Tensor:
    """Rows of the archive kept as designs: the best ``count`` distinct sequences plus the global Pareto front."""
    sequences = engine.decode(cols["tokens"])
    first = list({s: i for i, s in reversed(list(enumerate(sequences)))}.values())
    distinct = torch.tensor(sorted(first), dtype=torch.long)
    scores = engine.problem.scalarize(cols["rewards"][distinct])
    best = distinct[torch.argsort(scores, descending=True, stable=True)[:count]]
    front = distinct[pareto_mask(cols["rewards"][distinct])] if cols["rewards"].shape[1] > 1 else best[:0]
    return torch.unique(torch.cat([best, front]))
