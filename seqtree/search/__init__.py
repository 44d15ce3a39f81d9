"""Tree search over the unmasking steps of masked diffusion models: MCTS, DTS, DTS*, SVDD, SMC / FK steering,
beam search, best-of-N and the remask local search share one engine, one budget and one accounting (see
ARCHITECTURE.md, contract 6).

Every algorithm has the signature ``run_x(problem, budget, *, generator, params=None, **params) -> SearchResult``
and is registered in :data:`ALGORITHMS` with its typed parameter model.
"""

from seqtree.search.beam import BeamParams, run_beam
from seqtree.search.best_of_n import BestOfNParams, run_best_of_n
from seqtree.search.budget import (
    STOP_COMPLETED,
    STOP_INTERRUPTED,
    STOP_ITERATIONS,
    STOP_NFE,
    STOP_ORACLE,
    STOP_SECONDS,
    STOP_STALLED,
    Budget,
    Meter,
)
from seqtree.search.dts import DTSParams, run_dts, sample_tree, terminal_probabilities
from seqtree.search.dts_star import DTSStarParams, run_dts_star
from seqtree.search.engine import Advance, Engine, Scored
from seqtree.search.mcts import MCTSParams, run_mcts
from seqtree.search.params import SearchParams
from seqtree.search.problem import Decoder, Oracle, SearchProblem
from seqtree.search.registry import ALGORITHMS, Algorithm, get_algorithm, run_search
from seqtree.search.remask import RemaskParams, run_remask
from seqtree.search.result import (
    CURVE_COLUMNS,
    UNKNOWN_STEP,
    CurvePoint,
    Designs,
    SearchResult,
    Trajectories,
    pareto_mask,
)
from seqtree.search.smc import SMCParams, run_smc
from seqtree.search.svdd import SVDDParams, run_svdd
from seqtree.search.tree import Tree

__all__ = [
    "ALGORITHMS",
    "Advance",
    "Algorithm",
    "BeamParams",
    "BestOfNParams",
    "Budget",
    "CURVE_COLUMNS",
    "CurvePoint",
    "DTSParams",
    "DTSStarParams",
    "Decoder",
    "Designs",
    "Engine",
    "MCTSParams",
    "Meter",
    "RemaskParams",
    "Oracle",
    "SMCParams",
    "STOP_COMPLETED",
    "STOP_INTERRUPTED",
    "STOP_ITERATIONS",
    "STOP_NFE",
    "STOP_ORACLE",
    "STOP_SECONDS",
    "STOP_STALLED",
    "SVDDParams",
    "Scored",
    "SearchParams",
    "SearchProblem",
    "SearchResult",
    "Trajectories",
    "Tree",
    "UNKNOWN_STEP",
    "get_algorithm",
    "pareto_mask",
    "run_beam",
    "run_best_of_n",
    "run_dts",
    "run_dts_star",
    "run_mcts",
    "run_remask",
    "run_search",
    "run_smc",
    "run_svdd",
    "sample_tree",
    "terminal_probabilities",
]
