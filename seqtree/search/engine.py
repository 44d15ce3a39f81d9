"""The machinery every search algorithm shares: metered denoiser and oracle calls, batched reverse segments,
tree expansion and in-tree rollouts, the anytime curve, and the assembly of a :class:`SearchResult`.

Every denoiser call goes through :meth:`Engine.denoise` and every oracle call through :meth:`Engine.score`, so
NFE (denoiser rows) and oracle calls (sequences submitted) are counted in one place and never exceed the budget:
a batch larger than what is left is cut to its first rows and the search halts. Identical (tokens, step) rows in
one call are evaluated once (the K children of a node share their parent's first call), and MDLM's no-change cache
reuses a row's clean-token distribution while its tokens do not change; both are exact for time-independent
denoisers and, like the shared budget, apply to every algorithm alike. A tree segment hands its end state's
distribution to the next segment (a rollout through the tree costs what one unbroken reverse pass costs), and tree
searches keep their nodes' distributions (:mod:`seqtree.search.node_cache`), so a node widened again skips its first
call: the same draws, the same tree, fewer NFE.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from seqtree.device import host_arrays, host_generator, to_device
from seqtree.diffusion import check_log_probs
from seqtree.search.budget import STOP_NFE, STOP_ORACLE, Budget, Meter
from seqtree.search.node_cache import NodeCache
from seqtree.search.problem import SearchProblem
from seqtree.search.result import (
    UNKNOWN_STEP,
    CurvePoint,
    Designs,
    SearchResult,
    Trajectories,
    exact_groups,
    first_copies,
    hash_groups,
    pareto_mask,
)
from seqtree.search.tree import Tree


@dataclass(frozen=True)
class Advance:
    """Rows of a batch after some reverse steps. Rows cut by the budget are absent (see ``rows``)."""

    rows: Tensor  # [B'] long: which input rows completed
    tokens: Tensor  # [B', L]
    step_log_prob: Tensor  # [B', T] float32 per absolute step k (proposal); 0 outside the steps taken
    step_log_prob_model: Tensor  # [B', T] float32 (untempered model)
    unmask_step: Tensor  # [B', L] long: absolute step k at which the position was unmasked in this advance, else -1
    final_log_probs: Tensor | None  # [B', L, V] log p(x_0 | tokens) at the end state, when asked for
    host_rows: np.ndarray  # ``rows`` on the host


class CallPlan(NamedTuple):
    """A denoiser call planned on the host (:meth:`Engine._plan_call`): the ``distinct`` rows it evaluates, the
    ``rows`` it serves with ``source`` (each one's position among the distinct rows), and the rows the budget
    ``cut``. All are host index arrays, ascending."""

    distinct: np.ndarray
    rows: np.ndarray
    source: np.ndarray
    cut: np.ndarray


class Expansion(NamedTuple):
    """New tree children: ``rows`` (which entries of the expanded nodes got one; the budget may cut some), their
    node ``ids``, and log p(x_0 | child) [len(ids), L, V] when it was asked for (else None)."""

    rows: np.ndarray
    ids: np.ndarray
    final_log_probs: Tensor | None


@dataclass(frozen=True)
class PartialState:
    """Particles a budget stopped mid-pass: tokens [B, L], the clean-token log-probabilities of those tokens
    [B, L, V] (or None), and their path columns so far (log_prob / log_prob_model [B, T], unmask_step [B, L])."""

    tokens: Tensor
    log_probs: Tensor | None
    log_prob: Tensor
    log_prob_model: Tensor
    unmask_step: Tensor


@dataclass(frozen=True)
class Scored:
    rows: Tensor  # [B'] long: which input rows were scored (the budget may cut the batch)
    rewards: Tensor  # [B', K] float64
    scores: Tensor  # [B'] float64 scalarised


def _as_rewards(values, count: int) -> Tensor:
    """The oracle's answer as float64 [B, K]; NaN is refused (the contract asks for a floor), +-inf is kept here
    and floored by :meth:`Engine.score`, which records it."""
    out = torch.as_tensor(values).detach().to("cpu", torch.float64)
    if out.dim() == 1:
        out = out.unsqueeze(-1)
    if out.dim() != 2 or out.shape[0] != count:
        raise ValueError(f"oracle returned shape {tuple(out.shape)} for {count} sequences; expected [B] or [B, K]")
    if torch.isnan(out).any():
        raise ValueError("oracle returned NaN; the oracle contract asks for a finite floor value instead")
    return out


def runs_ahead(device: torch.device) -> bool:
    """Whether the host queues work ahead of ``device`` (a GPU): searches there read the device in packed copies
    and check the denoiser's output at the next read (:meth:`Engine.read`); on the CPU every result is ready when
    its op returns, so nothing is gained by either. Tests force it on the CPU."""
    return device.type != "cpu"


class ForwardTimer:
    """Adds the wall time of denoiser forward passes to ``meter.denoiser_seconds`` (the time split of summaries
    and benchmarks). On CUDA each pass is bracketed by events that are read once they have completed, so timing
    forces no host synchronisation per call (issue 13: a ``torch.cuda.synchronize`` after every call kept the host
    from queueing the next step's work); :meth:`settle` waits for the last ones."""

    def __init__(self, device: torch.device, meter: Meter) -> None:
        self.cuda = device.type == "cuda"
        self.meter = meter
        self.pending: list[tuple[torch.cuda.Event, torch.cuda.Event]] = []
        self.started = 0.0

    def __enter__(self) -> ForwardTimer:
        if self.cuda:
            self.pending.append((torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)))
            self.pending[-1][0].record()
        else:
            self.started = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        if not self.cuda:
            self.meter.denoiser_seconds += time.perf_counter() - self.started
            return
        self.pending[-1][1].record()
        self._fold(wait=False)

    def _fold(self, wait: bool) -> None:
        while self.pending and (wait or self.pending[0][1].query()):
            begin, end = self.pending.pop(0)
            end.synchronize()
            self.meter.denoiser_seconds += begin.elapsed_time(end) / 1000.0

    def settle(self) -> None:
        """Wait for the passes still in flight and count them."""
        self._fold(wait=True)


class Engine:
    """One search run: the problem, the meter, the generator, the oracle memo and the anytime curve."""

    def __init__(self, problem: SearchProblem, budget: Budget, generator: torch.Generator) -> None:
        self.problem = problem
        self.generator = generator
        self.meter = Meter(budget)
        self.device = problem.root.device
        if generator.device.type != self.device.type:
            raise ValueError(
                f"the generator is on {generator.device} but the problem's root on {self.device}: make it with "
                "seqtree.device.make_generator(seed, device), so draws happen where the tensors are"
            )
        self.host_generator = host_generator(generator)  # tree selection, resampling indices, remask proposals
        self.forward_timer = ForwardTimer(self.device, self.meter)
        self.runs_ahead = runs_ahead(self.device)
        self._unchecked: list[tuple[Tensor, Tensor, Tensor, Tensor]] = []  # NaN checks not read yet (see read)
        self.grid = torch.linspace(1.0, 0.0, problem.num_steps + 1, device=self.device)  # t_k = 1 - k / N
        self.p_unmask = problem.diffusion.unmask_probability(self.grid[:-1], self.grid[1:])  # [N] step k -> k + 1
        self.mask_id = problem.diffusion.mask_id
        self.node_cache = NodeCache()  # off unless a tree search turns it on (its ``node_cache_mb``)
        self.curve: list[CurvePoint] = []
        self.best = -math.inf
        self.reward_sum = 0.0  # over valid sequences (rewards above the floor)
        self.reward_count = 0  # valid sequences
        self.invalid_count = 0  # sequences with the floor in any objective
        self.memo: dict[str, Tensor] = {}
        self.floored: dict[str, int] = {}  # reason -> infinite reward values the oracle returned, set to the floor

    # --------------------------------------------------------------------------------------------- host reads
    def read(self, *tensors: Tensor) -> list[np.ndarray]:
        """``tensors`` (one leading size) as host arrays. Where the host runs ahead of the device (a GPU), one packed
        copy (:func:`seqtree.device.host_arrays`) that also brings the NaN checks of the denoiser calls made since the
        last read, which raise here (:meth:`_log_probs`): every read is a wait for the device, so a search makes as
        few as it can and makes each one count."""
        pending, self._unchecked = self._unchecked, []
        batch = tensors[0].shape[0] if tensors else 0
        if pending and batch:
            broken = torch.stack([flag for flag, *_ in pending]).any().expand(batch)
            *host, broken = host_arrays(*tensors, broken, pack=self.runs_ahead)
            broken = bool(broken[0])
        else:
            host = host_arrays(*tensors, pack=self.runs_ahead)
            broken = bool(pending) and bool(torch.stack([flag for flag, *_ in pending]).any())
        if broken:
            for _, log_probs, t, steps in pending:
                check_log_probs(log_probs, self.problem.denoiser, t, steps=steps)
        return host

    def _step_read(self, x: Tensor, k: Tensor, need: Tensor, *also: Tensor) -> list[np.ndarray]:
        """A reverse step's one read: ``need`` Bool[B] (rows whose distribution must be computed), for each row the
        first row with the same tokens and step among the needing ones (``rep``, :func:`hash_groups`), and ``also``.
        Returns [need, rep, *also] on the host."""
        keys = torch.cat([x, k.unsqueeze(1)], 1)
        rep, exact = hash_groups(keys, need)
        need_h, rep_h, exact_h, *also_h = self.read(need, rep, exact.expand(x.shape[0]), *also)
        if x.shape[0] and not exact_h[0]:  # two different rows with one projection: group by whole rows
            (rep_h,) = self.read(exact_groups(keys, need))
        return [need_h, rep_h, *also_h]

    def _plan_call(self, need_rows: np.ndarray, rep: np.ndarray) -> CallPlan:
        """The denoiser call for the rows ``need_rows`` (ascending), planned on the host: identical (tokens, step)
        rows are evaluated once (their first copy: ``rep``), and if fewer rows are left in the NFE budget than
        distinct rows, only the first ones are evaluated and the search halts."""
        reps = rep[need_rows]
        distinct = need_rows[reps == need_rows]  # each group's first row, in order of first appearance
        left = self.meter.nfe_left
        if distinct.size > left:
            self.meter.halt(STOP_NFE)
            distinct = distinct[: int(left)]
        source = np.searchsorted(distinct, reps)
        served = source < distinct.size
        served[served] = distinct[source[served]] == reps[served]
        return CallPlan(distinct, need_rows[served], source[served], need_rows[~served])

    def _evaluate(self, x: Tensor, k: Tensor, plan: CallPlan) -> Tensor | None:
        """log p(x_0 | x) [len(plan.distinct), L, V] of the plan's distinct rows of x [B, L] at steps k [B]."""
        if not plan.distinct.size:
            return None
        if plan.distinct.size == x.shape[0]:  # every row, in order: no gather
            return self._log_probs(x, k)
        rows = to_device(plan.distinct, x.device)
        return self._log_probs(x[rows], k[rows])

    # --------------------------------------------------------------------------------------------- denoiser
    def denoise(self, x: Tensor, k: Tensor) -> tuple[Tensor | None, np.ndarray]:
        """log p(x_0 | x) for rows x [R, L] at steps k [R]. Returns (log_probs [R', L, V] of the kept rows in order,
        kept Bool[R] on the host).

        Identical (tokens, step) rows are evaluated once; if fewer rows are left in the NFE budget than distinct
        rows, only the first ones (in order of first appearance) are evaluated and the search halts.
        """
        count = x.shape[0]
        if count == 0:
            return None, np.ones(0, bool)
        _, rep = self._step_read(x, k, torch.ones(count, dtype=torch.bool, device=x.device))
        plan = self._plan_call(np.arange(count), rep)
        fresh = self._evaluate(x, k, plan)
        kept = np.zeros(count, bool)
        kept[plan.rows] = True
        if fresh is None or plan.rows.size == plan.distinct.size:  # no copies: already in input order
            return fresh, kept
        return fresh[to_device(plan.source, x.device)], kept

    def _log_probs(self, tokens: Tensor, steps: Tensor, *, charge: bool = True) -> Tensor:
        """One metered denoiser call on distinct rows tokens [R, L] at steps [R], then the SUBS rule and the NaN
        check: log p(x_0 | tokens), [R, L, V]. ``charge=False`` only to restore what a saved run already paid for.

        Where the host runs ahead of the device, the NaN check is read with the next :meth:`read` instead of
        draining the queue here (it waited for every forward pass to finish before the host could queue the work
        that follows it), and the reverse step draws NaN-safe until then."""
        t = self.grid[steps]
        with torch.no_grad(), self.forward_timer:  # search never differentiates the denoiser
            logits = self.problem.denoiser(tokens, t)
        if charge:
            self.meter.charge_nfe(int(tokens.shape[0]))
        log_probs = self.problem.diffusion.subs_log_probs(logits, tokens)
        if self.runs_ahead:
            self._unchecked.append((torch.isnan(log_probs.sum()), log_probs, t, steps))
        else:
            check_log_probs(log_probs, self.problem.denoiser, t, steps=steps)
        return log_probs

    def advance(
        self,
        x: Tensor,
        k_from: Tensor,
        k_to: Tensor,
        *,
        log_probs0: Tensor | None = None,
        known0: Tensor | None = None,
        final_log_probs: bool = False,
        spans: np.ndarray | None = None,
    ) -> Advance:
        """Run reverse steps k_from[i] -> k_to[i] for each row of x [B, L] (MDLM Eq. 7 per step), batched.

        ``log_probs0`` [B, L, V]: log p(x_0 | x) already computed at step k_from (saves the first call); ``known0``
        Bool[B]: the rows of it that are known (default all; the others are computed). ``spans``: k_to - k_from on
        the host, when the caller has it (else read from the device: a wait on a GPU). ``final_log_probs``: also
        return log p(x_0 | end state) (a value estimate's input, or the next segment's ``log_probs0``); fully
        unmasked rows get their own one-hot at no cost.

        A GPU waits for the host at each read (issue 13), so a step reads once, before its denoiser call: which rows
        need a call, which of them are copies of one another and which rows step; then it draws the positions that
        unmask (they do not depend on the call) and finds them, so nothing after the call waits for it. The draws
        are those of one step after another, in the same order: the same designs as reading as needed.
        """
        p = self.problem
        batch, length = x.shape
        x = x.clone()
        k_from, k_to = k_from.to(x.device), k_to.to(x.device)
        span = k_to - k_from
        if spans is None:
            (spans,) = self.read(span)
        alive_h = self._affordable(spans + int(final_log_probs))
        alive = to_device(alive_h, x.device)
        valid = torch.zeros(batch, dtype=torch.bool, device=x.device)  # cache row matches the current tokens
        exact = torch.zeros(batch, dtype=torch.bool, device=x.device)  # ... and was computed at the current time
        cache = None
        if log_probs0 is not None:
            cache = log_probs0.clone()
            valid[:] = True if known0 is None else known0
            exact.copy_(valid)
        lp = torch.zeros(batch, p.num_steps, device=x.device)
        lpm = torch.zeros(batch, p.num_steps, device=x.device)
        unmask_step = torch.full((batch, length), -1, dtype=torch.long, device=x.device)

        def stale() -> Tensor:  # rows whose cached distribution cannot be used at the current step
            return ~valid if p.cache else ~(valid & exact)

        def refresh(plan: CallPlan, k: Tensor) -> None:
            nonlocal cache
            if plan.cut.size:  # the budget refused these rows: they stop here
                alive_h[plan.cut] = False
                alive.index_fill_(0, to_device(plan.cut, x.device), False)
            fresh = self._evaluate(x, k, plan)
            if fresh is None:
                return
            if plan.rows.size != plan.distinct.size:
                fresh = fresh[to_device(plan.source, x.device)]  # copies served from their first row
            rows = to_device(plan.rows, x.device)
            if cache is None and plan.rows.size == batch:  # every row, in order: no copy
                cache = fresh
            else:
                if cache is None:
                    cache = fresh.new_zeros((batch, length, fresh.shape[-1]))
                cache[rows] = fresh
            valid.index_fill_(0, rows, True)  # a scalar fill: no host-to-device copy of the value (a sync on CUDA)
            exact.index_fill_(0, rows, True)

        width = int(spans.max()) if batch else 0
        for j in range(width):
            k = k_from + j
            active = alive & (j < span) & (x == self.mask_id).any(-1)
            need_h, rep_h, active_h = self._step_read(x, k, active & stale(), active)
            need_rows = np.flatnonzero(need_h)
            plan = self._plan_call(need_rows, rep_h) if need_rows.size else None
            if plan is not None and plan.cut.size:
                alive_h[plan.cut] = False
            idx_h = np.flatnonzero(active_h & alive_h)
            whole = idx_h.size == batch  # every row steps: whole tensors, no [B, L, V] copy and no gathers
            idx = None if whole else to_device(idx_h, x.device)
            if idx_h.size:  # before the call: the draw needs no distribution, and finding its positions waits
                xs, ks = (x, k) if whole else (x[idx], k[idx])  # only for this step's small kernels
                unmask = p.diffusion.draw_unmask(xs, self.p_unmask[ks], self.generator)
                positions = unmask.nonzero()
            if plan is not None:
                refresh(plan, k)
            if not idx_h.size:
                continue
            step = p.diffusion.unmask_positions(
                cache if whole else cache[idx], xs, unmask, generator=self.generator, temperature=p.temperature,
                top_k=p.top_k, top_p=p.top_p, positions=positions, nan_safe=self.runs_ahead,
            )  # fmt: skip
            if whole:
                unmask_step = torch.where(step.tokens != x, k.unsqueeze(1), unmask_step)
                x = step.tokens  # a new tensor (the step copies x_t), so the caller's x is never written
                lp.scatter_(1, k.unsqueeze(1), step.log_prob.unsqueeze(1))
                lpm.scatter_(1, k.unsqueeze(1), step.log_prob_model.unsqueeze(1))
                valid &= step.num_unmasked == 0
                exact.fill_(False)
                continue
            unmask_step[idx] = torch.where(step.tokens != xs, ks.unsqueeze(1), unmask_step[idx])
            x[idx] = step.tokens
            lp[idx, ks] = step.log_prob
            lpm[idx, ks] = step.log_prob_model
            valid[idx] &= step.num_unmasked == 0
            exact.index_fill_(0, idx, False)

        final = None
        if final_log_probs:
            open_rows = alive & (x == self.mask_id).any(-1)
            need_h, rep_h, open_h = self._step_read(x, k_to, open_rows & stale(), open_rows)
            need_rows = np.flatnonzero(need_h)
            if need_rows.size:
                refresh(self._plan_call(need_rows, rep_h), k_to)
            vocab = p.diffusion.vocab_size
            final = torch.full((batch, length, vocab), -math.inf, device=x.device)
            final.scatter_(-1, x.unsqueeze(-1), 0.0)  # one-hot: a clean token predicts itself
            open_rows_h = np.flatnonzero(open_h & alive_h)
            if cache is not None and open_rows_h.size:
                keep = to_device(open_rows_h, x.device)
                final[keep] = cache[keep]
        rows_h = np.flatnonzero(alive_h)
        if rows_h.size == batch:
            rows = torch.arange(batch, device=x.device)
            return Advance(rows, x, lp, lpm, unmask_step, final, rows_h)
        rows = to_device(rows_h, x.device)
        picked = None if final is None else final[rows]
        return Advance(rows, x[rows], lp[rows], lpm[rows], unmask_step[rows], picked, rows_h)

    def _affordable(self, rows_needed: np.ndarray) -> np.ndarray:
        """Bool[B] on the host: the first rows whose worst-case denoiser rows (``rows_needed`` [B], one per step)
        fit in the NFE left, so a batch larger than the budget completes some rows instead of cutting all of them
        mid-way (issue 12: a best-of-N batch of 256 x 32 steps on a 3000-NFE budget spent it all and returned
        nothing). The search halts when not even the first row fits."""
        left = self.meter.nfe_left
        if left == math.inf or not len(rows_needed):
            return np.ones(len(rows_needed), bool)
        fits = np.cumsum(rows_needed) <= left
        if not fits.any():
            self.meter.halt(STOP_NFE)
        return fits

    def predict_x0(self, x: Tensor, log_probs: Tensor) -> Tensor:
        """The denoiser's most likely clean sequence: argmax of log p(x_0 | x) at masked positions. [B, L]."""
        return torch.where(x == self.mask_id, log_probs.argmax(-1), x)

    def is_complete(self, x: Tensor) -> Tensor:
        """Bool[B]: no masked position left."""
        return ~(x == self.mask_id).any(-1)

    # ----------------------------------------------------------------------------------------------- oracle
    def decode(self, tokens: Tensor) -> list[str]:
        return [self.problem.tokenizer.decode(row) for row in tokens.tolist()]

    def score(self, tokens: Tensor) -> Scored:
        """Oracle rewards of full sequences tokens [B, L]. Distinct unseen sequences are submitted (one batched
        call); if fewer calls are left than needed, only the first ones are submitted and the search halts."""
        self.read()  # the denoiser checks still unread, before its output is scored
        sequences = self.decode(tokens)
        p = self.problem
        if p.memoize_oracle:
            pending = list(dict.fromkeys(s for s in sequences if s not in self.memo))
        else:
            pending = list(sequences)
        left = self.meter.oracle_left
        if len(pending) > left:
            self.meter.halt(STOP_ORACLE)
            pending = pending[: int(left)]
        fresh: dict[str, Tensor] = {}
        if pending:
            values = _as_rewards(p.oracle(pending), len(pending))
            infinite = torch.isinf(values)
            if infinite.any():  # a reward of -inf (infeasible) or +inf: the floor, counted with its reason
                for sign, reason in ((-1, "reward -inf"), (1, "reward +inf")):
                    self.floored[reason] = self.floored.get(reason, 0) + int((infinite & (values * sign > 0)).sum())
                values = values.masked_fill(infinite, p.reward_floor)
            self.meter.charge_oracle(len(pending))
            fresh = dict(zip(pending, values))
            if p.memoize_oracle:
                self.memo.update(fresh)
        if p.memoize_oracle:
            rows = [i for i, s in enumerate(sequences) if s in self.memo]
            rewards = [self.memo[sequences[i]] for i in rows]
        else:
            rows = list(range(len(pending)))
            rewards = [fresh[s] for s in pending]
        width = p.num_objectives
        stacked = torch.stack(rewards) if rewards else torch.zeros(0, width, dtype=torch.float64)
        scores = p.scalarize(stacked)
        if scores.numel():
            invalid = (stacked == p.reward_floor).any(-1)  # [B'] the floor marks invalid or failed sequences
            self.best = max(self.best, float(scores.max()))
            self.reward_sum += float(scores[~invalid].sum())
            self.reward_count += int((~invalid).sum())
            self.invalid_count += int(invalid.sum())
            self.record()
        return Scored(to_device(np.asarray(rows, np.int64), tokens.device), stacked, scores)

    def record(self) -> None:
        scored = self.reward_count + self.invalid_count
        mean = self.reward_sum / self.reward_count if self.reward_count else math.nan
        best = self.best if scored else math.nan
        invalid = self.invalid_count / scored if scored else math.nan
        m = self.meter
        point = CurvePoint(m.nfe, m.oracle_calls, m.seconds, best, mean, invalid)
        self.curve.append(point)
        observer = self.problem.observer
        if observer is not None and observer(point):
            m.stop_requested = True

    # ------------------------------------------------------------------------------------------------- tree
    def new_tree(self, capacity: int = 1024) -> Tree:
        p = self.problem
        return Tree.create(
            p.root, num_steps=p.num_steps, branch_every=p.branch_every, num_objectives=p.num_objectives,
            vocab_size=p.diffusion.vocab_size, mask_id=self.mask_id, capacity=capacity,
        )  # fmt: skip

    def expand(
        self, tree: Tree, nodes: np.ndarray, *, log_probs0: Tensor | None = None, keep_final: bool = False
    ) -> Expansion:
        """One new child per entry of ``nodes`` (repeat a node for K children), one segment each, batched.

        ``log_probs0`` [B, L, V]: log p(x_0 | node) of each entry, when already known (saves the first call).
        ``keep_final``: also return log p(x_0 | child) for each new child, for a rollout that goes on from it: the
        call its next segment would begin with, made here instead, or none at all where the segment's last steps
        unmasked nothing and the no-change cache still holds (a segment boundary costs no NFE of its own). With the
        node cache on (:mod:`seqtree.search.node_cache`) they are kept for the children, and an entry of ``nodes``
        whose distribution is kept starts from it.
        """
        x = to_device(tree.token_tensor(nodes), self.device)
        start = tree.step[nodes].astype(np.int64)
        spans = self._segment_steps(tree, nodes)
        k_from = to_device(start, self.device)
        k_to = self.problem.next_branch_step(k_from)
        known0 = None
        if log_probs0 is None and self.node_cache:
            log_probs0, known0 = self._node_log_probs(tree, nodes, x, k_from, keep_final)
        out = self.advance(
            x, k_from, k_to, log_probs0=log_probs0, known0=known0, final_log_probs=keep_final, spans=spans
        )
        rows = out.host_rows
        cols = (k_from[out.rows].unsqueeze(1) + torch.arange(tree.branch_every, device=self.device)).clamp(
            max=self.problem.num_steps - 1
        )
        in_segment = cols < k_to[out.rows].unsqueeze(1)
        tokens, seg_lp, seg_lpm, terminal, unmask = self.read(
            out.tokens, out.step_log_prob.gather(1, cols) * in_segment,
            out.step_log_prob_model.gather(1, cols) * in_segment, self.is_complete(out.tokens), out.unmask_step,
        )  # fmt: skip
        steps = (start + spans)[rows]
        ids = tree.add_children(nodes[rows], tokens, steps, seg_lp, seg_lpm, terminal, unmask)
        if keep_final and self.node_cache:
            grows = ~terminal  # a terminal node is never expanded
            self.node_cache.put(ids[grows], out.final_log_probs[to_device(np.flatnonzero(grows), self.device)])
        return Expansion(rows, ids, out.final_log_probs)

    def _segment_steps(self, tree: Tree, nodes: np.ndarray) -> np.ndarray:
        """The reverse steps of each node's next segment (to its next branch point), from the tree's host arrays."""
        start = tree.step[nodes].astype(np.int64)
        return np.minimum(start + tree.branch_every, self.problem.num_steps) - start

    def _node_log_probs(
        self, tree: Tree, nodes: np.ndarray, x: Tensor, k: Tensor, keep_final: bool
    ) -> tuple[Tensor | None, Tensor | None]:
        """log p(x_0 | node) [B, L, V] for each entry of ``nodes`` and Bool[B] where known: kept ones from the node
        cache, the others computed in one call (the call expanding them begins with) and kept; (None, None) when
        nothing is kept and nothing computed. Only entries whose segment the budget can finish are computed (the
        worst case, as :meth:`advance` admits rows), so a budget's last NFE are not spent on a row it refuses."""
        kept = self.node_cache.get(nodes)
        log_probs, known = kept if kept is not None else (None, np.zeros(len(nodes), bool))
        left = self.meter.nfe_left
        fits = np.ones(len(nodes), bool)
        if left != math.inf:  # on the host, from the tree's steps: no synchronisation
            fits = np.cumsum(self._segment_steps(tree, nodes) + int(keep_final)) <= left
        rows = np.nonzero(~known & fits)[0]
        if rows.size:
            index = to_device(rows, self.device)
            fresh, computed = self.denoise(x[index], k[index])
            if fresh is not None:
                if fresh.shape[0] < rows.size:  # the budget cut some
                    rows = rows[computed]
                    index = to_device(rows, self.device)
                if log_probs is None:
                    log_probs = fresh.new_zeros((len(nodes), *fresh.shape[1:]))
                log_probs[index] = fresh
                known[rows] = True
                self.node_cache.put(nodes[rows], fresh)
        if log_probs is None:
            return None, None
        return log_probs, to_device(known, self.device)

    def refill_node_cache(self, tree: Tree, ids: np.ndarray, batch: int = 64) -> None:
        """Recompute the kept distributions of a saved search's ``ids`` (least recently used first), uncharged:
        the run that saved them paid for them, and the resumed run must spend what it would have spent."""
        for start in range(0, len(ids), batch):
            chunk = np.asarray(ids[start : start + batch], np.int64)
            steps = to_device(tree.step[chunk].astype(np.int64), self.device)
            log_probs = self._log_probs(to_device(tree.token_tensor(chunk), self.device), steps, charge=False)
            self.node_cache.put(chunk, log_probs)

    def rollout_in_tree(self, tree: Tree, nodes: np.ndarray, log_probs0: Tensor | None = None) -> np.ndarray:
        """Extend each node segment by segment to a terminal node, adding every node on the way (DTS).

        ``log_probs0`` [B, L, V]: log p(x_0 | node) of each node, when known (an expansion's ``final_log_probs``).
        Each segment hands its end state's distribution to the next, so a rollout costs the NFE of one unbroken
        reverse pass. Returns terminal ids aligned with ``nodes`` (-1 where the budget cut the rollout).
        """
        out = np.full(len(nodes), -1, np.int64)
        current, position = np.asarray(nodes, np.int64), np.arange(len(nodes))
        carry = log_probs0
        while current.size:
            done = tree.terminal[current]
            out[position[done]] = current[done]
            current, position = current[~done], position[~done]
            if not current.size:
                break
            if carry is not None and done.any():
                carry = carry[to_device(np.flatnonzero(~done), carry.device)]
            step = self.expand(tree, current, log_probs0=carry, keep_final=True)
            current, position, carry = step.ids, position[step.rows], step.final_log_probs
        return out

    def score_nodes(self, tree: Tree, ids: np.ndarray) -> np.ndarray:
        """Score terminal nodes whose reward is unknown; returns Bool[len(ids)]: reward known afterwards."""
        unknown = np.isnan(tree.reward[ids, 0])
        todo = np.unique(ids[unknown])
        if todo.size:
            scored = self.score(tree.token_tensor(todo))  # host tokens: the oracle reads strings
            rows = scored.rows.cpu().numpy()
            tree.reward[todo[rows]] = scored.rewards.numpy()
        return ~np.isnan(tree.reward[ids, 0])

    def node_scores(self, tree: Tree, ids: np.ndarray) -> np.ndarray:
        """Scalarised rewards of scored nodes, float64 [len(ids)]."""
        return self.problem.scalarize(torch.from_numpy(tree.reward[ids])).numpy()

    # ------------------------------------------------------------------------------------------------ result
    def finish(
        self,
        algorithm: str,
        *,
        tokens: Tensor,
        rewards: Tensor,
        log_prob: Tensor,
        log_prob_model: Tensor,
        unmask_step: Tensor,
        weights: Tensor | None = None,
        iterations: int = 0,
        tree: Tree | None = None,
        sort: bool = True,
    ) -> SearchResult:
        """Assemble the result: designs sorted by scalarised reward (best first) unless ``sort`` is False.

        tokens [N, L], rewards [N, K], log_prob / log_prob_model [N, T] per step, unmask_step [N, L] long (the
        reverse step each position was unmasked at, -1 if fixed from the root; it lets the path be replayed under
        another model, :func:`seqtree.trajectory.replay_log_probs`), weights [N] or None.
        """
        from seqtree.search.budget import STOP_COMPLETED

        self.forward_timer.settle()
        self.read()  # the denoiser checks still unread
        self.meter.halt(STOP_COMPLETED)
        self.record()
        tokens = tokens.cpu()
        rewards = rewards.double().cpu()
        scores = self.problem.scalarize(rewards)
        order = torch.argsort(scores, descending=True, stable=True) if sort else torch.arange(len(scores))
        tokens, rewards, scores = tokens[order], rewards[order], scores[order]
        log_prob, log_prob_model = log_prob.cpu()[order], log_prob_model.cpu()[order]
        unmask_step = unmask_step.long().cpu()[order]
        if weights is not None:
            weights = weights.double().cpu()[order]
        # a design whose path is unknown (a remask child) has no path log-probability: NaN, not a fake 0
        path_log_prob = log_prob_model.sum(-1).masked_fill((unmask_step == UNKNOWN_STEP).any(-1), math.nan)
        designs = Designs(self.decode(tokens), tokens, rewards, scores, path_log_prob, weights)
        front = None
        if rewards.shape[1] > 1:
            keep = pareto_mask(rewards)
            front = Designs(
                [s for s, k in zip(designs.sequences, keep.tolist()) if k], tokens[keep], rewards[keep],
                scores[keep], designs.log_prob_model[keep], None if weights is None else weights[keep],
            )  # fmt: skip
        m = self.meter
        return SearchResult(
            algorithm=algorithm,
            designs=designs,
            trajectories=Trajectories(tokens, log_prob, log_prob_model, unmask_step),
            curve=list(self.curve),
            nfe=m.nfe,
            oracle_calls=m.oracle_calls,
            seconds=m.seconds,
            stop_reason=m.stop_reason or STOP_COMPLETED,
            iterations=iterations,
            pareto_front=front,
            tree=tree,
            extras={
                "denoiser_seconds": m.denoiser_seconds,
                "denoiser_calls": m.denoiser_calls,
                "floored_rewards": dict(self.floored),
            },
        )

    def partial_designs(self, *states: PartialState) -> dict[str, Tensor]:
        """Design columns for the particles of a one-pass search (SMC, SVDD, beam) that a budget stopped mid-pass,
        so that spent compute still returns designs (issue 12). Each state's masked positions take the denoiser's
        most likely token from its last clean-token distribution (no denoiser call) and are marked
        ``UNKNOWN_STEP`` (not a draw of the reverse process: no path log-probability); states without that
        distribution keep only their complete rows. The designs are scored with what the oracle budget has left;
        a prediction scored at a branch point already costs nothing (the memo)."""
        parts = [self.empty_columns()]
        for state in states:
            x, log_probs = state.tokens, state.log_probs
            tokens = x if log_probs is None else self.predict_x0(x, log_probs)
            rows = self.is_complete(tokens).nonzero().squeeze(1)
            if not rows.numel():
                continue
            scored = self.score(tokens[rows])
            rows = rows[scored.rows]
            unmask = torch.where(x == self.mask_id, UNKNOWN_STEP, state.unmask_step)
            parts.append({
                "tokens": tokens[rows].cpu(), "rewards": scored.rewards, "log_prob": state.log_prob[rows].cpu(),
                "log_prob_model": state.log_prob_model[rows].cpu(), "unmask_step": unmask[rows].cpu(),
            })  # fmt: skip
        columns = {key: torch.cat([part[key] for part in parts]) for key in parts[0]}
        first = first_copies(columns["tokens"])
        return {key: value[first] for key, value in columns.items()}  # one row per sequence

    def empty_columns(self) -> dict[str, Tensor]:
        """Zero-row design columns (a search stopped before any design was complete)."""
        p = self.problem
        return {
            "tokens": torch.zeros(0, p.length, dtype=torch.long),
            "rewards": torch.zeros(0, p.num_objectives, dtype=torch.float64),
            "log_prob": torch.zeros(0, p.num_steps),
            "log_prob_model": torch.zeros(0, p.num_steps),
            "unmask_step": torch.zeros(0, p.length, dtype=torch.long),
        }
