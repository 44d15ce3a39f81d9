"""Samplers against the exact joint of a toy: distributions, NFE accounting, the no-change cache, fixed positions."""

import pytest
import torch

from fakes import (
    MASK_ID,
    PAD_ID,
    ExactJointDenoiser,
    empirical_distribution,
    random_joint,
    total_variation,
    tv_null_quantile,
)
from seqtree.samplers import SAMPLERS, get_sampler

V, L, N = 4, 5, 20_000


@pytest.fixture(scope="module")
def toy():
    return ExactJointDenoiser(random_joint(V, L, torch.Generator().manual_seed(0)), V, L)


@pytest.fixture(scope="module")
def null_bound(toy):
    """99th percentile of TV(empirical, p) for N exact draws from p (simulated): what an exact sampler meets."""
    return tv_null_quantile(toy.probs, N, 0.99, repeats=60)


def _distribution(toy, tokens):
    return empirical_distribution(toy.index_of(tokens), V**L)


def test_first_hitting_samples_the_joint_exactly(toy, null_bound):
    out = get_sampler("first_hitting")(
        toy, toy.diffusion(), torch.full((N, L), MASK_ID), generator=torch.Generator().manual_seed(1)
    )
    assert total_variation(_distribution(toy, out.tokens), toy.probs) < null_bound
    assert out.nfe == N * L  # one call per unmasking event
    # the reported log-probability is log p(x): any-order factorisation of the exact joint
    torch.testing.assert_close(out.log_prob.double(), toy.probs.log()[toy.index_of(out.tokens)], atol=1e-4, rtol=0)


def test_ancestral_samples_the_joint_up_to_step_collisions(toy, null_bound):
    """Ancestral sampling is exact except when two positions unmask in the same step (then they are drawn
    independently). Under the log-linear schedule each position's unmasking time is uniform, so with K steps a
    collision happens with probability at most C(L, 2) / K = 0.01 for K = 1000; coupling bounds the extra TV."""
    steps = 1000
    out = get_sampler("ancestral")(
        toy, toy.diffusion(), torch.full((N, L), MASK_ID), generator=torch.Generator().manual_seed(2), num_steps=steps
    )
    collision_bound = L * (L - 1) / 2 / steps
    assert total_variation(_distribution(toy, out.tokens), toy.probs) < null_bound + collision_bound
    assert out.nfe <= N * L  # the cache: at most one call per unmasking step with a change


def test_no_change_cache_skips_calls(toy):
    x = torch.full((64, L), MASK_ID)
    toy.rows = 0
    cached = get_sampler("ancestral")(
        toy, toy.diffusion(), x, generator=torch.Generator().manual_seed(3), num_steps=200
    )
    assert cached.nfe == toy.rows  # NFE is exactly the rows the denoiser saw
    assert cached.nfe <= 64 * L  # at most one evaluation per unmasking event per row, far below 64 * 200
    toy.rows = 0
    uncached = get_sampler("ancestral")(
        toy, toy.diffusion(), x, generator=torch.Generator().manual_seed(3), num_steps=200, cache=False
    )
    assert uncached.nfe == toy.rows > cached.nfe
    assert torch.equal(cached.tokens, uncached.tokens)  # an exact, time-independent denoiser: same draws


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_fixed_positions_never_change(toy, name):
    generator = torch.Generator().manual_seed(4)
    x = torch.full((200, L), MASK_ID)
    x[:, 0] = 3
    x[:, 3] = 5
    x[:100, 4] = PAD_ID
    out = get_sampler(name)(toy, toy.diffusion(), x, generator=generator, num_steps=8)
    assert torch.all(out.tokens[:, 0] == 3) and torch.all(out.tokens[:, 3] == 5)
    assert torch.all(out.tokens[:100, 4] == PAD_ID)
    assert not (out.tokens == MASK_ID).any()
    free = torch.ones(L, dtype=torch.bool)
    free[[0, 3]] = False
    assert torch.all(out.tokens[100:, free] >= 2)  # content tokens only where sampled


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_contract_same_seed_same_samples(toy, name):
    x = torch.full((16, L), MASK_ID)
    a = get_sampler(name)(toy, toy.diffusion(), x, generator=torch.Generator().manual_seed(5), num_steps=4)
    b = get_sampler(name)(toy, toy.diffusion(), x, generator=torch.Generator().manual_seed(5), num_steps=4)
    assert torch.equal(a.tokens, b.tokens) and torch.equal(a.log_prob, b.log_prob) and a.nfe == b.nfe
    assert a.tokens.shape == x.shape and a.log_prob.shape == (16,) and a.nfe > 0
    assert torch.all(a.log_prob <= 1e-6) and torch.all(a.log_prob_model <= 1e-6)


def test_conditional_sampling_matches_exact_conditional(toy):
    """With position 0 fixed, first-hitting samples follow p(x | x_0 = v)."""
    x = torch.full((N, L), MASK_ID)
    x[:, 0] = 2 + 1
    out = get_sampler("first_hitting")(toy, toy.diffusion(), x, generator=torch.Generator().manual_seed(6))
    consistent = toy.sequences[:, 0] == 1
    target = torch.where(consistent, toy.probs, torch.zeros_like(toy.probs))
    target = target / target.sum()
    assert total_variation(_distribution(toy, out.tokens), target) < tv_null_quantile(target, N, 0.99, repeats=60)


def test_confidence_sampler_k_tokens_per_step(toy):
    x = torch.full((8, L), MASK_ID)
    out = get_sampler("confidence")(
        toy, toy.diffusion(), x, generator=torch.Generator().manual_seed(7), tokens_per_step=2
    )
    assert out.num_calls == 3 and out.nfe == 8 * 3  # ceil(5 / 2) steps
    greedy = get_sampler("confidence")(
        toy,
        toy.diffusion(),
        x[:1],
        generator=torch.Generator().manual_seed(7),
        tokens_per_step=1,
        temperature=0.0,
        score="margin",
    )
    assert greedy.num_calls == L
    assert float(greedy.log_prob) == 0.0  # greedy choices have probability one under the proposal


def test_top_k_one_is_greedy_and_temperature_changes_proposal_only(toy):
    x = torch.full((32, L), MASK_ID)
    out = get_sampler("first_hitting")(toy, toy.diffusion(), x, generator=torch.Generator().manual_seed(8), top_k=1)
    assert torch.all(out.log_prob == 0.0)
    assert torch.all(out.log_prob_model < 0.0)


def test_unknown_sampler():
    with pytest.raises(ValueError, match="unknown sampler 'gibbs'"):
        get_sampler("gibbs")
