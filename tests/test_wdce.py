"""WDCE (TR2-D2 Eq. 10) against an enumerable toy: V = 3 states, L = 4 positions, 81 sequences.

A small MLP denoiser is trained in seconds; the law of its any-order sampler (one position at a time, uniformly at
random, which is what the first-hitting sampler and fine ancestral steps draw) is computed exactly by dynamic
programming over the 4^4 partially masked states, so KL(model || pi*) is exact, not estimated.

Tolerances: 50,000 weighted draws with weights exp(r / alpha), r ~ N(0, 1), alpha = 1 have a Kish ESS near
N exp(-1) = 18,000, so the sampling part of KL(fit || pi*) is about (81 - 1) / (2 ESS) = 0.002; the optimisation error
of the MLP measured on exact samples is about 0.01. The pretrained model starts at KL(p || pi*) = 0.63, so "below a
quarter of the start" (0.16) separates a working loss (measured 0.019; 0.018 from a uniform proposal with the
correction) from broken ones: weights at 2 alpha give 0.17 (and land within 0.016 of the tilt at 2 alpha), no weights
0.64, a uniform proposal without the importance correction 0.50 (0.017 from that proposal's own tilt). The tests
assert each wrong variant's failure directly.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import nn

from fakes import CONTENT_OFFSET, MASK_ID, PAD_ID, random_joint, tilted_distribution
from seqtree.diffusion import MaskedDiffusion
from seqtree.training.wdce import stratified_mask_rates, wdce_loss

V, L = 3, 4
VOCAB = V + CONTENT_OFFSET
SEQUENCES = torch.tensor(list(itertools.product(range(V), repeat=L))) + CONTENT_OFFSET  # [81, L]


class MLPDenoiser(nn.Module):
    """Time-independent denoiser: one-hot of the whole partially masked row -> logits of every position."""

    def __init__(self, hidden: int = 128) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(L * VOCAB, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, L * VOCAB)
        )

    def forward(self, tokens: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        one_hot = nn.functional.one_hot(tokens, VOCAB).float().flatten(1)
        return self.net(one_hot).view(-1, L, VOCAB)


DIFFUSION = MaskedDiffusion(mask_id=MASK_ID, vocab_size=VOCAB, forbidden_ids=[PAD_ID])


@torch.no_grad()
def any_order_law(denoiser: nn.Module) -> torch.Tensor:
    """Exact law [81] of unmasking one uniformly chosen position at a time with the denoiser's conditionals."""
    states = {(-1,) * L: 1.0}
    for _ in range(L):
        keys = list(states)
        tokens = torch.tensor([[v + CONTENT_OFFSET if v >= 0 else MASK_ID for v in s] for s in keys])
        probs = DIFFUSION.denoise(denoiser, tokens, torch.ones(len(keys))).double().exp()[..., CONTENT_OFFSET:]
        new: dict[tuple[int, ...], float] = {}
        for key, row in zip(keys, probs.tolist()):
            masked = [i for i, v in enumerate(key) if v < 0]
            for i in masked:
                for v in range(V):
                    nxt = list(key)
                    nxt[i] = v
                    nxt_key = tuple(nxt)
                    new[nxt_key] = new.get(nxt_key, 0.0) + states[key] * row[i][v] / len(masked)
        states = new
    out = torch.zeros(V**L, dtype=torch.float64)
    for key, prob in states.items():
        out[sum(v * V ** (L - 1 - i) for i, v in enumerate(key))] = prob
    return out / out.sum()


def kl(p: torch.Tensor, q: torch.Tensor) -> float:
    return float((p * (p.clamp_min(1e-300).log() - q.clamp_min(1e-300).log())).sum())


def fit(
    denoiser: nn.Module, draws: torch.Tensor, log_weights: torch.Tensor | None, *, steps: int, seed: int, lr=3e-3
) -> nn.Module:
    """Train on sequence indices ``draws`` [N] with self-normalised weights softmax(log_weights) (uniform if None),
    uniform minibatches carrying N * w, as the fine-tuning data module does."""
    generator = torch.Generator().manual_seed(seed)
    tokens = SEQUENCES[draws]
    count = len(draws)
    weights = torch.ones(count) if log_weights is None else torch.softmax(log_weights.double(), 0).float() * count
    designed = torch.ones(L, dtype=torch.bool)
    optimizer = torch.optim.Adam(denoiser.parameters(), lr=lr)
    for _ in range(steps):
        batch = torch.randint(0, count, (512,), generator=generator)
        loss = wdce_loss(
            denoiser, DIFFUSION, tokens[batch], designed.expand(512, -1), weights[batch], replicates=4,
            generator=generator,
        )  # fmt: skip
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return denoiser


@pytest.fixture(scope="module")
def toy():
    """(pretrained denoiser, its exact law, rewards [81], pi* at alpha 1) on a seeded random problem."""
    generator = torch.Generator().manual_seed(7)
    p = random_joint(V, L, generator, concentration=1.0)
    rewards = torch.randn(V**L, generator=generator, dtype=torch.float64)
    torch.manual_seed(0)
    pretrained = fit(MLPDenoiser(), torch.multinomial(p.float(), 50_000, True, generator=generator), None,
                     steps=1500, seed=1)  # fmt: skip
    law = any_order_law(pretrained)
    return pretrained, law, rewards, tilted_distribution(law, rewards, 1.0)


def _copy(model: nn.Module) -> nn.Module:
    clone = MLPDenoiser()
    clone.load_state_dict(model.state_dict())
    return clone


def test_mask_rates_are_stratified_in_the_unit_interval():
    rates = stratified_mask_rates(1000, 4, torch.Generator().manual_seed(0)).view(1000, 4)
    assert (rates > 0).all() and (rates <= 1).all()
    strata = torch.sort(((1 - rates) * 4).floor(), dim=1).values  # one rate per quarter of (0, 1]
    assert torch.equal(strata, torch.arange(4.0).expand(1000, -1))
    assert abs(float(rates.mean()) - 0.5) < 0.01


def test_training_on_exact_samples_of_the_target_drives_kl_down(toy):
    pretrained, law, rewards, target = toy
    start = kl(law, target)
    assert 0.2 < start < 1.0  # the tilt is substantial
    draws = torch.multinomial(target.float(), 50_000, True, generator=torch.Generator().manual_seed(2))
    tuned = any_order_law(fit(_copy(pretrained), draws, None, steps=400, seed=3))
    assert kl(tuned, target) < 0.25 * start


def test_wdce_on_weighted_pretrained_samples_reaches_the_tilted_law(toy):
    pretrained, law, rewards, target = toy
    start = kl(law, target)
    draws = torch.multinomial(law.float(), 50_000, True, generator=torch.Generator().manual_seed(4))
    # log w = r / alpha + log p_pre - log q, and the proposal q is the pretrained model: the ratio is 0
    tuned = any_order_law(fit(_copy(pretrained), draws, rewards[draws] / 1.0, steps=400, seed=5))
    assert kl(tuned, target) < 0.25 * start
    hotter = tilted_distribution(law, rewards, 2.0)
    assert kl(tuned, target) < kl(tuned, hotter)  # the fixed point is the tilt at alpha, not at 2 alpha
    # A wrong temperature in the weights lands on its own (wrong) tilt.
    wrong = any_order_law(fit(_copy(pretrained), draws, rewards[draws] / 2.0, steps=400, seed=5))
    assert kl(wrong, hotter) < kl(wrong, target) and kl(wrong, target) > 0.25 * start
    # And without weights the loss only re-learns the pretrained law.
    unweighted = any_order_law(fit(_copy(pretrained), draws, None, steps=400, seed=5))
    assert kl(unweighted, target) > 0.5 * start


def test_samples_of_another_proposal_need_the_importance_correction(toy):
    pretrained, law, rewards, target = toy
    proposal = torch.full((V**L,), 1.0 / V**L, dtype=torch.float64)  # e.g. lab data spread uniformly
    draws = torch.multinomial(proposal.float(), 50_000, True, generator=torch.Generator().manual_seed(6))
    correction = law[draws].log() - proposal[draws].log()
    corrected = any_order_law(fit(_copy(pretrained), draws, rewards[draws] + correction, steps=400, seed=7))
    missing = any_order_law(fit(_copy(pretrained), draws, rewards[draws], steps=400, seed=7))
    assert kl(corrected, target) < 0.25 * kl(law, target)
    wrong_target = tilted_distribution(proposal, rewards, 1.0)
    assert kl(missing, wrong_target) < kl(missing, target)  # without it: the proposal's tilt
    assert kl(corrected, target) < 0.5 * kl(missing, target)


def test_pretraining_fit_is_close_to_its_data(toy):
    """The harness itself: the MLP learns the pretraining law to well under the tilt's size (else the other tests
    would be vacuous)."""
    pretrained, law, rewards, target = toy
    p = random_joint(V, L, torch.Generator().manual_seed(7), concentration=1.0)
    assert kl(law, p) < 0.05 and math.isfinite(kl(law, target))


def test_lightning_system_trains_the_policy_keeps_the_pretrained_copy_and_its_ema(tmp_path):
    import lightning

    from seqtree.buffer import ReplayBuffer
    from seqtree.training.buffer_data import BufferDataModule
    from seqtree.training.wdce import WDCEFineTuner

    buffer = ReplayBuffer.empty(model="toy", length=L, num_steps=2, alpha=1.0)
    count = 16
    buffer.add({
        "tokens": SEQUENCES[:count], "designed": torch.ones(count, L, dtype=torch.bool),
        "unmask_step": torch.zeros(count, L, dtype=torch.long), "log_prob": torch.zeros(count, 2),
        "log_prob_model": torch.zeros(count, 2), "log_prob_pretrained": torch.zeros(count, dtype=torch.float64),
        "rewards": torch.arange(count, dtype=torch.float64)[:, None],
        "scores": torch.arange(count, dtype=torch.float64),
        "round": torch.zeros(count, dtype=torch.long), "seed": torch.zeros(count, dtype=torch.long),
    }, source="test")  # fmt: skip
    torch.manual_seed(0)
    policy = MLPDenoiser()
    start = {k: v.clone() for k, v in policy.state_dict().items()}
    system = WDCEFineTuner(policy, DIFFUSION, lr=1e-2, replicates=2, ema_decay=0.5, seed=3)
    trainer = lightning.Trainer(max_steps=3, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
    trainer.fit(system, datamodule=BufferDataModule(buffer, batch_size=4, steps=3, seed=0))
    moved = [not torch.equal(start[k], v) for k, v in policy.state_dict().items()]
    assert all(moved)
    assert all(torch.equal(start[k], v) for k, v in system.pretrained.state_dict().items())  # frozen
    ema = system.export_model()
    assert ema is not policy
    assert any(not torch.equal(a, b) for a, b in zip(ema.state_dict().values(), policy.state_dict().values()))
