"""Training of learned oracles with Lightning: data module, training system, metrics, model card and the CLI.

Classification minimises binary cross-entropy on the logit; regression minimises the mean squared error of the
standardised target. The weights with the best validation metric (AUROC, or -RMSE) are kept and evaluated once
on the test split, whose metrics go into ``config.json`` and the model card. Randomness: model initialisation,
shuffling and dropout run under ``torch.random.fork_rng`` seeded by ``--seed``, so global state is untouched and
a run is reproducible on CPU.
"""

from __future__ import annotations

import argparse
import copy
import math
import platform
import time
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader
from torchmetrics.functional.classification import binary_accuracy, binary_auroc

from seqtree.oracles.learned import SeqCNN, SeqCNNConfig, Task, encode_batch, save_checkpoint

SPLITS = ("train", "val", "test")


def read_table(csv: str | Path, task: Task, *, val_fraction: float, test_fraction: float, seed: int,
               alphabet: str) -> dict[str, pd.DataFrame]:
    """Read the CSV, check columns and letters, and split it (by its ``split`` column or at random)."""
    df = pd.read_csv(csv)
    target = "label" if task == "classification" else "value"
    missing = {"sequence", target} - set(df.columns)
    if missing:
        raise ValueError(f"{csv}: missing column(s) {sorted(missing)}; need 'sequence' and '{target}'")
    df = df.dropna(subset=["sequence", target]).reset_index(drop=True)
    bad = df["sequence"].map(lambda s: not s or any(c not in alphabet for c in s))
    if bad.any():
        raise ValueError(f"{csv}: {int(bad.sum())} sequences have letters outside {alphabet!r}, e.g. "
                         f"{df.loc[bad, 'sequence'].iloc[0][:40]!r}")
    if task == "classification" and not set(df[target].unique()) <= {0, 1}:
        raise ValueError(f"{csv}: column 'label' must hold 0/1")
    if "split" not in df.columns:
        rng = np.random.default_rng(seed)
        u = rng.random(len(df))
        df["split"] = np.where(u < test_fraction, "test", np.where(u < test_fraction + val_fraction, "val", "train"))
    parts = {s: df[df["split"] == s].reset_index(drop=True) for s in SPLITS}
    for s in ("train", "val"):
        if len(parts[s]) == 0:
            raise ValueError(f"{csv}: the {s} split is empty")
    return parts


class _Collate:
    def __init__(self, alphabet: str, max_len: int) -> None:
        self.alphabet, self.max_len = alphabet, max_len

    def __call__(self, rows: list[tuple[str, float]]) -> tuple[torch.Tensor, torch.Tensor]:
        seqs, ys = zip(*rows, strict=True)
        return encode_batch(list(seqs), self.alphabet, self.max_len), torch.tensor(ys, dtype=torch.float32)


class SequenceDataModule(L.LightningDataModule):
    """Train / val / test loaders over (sequence, target) pairs; the target is standardised for regression."""

    def __init__(self, parts: dict[str, pd.DataFrame], task: Task, alphabet: str, max_len: int,
                 batch_size: int = 64, seed: int = 0) -> None:
        super().__init__()
        target = "label" if task == "classification" else "value"
        self.mean, self.std = 0.0, 1.0
        if task == "regression":
            y = parts["train"][target].to_numpy(dtype=float)
            self.mean, self.std = float(y.mean()), float(y.std() or 1.0)
        self.data = {
            s: list(zip(p["sequence"], ((p[target].astype(float) - self.mean) / self.std), strict=True))
            for s, p in parts.items()
        }
        self.collate = _Collate(alphabet, max_len)
        self.batch_size, self.seed = batch_size, seed

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        g = torch.Generator().manual_seed(self.seed)
        return DataLoader(self.data[split], batch_size=self.batch_size, shuffle=shuffle, generator=g,
                          collate_fn=self.collate)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", False)


def evaluate(model: SeqCNN, loader: DataLoader, task: Task) -> dict[str, float]:
    """Held-out metrics: AUROC and accuracy (threshold 0.5) for classifiers; RMSE and Pearson r otherwise."""
    model.eval()
    preds, ys = [], []
    with torch.inference_mode():
        for x, y in loader:
            preds.append(model(x))
            ys.append(y)
    if not preds:
        return {}
    p, y = torch.cat(preds), torch.cat(ys)
    if task == "classification":
        prob, target = torch.sigmoid(p), y.long()
        auroc = float(binary_auroc(prob, target)) if 0 < target.sum() < len(target) else math.nan
        return {"auroc": auroc, "accuracy": float(binary_accuracy(prob, target)), "n": len(y)}
    rmse = float(torch.sqrt(((p - y) ** 2).mean()))
    r = float(torch.corrcoef(torch.stack([p, y]))[0, 1]) if len(y) > 1 else math.nan
    return {"rmse_standardised": rmse, "pearson_r": r, "n": len(y)}


class LearnedOracleSystem(L.LightningModule):
    """Training system for :class:`SeqCNN`; keeps the weights with the best validation metric."""

    def __init__(self, model: SeqCNN, task: Task, lr: float = 3e-3, weight_decay: float = 1e-4) -> None:
        super().__init__()
        self.model, self.task, self.lr, self.weight_decay = model, task, lr, weight_decay
        self.best_state: dict[str, torch.Tensor] | None = None
        self.best_score = -math.inf
        self.history: list[dict[str, float]] = []
        self._val: list[tuple[torch.Tensor, torch.Tensor]] = []

    def _loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        out = self.model(x)
        if self.task == "classification":
            return torch.nn.functional.binary_cross_entropy_with_logits(out, y)
        return torch.nn.functional.mse_loss(out, y)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self._loss(*batch)
        self.log("train_loss", loss, prog_bar=True)
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        self._val.append((self.model(x).detach(), y))

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking or not self._val:
            self._val.clear()
            return
        p = torch.cat([a for a, _ in self._val])
        y = torch.cat([b for _, b in self._val])
        self._val.clear()
        if self.task == "classification":
            t = y.long()
            score = float(binary_auroc(torch.sigmoid(p), t)) if 0 < t.sum() < len(t) else -float(
                torch.nn.functional.binary_cross_entropy_with_logits(p, y))
        else:
            score = -float(torch.sqrt(((p - y) ** 2).mean()))
        self.history.append({"epoch": self.current_epoch, "val_score": score})
        self.log("val_score", score, prog_bar=True)
        if score > self.best_score:
            self.best_score = score
            self.best_state = copy.deepcopy(self.model.state_dict())

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.model.parameters(), lr=self.lr, weight_decay=self.weight_decay)


def train(
    csv: str | Path, out: str | Path, *, task: Task = "classification", name: str | None = None,
    epochs: int = 10, batch_size: int = 64, lr: float = 3e-3, max_len: int = 512, channels: int = 64,
    embed_dim: int = 32, kernel_size: int = 9, num_layers: int = 2, dropout: float = 0.1,
    alphabet: str = SeqCNNConfig.alphabet, val_fraction: float = 0.1, test_fraction: float = 0.1,
    seed: int = 0, max_steps: int = -1, data_note: str = "", command: str = "", progress: bool = True,
) -> dict[str, Any]:
    """Train a learned oracle from a CSV, write its checkpoint folder to ``out``, return its metadata."""
    out = Path(out)
    parts = read_table(csv, task, val_fraction=val_fraction, test_fraction=test_fraction, seed=seed,
                       alphabet=alphabet)
    config = SeqCNNConfig(alphabet=alphabet, max_len=max_len, embed_dim=embed_dim, channels=channels,
                          kernel_size=kernel_size, num_layers=num_layers, dropout=dropout)
    dm = SequenceDataModule(parts, task, alphabet, max_len, batch_size=batch_size, seed=seed)
    start, cpu_start = time.perf_counter(), time.process_time()
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        system = LearnedOracleSystem(SeqCNN(config), task, lr=lr)
        trainer = L.Trainer(
            max_epochs=epochs, max_steps=max_steps, accelerator="cpu", devices=1, logger=False,
            enable_checkpointing=False, enable_progress_bar=progress, enable_model_summary=False,
            num_sanity_val_steps=0,
        )
        trainer.fit(system, datamodule=dm)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    model = system.model
    if system.best_state is not None:
        model.load_state_dict(system.best_state)
    metrics = {f"val_{k}": v for k, v in evaluate(model, dm.val_dataloader(), task).items()}
    if len(parts["test"]):
        metrics |= {f"test_{k}": v for k, v in evaluate(model, dm.test_dataloader(), task).items()}
    meta: dict[str, Any] = {
        "name": name or out.name, "task": task, "direction": "maximize",
        "target_mean": dm.mean, "target_std": dm.std, "metrics": metrics,
        "split_sizes": {s: len(p) for s, p in parts.items()},
        "training": {"epochs": epochs, "batch_size": batch_size, "lr": lr, "seed": seed,
                     "seconds": round(seconds, 1), "cpu_seconds": round(cpu_seconds, 1),
                     "threads": torch.get_num_threads(),
                     "machine": platform.processor() or platform.machine(), "command": command},
        "data": data_note, "num_parameters": sum(p.numel() for p in model.parameters()),
    }
    save_checkpoint(out, model, meta, model_card(meta, config))
    return meta


def model_card(meta: dict[str, Any], config: SeqCNNConfig) -> str:
    """A Markdown model card from the checkpoint metadata."""
    m = meta["metrics"]
    rows = "\n".join(f"| {k} | {v:.4f} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in m.items())
    t = meta["training"]
    return f"""# {meta['name']}

A seqtree learned oracle: a {config.num_layers}-layer 1-D CNN ({meta['num_parameters']:,} parameters,
kernel {config.kernel_size}, {config.channels} channels, max. length {config.max_len}) for
**{meta['task']}** over the alphabet `{config.alphabet}`. Load it with
`seqtree.oracles.build_oracle("learned", path=...)` (shipped ones by name).

## Data
{meta['data'] or 'See the training CSV.'}

Split sizes: {meta['split_sizes']}.

## Held-out metrics (best-validation weights)
| metric | value |
|---|---|
{rows}

## Training
`{t['command'] or 'python -m seqtree.oracles.learned train ...'}`

{t['epochs']} epochs, batch {t['batch_size']}, AdamW lr {t['lr']}, seed {t['seed']}; {t['seconds']} s wall-clock,
{t.get('cpu_seconds', '?')} s of CPU time, on {t['threads']} CPU thread(s) ({t['machine']}; a shared machine, so
wall-clock time depends on its load).

## Limits
Scores are a model's guess, not a measurement: designs optimised against it drift out of its training
distribution, where it can be confidently wrong. Use it with constraints and check top designs otherwise.
"""


def cli(argv: list[str]) -> int:
    """``train`` subcommand of ``python -m seqtree.oracles.learned``."""
    p = argparse.ArgumentParser(prog="python -m seqtree.oracles.learned")
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="train a learned oracle on a CSV and write its checkpoint folder")
    t.add_argument("--csv", required=True)
    t.add_argument("--out", required=True)
    t.add_argument("--task", choices=["classification", "regression"], default="classification")
    t.add_argument("--name")
    for flag, typ, default in [("epochs", int, 10), ("batch-size", int, 64), ("lr", float, 3e-3),
                               ("max-len", int, 512), ("channels", int, 64), ("embed-dim", int, 32),
                               ("kernel-size", int, 9), ("num-layers", int, 2), ("dropout", float, 0.1),
                               ("val-fraction", float, 0.1), ("test-fraction", float, 0.1), ("seed", int, 0),
                               ("max-steps", int, -1), ("threads", int, 0)]:
        t.add_argument(f"--{flag}", type=typ, default=default)
    t.add_argument("--alphabet", default=SeqCNNConfig.alphabet)
    t.add_argument("--data-note", default="", help="provenance text for the model card (or @file to read it)")
    args = p.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    note = Path(args.data_note[1:]).read_text() if args.data_note.startswith("@") else args.data_note
    meta = train(
        args.csv, args.out, task=args.task, name=args.name, epochs=args.epochs, batch_size=args.batch_size,
        lr=args.lr, max_len=args.max_len, channels=args.channels, embed_dim=args.embed_dim,
        kernel_size=args.kernel_size, num_layers=args.num_layers, dropout=args.dropout, alphabet=args.alphabet,
        val_fraction=args.val_fraction, test_fraction=args.test_fraction, seed=args.seed,
        max_steps=args.max_steps, data_note=note,
        command="python -m seqtree.oracles.learned " + " ".join(argv),
    )
    print({"out": str(args.out), **meta["metrics"], "seconds": meta["training"]["seconds"]})
    return 0
