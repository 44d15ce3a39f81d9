"""Command line of the benchmarks: ``seqtree bench ...`` wherever seqtree is installed (this folder installs as
``seqtree.bench``), or ``python -m bench ...`` from a source checkout's root:

``seqtree bench search --out DIR [--quick]``   exactness, engine overhead and memory of the search engine
``seqtree bench sampling --out DIR``           sampling and training throughput of the shipped checkpoints
``seqtree bench recipes --out DIR``            wall time of every shipped recipe, split by component
``seqtree bench oracles [--n 1000]``           oracle throughput with and without the cache
``seqtree bench device --device cuda``         raw forward rows/s (fp32, bf16) against every algorithm's NFE/s
``seqtree bench ehrlich --out DIR [--quick]``  Ehrlich holo benchmark: all algorithms at equal NFE, holo's GA
    (``--ga-sweep``: its tuned settings), ``--finetune``: search + fine-tuning rounds
``seqtree bench prompts RECIPE --out DIR``     many-prompt alignment: reward and fluency against NFE per algorithm,
    the NFE to match best-of-N; ``--finetune-rounds R``: search + fine-tuning rounds on the same prompts
``seqtree bench alignment --out DIR``          DTS* against best-of-N at equal NFE per seed (text-small, VADER):
    the measurement behind tests/test_alignment_text.py
"""

from __future__ import annotations

import argparse
from pathlib import Path

from seqtree.device import set_threads


def unknown_algorithms(names: list[str]) -> str | None:
    """The error for ``--algorithms`` names that are not registered algorithms, or None. ``--algorithms`` takes
    every word after it, so recipe files named after it land there: say so, rather than "unknown algorithm"."""
    from seqtree.search.registry import ALGORITHMS

    unknown = [name for name in names if name not in ALGORITHMS and name != "all"]
    if not unknown:
        return None
    files = [name for name in unknown if name.endswith((".yaml", ".yml")) or Path(name).exists()]
    if files:
        return (f"--algorithms: {', '.join(files)} is a recipe file, not an algorithm; name the recipe files before "
                "--algorithms (or end its list with --)")  # fmt: skip
    return f"--algorithms: unknown {', '.join(unknown)} (known: all, {', '.join(ALGORITHMS)})"


def main(argv: list[str] | None = None, prog: str = "python -m bench") -> None:
    formatter = argparse.RawDescriptionHelpFormatter  # the command table above as written
    parser = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=formatter)
    sub = parser.add_subparsers(dest="command", required=True)
    search = sub.add_parser("search", help="exactness and engine-overhead benchmarks of seqtree.search")
    search.add_argument("--out", type=Path, required=True, help="directory for the CSV tables and PNG plots")
    search.add_argument("--quick", action="store_true", help="smaller sizes (a smoke run)")
    search.add_argument("--max-nodes", type=int, default=1_000_000, help="nodes of the memory benchmark (L=256)")
    search.add_argument("--only", choices=["exactness", "overhead", "memory"], default=None, help="run one part")
    sub.add_parser("sampling", help="sampling (batch 1 and 64) and training throughput of checkpoints")
    recipes = sub.add_parser("recipes", help="wall time of every shipped recipe, split by component")
    recipes.add_argument("--out", type=Path, required=True)
    recipes.add_argument("recipes", nargs="*", type=Path, help="recipe files (default: ./recipes/*.yaml)")
    recipes.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    recipes.add_argument(
        "--against-sampling", action="store_true",
        help="each recipe's search against best-of-N at its NFE budget over --seeds seeds",
    )  # fmt: skip
    recipes.add_argument("--seeds", type=int, default=5, help="seeds of --against-sampling (default 5)")
    recipes.add_argument(
        "--algorithms", nargs="+", default=None, metavar="NAME",
        help="with --against-sampling: also these algorithms at their defaults ('all': every registered one)",
    )  # fmt: skip
    sub.add_parser("oracles", help="oracle throughput (seqtree.oracles.bench)")
    sub.add_parser("device", help="raw forward rate against every algorithm's NFE/s on a device (bench.device)")
    sub.add_parser("alignment", help="DTS* against best-of-N per seed on text-small (bench.alignment)")
    ehrlich = sub.add_parser("ehrlich", help="Ehrlich holo benchmark: every algorithm at equal NFE, holo's GA")
    ehrlich.add_argument("--out", type=Path, required=True, help="directory for ehrlich.csv, curves and plot")
    ehrlich.add_argument(
        "--instances",
        nargs="+",
        default=None,
        metavar="INSTANCE",
        help="ehrlich-l32, ehrlich-l128 (default: both) or any instance by its parameters, e.g. "
        "v=32,L=64,c=2,k=4,seed=1 (a new instance's prior is trained under OUT/priors/ first)",
    )
    ehrlich.add_argument(
        "--prior-steps",
        type=int,
        default=None,
        help="train every instance's prior for this many steps under OUT/priors/ (default: the "
        "shipped priors for the benchmark instances, 2000 steps for others)",
    )
    ehrlich.add_argument("--nfe", type=int, default=None, help="NFE budget of every run (default: per instance)")
    ehrlich.add_argument("--seeds", type=int, default=3, help="seeds per instance")
    ehrlich.add_argument("--first-seed", type=int, default=0, help="first seed (seeds first .. first + seeds - 1)")
    ehrlich.add_argument(
        "--algorithms",
        nargs="+",
        default=None,
        help="subset of the search algorithms ('none': only the GA and the fine-tuning arm)",
    )
    ehrlich.add_argument("--quick", action="store_true", help="smoke run: 2000 NFE, one seed")
    ehrlich.add_argument("--branch-every", type=int, default=None, help="steps between branch points (default: 1/8)")
    ehrlich.add_argument(
        "--ga-calls",
        type=int,
        default=None,
        help="holo GA oracle calls (default: the most any seqtree run used on that seed)",
    )
    ehrlich.add_argument(
        "--ga-sweep",
        action="store_true",
        help="run holo's GA at every setting of bench.ehrlich.GA_SWEEP (particles 128 / 1024, "
        "survival 0.5 / 0.01, recombination default / 1.1/L) and name the best per instance",
    )
    ehrlich.add_argument(
        "--finetune",
        action="store_true",
        help="add the search + fine-tuning arm (recipes/ehrlich.yaml: remask+finetune, to 1.0)",
    )
    ehrlich.add_argument("--finetune-rounds", type=int, default=10, help="fine-tuning rounds at most (default 10)")
    ehrlich.add_argument("--finetune-nfe", type=int, default=5000, help="search NFE per fine-tuning round")
    ehrlich.add_argument(
        "--search-set",
        action="append",
        default=[],
        metavar="ALGORITHM.KEY=VALUE",
        help="override a search algorithm's parameter, e.g. remask.patience=0 (repeatable)",
    )
    ehrlich.add_argument(
        "--finetune-set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="recipe override of the fine-tuning arm, repeatable (e.g. finetune.lr=3e-4, "
        "finetune.alpha=0.1, search.exploration=0.2)",
    )
    ehrlich.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    ehrlich.add_argument(
        "--report",
        nargs="+",
        type=Path,
        default=None,
        metavar="RUN_DIR",
        help="run nothing: merge the results of earlier runs (e.g. one per instance) into --out",
    )
    prompts = sub.add_parser("prompts", help="many-prompt alignment: reward and fluency against NFE (bench.prompts)")
    prompts.add_argument("recipe", type=Path, help="a prompts recipe, e.g. recipes/text-positive.yaml")
    prompts.add_argument("--out", type=Path, required=True, help="directory for the runs and the tables")
    prompts.add_argument(
        "--algorithms", nargs="+", default=["dts_star", "mcts", "smc", "best_of_n"], metavar="NAME",
        help="algorithms at their defaults, best_of_n among them; 'recipe': the recipe's own search section ('none': "
        "only --finetune-rounds)",
    )  # fmt: skip
    prompts.add_argument("--budgets", nargs="+", type=int, default=[100, 500], help="NFE per prompt of each run")
    prompts.add_argument(
        "--baseline-budgets", nargs="+", type=int, default=[], metavar="NFE",
        help="best_of_n's budgets in place of --budgets: the reward to match is best-of-N's at its largest",
    )  # fmt: skip
    prompts.add_argument("--seeds", nargs="+", type=int, default=[0, 1], help="seeds (recipe seed = 1000 x seed)")
    prompts.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                         help="recipe override applied to every run (repeatable)")  # fmt: skip
    prompts.add_argument("--finetune-rounds", type=int, default=None, help="also run R search + fine-tuning rounds")
    prompts.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args, rest = parser.parse_known_args(argv)  # sampling and oracles pass their own options through
    if rest and args.command not in ("sampling", "oracles", "device", "alignment"):
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    set_threads(getattr(args, "threads", None))
    if args.command == "sampling":
        from .sampling import main as sampling_main

        sampling_main(rest)
    elif args.command == "recipes":
        from .recipes import against_sampling
        from .recipes import run as run_recipes

        if args.algorithms:
            problem = unknown_algorithms(args.algorithms)
            if problem:
                parser.error(problem)
        paths = args.recipes or sorted(Path("recipes").glob("*.yaml"))
        if not paths:
            parser.error("no recipes/*.yaml under the current directory: name the recipe files")
        if args.against_sampling:
            against_sampling(args.out, paths, args.seeds, args.algorithms)
        else:
            run_recipes(args.out, paths)
    elif args.command == "device":
        from .device import main as device_main

        device_main(rest)
    elif args.command == "alignment":
        from .alignment import main as alignment_main

        alignment_main(rest)
    elif args.command == "oracles":
        from seqtree.oracles.bench import main as oracles_main

        oracles_main(rest)
    elif args.command == "ehrlich":
        from .ehrlich import merge_reports
        from .ehrlich import run as run_ehrlich

        if args.report:
            merge_reports(args.out, args.report)
            return
        from seqtree.oracles.ehrlich_instances import parse_instance

        from .ehrlich import FinetuneArm, parse_search_set

        try:
            search_set = parse_search_set(args.search_set)
        except ValueError as error:
            parser.error(str(error))
        instances = args.instances or ["ehrlich-l32", "ehrlich-l128"]
        for spec in instances:
            try:
                parse_instance(spec)
            except ValueError as error:
                parser.error(f"--instances: {error}")
        algorithms = [] if args.algorithms == ["none"] else args.algorithms
        if not algorithms and algorithms is not None and not args.finetune and not args.ga_calls:
            parser.error("--algorithms none needs --finetune or --ga-calls (the GA's budget)")
        finetune = None
        if args.finetune:
            overrides = tuple(args.finetune_set)
            finetune = FinetuneArm(rounds=args.finetune_rounds, nfe=args.finetune_nfe, overrides=overrides)
        elif args.finetune_set:
            parser.error("--finetune-set needs --finetune")
        run_ehrlich(
            args.out,
            instances=instances,
            nfe=args.nfe,
            seeds=args.seeds,
            algorithms=algorithms,
            quick=args.quick,
            branch_every=args.branch_every,
            ga_calls=args.ga_calls,
            ga_sweep=args.ga_sweep,
            finetune=finetune,
            first_seed=args.first_seed,
            prior_steps=args.prior_steps,
            search_set=search_set,
        )
    elif args.command == "prompts":
        from .prompts import finetune as prompts_finetune
        from .prompts import run as run_prompts

        algorithms = [] if args.algorithms == ["none"] else args.algorithms
        if not algorithms and args.finetune_rounds is None:
            parser.error("--algorithms none needs --finetune-rounds")
        try:
            if algorithms:
                run_prompts(args.recipe, args.out, algorithms=algorithms, budgets=args.budgets, seeds=args.seeds,
                            overrides=args.overrides, baseline_budgets=args.baseline_budgets)  # fmt: skip
            if args.finetune_rounds is not None:
                prompts_finetune(args.recipe, args.out, rounds=args.finetune_rounds, overrides=args.overrides)
        except ValueError as error:
            parser.error(str(error))
    elif args.command == "search":
        from .search import run

        run(args.out, quick=args.quick, max_nodes=args.max_nodes, only=args.only)


if __name__ == "__main__":
    main()
