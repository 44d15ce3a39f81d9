"""The engine's per-step path log-probabilities against exact path probabilities on an enumerable toy.

The toy's denoiser is exact for a random joint p over 4^5 sequences (tests/fakes.py), so the law of one reverse step
is known in closed form: the positions unmasked at step k are drawn independently, each from its conditional
p(x_i = v | tokens visible before step k) = sum of p over the sequences that agree with those tokens, normalised.
``Advance.step_log_prob_model[:, k]`` must be the sum of log p(x_i | state before k) over the positions with
``unmask_step == k`` (the which-positions-unmask probability is not part of it: only token choices are recorded),
and ``step_log_prob`` the same under the proposal actually sampled from (tempered and/or truncated, renormalised).
The reference below is computed in float64 from the joint table alone, not from the denoiser or the SUBS rule.

Tolerance (float32 arithmetic, eps = 2^-23 ~ 1.2e-7). Per position the engine rounds log p to float32 (error
eps/2 |log p|), normalises twice with a log-softmax over V = 4 live tokens (error <= V eps each), divides by the
temperature T (scaling the first error by 1/T; |log q| <= |log p| / T for tempering with T < 1 and for top-k),
and sums <= L positions into the step (error <= L eps |sum|). So per step
    |recorded - exact| <= eps (2 V n + (L + 1) / T sum_i |log p_i|),
n the positions unmasked at the step. It is 0 for a step that unmasks nothing (the entry must be exactly 0) and
about 2e-6 for one position of probability 0.1; measured errors are <= 5e-7 and at most 0.13 of the bound. A
wrong column (the tempered value in the model column or the reverse), a step index off by one, or a conditional
taken from a stale state moves some entries by 1.6 to 6 nats, far outside it.
"""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from fakes import CONTENT_OFFSET, MASK_ID, EnumeratedToy, TableOracle
from seqtree.search import Advance, Budget, Engine, SearchProblem

V, L, STEPS = 4, 5, 6
EPS32 = torch.finfo(torch.float32).eps


@pytest.fixture(scope="module")
def toy() -> EnumeratedToy:
    return EnumeratedToy(V, L, STEPS, branch_every=2)


def _problem(toy: EnumeratedToy, root: Tensor | None = None, **kwargs) -> SearchProblem:
    return toy.problem(TableOracle(torch.zeros(V**L), "ACGT", L), root, **kwargs)


def _advance(problem: SearchProblem, x: Tensor, k_from: Tensor, k_to: Tensor, seed: int = 0) -> Advance:
    return Engine(problem, Budget(), torch.Generator().manual_seed(seed)).advance(x, k_from, k_to)


class ExactPaths:
    """Exact conditionals of the joint ``probs`` [V^L] (row-major over positions, as ``random_joint``), memoised
    by state: a tuple of content indices with -1 for a masked position."""

    def __init__(self, probs: Tensor) -> None:
        self.table = probs.double().view((V,) * L)
        self.memo: dict[tuple[int, ...], Tensor] = {}

    def conditionals(self, state: tuple[int, ...]) -> Tensor:
        """p(x_i = v | visible tokens of ``state``) [L, V] for masked i (rows of visible positions stay 0)."""
        if state not in self.memo:
            sub = self.table[tuple(v if v >= 0 else slice(None) for v in state)]  # axes: the masked positions
            masked = [i for i, v in enumerate(state) if v < 0]
            out = torch.zeros(L, V, dtype=torch.float64)
            for axis, i in enumerate(masked):
                others = tuple(a for a in range(len(masked)) if a != axis)
                marginal = sub.sum(others) if others else sub
                out[i] = marginal / marginal.sum()
            self.memo[state] = out
        return self.memo[state]

    def step_log_probs(
        self, start: Tensor, tokens: Tensor, unmask_step: Tensor, *, temperature: float = 1.0,
        top_k: int | None = None, shift: int = 0, stale: bool = False,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Exact per-step log-probabilities of the paths start [B, L] -> tokens [B, L] with ``unmask_step``
        [B, L]: (model [B, T], proposal [B, T], tolerance [B, T]) in float64. The proposal is p^(1/T) truncated to
        its ``top_k`` largest entries, renormalised. Two wrong variants a test must reject: ``shift`` credits step
        k's tokens to column k + shift (an off-by-one step index); ``stale`` conditions every step on ``start``
        (a clean-token distribution reused after the tokens changed)."""
        model = torch.zeros(start.shape[0], STEPS, dtype=torch.float64)
        proposal, tolerance = torch.zeros_like(model), torch.zeros_like(model)
        content, steps, open_ = (tokens - CONTENT_OFFSET).tolist(), unmask_step.tolist(), (start == MASK_ID).tolist()
        for b in range(start.shape[0]):
            for k in range(STEPS):
                chosen = [i for i in range(L) if steps[b][i] == k]
                if not chosen:
                    continue
                hidden = [open_[b][i] and (stale or not 0 <= steps[b][i] < k) for i in range(L)]
                before = tuple(-1 if hidden[i] else content[b][i] for i in range(L))
                p = self.conditionals(before)
                q = p ** (1.0 / temperature)
                if top_k is not None:
                    q = torch.where(q >= q.topk(top_k, -1).values[:, -1:], q, 0.0)
                q = q / q.sum(-1, keepdim=True).clamp_min(1e-300)
                log_p = torch.stack([p[i, content[b][i]].log() for i in chosen])
                column = min(k + shift, STEPS - 1)
                model[b, column] += log_p.sum()
                proposal[b, column] += sum(q[i, content[b][i]].log() for i in chosen)
                tolerance[b, column] += EPS32 * (2 * V * len(chosen) + (L + 1) / temperature * log_p.abs().sum())
        return model, proposal, tolerance


def _within(recorded: Tensor, exact: Tensor, tolerance: Tensor) -> bool:
    return bool(((recorded.double() - exact).abs() <= tolerance).all())


def _check_structure(out: Advance, start: Tensor, k_from: Tensor, k_to: Tensor) -> None:
    """Fixed positions keep their token and step -1; designed positions unmasked in [k_from, k_to) got a content
    token; all of them are unmasked when k_to is the last step; no log-probability outside the steps taken."""
    assert torch.equal(out.rows, torch.arange(start.shape[0]))
    fixed = start != MASK_ID
    assert torch.equal(out.tokens[fixed], start[fixed]) and (out.unmask_step[fixed] == -1).all()
    revealed = out.unmask_step >= 0
    assert torch.equal(revealed, ~fixed & (out.tokens != MASK_ID)) and (out.tokens[revealed] >= CONTENT_OFFSET).all()
    assert ((out.unmask_step < k_to.unsqueeze(1)) & (out.unmask_step >= k_from.unsqueeze(1)))[revealed].all()
    assert (out.tokens[k_to == STEPS] != MASK_ID).all()
    steps = torch.arange(STEPS)
    outside = (steps < k_from.unsqueeze(1)) | (steps >= k_to.unsqueeze(1))
    assert (out.step_log_prob[outside] == 0).all() and (out.step_log_prob_model[outside] == 0).all()


def test_path_log_probs_from_the_masked_root_are_the_exact_conditionals(toy):
    """300 full paths of 6 steps from the all-masked root; steps unmask 0 to 5 positions (several rows reveal 2+
    positions in one step, where the independent-draw rule matters)."""
    exact, batch = ExactPaths(toy.probs), 300
    start = torch.full((batch, L), MASK_ID)
    k_from, k_to = torch.zeros(batch, dtype=torch.long), torch.full((batch,), STEPS)
    out = _advance(_problem(toy), start, k_from, k_to)
    _check_structure(out, start, k_from, k_to)
    model, proposal, tolerance = exact.step_log_probs(start, out.tokens, out.unmask_step)
    assert _within(out.step_log_prob_model, model, tolerance)
    assert _within(out.step_log_prob, proposal, tolerance)  # temperature 1: proposal = model
    counts = (out.unmask_step.unsqueeze(-1) == torch.arange(STEPS)).sum(1)
    assert (counts >= 2).sum() > 50 and (counts == 0).sum() > 50  # both kinds of step are exercised
    # an off-by-one step index (tokens credited to the next step's column) is rejected
    shifted, _, _ = exact.step_log_probs(start, out.tokens, out.unmask_step, shift=1)
    assert not _within(out.step_log_prob_model, shifted, tolerance)


def test_path_log_probs_from_a_prompt_and_from_mid_path_states(toy):
    """A prompt root (positions 1 and 4 fixed) run one segment 0 -> 2, then its end states run on with per-row
    start and end steps (2 -> 6 and 3 -> 4): each step conditions on the prompt and on what the earlier segment
    revealed, and is recorded in its absolute column. A stale conditional (the first segment's state reused after
    it changed) is rejected."""
    exact, batch = ExactPaths(toy.probs), 200
    root = torch.tensor([MASK_ID, 3, MASK_ID, MASK_ID, 5])
    problem = _problem(toy, root)
    start = root.repeat(batch, 1)
    k_from, k_to = torch.zeros(batch, dtype=torch.long), torch.full((batch,), 2)
    first = _advance(problem, start, k_from, k_to, seed=1)
    _check_structure(first, start, k_from, k_to)
    model, _, tolerance = exact.step_log_probs(start, first.tokens, first.unmask_step)
    assert _within(first.step_log_prob_model, model, tolerance)

    middle = first.tokens
    odd = torch.arange(batch) % 2 == 1
    k_from, k_to = torch.where(odd, 3, 2), torch.where(odd, 4, STEPS)
    second = _advance(problem, middle, k_from, k_to, seed=2)
    _check_structure(second, middle, k_from, k_to)
    assert (second.unmask_step[middle != MASK_ID] == -1).all()
    model, proposal, tolerance = exact.step_log_probs(middle, second.tokens, second.unmask_step)
    assert _within(second.step_log_prob_model, model, tolerance)
    assert _within(second.step_log_prob, proposal, tolerance)
    assert (second.step_log_prob_model[odd, 3] != 0).any() and (second.step_log_prob_model[~odd, 5] != 0).any()
    # conditioning on the segment's start state instead of the state before each step is rejected
    stale, _, _ = exact.step_log_probs(middle, second.tokens, second.unmask_step, stale=True)
    assert not _within(second.step_log_prob_model, stale, tolerance)


@pytest.mark.parametrize("temperature,top_k", [(0.7, None), (1.0, 2)], ids=["temperature-0.7", "top-k-2"])
def test_proposal_and_model_columns_under_temperature_and_top_k(toy, temperature, top_k):
    """``step_log_prob`` is the log-probability under the tempered (p^(1/T), renormalised) or truncated (the 2
    likeliest tokens, renormalised) proposal the tokens were drawn from; ``step_log_prob_model`` stays the
    untempered, untruncated model's. Swapping the two columns is rejected."""
    exact, batch = ExactPaths(toy.probs), 300
    start = torch.full((batch, L), MASK_ID)
    k_from, k_to = torch.zeros(batch, dtype=torch.long), torch.full((batch,), STEPS)
    out = _advance(_problem(toy, temperature=temperature, top_k=top_k), start, k_from, k_to, seed=3)
    _check_structure(out, start, k_from, k_to)
    model, proposal, tolerance = exact.step_log_probs(
        start, out.tokens, out.unmask_step, temperature=temperature, top_k=top_k
    )
    assert _within(out.step_log_prob_model, model, tolerance)
    assert _within(out.step_log_prob, proposal, tolerance)
    assert torch.isfinite(proposal).all()  # every drawn token lies in the proposal's support
    assert not _within(out.step_log_prob, model, tolerance)
    assert not _within(out.step_log_prob_model, proposal, tolerance)
