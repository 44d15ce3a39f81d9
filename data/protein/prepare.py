#!/usr/bin/env python3
"""Build data/protein/{train,val}.fasta from the UniProt sequences in metastudent-data.

Source
    Debian package ``metastudent-data`` (2.0.1-8; data release 201401) ships
    BLAST protein databases of UniProtKB entries with GO annotations. We read
    the molecular-function set ``/usr/share/metastudent-data/dataset_201401/MFO/goasp.fasta``
    (a BLAST db: files goasp.fasta.{phr,pin,psq}); ``blastdbcmd`` from Debian
    ``ncbi-blast+`` dumps it as FASTA into data/protein/raw/.

    Install:  apt-get install -y metastudent-data ncbi-blast+

    ``--source`` accepts either a BLAST db prefix (the path without .pin/.psq)
    or a plain / gzipped FASTA file with headers like ``>ACCESSION|GO:...``.

Filtering
    1. keep sequences made only of the 20 standard amino acids ACDEFGHIKLMNPQRSTVWY;
    2. keep length 30..128 inclusive;
    3. drop exact duplicate sequences (first accession in db order is kept);
    4. sort by sequence, shuffle with random.Random(seed);
    5. the first ``--n-val`` go to val, the next ``--n-train`` to train
       (disjoint by sequence because of step 3).

FASTA ids are the UniProt accessions, one sequence line per record.

Usage:  python data/protein/prepare.py [--source PATH] [--seed 0]
"""

from __future__ import annotations

import argparse
import gzip
import random
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import stats  # noqa: E402
from _common import (  # noqa: E402
    atomic_write_fasta,
    die,
    publish,
    require_file,
)

DEFAULT_SOURCE = "/usr/share/metastudent-data/dataset_201401/MFO/goasp.fasta"
HOW_TO_GET = (
    "Install it with: apt-get install -y metastudent-data ncbi-blast+ "
    "(then `dpkg -L metastudent-data` lists the BLAST db files), or pass --source."
)
STANDARD_AA = frozenset("ACDEFGHIKLMNPQRSTVWY")
MIN_LEN, MAX_LEN = 30, 128


def dump_blastdb(db: str, out: Path) -> Path:
    """Dump a BLAST protein db to FASTA with blastdbcmd (atomically)."""
    exe = shutil.which("blastdbcmd")
    if exe is None:
        die("blastdbcmd not found; install Debian package ncbi-blast+ (apt-get install -y ncbi-blast+)")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    with open(tmp, "wb") as fh:
        proc = subprocess.run(
            [exe, "-db", db, "-dbtype", "prot", "-entry", "all", "-line_length", "1000000"],
            stdout=fh,
            stderr=subprocess.PIPE,
        )
    if proc.returncode != 0:
        tmp.unlink(missing_ok=True)
        die(f"blastdbcmd failed on {db}: {proc.stderr.decode(errors='replace').strip()}")
    tmp.replace(out)
    return out


def resolve_fasta(source: str) -> Path:
    src = Path(source)
    if Path(source + ".pin").is_file():
        require_file(Path(source + ".psq"), HOW_TO_GET)
        raw = HERE / "raw" / (src.parent.name + "_" + src.name)
        print(f"dumping BLAST db {source} -> {raw}")
        return dump_blastdb(source, raw)
    if src.is_file():
        return src
    die(f"source not found: neither a BLAST db ({source}.pin) nor a FASTA file ({source}).\n  {HOW_TO_GET}")


def read_records(fasta: Path):
    from Bio import SeqIO

    opener = gzip.open if fasta.suffix == ".gz" else open
    with opener(fasta, "rt") as fh:
        for rec in SeqIO.parse(fh, "fasta"):
            yield rec.id.split("|", 1)[0], str(rec.seq).upper()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--source", default=DEFAULT_SOURCE, help="BLAST db prefix or FASTA file (default: %(default)s)"
    )
    ap.add_argument("--out-dir", type=Path, default=HERE, help="output folder (default: %(default)s)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-train", type=int, default=25_000)
    ap.add_argument("--n-val", type=int, default=1_500)
    args = ap.parse_args(argv)

    fasta = resolve_fasta(args.source)
    n_total = n_alpha = n_len = 0
    first_acc: dict[str, str] = {}
    for acc, seq in read_records(fasta):
        n_total += 1
        if not set(seq) <= STANDARD_AA:
            continue
        n_alpha += 1
        if not MIN_LEN <= len(seq) <= MAX_LEN:
            continue
        n_len += 1
        first_acc.setdefault(seq, acc)
    n_unique = len(first_acc)
    print(
        f"read {n_total:,}; standard-AA {n_alpha:,}; length "
        f"{MIN_LEN}-{MAX_LEN}: {n_len:,}; unique {n_unique:,}"
    )
    if n_unique < args.n_train + args.n_val:
        die(f"only {n_unique:,} unique sequences, need {args.n_train + args.n_val:,}")

    seqs = sorted(first_acc)
    random.Random(args.seed).shuffle(seqs)
    val = seqs[: args.n_val]
    train = seqs[args.n_val : args.n_val + args.n_train]
    assert not set(val) & set(train)

    from Bio.Seq import Seq
    from Bio.SeqRecord import SeqRecord

    def records(split):
        for s in split:
            yield SeqRecord(Seq(s), id=first_acc[s], description="")

    out = args.out_dir
    atomic_write_fasta(out / "train.fasta", records(train))
    atomic_write_fasta(out / "val.fasta", records(val))

    summary = stats.split_summary(train, val, stats.char_tokens)
    info = {
        "source": str(args.source),
        "seed": args.seed,
        "filter": {
            "records_read": n_total,
            "standard_20_aa": n_alpha,
            f"length_{MIN_LEN}_{MAX_LEN}": n_len,
            "unique_sequences": n_unique,
        },
        **summary,
    }
    md = (
        f"Filter funnel: {n_total:,} records read -> {n_alpha:,} with only the 20 standard amino acids "
        f"-> {n_len:,} of length {MIN_LEN}-{MAX_LEN} -> {n_unique:,} unique sequences; "
        f"seeded (seed={args.seed}) sample of {len(train):,} train + {len(val):,} val.\n\n"
        + stats.summary_markdown(summary, "residues")
    )
    return publish(out, HERE, info, md, out / "train.fasta", out / "val.fasta")


if __name__ == "__main__":
    raise SystemExit(main())
