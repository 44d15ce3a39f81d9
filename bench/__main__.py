"""Command line of the benchmarks: ``python -m bench search --out DIR [--quick]``."""

from __future__ import annotations

import argparse
from pathlib import Path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    search = sub.add_parser("search", help="exactness and engine-overhead benchmarks of seqtree.search")
    search.add_argument("--out", type=Path, required=True, help="directory for the CSV tables and PNG plots")
    search.add_argument("--quick", action="store_true", help="smaller sizes (a smoke run)")
    search.add_argument("--max-nodes", type=int, default=1_000_000, help="nodes of the memory benchmark (L=256)")
    search.add_argument("--only", choices=["exactness", "overhead", "memory"], default=None, help="run one part")
    args = parser.parse_args(argv)
    if args.command == "search":
        from bench.search import run

        run(args.out, quick=args.quick, max_nodes=args.max_nodes, only=args.only)


if __name__ == "__main__":
    main()
