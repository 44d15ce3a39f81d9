"""Pretraining system: the masked diffusion NELBO as a ``LightningModule`` around any backbone ``nn.Module``.

Training minimises the continuous-time NELBO per token (MDLM Eq. 10, see :mod:`seqtree.diffusion`); validation
reports bits per token, the NELBO summed over the validation set divided by its tokens and ln 2, with a fixed
generator so that numbers are comparable across epochs and runs (under DDP the sums are added over the ranks'
shards first). Given a byte counter it also reports bits per byte: the same NELBO sum divided by ln 2 and by the
UTF-8 bytes the validation tokens decode to (padding is never masked, scored or counted; the number of tokens in
a row is given to the model, as in every NELBO here, and not paid for). The backbone stays a plain network: this
class owns the objective and the optimiser only.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import lightning as L
import torch
from torch import Tensor, nn

from seqtree.diffusion import MaskedDiffusion

VALIDATION_SEED = 1234


class MaskedDiffusionLM(L.LightningModule):
    def __init__(
        self,
        backbone: nn.Module,
        diffusion: MaskedDiffusion,
        *,
        pad_id: int,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        warmup_steps: int = 100,
        max_steps: int = 1000,
        min_lr_ratio: float = 0.1,
        val_repeats: int = 4,
        count_bytes: Callable[[Tensor], int] | None = None,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.diffusion = diffusion
        self.pad_id = pad_id
        self.lr = lr
        self.weight_decay = weight_decay
        self.warmup_steps = warmup_steps
        self.max_steps = max_steps
        self.min_lr_ratio = min_lr_ratio
        self.val_repeats = val_repeats
        self.count_bytes = count_bytes
        self._val_nats = 0.0
        self._val_tokens = 0
        self._val_bytes = 0
        self._val_generator: torch.Generator | None = None

    def forward(self, tokens: Tensor, t: Tensor) -> Tensor:
        return self.backbone(tokens, t)

    def _nelbo(self, tokens: Tensor, generator: torch.Generator | None = None):
        return self.diffusion.nelbo(self.backbone, tokens, generator=generator, maskable=tokens != self.pad_id)

    def training_step(self, batch: Tensor, batch_idx: int) -> Tensor:
        out = self._nelbo(batch)
        loss = out.nats.sum() / out.num_tokens.sum().clamp_min(1)
        self.log("train_loss", loss, prog_bar=True, batch_size=batch.shape[0])
        self.log("train_bpt", loss / math.log(2), batch_size=batch.shape[0])
        self.log("tokens", float(out.num_tokens.sum()), reduce_fx="sum", batch_size=batch.shape[0])
        return loss

    def on_validation_epoch_start(self) -> None:
        self._val_nats, self._val_tokens, self._val_bytes = 0.0, 0, 0
        self._val_generator = torch.Generator(device=self.device).manual_seed(VALIDATION_SEED)

    def validation_step(self, batch: Tensor, batch_idx: int) -> None:
        for _ in range(self.val_repeats):  # several times per sequence: a lower-variance estimate
            out = self._nelbo(batch, self._val_generator)
            self._val_nats += float(out.nats.sum()) / self.val_repeats
        self._val_tokens += int((batch != self.pad_id).sum())
        if self.count_bytes is not None:
            self._val_bytes += self.count_bytes(batch)

    def on_validation_epoch_end(self) -> None:
        # Under DDP each rank scores its shard of the validation set: add the sums over ranks before dividing, so
        # that val_bpt is the whole set's bits per token (DistributedSampler repeats up to world_size - 1 rows to
        # even out the shards).
        nats, tokens, num_bytes = self._val_nats, float(self._val_tokens), float(self._val_bytes)
        if self.trainer.world_size > 1:
            sums = torch.tensor([nats, tokens, num_bytes], dtype=torch.float64, device=self.device)
            nats, tokens, num_bytes = self.trainer.strategy.reduce(sums, reduce_op="sum").tolist()
        bits = nats / max(tokens, 1.0) / math.log(2)
        self.log("val_bpt", bits, prog_bar=True, sync_dist=True)  # already equal on every rank: the mean keeps it
        if self.count_bytes is not None and num_bytes > 0:
            self.log("val_bpb", nats / num_bytes / math.log(2), prog_bar=True, sync_dist=True)

    def configure_optimizers(self):
        optimizer = torch.optim.AdamW(self.backbone.parameters(), lr=self.lr, weight_decay=self.weight_decay)

        def schedule(step: int) -> float:  # linear warm-up, then cosine decay to min_lr_ratio
            if step < self.warmup_steps:
                return (step + 1) / self.warmup_steps
            progress = min(1.0, (step - self.warmup_steps) / max(1, self.max_steps - self.warmup_steps))
            return self.min_lr_ratio + (1 - self.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
