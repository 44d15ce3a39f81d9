"""Many-prompt alignment benchmark (issue 15): reward and fluency against NFE for several search algorithms on one
prompts recipe, and the NFE each needs to match best-of-N at its largest budget.

``python -m bench prompts RECIPE --out DIR --algorithms dts_star mcts smc best_of_n --budgets 100 500 --seeds 0 1``
(also ``seqtree bench prompts ...``) runs the recipe (a ``design.prompts_file`` recipe such as
``recipes/text-positive.yaml``: its model, oracle, fluency guard, design and every other field as shipped) once per
algorithm, budget and seed, each a complete multi-prompt run (:mod:`seqtree.prompts`: every prompt searched in
lockstep) under ``DIR/<algorithm>/nfe<budget>/seed<seed>/``. A finished run's folder is reused, so an interrupted
benchmark continues where it stopped.

Protocol:

- every algorithm runs at its own defaults (``search: {algorithm: NAME}``: the registry's parameters, as their
  authors set them), except best-of-N, which draws as many samples as the budget allows in batches of 64, and the
  arm ``recipe``, which runs the recipe's own ``search:`` section (a search tuned for the recipe); the
  ``budget.nfe`` of a run is per prompt (each prompt's search gets that many denoiser rows), with no time or
  oracle-call limit; ``--set`` overrides apply to every run alike;
- seed ``s`` runs the recipe with ``seed: 1000 s`` (prompt i is searched with seed 1000 s + i);
- per run: reward = the best reward of each prompt's returned completions (the recipe's reward, fluency guard
  included), averaged over prompts; fluency = the mean fluency of each prompt's returned completions
  (``completions_per_prompt`` of them; minus bits per byte) and that of its best completion, averaged over prompts;
  also oracle calls and the fluency model's rows (counted apart from NFE) and wall seconds;
- per algorithm and budget: the mean over seeds and its standard error (sample standard deviation / sqrt(seeds));
- the NFE to match: best-of-N's mean reward at its largest budget is the target (``--baseline-budgets``: best-of-N's
  own budgets in place of ``--budgets``, so that the target can lie beyond the others' budgets); for each algorithm,
  the smallest budget whose runs' mean reward reaches it and, for the algorithms whose every scored sequence is a
  design they can return (best-of-N's samples, DTS*'s tree terminals, MCTS's rollout archive:
  :data:`CURVE_IS_RETURNED`), the first NFE at which the mean over seeds of the anytime curve (each prompt's best
  reward so far, averaged over prompts, counted only once every prompt has scored; the algorithm's runs at its largest
  budget) reaches it. SMC's curve also counts the denoiser's argmax predictions it scores for FK's potentials at every
  branch point, which it never returns, and one SMC pass is sized to the whole budget, so only its budget runs count.
  The smaller value is ``nfe_to_match``; ``fraction_of_bon`` divides it by best-of-N's largest budget (issue 15's
  target for DTS*: 1/5 or less, with fluency no worse than best-of-N's);
- how that fraction moves with best-of-N's budget: best-of-N's samples are i.i.d., so its anytime curve at B NFE is
  the reward of a best-of-N at B (read at the last batch it finished by B, a little below a run at B: the
  comparison is not tilted towards the search). At B = 1/3, 2/3 and all of its largest budget, each returned-curve
  algorithm's first NFE reaching that reward, and the fraction of B (:func:`match_along_baseline`).

Writes ``prompts_bench.csv`` (one row per algorithm and budget), ``prompts_runs.csv`` (one row per run),
``prompts_curves.csv`` (the mean anytime curves), ``prompts_scaling.csv`` (the NFE to match best-of-N at each of
the budgets above), ``prompts_bench.md`` (the markdown tables) and ``prompts_bench.png``.

``--finetune-rounds R`` (with ``--algorithms none`` alone) runs ``seqtree finetune`` of the same recipe for R rounds
into ``DIR/finetune/`` (the recipe's ``finetune:`` section, or the defaults, with ``--set finetune.KEY=VALUE``) and
writes ``prompts_finetune.csv`` / ``.md``: per round, the mean reward and fluency of plain samples of each prompt,
averaged over prompts (round 0: the pretrained model), and the round's search.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd

BEST_OF_N = "{algorithm: best_of_n, batch_size: 64, num_samples: 10000000}"
RECIPE_ARM = "recipe"  # the recipe's own search section, as shipped (a tuned search, against the baseline)
SEED_STRIDE = 1000
BASELINE_FRACTIONS = (1 / 3, 2 / 3, 1.0)  # best-of-N budgets, as fractions of its largest, to match along its curve
CURVE_IS_RETURNED = frozenset({"best_of_n", "dts_star", "mcts"})  # the best scored sequence is among the designs
GRID_POINTS = 201


def search_override(algorithm: str) -> list[str]:
    """The ``search=`` override of an algorithm at its defaults (best-of-N: as many samples as the budget allows;
    the recipe arm: none, the recipe's own search)."""
    if algorithm == RECIPE_ARM:
        return []
    return [f"search={BEST_OF_N}" if algorithm == "best_of_n" else f"search={{algorithm: {algorithm}}}"]


def arm_algorithm(algorithm: str, recipe) -> str:
    """The registry algorithm an arm runs (the recipe arm: the recipe's)."""
    return recipe.search.algorithm if algorithm == RECIPE_ARM else algorithm


def run(
    recipe: Path,
    out: Path,
    *,
    algorithms: list[str],
    budgets: list[int],
    seeds: list[int],
    overrides: list[str] | None = None,
    baseline_budgets: list[int] | None = None,
) -> pd.DataFrame:
    """Run (or reuse) every (algorithm, budget, seed) and write the tables (module docstring).
    ``baseline_budgets``: best-of-N's own budgets, in place of ``budgets`` (a larger baseline budget to match)."""
    from seqtree.recipe import load_design_recipe
    from seqtree.search.registry import ALGORITHMS

    unknown = [a for a in algorithms if a not in ALGORITHMS and a != RECIPE_ARM]
    if unknown:
        raise ValueError(f"--algorithms: unknown {', '.join(unknown)} (known: {', '.join(ALGORITHMS)}, "
                         f"{RECIPE_ARM})")  # fmt: skip
    if "best_of_n" not in algorithms:
        raise ValueError("--algorithms: best_of_n is the baseline every other algorithm is compared with; name it")
    shipped = load_design_recipe(recipe, list(overrides or []))
    if shipped.design.prompts_file is None:
        raise ValueError(f"{recipe}: not a prompts recipe (design.prompts_file is not set)")
    budgets = sorted(set(budgets))
    baseline = sorted(set(baseline_budgets or budgets))
    rows = []
    for algorithm in algorithms:
        for budget in baseline if algorithm == "best_of_n" else budgets:
            for seed in seeds:
                rows.append(_one_run(recipe, out, algorithm, budget, seed, list(overrides or [])))
                print(json.dumps({k: rows[-1][k] for k in ("algorithm", "nfe_budget", "seed", "reward",
                                                            "fluency", "seconds")}), flush=True)  # fmt: skip
    runs = pd.DataFrame(rows)
    out.mkdir(parents=True, exist_ok=True)
    runs.drop(columns=["curve"]).to_csv(out / "prompts_runs.csv", index=False)
    curves = _mean_curves(runs)
    curves.to_csv(out / "prompts_curves.csv", index=False)
    table = summarize(runs, curves, shipped)
    table.to_csv(out / "prompts_bench.csv", index=False)
    scaling = match_along_baseline(curves, table)
    scaling.to_csv(out / "prompts_scaling.csv", index=False)
    (out / "prompts_bench.md").write_text(markdown(table, shipped, seeds, scaling))
    _plot(out / "prompts_bench.png", table, curves, shipped.name)
    print(table.to_string(index=False, float_format="%.4g"))
    return table


def _one_run(recipe: Path, out: Path, algorithm: str, budget: int, seed: int, overrides: list[str]) -> dict:
    """One multi-prompt run (reused when finished) and its per-run figures; ``curve`` holds its per-prompt curves."""
    from seqtree.design import run_design
    from seqtree.recipe import load_design_recipe

    folder = out / algorithm / f"nfe{budget}" / f"seed{seed}"
    summary_path = folder / "summary.json"
    settings = [*overrides, *search_override(algorithm), f"budget.nfe={budget}", "budget.seconds=null",
                "budget.oracle_calls=null", f"seed={SEED_STRIDE * seed}"]  # fmt: skip
    parsed = load_design_recipe(recipe, settings)
    _refuse_another_recipe(folder, parsed)
    finished = summary_path.is_file() and not json.loads(summary_path.read_text()).get("interrupted")
    if not finished:
        tic = time.perf_counter()
        run_design(parsed, out=folder, resume=folder.exists())
        print(f"{algorithm} nfe {budget} seed {seed}: {time.perf_counter() - tic:.0f} s", flush=True)
    summary = json.loads(summary_path.read_text())
    prompts = pd.read_csv(folder / "prompts.csv", dtype={"prompt_id": str})
    designs = pd.read_csv(folder / "designs.csv", dtype={"prompt_id": str}, keep_default_na=False, na_values=[""])
    best = designs[designs["rank"] == 1].set_index("prompt_id")
    curves = pd.read_csv(folder / "curves.csv", dtype={"prompt_id": str})
    return {
        "algorithm": algorithm, "nfe_budget": budget, "seed": seed, "prompts": len(prompts),
        "reward": float(prompts["reward_best"].mean()),
        "fluency": float(prompts["fluency_mean"].mean()),
        "best_fluency": float(best["fluency"].reindex(prompts["prompt_id"]).mean()),
        "reward_mean": float(prompts["reward_mean"].mean()),
        "distinct_2": float(prompts["distinct_2"].mean()),
        "floored": int(prompts["floored"].sum()),
        "nfe": int(summary["nfe"]), "oracle_calls": int(summary["oracle_calls"]),
        "fluency_rows": int(summary["fluency"]["rows"]), "forward_calls": int(summary["forward"]["calls"]),
        "seconds": float(summary["seconds"]), "curve": curves,
    }  # fmt: skip


def _refuse_another_recipe(folder: Path, parsed) -> None:
    """A run folder is reused only for the recipe it ran: an edited recipe (the ``recipe`` arm's search section
    above all) or other ``--set`` overrides would otherwise be reported with the old run's figures."""
    import yaml

    stored = folder / "recipe.yaml"
    if stored.is_file() and yaml.safe_load(stored.read_text()) != parsed.model_dump(mode="json"):
        raise ValueError(
            f"{folder} holds a run of another recipe than this benchmark would run there (the recipe file or --set "
            "changed since); choose another --out, or remove that folder to run it again"
        )


def best_by(curves: pd.DataFrame, grid: np.ndarray) -> np.ndarray:
    """The mean over prompts of each prompt's best reward found with at most each NFE of ``grid`` (per prompt NFE);
    -inf until every prompt has scored a sequence. ``curves``: every prompt's curve (``prompt_id``, ``nfe``,
    ``best_reward``), as a prompts run's ``curves.csv`` holds them."""
    values = []
    for _, curve in curves.groupby("prompt_id", sort=False):
        nfe = curve["nfe"].to_numpy()
        best = np.maximum.accumulate(curve["best_reward"].to_numpy())
        index = np.searchsorted(nfe, grid, side="right") - 1
        values.append(np.where(index >= 0, best[np.clip(index, 0, None)], -np.inf))
    return np.mean(values, axis=0) if values else np.full(len(grid), -np.inf)


def _mean_curves(runs: pd.DataFrame) -> pd.DataFrame:
    """Per algorithm, the mean over seeds of :func:`best_by` for its runs at its largest budget."""
    frames = []
    for algorithm, group in runs.groupby("algorithm", sort=False):
        largest = group["nfe_budget"].max()
        grid = np.linspace(0, largest, GRID_POINTS)
        curves = np.array([best_by(c, grid) for c in group[group["nfe_budget"] == largest]["curve"]])
        frames.append(pd.DataFrame({"algorithm": algorithm, "nfe": grid, "reward": curves.mean(0)}))
    return pd.concat(frames, ignore_index=True)


def _se(values: pd.Series) -> float:
    return float(values.std(ddof=1) / math.sqrt(len(values))) if len(values) > 1 else math.nan


def first_reaching(curve: pd.DataFrame, target: float) -> float:
    """The first NFE at which a mean anytime curve (``nfe``, ``reward``) reaches ``target``; NaN if it never does."""
    reached = curve["nfe"][curve["reward"] >= target - 1e-12]
    return float(reached.iloc[0]) if len(reached) else math.nan


def summarize(runs: pd.DataFrame, curves: pd.DataFrame, recipe) -> pd.DataFrame:
    """One row per algorithm and budget: means and standard errors over seeds, and the NFE to match best-of-N's
    mean reward at its largest budget (module docstring)."""
    largest = int(runs[runs["algorithm"] == "best_of_n"]["nfe_budget"].max())
    target = float(runs[(runs["algorithm"] == "best_of_n") & (runs["nfe_budget"] == largest)]["reward"].mean())
    rows = []
    for (algorithm, budget), group in runs.groupby(["algorithm", "nfe_budget"], sort=False):
        rows.append({
            "algorithm": algorithm, "nfe_budget": budget, "seeds": len(group),
            "reward": group["reward"].mean(), "reward_se": _se(group["reward"]),
            "fluency": group["fluency"].mean(), "fluency_se": _se(group["fluency"]),
            "best_fluency": group["best_fluency"].mean(), "best_fluency_se": _se(group["best_fluency"]),
            "reward_mean": group["reward_mean"].mean(), "distinct_2": group["distinct_2"].mean(),
            "floored": group["floored"].mean(), "nfe_per_prompt": group["nfe"].mean() / group["prompts"].mean(),
            "oracle_calls": group["oracle_calls"].mean(), "fluency_rows": group["fluency_rows"].mean(),
            "seconds": group["seconds"].mean(),
        })  # fmt: skip
    table = pd.DataFrame(rows)
    match = {}
    returned = {a: arm_algorithm(a, recipe) in CURVE_IS_RETURNED for a in table["algorithm"].unique()}
    table["curve_returned"] = table["algorithm"].map(returned)
    for algorithm in table["algorithm"].unique():
        by_curve = first_reaching(curves[curves["algorithm"] == algorithm], target) if returned[algorithm] else math.nan
        mine = table[(table["algorithm"] == algorithm) & (table["reward"] >= target - 1e-12)]
        by_budget = float(mine["nfe_budget"].min()) if len(mine) else math.nan
        found = [v for v in (by_curve, by_budget) if not math.isnan(v)]
        match[algorithm] = (by_curve, by_budget, min(found) if found else math.nan)
    table["bon_target"] = target
    table["nfe_to_match_curve"] = table["algorithm"].map(lambda a: match[a][0])
    table["nfe_to_match_budget"] = table["algorithm"].map(lambda a: match[a][1])
    table["nfe_to_match"] = table["algorithm"].map(lambda a: match[a][2])
    table["fraction_of_bon"] = table["nfe_to_match"] / largest
    return table


def match_along_baseline(curves: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """For best-of-N budgets B at :data:`BASELINE_FRACTIONS` of its largest: best-of-N's mean anytime reward at B and
    the first NFE at which each other returned-curve algorithm's mean anytime curve reaches it (NaN if it never
    does), with that NFE as a fraction of B. ``curves``: :func:`_mean_curves`; ``table``: :func:`summarize`'s."""
    bon = curves[curves["algorithm"] == "best_of_n"]
    largest = float(table[table["algorithm"] == "best_of_n"]["nfe_budget"].max())
    returned = table.groupby("algorithm", sort=False)["curve_returned"].first()
    rows = []
    for fraction in BASELINE_FRACTIONS:
        budget = largest * fraction
        upto = bon[bon["nfe"] <= budget + 1e-9]["reward"]
        target = float(upto.iloc[-1]) if len(upto) else -math.inf
        if not math.isfinite(target):  # best-of-N has not scored every prompt by then
            continue
        for algorithm, is_returned in returned.items():
            if algorithm == "best_of_n" or not is_returned:
                continue
            nfe = first_reaching(curves[curves["algorithm"] == algorithm], target)
            rows.append({"bon_nfe": budget, "bon_reward": target, "algorithm": algorithm, "nfe_to_match": nfe,
                         "fraction_of_bon": nfe / budget})  # fmt: skip
    columns = ["bon_nfe", "bon_reward", "algorithm", "nfe_to_match", "fraction_of_bon"]
    return pd.DataFrame(rows, columns=columns)


def _fmt(value: float, se: float | None = None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    text = f"{value:.{digits}f}"
    return text if se is None or math.isnan(se) else f"{text} ({se:.{digits}f})"


def markdown(table: pd.DataFrame, recipe, seeds: list[int], scaling: pd.DataFrame | None = None) -> str:
    """The README's tables: reward and fluency per algorithm and budget, the NFE to match best-of-N, and (with
    ``scaling``, :func:`match_along_baseline`'s) that NFE along best-of-N's anytime curve."""
    lines = [
        f"{recipe.name}: {recipe.model.name}, {len(seeds)} seeds ({', '.join(map(str, seeds))}), mean (standard error)"
        " over seeds of the per-prompt figures averaged over prompts",
        "",
        "| algorithm | NFE per prompt | best reward | fluency (returned) | fluency (best) | distinct-2 | oracle calls "
        "| fluency rows | wall s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in table.itertuples():
        lines.append(
            f"| {row.algorithm} | {row.nfe_budget:,} | {_fmt(row.reward, row.reward_se)} | "
            f"{_fmt(row.fluency, row.fluency_se, 2)} | {_fmt(row.best_fluency, row.best_fluency_se, 2)} | "
            f"{_fmt(row.distinct_2, None, 2)} | {row.oracle_calls:,.0f} | {row.fluency_rows:,.0f} | {row.seconds:.0f} |"
        )
    largest = int(table[table["algorithm"] == "best_of_n"]["nfe_budget"].max())
    target = float(table["bon_target"].iloc[0])
    lines += [
        "",
        f"NFE per prompt to reach best-of-N's mean best reward at {largest:,} NFE ({target:.3f}):",
        "",
        "| algorithm | anytime curve (runs at the largest budget; returned designs only) | smallest budget reaching it "
        "| NFE to match | "
        "of best-of-N's NFE |",
        "| --- | --- | --- | --- | --- |",
    ]
    for algorithm, row in table.groupby("algorithm", sort=False).first().iterrows():
        lines.append(
            f"| {algorithm} | {_fmt(row.nfe_to_match_curve, None, 0)} | {_fmt(row.nfe_to_match_budget, None, 0)} | "
            f"{_fmt(row.nfe_to_match, None, 0)} | {_fmt(row.fraction_of_bon, None, 2)} |"
        )
    if scaling is not None and len(scaling):
        lines += [
            "",
            "NFE per prompt to reach best-of-N's mean anytime reward at a third, two thirds and all of its largest "
            "budget (anytime curves; fraction of that budget):",
            "",
            "| best-of-N NFE | its reward | " + " | ".join(scaling["algorithm"].unique()) + " |",
            "| --- | --- | " + " | ".join("---" for _ in scaling["algorithm"].unique()) + " |",
        ]
        for (budget, reward), group in scaling.groupby(["bon_nfe", "bon_reward"], sort=False):
            cells = [f"{_fmt(r.nfe_to_match, None, 0)} ({_fmt(r.fraction_of_bon, None, 2)})"
                     for r in group.itertuples()]  # fmt: skip
            lines.append(f"| {budget:,.0f} | {reward:.3f} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _plot(path: Path, table: pd.DataFrame, curves: pd.DataFrame, title: str) -> None:
    """Reward against NFE (mean anytime curves, and each budget's mean with its standard error) and fluency."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from seqtree import rundir

    figure, axes = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    for index, (algorithm, group) in enumerate(table.groupby("algorithm", sort=False)):
        color = f"C{index}"
        curve = curves[curves["algorithm"] == algorithm]
        shown = np.isfinite(curve["reward"]) & bool(group["curve_returned"].iloc[0])
        axes[0].plot(curve["nfe"][shown], curve["reward"][shown], color=color, alpha=0.5)
        axes[0].errorbar(group["nfe_budget"], group["reward"], yerr=group["reward_se"], fmt="o", color=color,
                         label=algorithm, capsize=3)  # fmt: skip
        axes[1].errorbar(group["nfe_budget"], group["fluency"], yerr=group["fluency_se"], fmt="o-", color=color,
                         label=algorithm, capsize=3)  # fmt: skip
    axes[0].axhline(float(table["bon_target"].iloc[0]), color="k", linestyle=":", linewidth=1)
    axes[0].set_ylabel("best reward, mean over prompts")
    axes[1].set_ylabel("fluency of returned completions (-bits/byte)")
    for axis in axes:
        axis.set_xlabel("NFE per prompt")
        axis.grid(alpha=0.3)
        axis.legend(fontsize="small")
    figure.suptitle(title)
    rundir.save_figure(figure, path)


FINETUNE_COLUMNS = [
    "round", "eval_reward_mean", "eval_reward_top10", "eval_reward_best", "eval_fluency_mean", "eval_fluency_floored",
    "eval_distinct_2", "pretrained_bits_per_token", "search_best", "search_nfe", "buffer_rows", "buffer_ess",
    "wdce_loss",
]  # fmt: skip


def finetune(recipe: Path, out: Path, *, rounds: int, overrides: list[str] | None = None) -> pd.DataFrame:
    """``seqtree finetune`` of the recipe for ``rounds`` rounds into ``out/finetune`` (resumed when it exists) and
    its per-round table (module docstring)."""
    from seqtree.finetune import run_finetune
    from seqtree.recipe import load_design_recipe

    parsed = load_design_recipe(recipe, [*(overrides or []), f"finetune.rounds={rounds}"])
    folder = out / "finetune"
    run_finetune(parsed, out=folder, resume=(folder / "progress.json").is_file(), log=print)
    metrics = pd.read_csv(folder / "metrics.csv")
    table = metrics[[c for c in FINETUNE_COLUMNS if c in metrics]]
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "prompts_finetune.csv", index=False)
    cfg, samples = parsed.finetune, parsed.finetune.eval_samples
    source = (parsed.search.algorithm if cfg.buffer_from == "search"
              else "the on-policy baseline (plain samples of the policy, best-of-N)")  # fmt: skip
    lines = [
        f"{parsed.name}: {parsed.model.name}, {source} at {parsed.budget.nfe} NFE per prompt per "
        f"round, alpha {cfg.alpha}, {cfg.steps_per_round} WDCE steps per round at learning rate {cfg.lr}; "
        f"{samples} plain samples per prompt, means over prompts (round 0: the pretrained model)",
        "",
        "| round | plain samples: mean reward | top 10 % | fluency | below min_fluency | distinct-2 "
        "| search: mean best | buffer rows (ESS) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in metrics.itertuples():
        search = "-" if row.round == 0 else f"{row.search_best:.3f}"
        buffer = "-" if row.round == 0 else f"{row.buffer_rows:.0f} ({row.buffer_ess:.0f})"
        lines.append(
            f"| {row.round} | {row.eval_reward_mean:.3f} | {row.eval_reward_top10:.3f} | {row.eval_fluency_mean:.2f} "
            f"| {row.eval_fluency_floored:.2f} | {row.eval_distinct_2:.2f} | {search} | {buffer} |"
        )
    (out / "prompts_finetune.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return table
