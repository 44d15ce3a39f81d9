"""The measures each fine-tuning round reports (seqtree.finetune_eval), on inputs whose answers are known."""

import pytest
import torch

from seqtree.finetune_eval import distinct_kmer_fraction, kmer_size, mean_pairwise_hamming, reward_summary


def test_reward_summary_mean_median_top_tenth_and_best():
    scores = torch.arange(20, dtype=torch.float64)  # 0..19
    mean, median, top, best = reward_summary(scores)
    assert (mean, best) == (9.5, 19.0)
    assert median == 9.0  # torch's median is the lower of the two middle values
    assert top == pytest.approx(18.5)  # the top 10 %: 19 and 18


def test_identical_samples_have_no_diversity_and_distinct_ones_do():
    same = ["ACGTACGTAC"] * 4
    assert distinct_kmer_fraction(same, 3) == pytest.approx(4 / 32)  # ACG CGT GTA TAC, of 8 per copy, 4 copies
    tokens = torch.tensor([[1, 2, 3, 4], [1, 2, 3, 4], [4, 3, 2, 1]])
    designed = torch.tensor([True, True, True, False])
    # pairs: (0,1) differ nowhere, (0,2) and (1,2) at the 3 designed positions: mean 2/3
    assert mean_pairwise_hamming(tokens, designed) == pytest.approx(2 / 3)
    assert mean_pairwise_hamming(tokens[:1], designed) == 0.0


def test_kmer_size_grows_until_the_alphabet_can_outnumber_the_draws():
    assert kmer_size(["ACGT" * 32] * 128) == 7  # 16384 bases drawn: 4^7 = 16384 possible 7-mers
    assert kmer_size(["ACDEFGHIKLMNPQRSTVWY" * 3] * 128) == 3  # 20^3 = 8000 > 7680
    assert kmer_size(["AAAA"]) == 3  # one letter: no k helps, keep the default
