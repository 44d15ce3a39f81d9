"""Build ``amp.csv`` (sequence, label, split) from modlAMP's AMP-vs-UniProt set for the ``amp_classifier``.

Source: ``modlamp.datasets.load_AMPvsUniProt()`` (Mueller, Gabernet, Hiss & Schneider 2017, Bioinformatics
33:2753): 2,600 antimicrobial peptides from APD3 (label 1) and 2,600 UniProt peptides (label 0). Duplicated
sequences are kept once; sequences seen with both labels are dropped. Splits (80/10/10) assign whole MMseqs2
clusters at 50 % identity, so near-identical peptides never straddle train and test.

    python oracles/data_prep/prepare_amp.py --out oracles/data_prep/raw/amp.csv
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
from common import cluster_split, mmseqs_clusters, random_split
from modlamp.datasets import load_AMPvsUniProt


def build(seed: int, random: bool) -> pd.DataFrame:
    data = load_AMPvsUniProt()
    df = pd.DataFrame({"sequence": list(data.sequences), "label": [int(y) for y in data.target]})
    df["sequence"] = df["sequence"].str.strip()
    labels = df.groupby("sequence")["label"].nunique()
    df = df[df["sequence"].map(labels) == 1].drop_duplicates("sequence").reset_index(drop=True)
    if random:
        df["split"] = random_split(len(df), val=0.1, test=0.1, seed=seed)
    else:
        df["split"] = cluster_split(mmseqs_clusters(list(df["sequence"]), 0.5, coverage=0.5),
                                    val=0.1, test=0.1, seed=seed)
    return df


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "raw" / "amp.csv")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--random-split", action="store_true")
    args = p.parse_args()
    df = build(args.seed, args.random_split)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(args.out, index=False)
    print(args.out, len(df), df.groupby(["split", "label"]).size().to_dict())


if __name__ == "__main__":
    main()
