"""How large a one-pass search (SMC, SVDD, beam) can be so that its one pass fits the budget it is given.

A one-pass algorithm returns its designs only at the end of its pass, so its size (particles, beam width) decides
how much of a budget it spends: sized too small it stops after a tenth of the budget (issue 12: SMC used about 450 of
4,000 NFE on protein.yaml), too large and the pass is cut. Left unset (``None``), the size is the largest whose
worst-case cost fits: every reverse step of every row charged (the MDLM no-change cache only saves NFE) and every
prediction scored (the oracle memo only saves calls). With neither an NFE nor an oracle-call limit the algorithm's
fixed default is used.
"""

from __future__ import annotations

from seqtree.search.budget import Budget
from seqtree.search.problem import SearchProblem


def pass_rows_per_lineage(problem: SearchProblem) -> int:
    """Worst-case denoiser rows for one row to run the whole reverse process segment by segment, with the clean-token
    distribution refreshed at every branch point but the last (the value estimate of SMC, SVDD and beam)."""
    return problem.num_steps + problem.num_segments - 1


def budget_sized(budget: Budget, *, nfe_each: int, calls_each: int, default: int) -> int:
    """The most units (each costing at worst ``nfe_each`` rows and ``calls_each`` oracle calls) one pass can afford;
    at least 1; ``default`` when the budget bounds neither NFE nor oracle calls."""
    limits = []
    if budget.nfe is not None:
        limits.append(budget.nfe // max(nfe_each, 1))
    if budget.oracle_calls is not None:
        limits.append(budget.oracle_calls // max(calls_each, 1))
    return default if not limits else max(1, int(min(limits)))


def one_pass_size(size: int | None, budget: Budget, problem: SearchProblem, *, per_unit: int, default: int) -> int:
    """``size`` when given, else :func:`budget_sized` for units of ``per_unit`` lineages each (a particle with its
    candidates, a beam member with its children)."""
    if size is not None:
        return size
    rows = pass_rows_per_lineage(problem)
    return budget_sized(budget, nfe_each=per_unit * rows, calls_each=per_unit * problem.num_segments, default=default)


