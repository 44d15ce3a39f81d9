#!/usr/bin/env python3
"""Build data/ehrlich/<instance>/{train,val}.txt: feasible sequences of the benchmark Ehrlich functions.

Source
    No download: each instance of ``seqtree.oracles.ehrlich.BENCHMARK_INSTANCES`` (pytorch-holo's ``Ehrlich``,
    Stanton et al. 2024) defines a sparse ergodic discrete Markov process (DMP) whose support is the feasible set.
    Sequences are drawn from that DMP, started from its stationary distribution, exactly as holo draws the
    function's initial solutions (``Ehrlich.initial_solution``), so a denoiser trained on them is the
    "prior pretrained on feasible sequences from the function's own initial-state process" of the benchmark.
    Needs the holo extra: ``pip install -e '.[holo]' && pip install --no-deps pytorch-holo``.

Processing
    1. draw ``--train`` + ``--val`` sequences with ``torch.Generator().manual_seed(seed)`` (seed 1000 + index of
       the instance, so the data never reuses the function's own generator), by
       ``seqtree.oracles.ehrlich_prior.draw_prior_data``, the code of ``seqtree ehrlich prepare`` (which does the
       same for any other instance);
    2. write states as letters (state i = i-th of ACDEFGHIKLMNPQRSTVWY), one sequence per line;
    3. the first ``--val`` go to val.txt, the rest to train.txt (draws are i.i.d.; duplicates are kept, as they
       are part of the DMP's law).

Usage:  python data/ehrlich/prepare.py [--train 20000] [--val 1000]   (per instance; default 20000/1000 at L=32,
        8000/500 at L=128)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from _common import display_path, file_size_report, write_stats  # noqa: E402

from seqtree.oracles.ehrlich import BENCHMARK_INSTANCES  # noqa: E402
from seqtree.oracles.ehrlich_instances import parse_instance  # noqa: E402
from seqtree.oracles.ehrlich_prior import default_data_seed, default_sizes, draw_prior_data  # noqa: E402


def prepare(name: str, n_train: int | None, n_val: int | None) -> dict:
    """One benchmark instance's files, through the same code as ``seqtree ehrlich prepare`` (its default sizes
    and data seed), with paths shown relative to the checkout."""
    instance = parse_instance(name)
    default_train, default_val = default_sizes(instance)
    out = HERE / name
    info = draw_prior_data(
        instance, out, n_train=n_train or default_train, n_val=n_val or default_val,
        data_seed=default_data_seed(instance),
    )  # fmt: skip
    file_size_report(out / "train.txt", out / "val.txt")
    for split in ("train", "val"):
        info[split]["path"] = display_path(out / f"{split}.txt")
    return info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", type=int, default=None, help="training sequences per instance (default: SIZES)")
    parser.add_argument("--val", type=int, default=None, help="validation sequences per instance")
    args = parser.parse_args()
    infos = []
    for name in BENCHMARK_INSTANCES:
        infos.append(prepare(name, args.train, args.val))
        print(f"{name}: {infos[-1]['train']['sequences']} train, {infos[-1]['val']['sequences']} val")
    rows = [
        "| instance | L | c | k | v | train | val | mean reward of the data | best in the data |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for info in infos:
        p = info["ehrlich"]
        rows.append(
            f"| {info['instance']} | {p['dim']} | {p['num_motifs']} | {p['motif_length']} | {p['num_states']} | "
            f"{info['train']['sequences']} | {info['val']['sequences']} | {info['mean_reward']:.3f} | "
            f"{info['max_reward']:.3f} |"
        )
    write_stats(HERE, {"instances": infos}, "\n".join(rows))


if __name__ == "__main__":
    main()
