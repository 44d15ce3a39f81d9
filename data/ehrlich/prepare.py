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
       the instance, so the data never reuses the function's own generator);
    2. write states as letters (state i = i-th of ACDEFGHIKLMNPQRSTVWY), one sequence per line;
    3. the first ``--val`` go to val.txt, the rest to train.txt (draws are i.i.d.; duplicates are kept, as they
       are part of the DMP's law).

Usage:  python data/ehrlich/prepare.py [--train 20000] [--val 1000]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from _common import atomic_write_lines, display_path, file_size_report, write_stats  # noqa: E402

from seqtree.oracles.ehrlich import BENCHMARK_INSTANCES, EhrlichOracle  # noqa: E402

# Fewer sequences at L=128 keep the committed file near 1 MB; each still holds 127 transitions of the DMP.
SIZES = {"ehrlich-l32": (20000, 1000), "ehrlich-l128": (8000, 500)}


def prepare(name: str, params: dict[str, int], n_train: int, n_val: int, data_seed: int) -> dict:
    oracle = EhrlichOracle(**params)
    generator = torch.Generator().manual_seed(data_seed)
    sequences = oracle.sample_feasible(n_train + n_val, generator=generator)
    rewards = oracle(sequences).tolist()
    out = HERE / name
    atomic_write_lines(out / "val.txt", sequences[:n_val])
    atomic_write_lines(out / "train.txt", sequences[n_val:])
    file_size_report(out / "train.txt", out / "val.txt")
    return {
        "instance": name,
        "ehrlich": params,
        "data_seed": data_seed,
        "train": {"path": display_path(out / "train.txt"), "sequences": n_train},
        "val": {"path": display_path(out / "val.txt"), "sequences": n_val},
        "feasible_fraction": sum(r > -1.0 for r in rewards) / len(rewards),
        "mean_reward": sum(rewards) / len(rewards),
        "max_reward": max(rewards),
        "optimal_solution": oracle.optimal_solution(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", type=int, default=None, help="training sequences per instance (default: SIZES)")
    parser.add_argument("--val", type=int, default=None, help="validation sequences per instance")
    args = parser.parse_args()
    infos = []
    for index, (name, params) in enumerate(BENCHMARK_INSTANCES.items()):
        n_train, n_val = SIZES[name]
        infos.append(prepare(name, params, args.train or n_train, args.val or n_val, 1000 + index))
        print(f"{name}: {infos[-1]['train']['sequences']} train, {infos[-1]['val']['sequences']} val")
    rows = ["| instance | L | c | k | v | train | val | mean reward of the data | best in the data |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
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
