"""What each fine-tuning round is judged by: plain samples of the policy, scored, set beside the pretrained model.

Reward of plain (untempered ancestral) samples: mean, median and the mean of the top 10%; their negative
log-likelihood under the frozen pretrained model (the NELBO, an upper bound, in nats per sequence and bits per
designed token), so that reward hacking (reward up, likelihood collapsing) shows; diversity (distinct k-mers over
all k-mers, k chosen so that the possible k-mers outnumber those drawn, and mean pairwise Hamming distance over
designed positions, as a fraction); and the fraction of samples
the oracle floored (invalid). Pure functions over tensors and strings, apart from the sampling call.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import Tensor

from seqtree.device import make_generator
from seqtree.diffusion import MaskedDiffusion

NELBO_REPEATS = 4  # Monte Carlo draws of the NELBO per sample (a lower-variance estimate)
KMER = 3


@dataclass(frozen=True)
class RoundEvaluation:
    eval_reward_mean: float
    eval_reward_median: float
    eval_reward_top10: float
    eval_reward_best: float
    pretrained_nll_nats: float  # mean NELBO per sequence under the pretrained model (upper bound on -log p_pre)
    pretrained_bits_per_token: float
    distinct_kmers: float  # distinct k-mers / all k-mers of the samples, k = kmer_k
    kmer_k: int
    mean_hamming: float  # mean pairwise Hamming distance over designed positions, as a fraction
    invalid_fraction: float
    eval_nfe: int
    eval_oracle_calls: int

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def reward_summary(scores: Tensor) -> tuple[float, float, float, float]:
    """(mean, median, mean of the top 10 %, best) of [N] scores."""
    values = scores.double().sort(descending=True).values
    top = values[: max(1, math.ceil(0.1 * values.numel()))]
    return float(values.mean()), float(values.median()), float(top.mean()), float(values[0])


def kmer_size(sequences: list[str]) -> int:
    """The k at which distinct k-mers can measure diversity: at least 3, and large enough that the alphabet's A^k
    possible k-mers outnumber the k-mers drawn (DNA needs k near 7 for 128 samples of 128 bases, protein 3)."""
    letters = len(set("".join(sequences)))
    total = sum(len(s) for s in sequences)
    if letters < 2 or total < 2:
        return KMER
    return max(KMER, math.ceil(math.log(total) / math.log(letters)))


def distinct_kmer_fraction(sequences: list[str], k: int = KMER) -> float:
    kmers = [s[i : i + k] for s in sequences for i in range(len(s) - k + 1)]
    return len(set(kmers)) / len(kmers) if kmers else 0.0


def mean_pairwise_hamming(tokens: Tensor, designed: Tensor) -> float:
    """Mean over pairs of the fraction of designed positions [L] that differ; tokens [N, L]."""
    x = tokens[:, designed]
    count = x.shape[0]
    if count < 2 or x.shape[1] == 0:
        return 0.0
    differ = (x.unsqueeze(0) != x.unsqueeze(1)).float().mean(-1)  # [N, N]
    return float(differ.sum() / (count * (count - 1)))


@torch.no_grad()
def pretrained_nelbo(
    pretrained, diffusion: MaskedDiffusion, tokens: Tensor, designed: Tensor, *, seed: int = 0
) -> tuple[float, float]:
    """(mean NELBO nats per sequence, bits per designed token) of tokens [N, L] under the pretrained denoiser,
    masking only designed positions [L], with a fixed generator so that rounds are comparable."""
    device = next(pretrained.parameters()).device
    tokens, generator = tokens.to(device), make_generator(seed, device)
    maskable = designed.to(device).expand_as(tokens)
    nats = torch.zeros(tokens.shape[0], dtype=torch.float64)
    for _ in range(NELBO_REPEATS):
        out = diffusion.nelbo(pretrained, tokens, generator=generator, maskable=maskable)
        nats += out.nats.double().cpu() / NELBO_REPEATS
    per_token = float(nats.sum()) / max(int(maskable.sum()), 1) / math.log(2)
    return float(nats.mean()), per_token


def evaluate_policy(
    model, pretrained, oracle, root: Tensor, *, num_samples: int, num_steps: int, scalarize, seed: int
) -> RoundEvaluation:
    """Sample ``num_samples`` completions of ``root`` from ``model`` (a LoadedModel with the current policy), score
    them with ``oracle`` (one batched call) and measure them (see the module docstring)."""
    from seqtree.generate import sample_sequences

    generator = make_generator(seed, model.device)
    samples = sample_sequences(model, root, num_samples, sampler="ancestral", num_steps=num_steps, generator=generator)
    tokens = samples.output.tokens.cpu()
    inner = getattr(oracle, "oracle", oracle)
    failures_before = sum(dict(getattr(inner, "failures", {}) or {}).values())
    rewards = torch.as_tensor(oracle(samples.sequences)).double()
    failures = sum(dict(getattr(inner, "failures", {}) or {}).values()) - failures_before
    rewards = rewards.unsqueeze(-1) if rewards.dim() == 1 else rewards
    scores = scalarize(rewards)
    designed = root.cpu() == model.diffusion.mask_id
    nats, bits = pretrained_nelbo(pretrained, model.diffusion, tokens, designed, seed=seed)
    mean, median, top, best = reward_summary(scores)
    return RoundEvaluation(
        eval_reward_mean=mean, eval_reward_median=median, eval_reward_top10=top, eval_reward_best=best,
        pretrained_nll_nats=nats, pretrained_bits_per_token=bits,
        distinct_kmers=distinct_kmer_fraction(samples.sequences, kmer_size(samples.sequences)),
        kmer_k=kmer_size(samples.sequences),
        mean_hamming=mean_pairwise_hamming(tokens, designed),
        invalid_fraction=failures / num_samples, eval_nfe=int(samples.output.nfe), eval_oracle_calls=num_samples,
    )  # fmt: skip
