"""Remask search: a population of finished designs improved by ReMDM remask-and-refill moves, with restarts.

An unmasking tree never revises a committed token, so search over a fixed prior stalls on plateaus where one motif
element is missing (issue 11: DTS* and MCTS stop at 0.75 on ehrlich-l32). ReMDM (Wang et al. 2025, "Remasking
Discrete Diffusion Models with Inference-Time Scaling", arXiv:2503.00307, Sec. 3-4) lets a masked diffusion model
revise its choices: decoded tokens are re-masked and re-sampled by the same denoiser, and in its "loop" phase a
nearly clean sequence is repeatedly partly re-masked and re-denoised. This module uses that move as the mutation of
a (mu + lambda) local search over clean sequences:

1. draw ``initial_samples`` designs from the model (ancestral, MDLM Eq. 7) and score them;
2. each iteration, pick ``children`` parents uniformly among the ``elite_size`` best distinct designs (ties go to
   the newest, so equally good designs drift instead of freezing the population); in each child re-mask a span of
   1..``max_span`` consecutive designed positions (a span, because feasibility and motifs are constraints between
   neighbours that a single-site change often cannot satisfy), or, with probability ``crossover``, join two parents
   at a random cut and re-mask the span around the cut (the denoiser repairs the junction);
3. refill the masked positions with the last ``refill_steps`` reverse steps of the schedule (the state t_k with
   k = num_steps - refill_steps, whose expected masked fraction matches a short span), batched over children;
   score the children (each distinct sequence once);
4. after ``patience`` iterations without a better design, restart: a fresh population from the model replaces the
   elites (everything found is kept in the result).

Paths. A child is not a draw of any reverse path, so it carries none: its designed positions have
``unmask_step = UNKNOWN_STEP`` and zero log-probabilities, as imported lab data (a replay buffer weighs such rows
by exp(r / alpha) alone; ``seqtree.buffer``). The initial and restart samples keep their real paths.

Budget: every refill and every sample charges NFE; each distinct new sequence charges one oracle call. The search
is anytime and runs until the budget (or ``max_iterations``) ends; when the NFE left cannot complete a whole batch,
the batch shrinks to what can finish, so a tight budget still returns designs.
"""

from __future__ import annotations

import torch
from pydantic import Field, model_validator
from torch import Tensor

from seqtree.search.budget import Budget
from seqtree.search.engine import Engine
from seqtree.search.params import SearchParams, build_params
from seqtree.search.problem import SearchProblem
from seqtree.search.result import UNKNOWN_STEP, SearchResult, first_copies


class RemaskParams(SearchParams):
    initial_samples: int = Field(64, ge=1, description="designs drawn from the model at the start and each restart")
    elite_size: int = Field(32, ge=1, description="parents are drawn from this many best distinct designs")
    children: int = Field(32, ge=1, description="children per iteration (one batch)")
    max_span: int = Field(4, ge=1, description="a child re-masks 1..max_span consecutive designed positions")
    refill_steps: int | None = Field(
        None, ge=1, description="reverse steps that refill a child (default max_span, at most num_steps)"
    )
    crossover: float = Field(0.0, ge=0.0, le=1.0, description="probability a child joins two parents at a cut")
    patience: int = Field(150, ge=0, description="iterations without a better design before a restart (0: never)")
    max_iterations: int | None = Field(None, ge=0, description="iterations at most (default: until the budget ends)")
    archive_size: int = Field(4096, ge=1, description="best distinct designs kept in the result")

    @model_validator(mode="after")
    def _check(self) -> RemaskParams:
        if self.elite_size > self.initial_samples:
            raise ValueError(f"elite_size {self.elite_size} exceeds initial_samples {self.initial_samples}")
        return self


class _Pool:
    """Distinct scored designs with their path columns; ``born`` orders ties (newer first)."""

    def __init__(self, engine: Engine) -> None:
        self.columns = {k: [v] for k, v in engine.empty_columns().items()}
        self.scores = [torch.zeros(0, dtype=torch.float64)]
        self.born = [torch.zeros(0, dtype=torch.long)]
        self.clock = 0

    @property
    def size(self) -> int:
        return sum(len(s) for s in self.scores)

    def add(self, columns: dict[str, Tensor], scores: Tensor) -> None:
        self.clock += 1
        for key, value in columns.items():
            self.columns[key].append(value.cpu())
        self.scores.append(scores.cpu())
        self.born.append(torch.full((len(scores),), self.clock, dtype=torch.long))

    def compact(self, keep: int) -> tuple[dict[str, Tensor], Tensor]:
        """Merge, keep one row per sequence (the copy with a sampling path if any, else the newest, dated by its
        newest copy), then the ``keep`` best (newest first among equals); returns the columns and scores, best
        first."""
        cols = {k: torch.cat(v) for k, v in self.columns.items()}
        scores, born = torch.cat(self.scores), torch.cat(self.born)
        newest = torch.argsort(born, descending=True, stable=True)
        tokens = cols["tokens"][newest]
        no_path = (cols["unmask_step"][newest] == UNKNOWN_STEP).any(-1).long() if "unmask_step" in cols else None
        rows = newest[first_copies(tokens, no_path)]  # a copy with a sampling path if any, else the newest
        when = born[newest[first_copies(tokens)]]  # each sequence dated by its newest copy
        order = torch.argsort(when, descending=True, stable=True)
        order = order[torch.argsort(scores[rows[order]], descending=True, stable=True)][:keep]
        picked = rows[order]
        self.columns = {k: [v[picked]] for k, v in cols.items()}
        self.scores, self.born = [scores[picked]], [when[order]]
        return {k: v[0] for k, v in self.columns.items()}, self.scores[0]


def remask_spans(
    parents: Tensor, mates: Tensor, designed: Tensor, spans: Tensor, starts: Tensor, cuts: Tensor | None, mask_id: int
) -> Tensor:
    """Children [B, L]: each parent with designed positions ``starts[b] .. starts[b] + spans[b] - 1`` (indices into
    the designed positions, in order) re-masked; where ``cuts`` is given and >= 1, the designed positions from
    ``cuts[b]`` on are first taken from ``mates[b]`` and the span is centred on the cut."""
    children = parents.clone()
    positions = designed.nonzero().squeeze(1)
    count = positions.numel()
    rank = torch.arange(count, device=parents.device)
    if cuts is not None:
        crossed = cuts >= 1
        take = crossed.unsqueeze(1) & (rank.unsqueeze(0) >= cuts.unsqueeze(1))
        children[:, positions] = torch.where(take, mates[:, positions], children[:, positions])
        centred = torch.minimum((cuts - spans // 2).clamp(min=0), count - spans)
        starts = torch.where(crossed, centred, starts)
    hit = (rank.unsqueeze(0) >= starts.unsqueeze(1)) & (rank.unsqueeze(0) < (starts + spans).unsqueeze(1))
    children[:, positions] = torch.where(hit, torch.full_like(children[:, positions], mask_id), children[:, positions])
    return children


def run_remask(
    problem: SearchProblem,
    budget: Budget,
    *,
    generator: torch.Generator,
    params: RemaskParams | None = None,
    **overrides,
) -> SearchResult:
    """The remask search of the module docstring; returns the ``archive_size`` best distinct designs."""
    p = build_params(RemaskParams, params, overrides)
    if not budget.bounded and p.max_iterations is None:
        raise ValueError("the remask search needs a bounded budget or max_iterations")
    engine = Engine(problem, budget, generator)
    designed = problem.root == engine.mask_id
    count = int(designed.sum())
    if count == 0:
        raise ValueError("the root has no masked position to design")
    max_span = min(p.max_span, count)
    refill = min(p.refill_steps or max_span, problem.num_steps)
    archive, population = _Pool(engine), _Pool(engine)  # everything found (the result) / the current elites
    device = problem.root.device

    def sample(size: int):
        x = problem.root.unsqueeze(0).expand(size, -1)
        start = torch.zeros(size, dtype=torch.long, device=device)
        out = engine.advance(x, start, torch.full_like(start, problem.num_steps))
        return _scored(engine, out.tokens, out.step_log_prob, out.step_log_prob_model, out.unmask_step)

    def add(found, pools: tuple[_Pool, ...]) -> float:
        if found is None:
            return -float("inf")
        columns, scores = found
        for pool in pools:
            pool.add(columns, scores)
        if archive.size > 2 * p.archive_size:
            archive.compact(p.archive_size)
        return float(scores.max())

    best = add(sample(p.initial_samples), (archive, population))
    iterations, last_gain, restarts = 0, 0, 0
    while (p.max_iterations is None or iterations < p.max_iterations) and not engine.meter.exhausted():
        iterations += 1
        elites, _ = population.compact(p.elite_size)
        parents = elites["tokens"].to(device)
        if not len(parents):  # the budget completed no design to start from
            break
        size = p.children  # the engine cuts the batch to the rows the NFE left can complete
        host = engine.host_generator  # proposals are drawn on the host, then moved once
        pick = torch.randint(len(parents), (size,), generator=host).to(device)
        mate = torch.randint(len(parents), (size,), generator=host).to(device)
        spans = torch.randint(1, max_span + 1, (size,), generator=host)
        starts = (torch.rand(size, generator=host) * (count - spans + 1)).long()
        cuts = None
        if p.crossover > 0 and count > 1:
            crossing = torch.rand(size, generator=host) < p.crossover
            cuts = torch.where(crossing, torch.randint(1, count, (size,), generator=host), 0).to(device)
        children = remask_spans(
            parents[pick], parents[mate], designed, spans.to(device), starts.to(device), cuts, engine.mask_id
        )
        k_from = torch.full((size,), problem.num_steps - refill, dtype=torch.long, device=device)
        out = engine.advance(children, k_from, torch.full_like(k_from, problem.num_steps))
        gained = add(_refilled(engine, out.tokens, designed), (archive, population))
        if gained > best:
            best, last_gain = gained, iterations
        elif p.patience and iterations - last_gain >= p.patience and not engine.meter.exhausted():
            restarts, last_gain = restarts + 1, iterations
            population = _Pool(engine)
            best = max(best, add(sample(p.initial_samples), (archive, population)))
    columns, _ = archive.compact(p.archive_size)
    result = engine.finish("remask", iterations=iterations, **columns)
    result.extras["restarts"] = restarts
    return result


def _refilled(engine: Engine, tokens: Tensor, designed: Tensor):
    """Scored pool columns of refilled children, which were not sampled along a reverse path: ``UNKNOWN_STEP`` at
    their designed positions and zero per-step log-probabilities."""
    unknown = torch.where(designed, UNKNOWN_STEP, -1).expand(len(tokens), -1).clone()
    zeros = torch.zeros(len(tokens), engine.problem.num_steps, device=tokens.device)
    return _scored(engine, tokens, zeros, zeros.clone(), unknown)


def _scored(engine: Engine, tokens: Tensor, log_prob: Tensor, log_prob_model: Tensor, unmask_step: Tensor):
    """The scored rows of a batch as pool columns and scores (None when the budget scored none)."""
    if len(tokens) == 0:
        return None
    scored = engine.score(tokens)
    rows = scored.rows
    if rows.numel() == 0:
        return None
    columns = {
        "tokens": tokens[rows], "rewards": scored.rewards, "log_prob": log_prob[rows],
        "log_prob_model": log_prob_model[rows], "unmask_step": unmask_step[rows],
    }  # fmt: skip
    return columns, scored.scores
