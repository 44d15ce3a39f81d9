"""Build ``go_atp.csv`` (sequence, label, split) for the ``go_atp_binding`` oracle (GO:0005524 ATP binding).

Source: Debian ``metastudent-data`` (Hamp et al. 2013, Bioinformatics 29:1634), the molecular-function (MFO)
BLAST database of 459,503 UniProt proteins with GOA annotations (release 2014-01), read with ``blastdbcmd``
(Debian ``ncbi-blast+``); ``goasp_annot.dat`` maps each accession to its (propagated) GO terms. A protein is
positive when GO:0005524 is among its terms, negative otherwise (it has other molecular-function terms; absence
of an annotation is not proof of absence, so some negatives are unlabelled positives). Proteins of 50 to 1,000
standard residues are kept, duplicates dropped, and a balanced random subsample of ``--per-class`` proteins per
class is drawn (the full set is 19 % positive). Splits (80/10/10) assign whole MMseqs2 clusters at 30 % identity.

    apt-get install metastudent-data ncbi-blast+ mmseqs2
    python oracles/data_prep/prepare_go.py --out oracles/data_prep/raw/go_atp.csv
"""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
from common import cluster_split, mmseqs_clusters, random_split

DATA = Path("/usr/share/metastudent-data/dataset_201401/MFO")
STANDARD = set("ACDEFGHIKLMNPQRSTVWY")


def read_fasta(text: str) -> dict[str, str]:
    seqs: dict[str, list[str]] = {}
    key = None
    for line in text.splitlines():
        if line.startswith(">"):
            key = line[1:].split("|", 1)[0].split()[0]
            seqs[key] = []
        elif key is not None:
            seqs[key].append(line.strip())
    return {k: "".join(v) for k, v in seqs.items()}


def build(data: Path, term: str, per_class: int, seed: int, random: bool) -> pd.DataFrame:
    fasta = subprocess.run(["blastdbcmd", "-db", str(data / "goasp.fasta"), "-entry", "all"],
                           check=True, capture_output=True, text=True).stdout
    seqs = read_fasta(fasta)
    terms = {}
    with open(data / "goasp_annot.dat") as f:
        for line in f:
            acc, *gos = line.rstrip("\n").split("\t")
            terms[acc] = set(gos)
    rows = [(acc, s, int(term in terms[acc])) for acc, s in seqs.items()
            if acc in terms and 50 <= len(s) <= 1000 and set(s) <= STANDARD]
    df = pd.DataFrame(rows, columns=["accession", "sequence", "label"]).drop_duplicates("sequence")
    rng = np.random.default_rng(seed)
    parts = []
    for label in (1, 0):
        sub = df[df["label"] == label]
        parts.append(sub.iloc[rng.choice(len(sub), size=min(per_class, len(sub)), replace=False)])
    df = pd.concat(parts).sort_values("accession").reset_index(drop=True)
    if random:
        df["split"] = random_split(len(df), val=0.1, test=0.1, seed=seed)
    else:
        df["split"] = cluster_split(mmseqs_clusters(list(df["sequence"]), 0.3), val=0.1, test=0.1, seed=seed)
    return df


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "raw" / "go_atp.csv")
    p.add_argument("--data", type=Path, default=DATA)
    p.add_argument("--term", default="GO:0005524")
    p.add_argument("--per-class", type=int, default=4000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--random-split", action="store_true")
    args = p.parse_args()
    df = build(args.data, args.term, args.per_class, args.seed, args.random_split)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    df[["sequence", "label", "split", "accession"]].to_csv(args.out, index=False)
    print(args.out, len(df), df.groupby(["split", "label"]).size().to_dict())


if __name__ == "__main__":
    main()
