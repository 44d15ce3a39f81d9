"""Ehrlich holo benchmark: every search algorithm at equal NFE budgets, and holo's genetic algorithm at equal oracle
calls, on the benchmark Ehrlich functions with a denoiser pretrained on each function's feasible sequences.

The test functions are Stanton et al. (2024), "Closed-Form Test Functions for Biophysical Sequence Design"
(arXiv:2407.00236), from pytorch-holo; the instances are ``seqtree.oracles.ehrlich.BENCHMARK_INSTANCES``
(L=32 with c=2, k=4 and L=128 with c=4, k=4; v=20; seed 0), and the priors are the shipped ``ehrlich-l32-tiny``
and ``ehrlich-l128-tiny`` checkpoints, trained by ``seqtree train`` on draws of each function's own DMP
(``data/ehrlich/prepare.py``), so the prior knows the feasible set and nothing about the motifs. Any other instance
is given by its parameters (``--instances v=32,L=64,c=2,k=4,seed=1``); its prior is prepared and trained the same
way under ``OUT/priors/<name>/`` (``seqtree ehrlich prepare``, the shipped priors' recipe) before the runs.

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

Two optional arms:

- ``--ga-sweep``: instead of the single GA, holo's ``DiscreteEvolution`` at every setting of :data:`GA_SWEEP`
  (particles 128 / 1024, survival quantile 0.5 / 0.01, recombination at holo's default or 1.1/L), all at the same
  oracle calls; ``ehrlich_ga_best.csv`` names the best setting per instance (:func:`best_ga_settings`);
- ``--finetune``: search + fine-tuning rounds (``seqtree.finetune.run_finetune``, TR2-D2 WDCE) on
  ``recipes/ehrlich.yaml``'s settings, stopped once the best reward reaches 1.0, one run per instance and seed under
  ``OUT/finetune/<instance>/seed<k>/`` (algorithm ``<search>+finetune``; its anytime curve spans all rounds, every
  oracle call counted: searches and the policy evaluations).

``oracle_calls_to_1`` / ``calls_to_optimum`` is the oracle-call count of the first curve point at 1.0 (NaN: never);
the summary gives per instance and algorithm the runs reaching 1.0, the median calls to reach it over those runs,
the mean best reward and the median wall seconds.
"""

from __future__ import annotations

import json
import logging
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from seqtree.oracles.ehrlich_instances import parse_instance

CHECKPOINTS = {"ehrlich-l32": "ehrlich-l32-tiny", "ehrlich-l128": "ehrlich-l128-tiny"}
ONE_PASS = {"svdd": "num_particles", "smc": "num_particles", "beam": "beam_width"}
GA_NAME = "holo_ga"
FINETUNE_SUFFIX = "+finetune"


def finetune_name(search: str) -> str:
    """The fine-tuning arm's algorithm label: the search it runs each round, then ``+finetune``."""
    return f"{search}{FINETUNE_SUFFIX}"


# The fine-tuning arm's recipe: the checkout's (bench/ sits beside recipes/), else ./recipes/ehrlich.yaml where the
# package is installed from a wheel
_CHECKOUT_RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "ehrlich.yaml"
RECIPE = _CHECKOUT_RECIPE if _CHECKOUT_RECIPE.is_file() else Path("recipes") / "ehrlich.yaml"


def parse_search_set(items: list[str]) -> dict[str, dict]:
    """``["remask.patience=0", ...]`` -> ``{"remask": {"patience": 0}}`` (values parsed as YAML)."""
    import yaml

    out: dict[str, dict] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        algorithm, dot, name = key.partition(".")
        if not sep or not dot or not name:
            raise ValueError(f"--search-set {item!r}: expected ALGORITHM.PARAMETER=VALUE, e.g. remask.patience=0")
        out.setdefault(algorithm, {})[name] = yaml.safe_load(raw)
    return out


def is_ga(algorithm: str) -> bool:
    """holo's GA, the single one (``holo_ga``) or a setting of the sweep (``holo_ga(p=...,q=...,rec=...)``)."""
    return str(algorithm).startswith(GA_NAME)


@dataclass(frozen=True)
class GASetting:
    """One setting of holo's ``DiscreteEvolution``. ``recombine`` is ``"default"`` (holo's recombine_prob, with the
    mutation probability 1/L of the single GA) or ``"1.1/L"`` (mutation_prob = recombine_prob = 1.1/L, the setting
    the issue quotes from holo's benchmarks)."""

    num_particles: int
    survival_quantile: float
    recombine: str = "default"

    @property
    def name(self) -> str:
        return f"{GA_NAME}(p={self.num_particles},q={self.survival_quantile:g},rec={self.recombine})"

    def kwargs(self, length: int) -> dict:
        """DiscreteEvolution's keyword arguments at sequence length ``length``. holo refuses a survival quantile
        that keeps fewer than two particles (0.01 of 128); such a quantile is raised to 2 / particles."""
        if self.recombine == "default":
            mutation, recombine = 1.0 / length, holo_default("recombine_prob")
        elif self.recombine == "1.1/L":
            mutation = recombine = 1.1 / length
        else:
            raise ValueError(f"recombine must be 'default' or '1.1/L', got {self.recombine!r}")
        survival = max(self.survival_quantile, 2.0 / self.num_particles)
        return {"num_particles": self.num_particles, "survival_quantile": survival, "mutation_prob": mutation,
                "recombine_prob": recombine}  # fmt: skip


# The sweep of --ga-sweep: the corners of holo's own tuning (small / large population, weak / strong selection,
# holo's default recombination or 1.1/L as in its benchmark configuration).
GA_SWEEP = tuple(
    GASetting(particles, survival, recombine)
    for particles in (128, 1024) for survival in (0.5, 0.01) for recombine in ("default", "1.1/L")
)  # fmt: skip


def holo_default(name: str):
    """A keyword default of holo's ``DiscreteEvolution`` (read from the installed version)."""
    import inspect

    from holo.optim import DiscreteEvolution

    return inspect.signature(DiscreteEvolution).parameters[name].default


@dataclass(frozen=True)
class FinetuneArm:
    """The search + fine-tuning arm: ``rounds`` rounds of at most ``nfe`` search NFE each, on ``recipe``'s settings,
    with the recipe overrides ``overrides`` (``key=value``, applied last, e.g. ``finetune.lr=3e-4``)."""

    rounds: int = 10
    nfe: int = 5000
    overrides: tuple[str, ...] = ()
    recipe: Path = RECIPE


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
    schedule (default: 8 branch points per trajectory), for every algorithm alike. The remask search keeps its
    defaults, picked in a pilot on ehrlich-l32 (seeds 0-7, 20k oracle calls; closing note of issue 11): spans of
    1-4 consecutive positions rather than scattered ones, no crossover (0.3 did no better), and restarts after 150
    iterations without gain (without restarts 4-6 of 8 seeds stalled at 0.5625-0.75)."""
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
            "remask": {"initial_samples": 64, "elite_size": 32, "children": 32, "max_span": 4, "crossover": 0.0,
                       "patience": 150},
        },
    )  # fmt: skip


def prior_for(instance, out: Path, steps: int | None = None, log: Callable[[str], None] = print) -> str:
    """The prior of an instance: the shipped checkpoint of a benchmark instance; for any other, the model of
    ``OUT/priors/<name>/`` (``seqtree ehrlich prepare`` then ``seqtree train``, the shipped priors' settings, or
    ``steps`` training steps), trained on first use and reused afterwards."""
    from seqtree.oracles.ehrlich_prior import prepare_instance, training_recipe
    from seqtree.training.recipe import TrainRecipe
    from seqtree.training.run import train

    if instance.is_benchmark and steps is None:
        return CHECKPOINTS[instance.name]
    folder = (out / "priors" / instance.name).resolve()
    recipe = TrainRecipe.model_validate(training_recipe(instance, folder, max_steps=steps))
    if (Path(recipe.export_dir) / "config.json").is_file():
        return str(recipe.export_dir)
    log(f"{instance.name}: preparing the prior's data and training it in {folder}")
    prepare_instance(instance, folder, max_steps=steps)
    summary = train(recipe, resume=(Path(recipe.output_dir) / "checkpoints" / "last.ckpt").is_file(), progress=False)
    log(f"{instance.name}: prior trained, val {summary.val_bits_per_token:.3f} bits/token "
        f"(unigram {summary.unigram_bits_per_token:.3f}), {summary.seconds:.0f} s")  # fmt: skip
    return str(recipe.export_dir)


def build_problem(instance, setting: Setting, prior: str):
    """The search problem of an instance (:class:`~seqtree.oracles.ehrlich_instances.EhrlichInstance`): the prior
    ``prior`` (a checkpoint name or folder), the Ehrlich oracle, an all-masked root."""
    from seqtree.generate import initial_tokens
    from seqtree.models.loading import load_model
    from seqtree.search import SearchProblem

    model = load_model(prior)
    oracle = instance.oracle()
    root = initial_tokens(model.tokenizer, length=instance.dim)
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


def run_holo_ga(
    oracle, oracle_calls: int, seed: int, num_particles: int = 128, setting: GASetting | None = None
) -> tuple[dict, pd.DataFrame]:
    """holo's ``DiscreteEvolution`` on the same function, ``oracle_calls`` evaluations (whole generations).

    As in holo's README example: one parameter holding ``initial_solution()``, the loss is the negated value
    (infeasible -> +inf), one generation per ``step``. Without ``setting`` (the single GA): ``num_particles``
    particles, mutation probability 1/L (one expected mutation per child, as in a standard GA), recombination and
    survival at holo's defaults; with ``setting``, that setting of the sweep (:class:`GASetting`)."""
    from holo.optim import DiscreteEvolution

    fn = oracle.fn
    if setting is None:
        kwargs = {"num_particles": num_particles, "mutation_prob": 1.0 / fn.dim}
        name = GA_NAME
    else:
        kwargs, name = setting.kwargs(fn.dim), setting.name
    particles = kwargs["num_particles"]
    calls, best, rows = 0, -math.inf, []
    start = time.perf_counter()
    with torch.random.fork_rng():  # holo draws from the global generator
        torch.manual_seed(seed)
        solution = torch.nn.Parameter(fn.initial_solution().float())
        optimizer = DiscreteEvolution([solution], vocab=list(range(fn.num_states)), **kwargs)

        def closure(population: list[torch.Tensor]) -> torch.Tensor:
            nonlocal calls, best
            values = fn.evaluate_true(population[0].long())
            calls += len(values)
            best = max(best, float(values.max()))
            rows.append(
                (0, calls, best, float(values[values > -math.inf].mean()) if (values > -math.inf).any() else math.nan)
            )
            return -values

        while calls + particles <= oracle_calls:
            optimizer.step(closure)
    curve = pd.DataFrame(rows, columns=["nfe", "oracle_calls", "best_reward", "mean_reward"]).astype(
        {"nfe": "int64", "oracle_calls": "int64", "best_reward": "float64", "mean_reward": "float64"}
    )  # typed even when the budget is below one generation (no rows)
    row = {"algorithm": name, "nfe": 0, "oracle_calls": calls, "seconds": time.perf_counter() - start,
           "best_reward": best, "stop": "oracle_calls", "size": str({"num_particles": particles}),
           "ga_particles": particles, "ga_mutation": kwargs["mutation_prob"],
           "ga_survival": kwargs.get("survival_quantile", holo_default("survival_quantile")),
           "ga_recombine": kwargs.get("recombine_prob", holo_default("recombine_prob"))}  # fmt: skip
    return row, curve


FINETUNE_KEYS = ("rounds", "steps_per_round", "batch_size", "lr", "alpha", "replicates", "buffer_capacity",
                 "eval_samples", "ema_decay", "weight_decay")  # fmt: skip


def finetune_recipe(instance, seed: int, arm: FinetuneArm, setting: Setting, prior: str):
    """``arm.recipe`` (the DTS* design recipe of ehrlich-l32) for ``instance`` (an ``EhrlichInstance``) and ``seed``:
    the prior ``prior``, the instance's length and oracle, the benchmark's decoding schedule, ``arm.rounds`` rounds of
    ``arm.nfe`` search NFE (no time limit), stopping once the best reward reaches 1.0; ``arm.overrides`` are applied
    last."""
    from seqtree.recipe import load_design_recipe

    overrides = [
        f"name={instance.name}", f"seed={seed}", f"model.name={prior}",
        f"model.num_steps={setting.num_steps}", f"model.branch_every={setting.branch_every}",
        f"design.length={instance.dim}", f"oracle.params={json.dumps(instance.params)}",
        f"budget.nfe={arm.nfe}", "budget.seconds=null", "budget.oracle_calls=null",
        f"finetune.rounds={arm.rounds}", "finetune.target_reward=1.0", *arm.overrides,
    ]  # fmt: skip
    return load_design_recipe(arm.recipe, overrides)


def finetune_curve(metrics: list[dict], round_curves: dict[int, pd.DataFrame]) -> pd.DataFrame:
    """The anytime curve of a fine-tuning run over all its rounds, on the axes of ``metrics.csv``: every oracle call
    and NFE counted (searches, importance-weight replays and the policy evaluations). Round k's search curve is
    shifted by the totals after round k - 1 and its best reward is the best so far; each round ends with a point at
    its totals (the evaluation's samples count at the round's end, as in ``oracle_calls_to_best``)."""
    parts = []
    for index, row in enumerate(metrics):
        k = int(row["round"])
        previous = metrics[index - 1] if index else None
        best_before = previous["best_so_far"] if previous else -math.inf
        curve = round_curves.get(k)
        if k > 0 and curve is not None and len(curve):
            nfe_before = previous["cumulative_nfe"] if previous else 0
            calls_before = previous["cumulative_oracle_calls"] if previous else 0
            shifted = pd.DataFrame({
                "nfe": curve["nfe"].to_numpy() + nfe_before,
                "oracle_calls": curve["oracle_calls"].to_numpy() + calls_before,
                "best_reward": np.maximum(np.maximum.accumulate(curve["best_reward"].to_numpy()), best_before),
                "mean_reward": curve["mean_reward"].to_numpy(),
            })  # fmt: skip
            parts.append(shifted)
        parts.append(pd.DataFrame([{
            "nfe": row["cumulative_nfe"], "oracle_calls": row["cumulative_oracle_calls"],
            "best_reward": row["best_so_far"], "mean_reward": row["eval_reward_mean"],
        }]))  # fmt: skip
    return pd.concat(parts, ignore_index=True)


def run_finetune_arm(instance, seed: int, arm: FinetuneArm, setting: Setting, out: Path, prior: str,
                     log: Callable[[str], None] = print) -> tuple[dict, pd.DataFrame]:  # fmt: skip
    """One search + fine-tuning run under ``out`` (which must not hold an earlier run)."""
    from seqtree.finetune import run_finetune

    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)  # Lightning's GPU / TPU banner every round
    recipe = finetune_recipe(instance, seed, arm, setting, prior)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} holds an earlier fine-tuning run; choose another --out")
    start = time.perf_counter()
    result = run_finetune(recipe, out=out, log=lambda line: log(f"{instance.name} seed {seed} finetune {line}"))
    seconds = time.perf_counter() - start
    curves = {k: pd.read_csv(out / "rounds" / str(k) / "curve.csv") for k in range(1, len(result.metrics))
              if (out / "rounds" / str(k) / "curve.csv").is_file()}  # fmt: skip
    curve = finetune_curve(result.metrics, curves)
    summary = result.summary
    best = float(summary["best_reward"])
    row = {
        "algorithm": finetune_name(recipe.search.algorithm), "nfe": int(summary["nfe"]),
        "oracle_calls": int(summary["oracle_calls"]), "seconds": seconds, "best_reward": best,
        "stop": "target" if best >= 1.0 - 1e-9 else f"rounds ({summary['rounds_done']})",
        "size": str({"rounds": arm.rounds, "nfe_per_round": arm.nfe}),
        "oracle_calls_to_1": float(summary["oracle_calls_to_best"]) if best >= 1.0 - 1e-9 else math.nan,
        "rounds_done": int(summary["rounds_done"]), "nfe_budget": arm.nfe * arm.rounds,
        "finetune_set": " ".join(arm.overrides),
        "finetune_config": json.dumps({  # the effective settings: the recipe's own finetune: section may change
            **{k: getattr(recipe.finetune, k) for k in FINETUNE_KEYS}, "search": recipe.search.model_dump(),
        }),
    }  # fmt: skip
    return row, curve


def run(
    out: Path,
    *,
    instances: list[str] | None = None,
    nfe: int | None = None,
    seeds: int = 3,
    algorithms: list[str] | None = None,
    quick: bool = False,
    branch_every: int | None = None,
    ga_calls: int | None = None,
    ga_sweep: bool = False,
    finetune: FinetuneArm | None = None,
    first_seed: int = 0,
    prior_steps: int | None = None,
    search_set: dict[str, dict] | None = None,
    log: Callable[[str], None] = print,
) -> pd.DataFrame:
    """Run the protocol of the module docstring; ``ga_calls`` gives holo's GA a fixed oracle-call budget instead
    of the most any seqtree run used (e.g. to ask whether it reaches the optimum with far more calls);
    ``ga_sweep`` runs every setting of :data:`GA_SWEEP` instead of the single GA; ``finetune`` adds the search +
    fine-tuning arm. ``algorithms=[]`` runs no search algorithm (only the GA and, if given, the fine-tuning arm).
    Seeds are ``first_seed, ..., first_seed + seeds - 1`` (split seeds over processes, merge with ``--report``).
    ``instances`` are specs :func:`~seqtree.oracles.ehrlich_instances.parse_instance` reads (any instance; a new one
    gets a prior trained by :func:`prior_for`, ``prior_steps`` steps); ``nfe`` is every run's NFE budget (default
    :func:`default_nfe`); ``search_set`` overrides algorithms' parameters (``{"remask": {"patience": 0}}``)."""
    from seqtree.search import ALGORITHMS

    out.mkdir(parents=True, exist_ok=True)
    parsed = [parse_instance(spec) for spec in instances or list(CHECKPOINTS)]
    if algorithms is None:
        algorithms = ["best_of_n", *[a for a in ALGORITHMS if a != "best_of_n"]]
    if not algorithms and finetune is None and ga_calls is None:
        raise ValueError("with no search algorithm and no fine-tuning arm, give the GA's oracle calls (ga_calls)")
    seeds = 1 if quick else seeds
    rows, curves, priors = [], [], []
    for spec in parsed:
        instance = spec.name
        setting = setting_for(spec.dim, branch_every)
        prior_model = prior_for(spec, out, prior_steps, log)
        problem, oracle = build_problem(spec, setting, prior_model)
        budget = nfe or (QUICK_NFE if quick else default_nfe(spec))
        prior = prior_check(problem)
        priors.append({"instance": instance, "prior": prior_model, **prior})
        log(f"{instance} prior: {prior}")
        for seed in range(first_seed, first_seed + seeds):
            runs = []
            for algorithm in algorithms:
                params = {**setting.params[algorithm], **(search_set or {}).get(algorithm, {})}
                if algorithm in ONE_PASS:
                    params = sized_params(algorithm, problem, params, budget, seed)
                row, curve = run_seqtree(algorithm, problem, params, budget, seed)
                runs.append((row, curve))
                log(f"{instance} seed {seed} {algorithm}: best {row['best_reward']:.3f}, nfe {row['nfe']}, "
                    f"oracle calls {row['oracle_calls']}, {row['seconds']:.1f} s")  # fmt: skip
            if finetune is not None:
                run_dir = out / "finetune" / instance / f"seed{seed}"
                row, curve = run_finetune_arm(spec, seed, finetune, setting, run_dir, prior_model, log)
                runs.append((row, curve))
                log(f"{instance} seed {seed} {row['algorithm']}: best {row['best_reward']:.3f} after "
                    f"{row['rounds_done']} rounds, oracle calls {row['oracle_calls']} (to 1.0: "
                    f"{row['oracle_calls_to_1']}), nfe {row['nfe']}, {row['seconds']:.1f} s")  # fmt: skip
            calls = ga_calls or max(row["oracle_calls"] for row, _ in runs)
            for ga in GA_SWEEP if ga_sweep else [None]:
                runs.append(run_holo_ga(oracle, calls, seed, setting=ga))
                row = runs[-1][0]
                log(
                    f"{instance} seed {seed} {row['algorithm']}: best {row['best_reward']:.3f} at "
                    f"{row['oracle_calls']} oracle calls (to 1.0: {first_reaching(runs[-1][1], 1.0, 'oracle_calls')})"
                )
            for row, curve in runs:
                row = {"instance": instance, "seed": seed, "nfe_budget": budget, "branch_every": setting.branch_every,
                       **row}  # fmt: skip
                rows.append(row)
                curves.append(
                    curve.assign(
                        instance=instance, seed=seed, algorithm=row["algorithm"], branch_every=setting.branch_every
                    )
                )
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
        searched = not is_ga(row["algorithm"])
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
    own = table["oracle_calls_to_1"] if "oracle_calls_to_1" in table else pd.Series(math.nan, index=table.index)
    table["oracle_calls_to_1"] = own.fillna(table["calls_to_optimum"])
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
    if table["algorithm"].map(is_ga).any() and table.loc[table["algorithm"].map(is_ga), "algorithm"].nunique() > 1:
        best = best_ga_settings(table)
        best.to_csv(out / "ehrlich_ga_best.csv", index=False)
        log("best GA setting per instance (by median oracle calls to 1.0, never = inf; then mean best reward):")
        log(best.to_string(index=False, float_format="%.4g"))
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
QUICK_NFE = 2000


def default_nfe(instance) -> int:
    """The NFE budget of every run on ``instance``: the benchmark instances' own, else that of the nearer length."""
    return DEFAULT_NFE.get(instance.name, DEFAULT_NFE["ehrlich-l32" if instance.dim <= 64 else "ehrlich-l128"])


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per instance (and branching schedule) and algorithm: ``reached_1`` the runs reaching 1.0 (k of n, also as
    ``optimum_runs`` / ``runs``), ``median_calls_to_1`` the median oracle calls to reach it over those runs,
    ``best_reward`` the mean best reward, ``median_seconds`` the median wall time; then means of the NFE columns and
    ``bon_in_fifth_runs``, the runs that reached best-of-N's final best reward (same seed) within a fifth of the
    NFE budget."""
    table = table.assign(bon_in_fifth=table["nfe_to_bon"] <= table["nfe_budget"] / 5,
                         reached=table["calls_to_optimum"].notna())  # fmt: skip
    keys = ["instance", "branch_every", "algorithm"] if "branch_every" in table else ["instance", "algorithm"]
    grouped = table.groupby(keys, sort=False, dropna=False)
    result = grouped.agg(
        runs=("seed", "count"), optimum_runs=("reached", "sum"), median_calls_to_1=("calls_to_optimum", "median"),
        best_reward=("best_reward", "mean"), median_seconds=("seconds", "median"),
        best_at_fifth=("best_at_fifth", "mean"), nfe=("nfe", "mean"), oracle_calls=("oracle_calls", "mean"),
        nfe_fraction_to_bon=("nfe_fraction_to_bon", "mean"), bon_in_fifth_runs=("bon_in_fifth", "sum"),
    ).reset_index()  # fmt: skip
    result["optimum_runs"] = result["optimum_runs"].astype(int)
    result.insert(len(keys), "reached_1", [f"{k} of {n}" for k, n in zip(result["optimum_runs"], result["runs"])])
    return result


def best_ga_settings(table: pd.DataFrame) -> pd.DataFrame:
    """Every GA setting of the table ranked per instance, best first: by the median over its runs of the oracle calls
    to reach 1.0 (a run that never does counts as infinity, so a setting reaching 1.0 in fewer than half its runs
    ranks by reward only), then by mean best reward. ``best`` marks each instance's first."""
    ga = table[table["algorithm"].map(is_ga)].drop_duplicates(["instance", "algorithm", "seed"])
    rows = []
    for (instance, algorithm), runs in ga.groupby(["instance", "algorithm"], sort=False):
        calls = runs["calls_to_optimum"]
        rows.append({
            "instance": instance, "algorithm": algorithm, "runs": len(runs), "optimum_runs": int(calls.notna().sum()),
            "median_calls_all": float(np.median(calls.fillna(math.inf))),
            "median_calls_to_1": float(calls.median()) if calls.notna().any() else math.nan,
            "best_reward": float(runs["best_reward"].mean()), "oracle_calls": float(runs["oracle_calls"].mean()),
            "median_seconds": float(runs["seconds"].median()),
        })  # fmt: skip
    ranked = pd.DataFrame(rows)
    if not len(ranked):
        return ranked
    ranked = ranked.assign(_neg_best=-ranked["best_reward"]).sort_values(
        ["instance", "median_calls_all", "_neg_best"], kind="stable"
    ).drop(columns="_neg_best")  # fmt: skip
    ranked["best"] = ~ranked.duplicated("instance")
    return ranked.reset_index(drop=True)


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
                if axis == "nfe" and is_ga(algorithm):
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
