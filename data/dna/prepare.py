#!/usr/bin/env python3
"""Build data/dna/{train,val}.fasta: Drosophila core-promoter windows (128 bp).

Source
    Debian package ``r-bioc-biostrings`` (2.66.0-1) ships
    ``/usr/lib/R/site-library/Biostrings/extdata/dm3_upstream2000.fa.gz``: the UCSC
    Genome Browser file goldenPath/dm3/bigZips/upstream2000.fa.gz (downloaded by the
    Biostrings authors on 27 May 2014), 26,454 records of the 2,000 bp upstream of
    each annotated RefSeq transcription start of D. melanogaster (dm3 = BDGP R5),
    already on the gene's strand, repeats soft-masked in lower case.

    Install:  apt-get install -y r-bioc-biostrings
    Find it:  dpkg -L r-bioc-biostrings | grep upstream

Processing
    1. take the last 128 bp of every record (the bases adjacent to the TSS);
    2. upper-case (removes the soft mask);
    3. keep windows made only of A, C, G, T (drop any with N or another IUPAC code);
    4. drop exact duplicate windows (alternative transcripts often share a TSS;
       the first record id in file order is kept);
    5. sort by sequence, shuffle with random.Random(seed), first ``--val-frac``
       (5 %) go to val, the rest to train (disjoint by sequence).

FASTA ids are the UCSC record ids (``<RefSeq>_up_2000_<chrom>_<start>_<strand>``),
one sequence line per record.

Usage:  python data/dna/prepare.py [--source PATH] [--seed 0]
"""

from __future__ import annotations

import argparse
import gzip
import random
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import stats  # noqa: E402
from _common import atomic_write_fasta, die, display_path, publish, require_file  # noqa: E402

DEFAULT_SOURCE = "/usr/lib/R/site-library/Biostrings/extdata/dm3_upstream2000.fa.gz"
HOW_TO_GET = (
    "Install it with: apt-get install -y r-bioc-biostrings "
    "(then `dpkg -L r-bioc-biostrings | grep upstream`), or pass --source."
)
ACGT = frozenset("ACGT")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--source",
        type=Path,
        default=Path(DEFAULT_SOURCE),
        help="FASTA file, plain or .gz (default: %(default)s)",
    )
    ap.add_argument("--out-dir", type=Path, default=HERE, help="output folder (default: %(default)s)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--window", type=int, default=128, help="bases kept next to the TSS (default: %(default)s)"
    )
    ap.add_argument("--val-frac", type=float, default=0.05)
    args = ap.parse_args(argv)

    from Bio import SeqIO
    from Bio.Seq import Seq
    from Bio.SeqRecord import SeqRecord

    src = require_file(args.source, HOW_TO_GET)
    opener = gzip.open if src.suffix == ".gz" else open
    n_total = n_short = n_acgt = 0
    first_id: dict[str, str] = {}
    with opener(src, "rt") as fh:
        for rec in SeqIO.parse(fh, "fasta"):
            n_total += 1
            if len(rec.seq) < args.window:
                n_short += 1
                continue
            w = str(rec.seq[-args.window :]).upper()
            if not set(w) <= ACGT:
                continue
            n_acgt += 1
            first_id.setdefault(w, rec.id)
    if n_total == 0:
        die(f"no FASTA records in {src}")
    n_unique = len(first_id)
    print(
        f"read {n_total:,}; shorter than {args.window}: "
        f"{n_short:,}; ACGT-only: {n_acgt:,}; unique {n_unique:,}"
    )

    seqs = sorted(first_id)
    random.Random(args.seed).shuffle(seqs)
    n_val = round(args.val_frac * n_unique)
    val, train = seqs[:n_val], seqs[n_val:]
    assert not set(val) & set(train)

    def records(split):
        for s in split:
            yield SeqRecord(Seq(s), id=first_id[s], description="")

    out = args.out_dir
    atomic_write_fasta(out / "train.fasta", records(train))
    atomic_write_fasta(out / "val.fasta", records(val))

    summary = stats.split_summary(train, val, stats.char_tokens)
    info = {
        "source": display_path(src),
        "seed": args.seed,
        "window": args.window,
        "filter": {
            "records_read": n_total,
            "shorter_than_window": n_short,
            "acgt_only": n_acgt,
            "unique_windows": n_unique,
        },
        **summary,
    }
    md = (
        f"Filter funnel: {n_total:,} records read -> {n_acgt:,} "
        f"windows of {args.window} bp made only of ACGT "
        f"({n_total - n_short - n_acgt:,} dropped for N/IUPAC codes) -> {n_unique:,} unique windows; "
        f"seeded (seed={args.seed}) split {len(train):,} train / {len(val):,} val.\n\n"
        + stats.summary_markdown(summary, "bases")
    )
    return publish(out, HERE, info, md, out / "train.fasta", out / "val.fasta")


if __name__ == "__main__":
    raise SystemExit(main())
