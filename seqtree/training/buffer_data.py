"""A ``LightningDataModule`` over a replay buffer: minibatches (tokens, designed mask, N * w) for WDCE.

Rows are drawn uniformly with replacement, ``steps * batch_size`` of them per fit, so that one fit is exactly
``steps`` gradient steps whatever the buffer's size; each row carries N times its self-normalised weight (the
unbiased minibatch estimate of the weighted sum; see :mod:`seqtree.training.wdce`). The draw order comes from a
seeded generator, so a round repeats exactly when it is run again. Under DDP every rank holds the whole buffer and
draws its own rows (its own seed; the Trainer must not swap in a DistributedSampler: ``use_distributed_sampler=
False``), so one step averages the gradients of batch_size x processes independent draws.
"""

from __future__ import annotations

import lightning as L
import torch
from torch.utils.data import DataLoader, RandomSampler, TensorDataset

from seqtree.buffer import ReplayBuffer
from seqtree.training.ranks import rank_seed


class BufferDataModule(L.LightningDataModule):
    def __init__(self, buffer: ReplayBuffer, *, batch_size: int = 32, steps: int = 100, seed: int = 0) -> None:
        super().__init__()
        if not len(buffer):
            raise ValueError("the replay buffer is empty: nothing to fine-tune on")
        self.buffer = buffer
        self.batch_size = batch_size
        self.steps = steps
        self.seed = seed

    def dataset(self) -> TensorDataset:
        columns = self.buffer.columns
        weights = self.buffer.normalized_weights().float() * len(self.buffer)  # [N], mean 1
        return TensorDataset(columns["tokens"], columns["designed"], weights)

    def train_dataloader(self) -> DataLoader:
        rank = self.trainer.global_rank if self.trainer is not None else 0
        generator = torch.Generator().manual_seed(rank_seed(self.seed, rank))
        sampler = RandomSampler(
            range(len(self.buffer)), replacement=True, num_samples=self.steps * self.batch_size, generator=generator
        )
        return DataLoader(self.dataset(), batch_size=self.batch_size, sampler=sampler, drop_last=True)
