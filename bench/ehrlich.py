"""Ehrlich holo benchmark: every search algorithm at equal NFE budgets, and holo's genetic algorithm at equal oracle
calls, on the benchmark Ehrlich functions with a denoiser pretrained on each function's feasible sequences.

The test functions are Stanton et al. (2024), "Closed-Form Test Functions for Biophysical Sequence Design"
(arXiv:2407.00236), from pytorch-holo; the instances are ``seqtree.oracles.ehrlich.BENCHMARK_INSTANCES``
(L=32 with c=2, k=4 and L=128 with c=4, k=4; v=20; seed 0), and the priors are the shipped ``ehrlich-l32-tiny``
and ``ehrlich-l128-tiny`` checkpoints, trained by ``seqtree train`` on draws of each function's own DMP
(``data/ehrlich/prepare.py``), so the prior knows the feasible set and nothing about the motifs.

Protocol (per instance and seed):

- every seqtree algorithm gets the same budget of ``--nfe`` denoiser rows (no oracle limit); anytime algorithms
  (best-of-N, MCTS, DTS, DTS*) simply run until it is spent. The one-pass algorithms (SVDD, SMC, beam) are sized to
  it: a pilot pass at a small size measures the NFE of one pass, and the size is scaled so one pass uses about 90%
  of the budget (the budget is still enforced);
- the anytime curve of each run gives the best reward against NFE and against oracle calls; ``nfe_to_bon`` is the
  NFE at which a run first reached best-of-N's final best reward of the same seed, ``nfe_to_optimum`` the NFE at
  which it reached 1.0;
- holo's ``DiscreteEvolution`` (its own genetic algorithm, started as in holo's example from the function's
  ``initial_solution``) gets as many oracle calls as the most oracle-hungry seqtree run on that instance and seed.
  The GA needs no denoiser, so the fair axis is oracle calls.

Writes ``ehrlich.csv`` (one row per run), ``ehrlich_curves.csv``, ``ehrlich_prior.csv`` (feasible fraction and
rewards of 256 prior samples) and ``ehrlich.png`` under ``--out`` and prints the
summary table (grouped by instance, branching schedule and algorithm; ``optimum_runs`` counts runs reaching 1.0).
``--quick`` is a smoke run (tiny budgets, one seed); ``--branch-every`` changes the branching schedule of every
algorithm and ``--ga-calls`` gives the GA a fixed oracle-call budget, e.g. for a study of how often the optimum is
reached over many seeds (README, "Reaching the optimum on ehrlich-l32").
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

CHECKPOINTS = {"ehrlich-l32": "ehrlich-l32-tiny", "ehrlich-l128": "ehrlich-l128-tiny"}
ONE_PASS = {"svdd": "num_particles", "smc": "num_particles", "beam": "beam_width"}
GA_NAME = "holo_ga"


@dataclass(frozen=True)
class Setting:
    """The search problem's decoding schedule and every algorithm's parameters for an instance of length L."""

    num_steps: int
    branch_every: int
    params: dict[str, dict]


def setting_for(length: int, branch_every: int | None = None) -> Setting:
    """Parameters chosen once for rewards in [0, 1] (Ehrlich), not per seed.

    The greedy searches were picked in a small pilot sweep on ehrlich-l32, seed 0, 50k NFE (recorded in the
    closing note of issue 3): DTS* with slower widening (C=1, a=0.5 instead of 2, 0.75, so the tree deepens instead
    of re-sampling the root) and UCT weight 0.1; MCTS with K=8 children and exploration 0.05, mean backup. The
    sampling algorithms (DTS, SMC, best-of-N weights) keep the paper defaults and target p(x) exp(r(x) / alpha) at
    alpha = 0.05, a strong tilt for rewards quantised in steps of 1/k^c. ``branch_every`` overrides the branching
    schedule (default: 8 branch points per trajectory), for every algorithm alike."""
    num_steps = min(length, 64)
    if branch_every is not None and not 1 <= branch_every <= num_steps:
        raise ValueError(f"branch_every must lie in [1, {num_steps}] for length {length}, got {branch_every}")
    never = 10**9  # anytime algorithms stop on the budget, not on their own count
    return Setting(
        num_steps=num_steps,
        branch_every=branch_every or max(1, num_steps // 8),
        params={
            "best_of_n": {"num_samples": never, "batch_size": 64, "alpha": 0.05},
            "mcts": {"num_children": 8, "exploration": 0.05, "backup": "mean", "leaves_per_iteration": 4,
                     "tree_capacity": 4096, "num_designs": 16},
            "dts": {"alpha": 0.05, "leaves_per_iteration": 8, "tree_capacity": 4096},
            "dts_star": {"alpha": 0.05, "exploration": 0.1, "backup": "max", "leaves_per_iteration": 8,
                         "widening_c": 1.0, "widening_a": 0.5, "tree_capacity": 4096},
            "svdd": {"num_particles": 4, "num_candidates": 8, "alpha": 0.0},
            "smc": {"num_particles": 16, "alpha": 0.05, "potential": "max", "ess_threshold": 0.5},
            "beam": {"beam_width": 4, "branching": 4},
        },
    )  # fmt: skip


def build_problem(instance: str, setting: Setting):
    """The search problem of a benchmark instance: its shipped prior, the Ehrlich oracle, an all-masked root."""
    from seqtree.generate import initial_tokens
    from seqtree.models.loading import load_model
    from seqtree.oracles.ehrlich import BENCHMARK_INSTANCES, EhrlichOracle
    from seqtree.search import SearchProblem

    params = BENCHMARK_INSTANCES[instance]
    model = load_model(CHECKPOINTS[instance])
    oracle = EhrlichOracle(**params)
    root = initial_tokens(model.tokenizer, length=params["dim"])
    problem = SearchProblem(
        model.denoiser, model.diffusion, model.tokenizer, oracle, root,
        num_steps=setting.num_steps, branch_every=setting.branch_every,
    )  # fmt: skip
    return problem, oracle


def best_within(curve: pd.DataFrame, limit: float, axis: str = "nfe") -> float:
    """The best reward found with at most ``limit`` of ``axis`` spent (NaN if nothing was scored by then)."""
    part = curve[curve[axis] <= limit]["best_reward"]
    return float(part.max()) if len(part) else math.nan


def prior_check(problem, seed: int = 0, num: int = 256) -> dict:
    """What the prior alone produces: the feasible fraction and the rewards of ``num`` samples (distinct ones
    scored once). A prior that knows the feasible set gives ~100% feasible and rewards far below 1.0."""
    from seqtree.oracles.base import FLOOR
    from seqtree.search import Budget, run_search

    result = run_search(
        "best_of_n", problem, Budget(), generator=torch.Generator().manual_seed(seed), num_samples=num, batch_size=64
    )
    scores = result.designs.scores
    feasible = scores > FLOOR
    return {
        "samples": num, "distinct": len(scores), "feasible_fraction": float(feasible.double().mean()),
        "mean_reward_feasible": float(scores[feasible].mean()) if feasible.any() else math.nan,
        "max_reward": float(scores.max()),
    }  # fmt: skip


def first_reaching(curve: pd.DataFrame, target: float, axis: str = "nfe") -> float:
    """The ``axis`` value of the first curve point whose best reward reaches ``target`` (NaN if none)."""
    hit = curve[curve["best_reward"] >= target - 1e-9]
    return float(hit[axis].iloc[0]) if len(hit) else math.nan


def sized_params(algorithm: str, problem, base: dict, nfe: int, seed: int) -> dict:
    """Scale a one-pass algorithm's size so one pass spends about 90% of ``nfe`` (pilot pass at the base size)."""
    from seqtree.search import Budget, run_search

    key = ONE_PASS[algorithm]
    pilot = run_search(algorithm, problem, Budget(), generator=torch.Generator().manual_seed(10_000 + seed), **base)
    size = max(int(base[key]), int(base[key] * 0.9 * nfe / max(pilot.nfe, 1)))
    return {**base, key: size}


def run_seqtree(algorithm: str, problem, params: dict, nfe: int, seed: int) -> tuple[dict, pd.DataFrame]:
    from seqtree.search import Budget, run_search

    start = time.perf_counter()
    result = run_search(algorithm, problem, Budget(nfe=nfe), generator=torch.Generator().manual_seed(seed), **params)
    curve = result.curve_dataframe()[["nfe", "oracle_calls", "best_reward", "mean_reward"]]
    row = {
        "algorithm": algorithm, "nfe": result.nfe, "oracle_calls": result.oracle_calls,
        "seconds": time.perf_counter() - start, "best_reward": float(curve["best_reward"].max()),
        "stop": result.stop_reason, "size": str({k: params[k] for k in ONE_PASS.values() if k in params}),
    }  # fmt: skip
    return row, curve


def run_holo_ga(oracle, oracle_calls: int, seed: int, num_particles: int = 128) -> tuple[dict, pd.DataFrame]:
    """holo's ``DiscreteEvolution`` on the same function, ``oracle_calls`` evaluations (whole generations).

    As in holo's README example: one parameter holding ``initial_solution()``, the loss is the negated value
    (infeasible -> +inf), one generation per ``step``. The mutation probability is 1/L (one expected mutation per
    child, as in a standard GA); recombination and survival keep holo's defaults."""
    from holo.optim import DiscreteEvolution

    fn = oracle.fn
    calls, best, rows = 0, -math.inf, []
    start = time.perf_counter()
    with torch.random.fork_rng():  # holo draws from the global generator
        torch.manual_seed(seed)
        solution = torch.nn.Parameter(fn.initial_solution().float())
        optimizer = DiscreteEvolution(
            [solution], vocab=list(range(fn.num_states)), mutation_prob=1.0 / fn.dim, num_particles=num_particles
        )

        def closure(particles: list[torch.Tensor]) -> torch.Tensor:
            nonlocal calls, best
            values = fn.evaluate_true(particles[0].long())
            calls += len(values)
            best = max(best, float(values.max()))
            rows.append(
                (0, calls, best, float(values[values > -math.inf].mean()) if (values > -math.inf).any() else math.nan)
            )
            return -values

        while calls + num_particles <= oracle_calls:
            optimizer.step(closure)
    curve = pd.DataFrame(rows, columns=["nfe", "oracle_calls", "best_reward", "mean_reward"])
    row = {"algorithm": GA_NAME, "nfe": 0, "oracle_calls": calls, "seconds": time.perf_counter() - start,
           "best_reward": best, "stop": "oracle_calls", "size": str({"num_particles": num_particles})}  # fmt: skip
    return row, curve


def run(
    out: Path,
    *,
    instances: list[str] | None = None,
    nfe: dict[str, int] | None = None,
    seeds: int = 3,
    algorithms: list[str] | None = None,
    quick: bool = False,
    branch_every: int | None = None,
    ga_calls: int | None = None,
    log: Callable[[str], None] = print,
) -> pd.DataFrame:
    """Run the protocol of the module docstring; ``ga_calls`` gives holo's GA a fixed oracle-call budget instead
    of the most any seqtree run used (e.g. to ask whether it reaches the optimum with far more calls)."""
    from seqtree.search import ALGORITHMS

    out.mkdir(parents=True, exist_ok=True)
    instances = instances or list(CHECKPOINTS)
    budgets = nfe or ({"ehrlich-l32": 2000, "ehrlich-l128": 2000} if quick else DEFAULT_NFE)
    algorithms = algorithms or ["best_of_n", *[a for a in ALGORITHMS if a != "best_of_n"]]
    seeds = 1 if quick else seeds
    rows, curves, priors = [], [], []
    for instance in instances:
        length = int(instance.rsplit("l", 1)[1])
        setting = setting_for(length, branch_every)
        problem, oracle = build_problem(instance, setting)
        budget = budgets[instance]
        prior = prior_check(problem)
        priors.append({"instance": instance, **prior})
        log(f"{instance} prior: {prior}")
        for seed in range(seeds):
            runs = []
            for algorithm in algorithms:
                params = setting.params[algorithm]
                if algorithm in ONE_PASS:
                    params = sized_params(algorithm, problem, params, budget, seed)
                row, curve = run_seqtree(algorithm, problem, params, budget, seed)
                runs.append((row, curve))
                log(f"{instance} seed {seed} {algorithm}: best {row['best_reward']:.3f}, nfe {row['nfe']}, "
                    f"oracle calls {row['oracle_calls']}, {row['seconds']:.1f} s")  # fmt: skip
            calls = ga_calls or max(row["oracle_calls"] for row, _ in runs)
            runs.append(run_holo_ga(oracle, calls, seed))
            log(f"{instance} seed {seed} {GA_NAME}: best {runs[-1][0]['best_reward']:.3f} at {calls} oracle calls")
            for row, curve in runs:
                row.update(instance=instance, seed=seed, nfe_budget=budget, branch_every=setting.branch_every)
                rows.append(row)
                curves.append(curve.assign(
                    instance=instance, seed=seed, algorithm=row["algorithm"], branch_every=setting.branch_every
                ))
    table = pd.DataFrame(rows)
    curve_table = pd.concat(curves, ignore_index=True)
    pd.DataFrame(priors).to_csv(out / "ehrlich_prior.csv", index=False)
    return write_report(out, table, curve_table, log)


def derive(table: pd.DataFrame, curves: pd.DataFrame) -> pd.DataFrame:
    """Add the comparison columns to the per-run rows, from each run's anytime curve.

    ``best_of_n_final`` is best-of-N's final best reward on the same instance, branching schedule and seed;
    ``nfe_to_bon`` / ``calls_to_bon`` where a run first reached it; ``best_at_fifth`` the best reward within a fifth
    of the NFE budget; ``nfe_to_optimum`` / ``calls_to_optimum`` where a run first reached 1.0 (NaN: never)."""
    table = table.copy()
    run_keys = [k for k in ("instance", "branch_every", "seed") if k in table and k in curves]  # one run's setting
    bon = table[table["algorithm"] == "best_of_n"].set_index(run_keys)["best_reward"]
    derived = []
    for _, row in table.iterrows():
        key = tuple(row[k] for k in run_keys)
        same_run = np.logical_and.reduce([curves[k] == v for k, v in zip(run_keys, key)])
        curve = curves[same_run & (curves["algorithm"] == row["algorithm"])]
        target = float(bon.get(key if len(key) > 1 else key[0], math.nan))
        searched = row["algorithm"] != GA_NAME
        derived.append({
            "best_of_n_final": target,
            "best_at_fifth": best_within(curve, row["nfe_budget"] / 5) if searched else math.nan,
            "nfe_to_bon": first_reaching(curve, target, "nfe") if searched else math.nan,
            "calls_to_bon": first_reaching(curve, target, "oracle_calls"),
            "nfe_to_optimum": first_reaching(curve, 1.0, "nfe") if searched else math.nan,
            "calls_to_optimum": first_reaching(curve, 1.0, "oracle_calls"),
        })  # fmt: skip
    table = pd.concat([table.drop(columns=list(derived[0]), errors="ignore"), pd.DataFrame(derived)], axis=1)
    table["nfe_fraction_to_bon"] = table["nfe_to_bon"] / table["nfe_budget"]
    return table


def write_report(
    out: Path, table: pd.DataFrame, curves: pd.DataFrame, log: Callable[[str], None] = print
) -> pd.DataFrame:
    """Derive the comparison columns, write ``ehrlich.csv``, ``ehrlich_curves.csv`` and ``ehrlich.png``, log the
    summary. Also used to merge the results of separate runs (``--report``)."""
    out.mkdir(parents=True, exist_ok=True)
    table = derive(table, curves)
    table.to_csv(out / "ehrlich.csv", index=False)
    curves.to_csv(out / "ehrlich_curves.csv", index=False)
    plot(curves, out / "ehrlich.png")
    log(summary(table).to_string(index=False, float_format="%.3g"))
    return table


def merge_reports(out: Path, sources: list[Path], log: Callable[[str], None] = print) -> pd.DataFrame:
    """One report from the output folders of several runs (e.g. one per instance, run on separate cores)."""
    read = lambda name: pd.concat([pd.read_csv(src / name) for src in sources], ignore_index=True)  # noqa: E731
    out.mkdir(parents=True, exist_ok=True)
    if all((src / "ehrlich_prior.csv").is_file() for src in sources):
        read("ehrlich_prior.csv").to_csv(out / "ehrlich_prior.csv", index=False)
    tables, curves = [], []
    for src in sources:
        table, curve = pd.read_csv(src / "ehrlich.csv"), pd.read_csv(src / "ehrlich_curves.csv")
        if "branch_every" in table and "branch_every" not in curve and table["branch_every"].nunique() == 1:
            curve = curve.assign(branch_every=table["branch_every"].iloc[0])  # curves written before the column
        tables.append(table)
        curves.append(curve)
    return write_report(out, pd.concat(tables, ignore_index=True), pd.concat(curves, ignore_index=True), log)


DEFAULT_NFE = {"ehrlich-l32": 50_000, "ehrlich-l128": 60_000}


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """Mean over seeds per instance and algorithm. ``bon_in_fifth_runs`` counts the runs that reached best-of-N's
    final best reward (same seed) within a fifth of the NFE budget, ``optimum_runs`` those that reached 1.0."""
    table = table.assign(bon_in_fifth=table["nfe_to_bon"] <= table["nfe_budget"] / 5)
    keys = ["instance", "branch_every", "algorithm"] if "branch_every" in table else ["instance", "algorithm"]
    grouped = table.groupby(keys, sort=False, dropna=False)
    return grouped.agg(
        best_reward=("best_reward", "mean"), best_at_fifth=("best_at_fifth", "mean"), nfe=("nfe", "mean"),
        oracle_calls=("oracle_calls", "mean"), seconds=("seconds", "mean"),
        nfe_fraction_to_bon=("nfe_fraction_to_bon", "mean"),
        bon_in_fifth_runs=("bon_in_fifth", "sum"), optimum_runs=("calls_to_optimum", lambda s: int(s.notna().sum())),
        runs=("seed", "count"),
    ).reset_index()  # fmt: skip


def _step_curve(curve: pd.DataFrame, axis: str, grid: np.ndarray) -> np.ndarray:
    """Best reward so far at each grid value (NaN before the first scored sequence)."""
    xs, ys = curve[axis].to_numpy(), np.maximum.accumulate(curve["best_reward"].to_numpy())
    index = np.searchsorted(xs, grid, side="right") - 1
    return np.where(index >= 0, ys[np.clip(index, 0, None)], np.nan)


def plot(curves: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    instances = list(dict.fromkeys(curves["instance"]))
    fig, axes = plt.subplots(len(instances), 2, figsize=(11, 4 * len(instances)), squeeze=False)
    for row, instance in enumerate(instances):
        part = curves[curves["instance"] == instance]
        for col, axis in enumerate(["nfe", "oracle_calls"]):
            ax = axes[row, col]
            grid = np.linspace(0, max(float(part[axis].max()), 1.0), 200)
            for algorithm, runs in part.groupby("algorithm", sort=False):
                if axis == "nfe" and algorithm == GA_NAME:
                    continue
                with warnings.catch_warnings():  # grid points before any run's first score stay NaN
                    warnings.simplefilter("ignore", RuntimeWarning)
                    ys = np.nanmean([_step_curve(c, axis, grid) for _, c in runs.groupby("seed")], axis=0)
                ax.plot(grid, ys, label=algorithm)
            ax.set_xlabel("NFE (denoiser rows)" if axis == "nfe" else "oracle calls")
            ax.set_ylabel("best reward (mean over seeds)")
            ax.set_title(instance)
            ax.set_ylim(0, 1.05)
            ax.grid(alpha=0.3)
        axes[row, 1].legend(fontsize=8)  # the oracle-call panel also shows holo's GA
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
