#!/usr/bin/env python3
"""Build data/smiles/{train,val}.smi from the MOSES training set (one SMILES per line).

Source
    PyPI package ``molsets`` 0.3.1 (MOSES benchmark, MIT licence) contains
    ``moses/dataset/data/train.csv.gz`` (1,584,663 molecules, column ``SMILES``),
    a filtered subset of the ZINC Clean Leads collection. The file is read with
    pandas straight out of the wheel (a zip); the ``moses`` package is never
    imported.

    Get it:   pip download --no-deps molsets -d data/smiles/raw
              -> data/smiles/raw/molsets-0.3.1-py3-none-any.whl
    (``pip install --no-deps molsets`` works too: the csv then lies at
    <site-packages>/moses/dataset/data/train.csv.gz; pass that with --source.)

    ``--source`` accepts the wheel (.whl), or the train.csv.gz itself.

Processing
    1. shuffle the row order with numpy default_rng(seed);
    2. walk the shuffled rows; keep a molecule when RDKit parses it and its
       canonical SMILES (Chem.MolToSmiles defaults) is at most 64 characters and
       the atom-level regex tokens concatenate back to it;
    3. skip canonical SMILES already taken (keeps train and val disjoint);
    4. the first ``--n-val`` kept go to val, the next ``--n-train`` to train.
    The pass rate is measured on the rows examined (a uniform random sample).

Usage:  python data/smiles/prepare.py [--source PATH] [--seed 0]
"""

from __future__ import annotations

import argparse
import glob
import io
import sys
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import stats  # noqa: E402
from _common import atomic_write_lines, die, display_path, publish, require_file  # noqa: E402

CSV_IN_WHEEL = "moses/dataset/data/train.csv.gz"
HOW_TO_GET = (
    "Get it with: pip download --no-deps molsets -d data/smiles/raw "
    "(gives molsets-0.3.1-py3-none-any.whl), or pass --source with the wheel or train.csv.gz."
)
MAX_LEN = 64


def default_source() -> Path:
    found = sorted(glob.glob(str(HERE / "raw" / "molsets-*.whl")))
    return Path(found[-1]) if found else HERE / "raw" / "molsets-0.3.1-py3-none-any.whl"


def read_moses(src: Path):
    import pandas as pd

    if src.suffix == ".whl":
        with zipfile.ZipFile(src) as zf:
            try:
                data = zf.read(CSV_IN_WHEEL)
            except KeyError:
                die(f"{src} has no {CSV_IN_WHEEL}")
        df = pd.read_csv(io.BytesIO(data), compression="gzip")
    else:
        df = pd.read_csv(src)
    if "SMILES" not in df.columns:
        die(f"{src}: no SMILES column (columns: {list(df.columns)})")
    return df["SMILES"].astype(str).to_numpy()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--source",
        type=Path,
        default=None,
        help="molsets wheel or train.csv.gz (default: data/smiles/raw/molsets-*.whl)",
    )
    ap.add_argument("--out-dir", type=Path, default=HERE, help="output folder (default: %(default)s)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-train", type=int, default=80_000)
    ap.add_argument("--n-val", type=int, default=4_000)
    args = ap.parse_args(argv)

    import numpy as np
    from rdkit import Chem, RDLogger, rdBase

    RDLogger.DisableLog("rdApp.*")
    src = require_file(args.source or default_source(), HOW_TO_GET)
    smiles = read_moses(src)
    n_moses = len(smiles)
    order = np.random.default_rng(args.seed).permutation(n_moses)

    need = args.n_train + args.n_val
    kept: list[str] = []
    seen: set[str] = set()
    n_seen = n_bad = n_long = n_tok = n_dup = 0
    for i in order:
        if len(kept) == need:
            break
        n_seen += 1
        mol = Chem.MolFromSmiles(smiles[i])
        if mol is None:
            n_bad += 1
            continue
        can = Chem.MolToSmiles(mol)
        if len(can) > MAX_LEN:
            n_long += 1
            continue
        if not stats.smiles_roundtrips(can):
            n_tok += 1
            continue
        if can in seen:
            n_dup += 1
            continue
        seen.add(can)
        kept.append(can)
    if len(kept) < need:
        die(f"only {len(kept):,} molecules passed, need {need:,}")
    val, train = kept[: args.n_val], kept[args.n_val :]
    n_pass = n_seen - n_bad - n_long - n_tok
    rate = n_pass / n_seen
    print(
        f"examined {n_seen:,} of {n_moses:,}; unparsable {n_bad}; >{MAX_LEN} chars {n_long}; "
        f"regex-untokenisable {n_tok}; duplicate canonical {n_dup}; pass rate {rate:.4%}"
    )

    out = args.out_dir
    atomic_write_lines(out / "train.smi", train)
    atomic_write_lines(out / "val.smi", val)

    summary = stats.split_summary(train, val, stats.smiles_tokens)
    char_lens = {k: stats.length_stats([len(s) for s in v]) for k, v in (("train", train), ("val", val))}
    info = {
        "source": display_path(src),
        "rdkit": rdBase.rdkitVersion,
        "seed": args.seed,
        "filter": {
            "moses_train_rows": n_moses,
            "rows_examined": n_seen,
            "unparsable": n_bad,
            f"canonical_longer_than_{MAX_LEN}": n_long,
            "regex_untokenisable": n_tok,
            "duplicate_canonical": n_dup,
            "pass_rate_on_examined": round(rate, 6),
        },
        "char_length": char_lens,
        **summary,
    }
    md = (
        f"Filter funnel: {n_seen:,} of the {n_moses:,} MOSES training rows examined in seeded random order "
        f"(seed={args.seed}); {n_bad} unparsable by RDKit "
        f"{rdBase.rdkitVersion}, {n_long} with canonical SMILES "
        f"longer than {MAX_LEN} characters, {n_tok} not covered "
        f"by the token regex, {n_dup} duplicate canonical "
        f"SMILES; pass rate {rate:.4%}. Kept {len(train):,} train + {len(val):,} val.\n\n"
        f"Lengths below are in regex tokens; in characters train is "
        f"{char_lens['train']['min']}-{char_lens['train']['max']} (mean {char_lens['train']['mean']}), "
        f"val {char_lens['val']['min']}-{char_lens['val']['max']} (mean {char_lens['val']['mean']}).\n\n"
        + stats.summary_markdown(summary, "tokens")
    )
    return publish(out, HERE, info, md, out / "train.smi", out / "val.smi")


if __name__ == "__main__":
    raise SystemExit(main())
