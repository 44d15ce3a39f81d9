"""Search algorithms by name, each with its typed parameter model, behind one entry point."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from seqtree.search.beam import BeamParams, run_beam
from seqtree.search.best_of_n import BestOfNParams, run_best_of_n
from seqtree.search.budget import Budget
from seqtree.search.dts import DTSParams, run_dts
from seqtree.search.dts_star import DTSStarParams, run_dts_star
from seqtree.search.mcts import MCTSParams, run_mcts
from seqtree.search.params import SearchParams
from seqtree.search.problem import SearchProblem
from seqtree.search.remask import RemaskParams, run_remask
from seqtree.search.result import SearchResult
from seqtree.search.smc import SMCParams, run_smc
from seqtree.search.svdd import SVDDParams, run_svdd


@dataclass(frozen=True)
class Algorithm:
    """``run(problem, budget, *, generator, params=None, **params) -> SearchResult``, its parameter model, and what
    callers may rely on:

    - ``resumable``: the search state (tree, counters, generator) can be saved and continued exactly
      (``save_to`` / ``resume_from``; ``seqtree design --resume``);
    - ``anytime``: it runs until the budget ends and its best so far only improves (the one-pass SVDD and beam are
      sized by their parameters instead, and stop when the pass is done; SMC pools further passes while the budget
      lasts);
    - ``weighted_samples``: its designs carry self-normalised importance weights for p(x) exp(r(x) / alpha).
    """

    name: str
    run: Callable[..., SearchResult]
    params: type[SearchParams]
    resumable: bool = False
    anytime: bool = True
    weighted_samples: bool = False


# The one list of algorithms: recipes, the CLI, benchmarks and tests read their names and capabilities from here.
ALGORITHMS: dict[str, Algorithm] = {
    "mcts": Algorithm("mcts", run_mcts, MCTSParams, resumable=True),
    "dts": Algorithm("dts", run_dts, DTSParams, resumable=True),
    "dts_star": Algorithm("dts_star", run_dts_star, DTSStarParams, resumable=True),
    "svdd": Algorithm("svdd", run_svdd, SVDDParams, anytime=False),
    "smc": Algorithm("smc", run_smc, SMCParams, weighted_samples=True),
    "beam": Algorithm("beam", run_beam, BeamParams, anytime=False),
    "best_of_n": Algorithm("best_of_n", run_best_of_n, BestOfNParams, weighted_samples=True),
    "remask": Algorithm("remask", run_remask, RemaskParams),
}


def get_algorithm(name: str) -> Algorithm:
    if name not in ALGORITHMS:
        raise ValueError(f"unknown search algorithm {name!r}; choose one of {sorted(ALGORITHMS)}")
    return ALGORITHMS[name]


def run_search(
    algorithm: str,
    problem: SearchProblem,
    budget: Budget,
    *,
    generator: torch.Generator,
    params: SearchParams | None = None,
    **overrides,
) -> SearchResult:
    """Run the named algorithm; parameters as a params object or as keywords (validated by its model)."""
    spec = get_algorithm(algorithm)
    return spec.run(problem, budget, generator=generator, params=params, **overrides)
