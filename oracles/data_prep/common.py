"""Shared helpers of the data preparation scripts: FASTA writing and homology-aware splits with MMseqs2.

A random split of protein data leaks homologues between train and test and overstates held-out scores, so the
scripts cluster sequences with MMseqs2 (Steinegger & Soeding 2017, Nat. Biotechnol. 35:1026; Debian package
``mmseqs2``) and assign whole clusters to train / val / test.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd


def write_fasta(path: Path, ids: list[str], sequences: list[str]) -> None:
    with open(path, "w") as f:
        for i, s in zip(ids, sequences, strict=True):
            f.write(f">{i}\n{s}\n")


def mmseqs_clusters(sequences: list[str], min_seq_id: float, coverage: float = 0.8, threads: int = 2) -> list[int]:
    """Cluster id per sequence from ``mmseqs easy-cluster`` at ``min_seq_id`` identity."""
    exe = shutil.which("mmseqs")
    if exe is None:
        raise RuntimeError("mmseqs not found: apt-get install mmseqs2 (or pass --random-split)")
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        ids = [f"s{i}" for i in range(len(sequences))]
        write_fasta(t / "in.fasta", ids, sequences)
        subprocess.run(
            [exe, "easy-cluster", str(t / "in.fasta"), str(t / "res"), str(t / "work"),
             "--min-seq-id", str(min_seq_id), "-c", str(coverage), "--cov-mode", "0",
             "--threads", str(threads), "-v", "1"],
            check=True,
        )
        pairs = pd.read_csv(t / "res_cluster.tsv", sep="\t", header=None, names=["rep", "member"])
    rep_index = {r: k for k, r in enumerate(pairs["rep"].unique())}
    by_member = dict(zip(pairs["member"], pairs["rep"].map(rep_index), strict=True))
    return [int(by_member[i]) for i in ids]


def cluster_split(clusters: list[int], *, val: float, test: float, seed: int) -> list[str]:
    """Assign whole clusters to splits (shuffled by ``seed``) so the split sizes approach the fractions."""
    rng = np.random.default_rng(seed)
    ids = np.unique(clusters)
    rng.shuffle(ids)
    sizes = pd.Series(clusters).value_counts()
    total, acc, where = len(clusters), 0, {}
    for c in ids:
        frac = acc / total
        where[c] = "test" if frac < test else ("val" if frac < test + val else "train")
        acc += int(sizes[c])
    return [where[c] for c in clusters]


def random_split(n: int, *, val: float, test: float, seed: int) -> list[str]:
    u = np.random.default_rng(seed).random(n)
    return ["test" if x < test else ("val" if x < test + val else "train") for x in u]
