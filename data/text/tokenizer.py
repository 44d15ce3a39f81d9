#!/usr/bin/env python3
"""Train the byte-level BPE tokenizer of ``text-small`` on ``data/text/train.txt`` only (never on val.txt).

The tokenizer is :meth:`seqtree.models.tokenizers.SubwordTokenizer.train`: GPT-2-style pre-tokenisation (words
with their leading space, punctuation runs, whitespace runs), byte-level BPE over the 256 bytes, ``<pad>`` = 0 and
``<mask>`` = 1. Training is deterministic, so re-running the command rewrites the same file; the training recipe
(``recipes/train/text-small.yaml``, ``tokenizer:``) reads it, and the checkpoint keeps a copy inside its
``seqtree_tokenizer.json``.

Usage:  python data/text/tokenizer.py [--vocab-size 4096] [--train data/text/train.txt] [--out PATH]
        (default out: data/text/kjv-bpe-<vocab-size>.json; takes a few seconds)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from _common import die  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vocab-size", type=int, default=4096, help="ids in all, the 2 special tokens included")
    parser.add_argument("--train", type=Path, default=HERE / "train.txt", help="one text per line")
    parser.add_argument("--out", type=Path, default=None, help="default: data/text/kjv-bpe-<vocab-size>.json")
    args = parser.parse_args(argv)
    from seqtree.models.tokenizers import SubwordTokenizer

    if not args.train.is_file():
        die(f"--train: {args.train} does not exist (build it with python data/text/prepare.py)")
    texts = [line for line in args.train.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not texts:
        die(f"--train: {args.train} holds no text")
    try:
        tokenizer = SubwordTokenizer.train(texts, args.vocab_size, name=f"kjv-bpe-{args.vocab_size}")
    except ValueError as error:
        die(f"--vocab-size: {error}")
    out = args.out or HERE / f"kjv-bpe-{args.vocab_size}.json"
    out.write_text(tokenizer.to_json() + "\n", encoding="utf-8")
    tokens = sum(len(tokenizer.encode(t)) for t in texts)
    size = sum(len(t.encode("utf-8")) for t in texts)
    print(f"{out}: {tokenizer.vocab_size} ids; {args.train}: {tokens:,} tokens, {size / tokens:.2f} bytes per token")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
