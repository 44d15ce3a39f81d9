"""Soft Value-based Decoding in Diffusion models (SVDD) — Li, Zhao, Venkataraman, Uehara, ... , Biancalani, Levine,
"Derivative-Free Guidance in Continuous and Discrete Diffusion Models with Soft Value-Based Decoding", 2024.

At each branch point every particle proposes M candidates x_s^(m) ~ p_theta(x_s | x_t) (one segment of reverse
steps, MDLM Eq. 7), each valued by the soft value estimate v(x_s) = r(x_hat_0(x_s)), the reward of the denoiser's
prediction of the clean sequence (SVDD-PM, Alg. 1 with the posterior-mean value approximation, Sec. 4.2), and one
candidate is kept with probability ~ exp(v / alpha) (SVDD Eq. 5-6); alpha = 0 keeps the argmax (then SVDD is a
pure optimiser, with no target law). When the candidates come from a tempered or truncated proposal q rather than
p_theta, the kept candidate is drawn ~ exp(v / alpha) p_theta(candidate) / q(candidate), the importance
resampling step that keeps the target p_theta(x) exp(r(x) / alpha) (issue 12). At the last
segment the candidates are clean and valued by their exact reward. The clean-token distribution computed for a
candidate's value is reused as the first step of its next segment, so a value costs no extra denoiser row.
"""

from __future__ import annotations

import torch
from pydantic import Field
from torch import Tensor

from seqtree.search.budget import Budget
from seqtree.search.engine import Engine, PartialState
from seqtree.search.params import SearchParams, build_params
from seqtree.search.problem import SearchProblem
from seqtree.search.result import SearchResult
from seqtree.search.sizing import one_pass_size


class SVDDParams(SearchParams):
    num_particles: int | None = Field(
        None, ge=1, description="particles decoded in parallel (default: as many as one pass fits the budget, else 8)"
    )
    num_candidates: int = Field(8, ge=1, description="M, candidates per particle per branch point")
    alpha: float = Field(0.0, ge=0, description="selection temperature; 0 keeps the best candidate")


def select_candidates(
    values: Tensor, alpha: float, generator: torch.Generator, log_ratio: Tensor | None = None
) -> Tensor:
    """values [P, M] -> index [P] of the kept candidate per particle: argmax (alpha = 0) or ~ exp(v / alpha) times
    p / q (``log_ratio`` [P, M] = log p_theta - log q of each candidate's segment, when the proposal is not p)."""
    if alpha == 0:
        return values.argmax(-1)
    logits = values / alpha if log_ratio is None else values / alpha + log_ratio
    probs = torch.softmax(logits, -1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def run_svdd(
    problem: SearchProblem,
    budget: Budget,
    *,
    generator: torch.Generator,
    params: SVDDParams | None = None,
    **overrides,
) -> SearchResult:
    p = build_params(SVDDParams, params, overrides)
    engine = Engine(problem, budget, generator)
    m = p.num_candidates
    n = one_pass_size(p.num_particles, budget, problem, per_unit=m, default=8)
    x = problem.root.unsqueeze(0).repeat(n, 1)
    step = torch.zeros(n, dtype=torch.long, device=x.device)
    lp = torch.zeros(n, problem.num_steps, device=x.device)
    lpm = torch.zeros(n, problem.num_steps, device=x.device)
    unmask = torch.full((n, problem.length), -1, dtype=torch.long, device=x.device)  # [n, L] step unmasked at
    log_probs = None
    cut: list[PartialState] = []  # candidates that finished the segment the budget ended in
    for segment in range(problem.num_segments):
        if engine.meter.exhausted():
            break
        last = segment == problem.num_segments - 1
        nxt = problem.next_branch_step(step)
        expand = torch.arange(n, device=x.device).repeat_interleave(m)
        out = engine.advance(
            x[expand], step[expand], nxt[expand], log_probs0=None if log_probs is None else log_probs[expand],
            final_log_probs=not last,
        )  # fmt: skip
        parents = expand[out.rows]
        cut = [PartialState(out.tokens, out.final_log_probs, lp[parents] + out.step_log_prob,
                            lpm[parents] + out.step_log_prob_model, torch.maximum(unmask[parents], out.unmask_step))]
        if out.rows.numel() < n * m:
            break
        prediction = out.tokens if last else engine.predict_x0(out.tokens, out.final_log_probs)
        scored = engine.score(prediction)
        if scored.rows.numel() < n * m:
            break
        ratio = (out.step_log_prob_model - out.step_log_prob).double().sum(-1).cpu()  # log p - log q
        choice = select_candidates(scored.scores.view(n, m), p.alpha, engine.host_generator, ratio.view(n, m))
        keep_host = torch.arange(n) * m + choice  # values and weights live on the host, tokens on the device
        keep = keep_host.to(x.device)
        x, step = out.tokens[keep], nxt
        lp = lp + out.step_log_prob[keep]
        lpm = lpm + out.step_log_prob_model[keep]
        unmask = torch.maximum(unmask, out.unmask_step[keep])
        log_probs = None if last else out.final_log_probs[keep]
        if last:
            return engine.finish(
                "svdd", tokens=x, rewards=scored.rewards[keep_host], log_prob=lp, log_prob_model=lpm,
                unmask_step=unmask, iterations=segment + 1,
            )  # fmt: skip
    # the budget ended mid-pass: the particles and candidates so far, completed greedily (Engine.partial_designs)
    partial = engine.partial_designs(PartialState(x, log_probs, lp, lpm, unmask), *cut)
    return engine.finish("svdd", iterations=segment, **partial)
