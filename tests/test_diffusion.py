"""The masked diffusion core against exact references: NELBO = -log p(x) for the exact denoiser, schedules,
forward masking, the SUBS rule, and reverse-step probabilities."""

import math

import pytest
import torch

from fakes import MASK_ID, PAD_ID, ExactJointDenoiser, random_joint
from seqtree.diffusion import MaskedDiffusion, filter_log_probs
from seqtree.schedules import SCHEDULES, make_schedule

V, L = 4, 5


@pytest.fixture(scope="module")
def toy():
    probs = random_joint(V, L, torch.Generator().manual_seed(0))
    return ExactJointDenoiser(probs, V, L)


@pytest.mark.parametrize("schedule", sorted(SCHEDULES))
def test_nelbo_of_exact_denoiser_matches_negative_log_likelihood(toy, schedule):
    """With the exact conditionals the NELBO is tight (every unmasking order factorises p exactly), so its Monte
    Carlo mean must equal -log p(x) within its standard error. We test at 4 standard errors, plus the bias of
    alpha(1) = eps (a token never masked at t=1 with probability eps; bounded by eps * L * max |log p| here)."""
    diffusion = toy.diffusion(schedule=make_schedule(schedule, eps=1e-4))
    generator = torch.Generator().manual_seed(1)
    n = 20_000
    for index in (0, 100, int(toy.probs.argmax())):
        x0 = (toy.sequences[index] + 2).expand(n, L)
        # Independent uniform times, so the sample standard deviation is an honest standard error.
        t = torch.rand(n, generator=generator)
        nats = diffusion.nelbo(toy, x0, generator=generator, t=t).nats.double()
        mean, stderr = float(nats.mean()), float(nats.std() / math.sqrt(n))
        target = -math.log(float(toy.probs[index]))
        assert abs(mean - target) < 4 * stderr + 1e-4 * L * 20, (schedule, index, mean, target, stderr)


@pytest.mark.parametrize("schedule", sorted(SCHEDULES))
def test_schedule_endpoints_and_inverse(schedule):
    s = make_schedule(schedule, eps=1e-3)
    t = torch.linspace(0, 1, 101)
    alpha = s.alpha(t)
    assert float(alpha[0]) == pytest.approx(1.0)
    assert float(alpha[-1]) == pytest.approx(1e-3, abs=1e-6)
    assert torch.all(alpha[1:] <= alpha[:-1])  # monotone: tokens only get masked as t grows
    torch.testing.assert_close(s.inverse_alpha(alpha), t, atol=1e-4, rtol=0)
    # alpha_derivative is the derivative of alpha
    h = 1e-4
    mid = torch.linspace(0.05, 0.95, 19, dtype=torch.float64)
    numeric = (s.alpha(mid + h) - s.alpha(mid - h)) / (2 * h)
    torch.testing.assert_close(s.alpha_derivative(mid), numeric, atol=1e-4, rtol=1e-4)


def test_unknown_schedule():
    with pytest.raises(ValueError, match="unknown noise schedule 'quadratic'"):
        make_schedule("quadratic")


def test_forward_masking_rate_and_maskable():
    diffusion = MaskedDiffusion(mask_id=1, vocab_size=6)
    x0 = torch.full((2000, 50), 3)
    t = torch.full((2000,), 0.3)
    maskable = torch.ones_like(x0, dtype=torch.bool)
    maskable[:, :10] = False
    x_t = diffusion.forward_mask(x0, t, torch.Generator().manual_seed(0), maskable)
    assert not (x_t[:, :10] == 1).any()
    rate = float((x_t[:, 10:] == 1).float().mean())
    assert rate == pytest.approx(1 - float(diffusion.schedule.alpha(torch.tensor(0.3))), abs=0.01)
    assert set(x_t.unique().tolist()) == {1, 3}


def test_subs_rule_forbids_specials_and_copies_unmasked():
    diffusion = MaskedDiffusion(mask_id=MASK_ID, vocab_size=6, forbidden_ids=[PAD_ID])
    logits = torch.randn(2, 3, 6)
    x_t = torch.tensor([[MASK_ID, 4, MASK_ID], [5, MASK_ID, PAD_ID]])
    log_probs = diffusion.subs_log_probs(logits, x_t)
    masked = x_t == MASK_ID
    assert torch.all(log_probs[masked][:, [PAD_ID, MASK_ID]] == float("-inf"))
    torch.testing.assert_close(log_probs[masked].exp().sum(-1), torch.ones(int(masked.sum())))
    assert (
        float(log_probs[0, 1, 4]) == 0.0 and float(log_probs[1, 0, 5]) == 0.0 and float(log_probs[1, 2, PAD_ID]) == 0.0
    )


def test_subs_rule_is_the_same_in_inference_and_in_training_and_gradients_flow():
    """The SUBS rule rewrites log_softmax's output in place when no gradient is needed; with a gradient it must not
    (log_softmax's backward reads its output). Both equal the rule written out term by term, bit for bit."""
    diffusion = MaskedDiffusion(mask_id=MASK_ID, vocab_size=6, forbidden_ids=[PAD_ID])
    logits = torch.randn(3, 5, 7, generator=torch.Generator().manual_seed(0))  # one padded column beyond V
    x_t = torch.tensor([[MASK_ID, 4, MASK_ID, 2, 3], [5, MASK_ID, PAD_ID, MASK_ID, 4], [MASK_ID] * 5])
    forbidden = torch.zeros(6, dtype=torch.bool)
    forbidden[[MASK_ID, PAD_ID]] = True
    reference = logits[..., :6].masked_fill(forbidden, float("-inf")).log_softmax(-1)
    one_hot = torch.full_like(reference, float("-inf")).scatter(-1, x_t.unsqueeze(-1), 0.0)
    reference = torch.where((x_t != MASK_ID).unsqueeze(-1), one_hot, reference)
    assert torch.equal(diffusion.subs_log_probs(logits, x_t), reference)
    trained = logits.clone().requires_grad_(True)
    log_probs = diffusion.subs_log_probs(trained, x_t)
    assert torch.equal(log_probs.detach(), reference)
    log_probs.gather(-1, torch.full_like(x_t, 3).unsqueeze(-1)).masked_fill(
        (x_t != MASK_ID).unsqueeze(-1), 0
    ).sum().backward()
    assert trained.grad is not None and torch.isfinite(trained.grad).all() and trained.grad.abs().sum() > 0


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_one_bad_logit_is_refused_with_its_row(bad):
    """check_log_probs reads one sum of the whole batch first: a single NaN or +inf logit at one masked position of
    one row still stops the search, with that row counted."""
    from seqtree.diffusion import DenoiserOutputError, check_log_probs

    diffusion = MaskedDiffusion(mask_id=MASK_ID, vocab_size=6)
    x_t = torch.full((3, 4), MASK_ID)
    logits = torch.zeros(3, 4, 6)
    check_log_probs(diffusion.subs_log_probs(logits, x_t), None, torch.full((3,), 0.5))  # finite and -inf: fine
    logits[1, 2, 4] = bad
    with pytest.raises(DenoiserOutputError, match="NaN or infinite logits for 1 of 3 rows"):
        check_log_probs(diffusion.subs_log_probs(logits, x_t), None, torch.full((3,), 0.5))


def test_reverse_step_unmask_probability():
    """A masked position unmasks from t to s with probability (alpha_s - alpha_t) / (1 - alpha_t) (MDLM Eq. 7)."""
    diffusion = MaskedDiffusion(mask_id=1, vocab_size=6)
    x_t = torch.full((4000, 25), 1)
    log_probs = diffusion.subs_log_probs(torch.zeros(4000, 25, 6), x_t)
    t, s = torch.full((4000,), 0.8), torch.full((4000,), 0.5)
    step = diffusion.reverse_step(log_probs, x_t, t, s, generator=torch.Generator().manual_seed(0))
    alpha = diffusion.schedule.alpha
    expected = float((alpha(s[:1]) - alpha(t[:1])) / (1 - alpha(t[:1])))
    assert float((step.tokens != 1).float().mean()) == pytest.approx(expected, abs=0.005)
    assert torch.equal(step.num_unmasked, (step.tokens != 1).sum(-1))
    # uniform over the 5 ids other than the mask: each chosen token has log-probability log(1/5)
    torch.testing.assert_close(step.log_prob, step.num_unmasked * math.log(0.2))
    final = diffusion.reverse_step(log_probs, x_t, t, torch.zeros(4000), generator=torch.Generator().manual_seed(0))
    assert not (final.tokens == 1).any()  # s = 0 unmasks everything


def test_filter_log_probs():
    log_probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]]).log()
    top2 = filter_log_probs(log_probs, top_k=2).exp()
    torch.testing.assert_close(top2, torch.tensor([[0.625, 0.375, 0.0, 0.0]]))
    nucleus = filter_log_probs(log_probs, top_p=0.8).exp()  # 0.5 + 0.3 reaches 0.8: keep two
    torch.testing.assert_close(nucleus, torch.tensor([[0.625, 0.375, 0.0, 0.0]]))
    greedy = filter_log_probs(log_probs, temperature=0).exp()
    torch.testing.assert_close(greedy, torch.tensor([[1.0, 0.0, 0.0, 0.0]]))
    hot = filter_log_probs(log_probs, temperature=2.0).exp()
    expected = torch.tensor([0.5, 0.3, 0.15, 0.05]).sqrt()
    torch.testing.assert_close(hot[0], expected / expected.sum())
    with pytest.raises(ValueError, match="top_p"):
        filter_log_probs(log_probs, top_p=0.0)
