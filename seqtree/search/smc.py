"""Sequential Monte Carlo with Feynman-Kac steering — Singhal, Horvitz, Teehan, Ren, Yu, Cho, Ranganath,
"A General Framework for Inference-time Scaling and Steering of Diffusion Models" (FK steering), 2025.

k particles follow the model's reverse process (proposal p_theta(x_s | x_t), MDLM Eq. 7), one segment of
``branch_every`` steps at a time. At each branch point the particles are weighted by a potential G_t built from
intermediate rewards r_t = r(x_hat_0(x_t)), the reward of the denoiser's most likely clean sequence (FK Sec. 3.2,
"rewards at intermediate steps"), with lambda = 1 / alpha:

- ``difference``: G_t = exp(lambda (r_t - r_{t+1}))     (FK Eq. 6, r before the first branch point = 0)
- ``max``:        G_t = exp(lambda max_{s >= t} r_s)
- ``sum``:        G_t = exp(lambda sum_{s >= t} r_s)
- ``none``:       G_t = 1 (plain importance sampling)

The particles move by the proposal q actually sampled (the recipe's temperature, top-k, top-p), so each segment
also multiplies a particle's weight by p_theta(segment) / q(segment) (FK Eq. 3's transition ratio; 1 when q is
the model itself); without it the particles would target q(x) exp(r(x) / alpha) (issue 12). The ratio enters the
weights only, not the potentials' product.

At the end the last potential is chosen so that the product of potentials along every path is exp(lambda r(x_0))
(FK Eq. 4, the requirement prod_t G_t = exp(lambda r(x_0)) for the target p_theta(x_0) exp(r(x_0) / alpha)); the
final normalised weights then make the particles a consistent estimate of pi*. Resampling (multinomial or
systematic) happens when the effective sample size (sum w)^2 / sum w^2 drops below ``ess_threshold`` * k; weights
carry over between resampling events.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import Tensor

from seqtree.search.budget import Budget
from seqtree.search.engine import Engine, PartialState
from seqtree.search.params import SearchParams, build_params
from seqtree.search.problem import SearchProblem
from seqtree.search.result import SearchResult
from seqtree.search.sizing import one_pass_size


class SMCParams(SearchParams):
    num_particles: int | None = Field(
        None, ge=1, description="k, the number of particles (default: as many as one pass fits in the budget, else 16)"
    )
    alpha: float = Field(1.0, gt=0, description="temperature of the target p(x) exp(r(x) / alpha)")
    potential: Literal["difference", "max", "sum", "none"] = Field("difference", description="FK potential")
    ess_threshold: float = Field(0.5, ge=0, le=1, description="resample when ESS < threshold * k")
    resampling: Literal["multinomial", "systematic"] = Field("systematic", description="resampling scheme")


def effective_sample_size(log_weights: Tensor) -> float:
    """(sum w)^2 / sum w^2 of unnormalised log-weights [k]."""
    w = torch.softmax(log_weights.double(), 0)
    return float(1.0 / (w * w).sum())


def resample(log_weights: Tensor, scheme: str, generator: torch.Generator) -> Tensor:
    """Ancestor indices [k] drawn in proportion to exp(log_weights)."""
    w = torch.softmax(log_weights.double(), 0)
    k = w.shape[0]
    if scheme == "multinomial":
        return torch.multinomial(w, k, replacement=True, generator=generator)
    offset = torch.rand((), generator=generator, dtype=torch.float64)
    points = (offset + torch.arange(k, dtype=torch.float64)) / k
    return torch.searchsorted(w.cumsum(0), points, right=True).clamp(max=k - 1)


def potential_log(kind: str, lam: float, reward: Tensor, previous: Tensor, running_max: Tensor, running_sum: Tensor):
    """log G_t for intermediate rewards ``reward`` [k], given the previous reward, running max and sum [k]."""
    if kind == "difference":
        return lam * (reward - previous)
    if kind == "max":
        return lam * torch.maximum(running_max, reward)
    if kind == "sum":
        return lam * (running_sum + reward)
    return torch.zeros_like(reward)


def run_smc(
    problem: SearchProblem,
    budget: Budget,
    *,
    generator: torch.Generator,
    params: SMCParams | None = None,
    **overrides,
) -> SearchResult:
    """One SMC pass of k particles; designs are the final particles with their normalised weights."""
    p = build_params(SMCParams, params, overrides)
    engine = Engine(problem, budget, generator)
    k, lam = one_pass_size(p.num_particles, budget, problem, per_unit=1, default=16), 1.0 / p.alpha
    x = problem.root.unsqueeze(0).repeat(k, 1)
    step = torch.zeros(k, dtype=torch.long, device=x.device)
    log_w = torch.zeros(k, dtype=torch.float64)  # weights since the last resampling
    total_log_g = torch.zeros(k, dtype=torch.float64)  # product of potentials along each path so far
    previous = torch.zeros(k, dtype=torch.float64)
    running_max = torch.full((k,), -torch.inf, dtype=torch.float64)
    running_sum = torch.zeros(k, dtype=torch.float64)
    lp = torch.zeros(k, problem.num_steps, device=x.device)
    lpm = torch.zeros(k, problem.num_steps, device=x.device)
    unmask = torch.full((k, problem.length), -1, dtype=torch.long, device=x.device)  # [k, L] step unmasked at
    log_probs = None
    cut: list[PartialState] = []  # particles that finished the segment the budget ended in
    for segment in range(problem.num_segments):
        if engine.meter.exhausted():
            break
        last = segment == problem.num_segments - 1
        nxt = problem.next_branch_step(step)
        out = engine.advance(x, step, nxt, log_probs0=log_probs, final_log_probs=not last)
        if out.rows.numel() < k:  # the budget ended inside the segment
            done = out.rows
            cut = [PartialState(out.tokens, out.final_log_probs, lp[done] + out.step_log_prob,
                                lpm[done] + out.step_log_prob_model, torch.maximum(unmask[done], out.unmask_step))]
            break
        x, step = out.tokens, nxt
        lp, lpm = lp + out.step_log_prob, lpm + out.step_log_prob_model
        log_w = log_w + (out.step_log_prob_model - out.step_log_prob).double().sum(-1).cpu()  # p / q of the segment
        unmask = torch.maximum(unmask, out.unmask_step)
        log_probs = out.final_log_probs
        prediction = x if last else engine.predict_x0(x, log_probs)
        scored = engine.score(prediction)
        if scored.rows.numel() < k:
            break
        reward = scored.scores
        if last:
            log_g = lam * reward - total_log_g  # makes prod_t G_t = exp(lambda r(x_0))
        else:
            log_g = potential_log(p.potential, lam, reward, previous, running_max, running_sum)
        log_w, total_log_g = log_w + log_g, total_log_g + log_g
        previous, running_max, running_sum = reward, torch.maximum(running_max, reward), running_sum + reward
        if last:
            weights = torch.softmax(log_w, 0)
            return engine.finish(
                "smc", tokens=x, rewards=scored.rewards, log_prob=lp, log_prob_model=lpm, unmask_step=unmask,
                weights=weights, iterations=segment + 1,
            )  # fmt: skip
        if effective_sample_size(log_w) < p.ess_threshold * k:
            idx = resample(log_w, p.resampling, engine.host_generator)  # weights live on the host
            total_log_g, previous = total_log_g[idx], previous[idx]
            running_max, running_sum = running_max[idx], running_sum[idx]
            idx = idx.to(x.device)
            x, log_probs, lp, lpm, unmask = x[idx], log_probs[idx], lp[idx], lpm[idx], unmask[idx]
            log_w = torch.zeros(k, dtype=torch.float64)
    # the budget ended mid-pass: no weights (the pass did not reach the target), but the best of what was found
    partial = engine.partial_designs(PartialState(x, log_probs, lp, lpm, unmask), *cut)
    return engine.finish("smc", iterations=segment, **partial)
