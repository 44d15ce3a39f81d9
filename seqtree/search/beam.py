"""Beam search with dynamic beam-width and branching schedules, after DSearch — Li, Uehara, Zhao, Biancalani,
Levine, ... , "Dynamic Search for Inference-Time Alignment in Diffusion Models", 2025.

At branch point d (of D) each of the w_d beam members proposes b_d children (one segment of reverse steps each,
MDLM Eq. 7); every child is valued by the reward of the denoiser's clean prediction, v(x) = r(x_hat_0(x)) (the
value estimate DSearch shares with SVDD), and the w_{d+1} best distinct children form the next beam. The width
and branching follow schedules from a start to an end value over the D branch points (DSearch Sec. 4:
"dynamic beam width / search width"): ``constant``, ``linear`` or ``exponential`` (geometric) interpolation.
The final beam is scored exactly and returned.

Simplification: DSearch also adapts the schedule to the reward landscape and may stop early; here schedules are
fixed functions of the depth.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from pydantic import Field, model_validator

from seqtree.search.budget import Budget
from seqtree.search.engine import Engine, PartialState
from seqtree.search.params import SearchParams, build_params
from seqtree.search.problem import SearchProblem
from seqtree.search.result import SearchResult, first_copies
from seqtree.search.sizing import one_pass_size

Schedule = Literal["constant", "linear", "exponential"]


class BeamParams(SearchParams):
    beam_width: int | None = Field(
        None, ge=1, description="beam width at the first branch point (default: the widest constant beam one pass "
        "fits in the budget, else 4)",
    )
    beam_width_end: int | None = Field(None, ge=1, description="beam width at the last branch point")
    branching: int = Field(4, ge=1, description="children per beam member at the first branch point")
    branching_end: int | None = Field(None, ge=1, description="children per member at the last branch point")
    schedule: Schedule = Field("linear", description="interpolation of width and branching over depth")

    @model_validator(mode="after")
    def _sized(self) -> BeamParams:
        if self.beam_width is None and self.beam_width_end is not None:
            raise ValueError("beam_width_end needs beam_width (a width sized to the budget is constant)")
        return self


def scheduled(start: int, end: int | None, depth: int, num_depths: int, kind: str) -> int:
    """The value at ``depth`` (0 .. num_depths - 1) interpolated from ``start`` to ``end``, at least 1."""
    if end is None or kind == "constant" or num_depths <= 1:
        return start
    frac = depth / (num_depths - 1)
    if kind == "linear":
        value = start + (end - start) * frac
    else:
        value = start * (end / start) ** frac
    return max(1, int(math.floor(value + 0.5)))


def _first_unique(tokens: torch.Tensor, order: torch.Tensor, count: int) -> torch.Tensor:
    """The first ``count`` rows of ``order`` whose tokens differ from every earlier kept row."""
    return order[first_copies(tokens[order.to(tokens.device)]).cpu()[:count]]


def run_beam(
    problem: SearchProblem,
    budget: Budget,
    *,
    generator: torch.Generator,
    params: BeamParams | None = None,
    **overrides,
) -> SearchResult:
    p = build_params(BeamParams, params, overrides)
    engine = Engine(problem, budget, generator)
    most_children = max(p.branching, p.branching_end or 0)
    start_width = one_pass_size(p.beam_width, budget, problem, per_unit=most_children, default=4)
    depths = problem.num_segments
    x = problem.root.unsqueeze(0)
    step = torch.zeros(1, dtype=torch.long, device=x.device)
    lp, lpm = (torch.zeros(1, problem.num_steps, device=x.device) for _ in range(2))
    unmask = torch.full((1, problem.length), -1, dtype=torch.long, device=x.device)  # [w, L] step unmasked at
    log_probs = None
    cut: list[PartialState] = []  # children that finished the segment the budget ended in
    for depth in range(depths):
        if engine.meter.exhausted():
            break
        last = depth == depths - 1
        branching = scheduled(p.branching, p.branching_end, depth, depths, p.schedule)
        width = scheduled(start_width, p.beam_width_end, depth, depths, p.schedule)
        expand = torch.arange(x.shape[0], device=x.device).repeat_interleave(branching)
        nxt = problem.next_branch_step(step)
        out = engine.advance(
            x[expand], step[expand], nxt[expand], log_probs0=None if log_probs is None else log_probs[expand],
            final_log_probs=not last,
        )  # fmt: skip
        parents = expand[out.rows]
        cut = [PartialState(out.tokens, out.final_log_probs, lp[parents] + out.step_log_prob,
                            lpm[parents] + out.step_log_prob_model, torch.maximum(unmask[parents], out.unmask_step))]
        if out.rows.numel() < expand.numel():
            break
        prediction = out.tokens if last else engine.predict_x0(out.tokens, out.final_log_probs)
        scored = engine.score(prediction)
        if scored.rows.numel() < expand.numel():
            break
        order = torch.argsort(scored.scores, descending=True, stable=True)
        keep_host = _first_unique(out.tokens, order, width)  # scores live on the host, tokens on the device
        keep = keep_host.to(x.device)
        parents = expand[out.rows][keep]
        x, step = out.tokens[keep], nxt[parents]
        lp, lpm = lp[parents] + out.step_log_prob[keep], lpm[parents] + out.step_log_prob_model[keep]
        unmask = torch.maximum(unmask[parents], out.unmask_step[keep])
        log_probs = None if last else out.final_log_probs[keep]
        if last:
            return engine.finish(
                "beam", tokens=x, rewards=scored.rewards[keep_host], log_prob=lp, log_prob_model=lpm,
                unmask_step=unmask, iterations=depth + 1,
            )  # fmt: skip
    # the budget ended mid-pass: the beam and the children so far, completed greedily (Engine.partial_designs)
    partial = engine.partial_designs(PartialState(x, log_probs, lp, lpm, unmask), *cut)
    return engine.finish("beam", iterations=depth, **partial)
