"""Re-draw an exported checkpoint's sample report without training: ``python -m seqtree.training.report CHECKPOINT``.

``seqtree train`` ends by writing the card's ``## Samples`` section and ``training_facts.json``'s ``sample_report``
(:func:`seqtree.training.run.write_sample_report`). When that step did not run (a run stopped after its export, or a
card written before the report existed), this draws it with the same function, so the card reads exactly as the
trainer would have written it: the same seed and number of samples give the same samples. The training file is
needed for the text card's known-word share and the molecule card's novelty and property reference.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv: list[str] | None = None, *, default_num: int = 512, prog: str = "python -m seqtree.training.report"):
    """Re-draw a checkpoint's sample report (its card's ``## Samples`` section and training_facts.json)."""
    parser = argparse.ArgumentParser(prog=prog, description=main.__doc__)
    parser.add_argument("checkpoint", type=Path, help="an exported checkpoint folder (config.json, tokenizer, card)")
    parser.add_argument("--train", type=Path, help="its training file (text: known words; molecules: novelty)")
    parser.add_argument("--num", type=int, default=default_num, help="samples per sampler (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for name in ("config.json", "README.md", "training_facts.json"):
        if not (args.checkpoint / name).is_file():
            parser.exit(2, f"{prog}: {args.checkpoint}: no {name} (not an exported seqtree checkpoint)\n")
    if args.train is not None and not args.train.is_file():
        parser.exit(2, f"{prog}: --train: {args.train} is not a file\n")
    if args.num < 1:
        parser.exit(2, f"{prog}: --num: must be >= 1, got {args.num}\n")

    from seqtree.training.run import write_sample_report

    domain = json.loads((args.checkpoint / "config.json").read_text()).get("domain")
    report = write_sample_report(
        args.checkpoint, domain, seed=args.seed, num=args.num, train=args.train,
        log=lambda line: print(line, file=sys.stderr),
    )  # fmt: skip
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
