"""Best-of-N: N independent samples of the model, each scored once; the honest baseline of every search.

The samples also estimate the tilted target pi*(x) ~ p(x) exp(r(x) / alpha) by self-normalised importance
sampling with weights w_i ~ exp(r(x_i) / alpha) p(path_i) / q(path_i) (the "best-of-N with weights" of the
exactness benchmark; see e.g. Singhal et al. 2025, "A General Framework for Inference-time Scaling and Steering of
Diffusion Models", Sec. 3, the IS baseline). q is the proposal actually sampled (the recipe's temperature, top-k,
top-p); p the untempered model: without the ratio, a tempered proposal would silently target q(x) exp(r(x) / alpha)
(issue 12). Sampling is ancestral (MDLM Eq. 7) in batches of ``batch_size`` rows.
"""

from __future__ import annotations

import torch
from pydantic import Field

from seqtree.search.budget import Budget
from seqtree.search.engine import Engine
from seqtree.search.params import SearchParams, build_params
from seqtree.search.problem import SearchProblem
from seqtree.search.result import SearchResult


class BestOfNParams(SearchParams):
    num_samples: int = Field(64, ge=1, description="N, the number of independent samples")
    batch_size: int = Field(64, ge=1, description="rows sampled together in one batch")
    alpha: float = Field(1.0, gt=0, description="temperature of the importance weights exp(r / alpha)")


def run_best_of_n(
    problem: SearchProblem,
    budget: Budget,
    *,
    generator: torch.Generator,
    params: BestOfNParams | None = None,
    **overrides,
) -> SearchResult:
    """Draw ``num_samples`` sequences (fewer if the budget ends first) and score each."""
    p = build_params(BestOfNParams, params, overrides)
    engine = Engine(problem, budget, generator)
    names = ("tokens", "rewards", "log_prob", "log_prob_model", "unmask_step")
    columns: dict[str, list[torch.Tensor]] = {k: [] for k in names}
    done = 0
    while done < p.num_samples and not engine.meter.exhausted():
        size = min(p.batch_size, p.num_samples - done)
        done += size
        x = problem.root.unsqueeze(0).expand(size, -1)
        start = torch.zeros(size, dtype=torch.long, device=x.device)
        out = engine.advance(x, start, torch.full_like(start, problem.num_steps))
        scored = engine.score(out.tokens)
        rows = scored.rows
        columns["tokens"].append(out.tokens[rows])
        columns["rewards"].append(scored.rewards)
        columns["log_prob"].append(out.step_log_prob[rows])
        columns["log_prob_model"].append(out.step_log_prob_model[rows])
        columns["unmask_step"].append(out.unmask_step[rows])
    cols = {k: torch.cat(v) for k, v in columns.items()} if columns["tokens"] else engine.empty_columns()
    weights = None
    if len(cols["tokens"]):
        proposal_ratio = (cols["log_prob_model"] - cols["log_prob"]).double().sum(-1).cpu()  # log p - log q (path)
        weights = torch.softmax(problem.scalarize(cols["rewards"]) / p.alpha + proposal_ratio, 0)
    return engine.finish("best_of_n", weights=weights, iterations=done, **cols)
