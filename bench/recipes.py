"""Wall time of every shipped design recipe and its split between denoiser, oracle and search engine.

``python -m bench recipes --out DIR`` runs each ``recipes/*.yaml`` as shipped (full budget) into DIR/<recipe> and
writes ``recipes.csv``: wall seconds, NFE, oracle calls, best reward, and the shares of the search time spent in the
denoiser forward, in the oracle and in the engine (everything else: tree bookkeeping, sampling, decoding).

``python -m bench recipes --out DIR --against-sampling [--seeds 5]`` runs each recipe's own search and best-of-N
(batch 64, as many samples as the NFE allows) at the recipe's NFE budget without its time limit, over seeds 0 .. n-1,
and writes ``against_sampling.csv``: the mean best reward of each with its standard error over seeds, whether the
recipe's search is ahead by more than the two standard errors combined, and the NFE at which the mean best-so-far
curve of the recipe's search first reaches best-of-N's final mean (issue 12's bar: at most half the budget).
``--algorithms all`` (or names) adds a row per algorithm at its own defaults (one-pass ones sized to the budget).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd


def run(out: Path, recipes: list[Path]) -> pd.DataFrame:
    from seqtree.design import run_design
    from seqtree.recipe import load_design_recipe

    rows = []
    for path in recipes:
        recipe = load_design_recipe(path)
        run = run_design(recipe, out=out / path.stem)
        s = run.summary
        split = s["time_split"]
        total = max(sum(split.values()), 1e-9)
        rows.append({
            "recipe": path.name, "algorithm": s["algorithm"], "seconds": s["seconds"], "nfe": s["nfe"],
            "oracle_calls": s["oracle_calls"], "best_reward": s["best_reward"], "stop": s["stop_reason"],
            "denoiser_share": split["denoiser_seconds"] / total, "oracle_share": split["oracle_seconds"] / total,
            "engine_share": split["engine_seconds"] / total,
        })  # fmt: skip
        print(rows[-1], flush=True)
    return _write_table(rows, out / "recipes.csv", "%.3g")


def _write_table(rows: list[dict], path: Path, float_format: str) -> pd.DataFrame:
    """The rows as a table, written to ``path`` (CSV) and printed."""
    table = pd.DataFrame(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(path, index=False)
    print(table.to_string(index=False, float_format=float_format))
    return table


BEST_OF_N = "{algorithm: best_of_n, batch_size: 64, num_samples: 10000000}"


def against_sampling(out: Path, recipes: list[Path], seeds: int, algorithms: list[str] | None = None) -> pd.DataFrame:
    """Each recipe's search, and each of ``algorithms`` (every registered one for ``["all"]``) at its own defaults,
    against best-of-N at the recipe's NFE, ``seeds`` seeds each (see the module docstring). A run's folder is reused
    when its summary exists, so an interrupted benchmark continues where it stopped."""
    from seqtree.recipe import load_design_recipe
    from seqtree.search.registry import ALGORITHMS

    names = list(ALGORITHMS) if algorithms == ["all"] else list(algorithms or [])
    rows = []
    for path in recipes:
        shipped = load_design_recipe(path)
        if shipped.budget.nfe is None:
            print(f"{path.name}: no budget.nfe, skipped", flush=True)
            continue
        arms = {f"{shipped.search.algorithm} (recipe)": []}
        arms |= {name: [f"search={{algorithm: {name}}}"] for name in names if name != "best_of_n"}
        baseline = [_final_curve(path, seed, out / path.stem / "best_of_n", [f"search={BEST_OF_N}"])
                    for seed in range(seeds)]  # fmt: skip
        for arm, extra in arms.items():
            folder = out / path.stem / ("search" if arm.endswith("(recipe)") else arm)
            curves = [_final_curve(path, seed, folder, extra) for seed in range(seeds)]
            rows.append(_compare(path.name, arm, int(shipped.budget.nfe), {"search": curves, "best_of_n": baseline}))
            print(rows[-1], flush=True)
    return _write_table(rows, out / "against_sampling.csv", "%.4g")


def _final_curve(path: Path, seed: int, folder: Path, extra: list[str]) -> pd.DataFrame:
    """The anytime curve (NFE, best reward) of one run of ``path`` with ``extra`` overrides, at the recipe's NFE
    without its time limit; read back when ``folder/seed<seed>`` already holds a finished run."""
    from seqtree.design import run_design
    from seqtree.recipe import load_design_recipe

    run_dir = folder / f"seed{seed}"
    if not (run_dir / "summary.json").is_file():
        recipe = load_design_recipe(path, [f"seed={seed}", "budget.seconds=null", *extra])
        run_design(recipe, out=run_dir)
    return pd.read_csv(run_dir / "curve.csv")[["nfe", "best_reward"]]


def _compare(recipe: str, algorithm: str, nfe: int, runs: dict[str, list[pd.DataFrame]]) -> dict:
    """Means and standard errors of the final best rewards, and when the search's mean curve reaches best-of-N's."""
    finals = {arm: np.array([float(c["best_reward"].max()) for c in curves]) for arm, curves in runs.items()}
    mean = {arm: float(v.mean()) for arm, v in finals.items()}
    se = {arm: float(v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else math.nan for arm, v in finals.items()}
    grid = np.linspace(0, nfe, 101)
    curve = np.mean([_best_by(c, grid) for c in runs["search"]], axis=0)
    reached = grid[curve >= mean["best_of_n"] - 1e-12]
    return {
        "recipe": recipe, "algorithm": algorithm, "nfe": nfe, "seeds": len(finals["search"]),
        "search_mean": mean["search"], "search_se": se["search"],
        "best_of_n_mean": mean["best_of_n"], "best_of_n_se": se["best_of_n"],
        "ahead_beyond_se": mean["search"] - mean["best_of_n"] > se["search"] + se["best_of_n"],
        "nfe_to_best_of_n_final": float(reached[0]) if reached.size else math.nan,
    }  # fmt: skip


def _best_by(curve: pd.DataFrame, grid: np.ndarray) -> np.ndarray:
    """The best reward found with at most each NFE of ``grid`` (-inf before the first scored design)."""
    nfe, best = curve["nfe"].to_numpy(), np.maximum.accumulate(curve["best_reward"].to_numpy())
    index = np.searchsorted(nfe, grid, side="right") - 1
    return np.where(index >= 0, best[np.clip(index, 0, None)], -np.inf)
