#!/usr/bin/env python3
"""Build data/selfies/{train,val}.txt.gz: the MOSES molecules of data/smiles/ written as SELFIES (one per line).

Source
    data/smiles/train.smi and val.smi (80,000 + 4,000 canonical RDKit SMILES from the MOSES training set; see
    data/smiles/README.md). Nothing is downloaded: run data/smiles/prepare.py first only to rebuild those.

Processing
    1. each SMILES, in file order, is encoded with ``selfies.encoder`` (SELFIES 2, Krenn et al. 2020);
    2. a molecule is kept when the SELFIES decodes back to the same molecule (``selfies.decoder`` then RDKit's
       canonical SMILES equals the input) and has at most 64 symbols (the shipped model's rows);
    3. train stays train and val stays val, so selfies-tiny and smiles-tiny see the same molecules.
    The files are gzip-compressed (a SELFIES string is about 4.6 times as long as its SMILES: 13 MB uncompressed)
    with no name or time in the gzip header, so a rebuild is byte-identical; ``seqtree train`` reads ``.gz``.

Usage:  python data/selfies/prepare.py [--smiles-dir data/smiles] [--out-dir data/selfies]
"""

from __future__ import annotations

import argparse
import sys
from importlib.metadata import version
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import stats  # noqa: E402
from _common import atomic_write_gzip_lines, display_path, publish, require_file  # noqa: E402

MAX_SYMBOLS = 64
HOW_TO_GET = "It is committed; rebuild it with: python data/smiles/prepare.py"


def to_selfies(smiles: list[str]) -> tuple[list[str], dict[str, int]]:
    """SELFIES of every SMILES that survives the round trip and the length cap, and the counts of those dropped."""
    import selfies as sf
    from rdkit import Chem, RDLogger

    RDLogger.DisableLog("rdApp.*")
    kept, dropped = [], {"encoder_error": 0, "round_trip_differs": 0, f"longer_than_{MAX_SYMBOLS}_symbols": 0}
    for s in smiles:
        try:
            encoded = sf.encoder(s)
        except sf.EncoderError:
            dropped["encoder_error"] += 1
            continue
        back = Chem.MolFromSmiles(sf.decoder(encoded))
        if back is None or Chem.MolToSmiles(back) != s:
            dropped["round_trip_differs"] += 1
            continue
        if len(stats.selfies_tokens(encoded)) > MAX_SYMBOLS:
            dropped[f"longer_than_{MAX_SYMBOLS}_symbols"] += 1
            continue
        kept.append(encoded)
    return kept, dropped


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smiles-dir", type=Path, default=HERE.parent / "smiles", help="default: %(default)s")
    ap.add_argument("--out-dir", type=Path, default=HERE, help="output folder (default: %(default)s)")
    args = ap.parse_args(argv)

    from rdkit import rdBase

    splits, funnel = {}, {}
    for name in ("train", "val"):
        src = require_file(args.smiles_dir / f"{name}.smi", HOW_TO_GET)
        smiles = src.read_text().split()
        splits[name], dropped = to_selfies(smiles)
        funnel[name] = {"smiles": len(smiles), "kept": len(splits[name]), **dropped}
        print(f"{name}: {len(smiles):,} SMILES -> {len(splits[name]):,} SELFIES; dropped {dropped}")

    out = args.out_dir
    for name, rows in splits.items():
        atomic_write_gzip_lines(out / f"{name}.txt.gz", rows)

    summary = stats.split_summary(splits["train"], splits["val"], stats.selfies_tokens)
    chars = {k: stats.length_stats([len(s) for s in v]) for k, v in splits.items()}
    info = {
        "source": display_path(args.smiles_dir),
        "selfies": version("selfies"),
        "rdkit": rdBase.rdkitVersion,
        "funnel": funnel,
        "char_length": chars,
        **summary,
    }
    dropped_total = sum(f["smiles"] - f["kept"] for f in funnel.values())
    md = (
        f"From `{display_path(args.smiles_dir)}`: {funnel['train']['smiles']:,} train + {funnel['val']['smiles']:,} "
        f"val SMILES encoded with selfies {version('selfies')} and checked by decoding with RDKit "
        f"{rdBase.rdkitVersion}; {dropped_total} dropped. Kept {len(splits['train']):,} train + "
        f"{len(splits['val']):,} val.\n\n"
        f"Lengths below are in SELFIES symbols; in characters train is "
        f"{chars['train']['min']}-{chars['train']['max']} (mean {chars['train']['mean']}), "
        f"val {chars['val']['min']}-{chars['val']['max']} (mean {chars['val']['mean']}).\n\n"
        + stats.summary_markdown(summary, "symbols")
    )
    return publish(out, HERE, info, md, out / "train.txt.gz", out / "val.txt.gz")


if __name__ == "__main__":
    raise SystemExit(main())
