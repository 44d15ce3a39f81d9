"""Sampling and training throughput of the shipped checkpoints on this machine.

``python -m bench.sampling --out runs/bench`` writes ``sampling.csv``: for each shipped checkpoint and sampler,
sequences/s and NFE/s at batch 1 and batch 64 (wall time of whole sampling runs, after one warm-up run); and
``training.csv``: tokens/s of the NELBO training step of each checkpoint's architecture (forward, backward and
optimiser, padding included), as in ``seqtree train``; and ``finetuning.csv``: buffer sequences/s of the WDCE
fine-tuning step (``seqtree finetune``'s default 16 rows x 16 masked replicas, forward, backward and AdamW).
``--only finetuning`` runs that part alone.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd
import torch

from seqtree.device import set_threads
from seqtree.generate import initial_tokens, sample_sequences
from seqtree.models.loading import load_model, shipped_checkpoints


def time_sampling(name: str, sampler: str, batch: int, repeats: int, num_steps: int) -> dict:
    model = load_model(name)
    root = initial_tokens(model.tokenizer, length=model.max_length, row_length=model.max_length)
    options = {} if sampler == "first_hitting" else {"num_steps": num_steps}
    generator = torch.Generator().manual_seed(0)
    sample_sequences(model, root, batch, sampler=sampler, generator=generator, batch_size=batch, **options)
    started, nfe = time.perf_counter(), 0
    for _ in range(repeats):
        nfe += sample_sequences(
            model, root, batch, sampler=sampler, generator=generator, batch_size=batch, **options
        ).output.nfe
    seconds = time.perf_counter() - started
    return {
        "model": name,
        "sampler": sampler,
        "batch": batch,
        "length": model.max_length,
        "steps": num_steps,
        "sequences_per_s": batch * repeats / seconds,
        "nfe_per_s": nfe / seconds,
        "seconds": seconds,
    }


def time_training(name: str, batch: int, steps: int) -> dict:
    model = load_model(name)
    backbone = model.denoiser.train()
    length = model.max_length
    content = torch.tensor(model.tokenizer.content_ids)
    tokens = content[torch.randint(0, len(content), (batch, length), generator=torch.Generator().manual_seed(0))]
    optimizer = torch.optim.AdamW(backbone.parameters(), lr=1e-4)
    seconds = 0.0
    for step in range(steps + 1):
        started = time.perf_counter()
        loss = model.diffusion.nelbo(backbone, tokens).nats.mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step:  # the first step warms up
            seconds += time.perf_counter() - started
    return {"model": name, "batch": batch, "length": length, "tokens_per_s": batch * length * steps / seconds}


def time_finetuning(name: str, batch: int, replicates: int, steps: int) -> dict:
    """Buffer rows per second through one WDCE step (each row replicated ``replicates`` times)."""
    from seqtree.training.wdce import wdce_loss

    model = load_model(name)
    backbone = model.denoiser.train()
    length = model.max_length
    content = torch.tensor(model.tokenizer.content_ids)
    generator = torch.Generator().manual_seed(0)
    tokens = content[torch.randint(0, len(content), (batch, length), generator=generator)]
    designed, weights = torch.ones(batch, length, dtype=torch.bool), torch.ones(batch)
    optimizer = torch.optim.AdamW(backbone.parameters(), lr=1e-4)
    seconds = 0.0
    for step in range(steps + 1):
        started = time.perf_counter()
        loss = wdce_loss(backbone, model.diffusion, tokens, designed, weights, replicates=replicates,
                         generator=generator)  # fmt: skip
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step:  # the first step warms up
            seconds += time.perf_counter() - started
    return {"model": name, "batch": batch, "replicates": replicates, "length": length,
            "sequences_per_s": batch * steps / seconds, "steps_per_s": steps / seconds}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/bench"))
    parser.add_argument("--models", nargs="*", default=None, help="shipped names (default: all)")
    parser.add_argument("--samplers", nargs="*", default=["ancestral", "first_hitting", "confidence"])
    parser.add_argument("--steps", type=int, default=64, help="reverse steps for ancestral / confidence")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--only", choices=["finetuning"], default=None, help="run one part")
    args = parser.parse_args(argv)
    set_threads(args.threads)
    names = args.models or list(shipped_checkpoints())
    args.out.mkdir(parents=True, exist_ok=True)
    finetuning = pd.DataFrame([time_finetuning(name, 16, 16, 5) for name in names])
    finetuning.to_csv(args.out / "finetuning.csv", index=False)
    print(finetuning.to_string(index=False, float_format="%.1f"), flush=True)
    if args.only == "finetuning":
        return
    rows = []
    with torch.no_grad():
        for name in names:
            for sampler in args.samplers:
                for batch, repeats in ((1, 3), (64, 1)):
                    rows.append(time_sampling(name, sampler, batch, repeats, args.steps))
                    print(rows[-1], flush=True)
    training = [time_training(name, 64, 5) for name in names]
    args.out.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(args.out / "sampling.csv", index=False)
    pd.DataFrame(training).to_csv(args.out / "training.csv", index=False)
    print(pd.DataFrame(rows).to_string(index=False, float_format="%.1f"))
    print(pd.DataFrame(training).to_string(index=False, float_format="%.0f"))


if __name__ == "__main__":
    main()
