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

**Passes.** One pass is sized to the budget's worst case (every reverse step of every particle charged), which a
pass rarely spends: the MDLM no-change cache and the engine's row deduplication save NFE. Unless ``passes`` is set,
SMC runs further independent passes while the budget affords at least one more particle, each sized to what is
left, and pools them by their evidence estimates: particle i of pass j gets the weight k_j Z_j W_ij, with W_ij its
normalised weight in the pass and Z_j = prod over resampling epochs of the mean incremental weight, the standard
unbiased SMC estimate of the normalising constant (Del Moral 2004; Naesseth, Lindsten & Schoen 2019, Sec. 3.4). With
no potential and no resampling this is plain importance sampling over all passes' particles. Pooling by Z keeps the
estimate consistent, so SMC is an anytime algorithm whose weighted law converges as the budget grows (issue 12).
On the enumerable toy of ``seqtree bench search`` (alpha 0.25, TV(p, pi*) = 0.76, a reward with no structure that a
partial sequence reveals) pooled passes reach TV 0.018 to pi* at 64k NFE with ``potential: none`` but only 0.12 with
the difference potential: potentials that predict the final reward badly make resampling spend particles that the
final weights must then undo. FK's potentials can pay only where intermediate rewards predict the final one.
A pass the budget cuts contributes its particles as designs (completed greedily, see ``Engine.partial_designs``)
with weight zero: they count as designs found, not as draws from the target.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from pydantic import Field
from torch import Tensor

from seqtree.search.budget import Budget
from seqtree.search.engine import Engine, PartialState
from seqtree.search.params import SearchParams, build_params
from seqtree.search.problem import SearchProblem
from seqtree.search.result import SearchResult
from seqtree.search.sizing import budget_sized, one_pass_size, pass_rows_per_lineage


class SMCParams(SearchParams):
    num_particles: int | None = Field(
        None, ge=1, description="k, the number of particles (default: as many as one pass fits in the budget, else 16)"
    )
    alpha: float = Field(1.0, gt=0, description="temperature of the target p(x) exp(r(x) / alpha)")
    potential: Literal["difference", "max", "sum", "none"] = Field("difference", description="FK potential")
    ess_threshold: float = Field(0.5, ge=0, le=1, description="resample when ESS < threshold * k")
    resampling: Literal["multinomial", "systematic"] = Field("systematic", description="resampling scheme")
    passes: int | None = Field(
        None, ge=1, description="independent passes pooled by their evidence (default: as many as the budget affords)"
    )


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


@dataclass
class _Pass:
    """One SMC pass: its design columns (tokens, rewards, log_prob, log_prob_model, unmask_step) and, when it reached
    the end, the particles' log-weights [k] normalised within the pass plus log(k Z) of the pass; None when cut."""

    columns: dict[str, Tensor]
    log_weights: Tensor | None
    log_mass: float


def run_smc(
    problem: SearchProblem,
    budget: Budget,
    *,
    generator: torch.Generator,
    params: SMCParams | None = None,
    **overrides,
) -> SearchResult:
    """SMC passes of k particles until the budget ends; designs are every pass's final particles with weights
    pooled across passes by the passes' evidence (module docstring)."""
    p = build_params(SMCParams, params, overrides)
    engine = Engine(problem, budget, generator)
    bounded = budget.nfe is not None or budget.oracle_calls is not None or budget.seconds is not None
    max_passes = p.passes or (math.inf if bounded else 1)
    passes: list[_Pass] = []
    segments = 0
    while len(passes) < max_passes and not engine.meter.exhausted():
        k = _pass_size(p.num_particles, engine, problem, first=not passes)
        if k == 0:
            break
        one, run = _run_pass(engine, problem, p, k)
        passes.append(one)
        segments += run
        if one.log_weights is None:  # the budget ended inside this pass
            break
    return engine.finish("smc", iterations=segments, **_pool(engine, passes))


def _pass_size(size: int | None, engine: Engine, problem: SearchProblem, *, first: bool) -> int:
    """Particles of the next pass: the first as :func:`one_pass_size` sizes it; a later one sized to what the budget
    has left, 0 when that is not one whole particle (or, for a fixed ``num_particles``, not the whole pass)."""
    if first:
        return one_pass_size(size, engine.meter.budget, problem, per_unit=1, default=16)
    left = Budget(
        nfe=None if engine.meter.budget.nfe is None else int(engine.meter.nfe_left),
        oracle_calls=None if engine.meter.budget.oracle_calls is None else int(engine.meter.oracle_left),
    )
    rows, calls = pass_rows_per_lineage(problem), problem.num_segments
    affordable = budget_sized(left, nfe_each=rows, calls_each=calls, default=size or 16)
    if left.nfe is not None and left.nfe < rows or left.oracle_calls is not None and left.oracle_calls < calls:
        return 0
    if size is not None:
        return size if affordable >= size or (left.nfe is None and left.oracle_calls is None) else 0
    return affordable


def _pool(engine: Engine, passes: list[_Pass]) -> dict[str, Tensor]:
    """Design columns of every pass, with weights k_j Z_j W_ij normalised over all complete passes; a cut pass's
    particles carry weight 0, and with no complete pass there are no weights at all."""
    if not passes:
        return engine.empty_columns()
    columns = {key: torch.cat([one.columns[key] for one in passes]) for key in passes[0].columns}
    if all(one.log_weights is None for one in passes):
        return columns
    log_w = torch.cat([
        one.log_weights + one.log_mass if one.log_weights is not None
        else torch.full((len(one.columns["tokens"]),), -math.inf, dtype=torch.float64)
        for one in passes
    ])  # fmt: skip
    return columns | {"weights": torch.softmax(log_w, 0)}


def _run_pass(engine: Engine, problem: SearchProblem, p: SMCParams, k: int) -> tuple[_Pass, int]:
    """One pass of k particles from the root; returns it and the number of segments it ran."""
    lam = 1.0 / p.alpha
    x = problem.root.unsqueeze(0).repeat(k, 1)
    step = torch.zeros(k, dtype=torch.long, device=x.device)
    log_w = torch.zeros(k, dtype=torch.float64)  # weights since the last resampling
    log_z = 0.0  # log of the evidence estimate: sum over closed epochs of log mean incremental weight
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
            columns = {"tokens": x.cpu(), "rewards": scored.rewards, "log_prob": lp.cpu(), "log_prob_model": lpm.cpu(),
                       "unmask_step": unmask.cpu()}  # fmt: skip
            log_mass = log_z + float(torch.logsumexp(log_w, 0))  # log(k Z): the pass's total unnormalised weight
            return _Pass(columns, torch.log_softmax(log_w, 0), log_mass), segment + 1
        if effective_sample_size(log_w) < p.ess_threshold * k:
            log_z += float(torch.logsumexp(log_w, 0)) - math.log(k)
            idx = resample(log_w, p.resampling, engine.host_generator)  # weights live on the host
            total_log_g, previous = total_log_g[idx], previous[idx]
            running_max, running_sum = running_max[idx], running_sum[idx]
            idx = idx.to(x.device)
            x, log_probs, lp, lpm, unmask = x[idx], log_probs[idx], lp[idx], lpm[idx], unmask[idx]
            log_w = torch.zeros(k, dtype=torch.float64)
    # the budget ended mid-pass: no weights (the pass did not reach the target), but the best of what was found
    partial = engine.partial_designs(PartialState(x, log_probs, lp, lpm, unmask), *cut)
    return _Pass(partial, None, -math.inf), segment
