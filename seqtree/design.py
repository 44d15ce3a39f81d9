"""``seqtree design``: run a design recipe end to end and write its run directory.

Build (model, oracle, search problem) from a validated recipe, run the search with a progress bar, and write the
run directory (:mod:`seqtree.rundir`). Ctrl-C or SIGTERM asks the search to stop at its next step; the partial
results and the search state are written as usual and the summary says ``"interrupted": true``. ``--resume`` reads
the run directory's resolved recipe and search state and continues to the recipe's budget: tree algorithms that keep
their state (DTS, DTS*) continue their saved tree and generator exactly; the others are re-run from the seed, which
reproduces the same designs (same seed, same result).
"""

from __future__ import annotations

import platform
import signal
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml

from seqtree import rundir
from seqtree.device import make_generator
from seqtree.recipe import DesignRecipe, validate_design_recipe

INTERRUPTED = "interrupted"


class TimedOracle:
    """Wraps an oracle to measure the wall time spent scoring (for the denoiser / oracle / engine split)."""

    def __init__(self, oracle) -> None:
        self.oracle = oracle
        self.seconds = 0.0
        self.num_objectives = getattr(oracle, "num_objectives", 1)
        self.objective_names = list(getattr(oracle, "objective_names", []) or [])

    def __call__(self, sequences: list[str]) -> torch.Tensor:
        started = time.perf_counter()
        try:
            return self.oracle(sequences)
        finally:
            self.seconds += time.perf_counter() - started


@dataclass
class StopFlag:
    """Set by a signal handler; the search observer reads it and stops the search at its next step."""

    requested: bool = False
    signal_name: str | None = None


@contextmanager
def stop_on_signals(flag: StopFlag, *, second_sigint_interrupts: bool = True):
    """SIGINT / SIGTERM set ``flag`` instead of killing the process; a second SIGINT interrupts for real, unless
    ``second_sigint_interrupts`` is False (a fleet's worker, whose hard stop belongs to the driver)."""

    def handler(signum, frame):
        if second_sigint_interrupts and flag.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        flag.requested = True
        flag.signal_name = signal.Signals(signum).name

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield flag
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


@dataclass
class DesignRun:
    recipe: DesignRecipe
    run_dir: Path
    result: Any = None
    summary: dict[str, Any] = field(default_factory=dict)


def resolved_run_dir(recipe: DesignRecipe, out: Path | None) -> Path:
    return Path(out or recipe.output.dir or Path("runs") / recipe.name)


def build_root(recipe: DesignRecipe, model) -> torch.Tensor:
    """The design's root in the model's frame (:func:`seqtree.generate.model_root`)."""
    from seqtree.generate import model_root

    design = recipe.design
    length = design.length if design.scaffold is None else None
    return model_root(model, length=length, prompt=design.prompt, scaffold=design.scaffold)


def build_oracle(recipe: DesignRecipe):
    """The recipe's oracle pipeline; a parameter a registered oracle rejects is a RecipeError naming it."""
    from pydantic import ValidationError

    from seqtree.config import RecipeError, format_validation_error
    from seqtree.oracles import build_oracle_from_spec

    try:
        return build_oracle_from_spec(recipe.oracle_spec())
    except ValidationError as error:
        raise RecipeError(format_validation_error(error, "oracle").replace("oracle: ", "oracle.", 1)) from None
    except (TypeError, KeyError, ValueError) as error:
        cause = error.__cause__
        if isinstance(cause, ValidationError):  # a registered oracle rejected one of its params
            detail = format_validation_error(cause, "params").replace("params: ", "params.", 1)
            raise RecipeError(f"oracle: {str(error).splitlines()[0]}: {detail}") from None
        raise RecipeError("oracle: " + " ".join(str(error).split())) from None


def build_problem(recipe: DesignRecipe, model, oracle, root: torch.Tensor, observer=None):
    """The search problem a recipe asks for, over ``model`` (any denoiser with its diffusion and tokenizer)."""
    from seqtree.search import SearchProblem

    m = recipe.model
    return SearchProblem(
        denoiser=model.inference_denoiser, diffusion=model.diffusion, tokenizer=model.tokenizer, oracle=oracle,
        root=root,
        num_steps=m.num_steps, branch_every=m.branch_every, temperature=m.temperature, top_k=m.top_k, top_p=m.top_p,
        cache=m.cache, observer=observer, reward_floor=float(getattr(oracle, "floor", SearchProblem.reward_floor)),
    )  # fmt: skip


def build_budget(recipe: DesignRecipe):
    from seqtree.search import Budget

    return Budget(nfe=recipe.budget.nfe, oracle_calls=recipe.budget.oracle_calls, seconds=recipe.budget.seconds)


def supports_state(recipe: DesignRecipe) -> bool:
    """Whether the algorithm can save its search state and continue it exactly (a tree with its generator)."""
    from seqtree.search import ALGORITHMS

    return ALGORITHMS[recipe.search.algorithm].resumable


def model_device(recipe: DesignRecipe) -> torch.device:
    """The device ``model.device`` names, present on this machine, and a precision it runs; else a RecipeError
    naming the field (before any compute or file is spent)."""
    from seqtree.config import RecipeError
    from seqtree.device import DeviceError, check_precision, resolve_device

    try:
        device = resolve_device(recipe.model.device)
    except DeviceError as error:
        raise RecipeError(f"model.device: {error}") from None
    try:
        check_precision(recipe.model.precision, device)
    except DeviceError as error:
        raise RecipeError(f"model.precision: {error} (model.device resolved to {device})") from None
    return device


def check_design_recipe(recipe: DesignRecipe) -> dict[str, str]:
    """Checks beyond the schema, without running: the device exists, the oracle builds, the model is found, the
    design fits it."""
    import json

    from seqtree.models.loading import resolve_checkpoint

    device = model_device(recipe)
    oracle = build_oracle(recipe)
    location = resolve_checkpoint(recipe.model.name)
    if isinstance(location, Path):
        config = json.loads((location / "config.json").read_text())
        limit = config.get("max_positions") or config.get("max_position_embeddings")
        design = recipe.design
        needed = len(design.scaffold) if design.scaffold is not None else len(design.prompt) + (design.length or 0)
        needed += _frame_size(location, config)
        if limit and needed > limit:
            raise ValueError(
                f"design: {needed} positions (with the model's frame) do not fit model {recipe.model.name!r} "
                f"(at most {limit})"
            )
    return {"oracle": getattr(oracle, "name", type(oracle).__name__), "model": str(location), "device": str(device)}


def _frame_size(location: Path, config: dict) -> int:
    """Special tokens a Hugging Face model's frame adds around a design (seqtree's own checkpoints add none); read
    from its tokenizer alone, without loading weights."""
    from seqtree.models.loading import BACKBONES

    if config.get("model_type") in BACKBONES:
        return 0
    from seqtree.models.framing import hf_framing
    from seqtree.models.tokenizers import HFTokenizer

    return hf_framing(HFTokenizer(str(location)).hf, config.get("model_type")).size


def run_design(
    recipe: DesignRecipe,
    *,
    out: Path | None = None,
    resume: bool = False,
    progress: bool = False,
    stop: StopFlag | None = None,
    log=None,
) -> DesignRun:
    """Run the recipe and write the run directory; returns the run (result and summary)."""
    from seqtree.models.loading import load_model
    from seqtree.search import run_search

    run_dir = resolved_run_dir(recipe, out)
    device = model_device(recipe)
    stop = stop or StopFlag()
    state_file = run_dir / rundir.SEARCH_STATE
    if not resume and (run_dir / rundir.SUMMARY).exists():
        raise FileExistsError(f"{run_dir} holds an earlier run; use --resume {run_dir} or choose another --out")
    model = load_model(
        recipe.model.name, trust_remote_code=recipe.model.trust_remote_code, device=device,
        precision=recipe.model.precision,
    )  # fmt: skip
    oracle = TimedOracle(build_oracle(recipe))
    root = build_root(recipe, model)
    designed = root == model.diffusion.mask_id  # on the host, like the buffer
    if recipe.output.replay_buffer is not None:  # refuse an incompatible buffer before spending compute
        from seqtree.buffer import check_compatible

        check_compatible(recipe.output.replay_buffer, recipe.model.name, {
            "tokens": (len(root),), "designed": (len(root),), "log_prob": (recipe.model.num_steps,),
            "rewards": (oracle.num_objectives,),
        })  # fmt: skip
    # The run folder appears only once everything that can refuse the recipe has (model, oracle, design, buffer),
    # so a refused recipe leaves nothing behind; from here on --resume has the recipe it needs.
    rundir.write_atomic(run_dir / rundir.RECIPE, yaml.safe_dump(recipe.model_dump(mode="json"), sort_keys=False))
    params = recipe.search.params()
    if supports_state(recipe):
        params["save_to"] = str(state_file)
        if resume and state_file.exists():
            params["resume_from"] = str(state_file)
    bar = SearchProgressBar(recipe, enabled=progress)

    def observe(point) -> bool:
        bar.update(point)
        return stop.requested

    problem = build_problem(recipe, model, oracle, root.to(device), observe)
    budget = build_budget(recipe)
    generator = make_generator(recipe.seed, device)
    if log is not None:
        action = "resuming" if "resume_from" in params else "searching"
        where = f"{device}" + ("" if recipe.model.precision == "fp32" else f", {recipe.model.precision}")
        log(f"{action}: {recipe.search.algorithm} on {recipe.model.name} ({where}), budget {budget}")
    started = time.perf_counter()
    with bar, torch.no_grad():
        result = run_search(recipe.search.algorithm, problem, budget, generator=generator, **params)
    seconds = time.perf_counter() - started

    run = DesignRun(recipe, run_dir, result)
    write_outputs(run, model, oracle, seconds, stop, designed)
    if not recipe.output.save_tree and not stop.requested and state_file.exists():
        state_file.unlink()  # a finished run keeps its tree only when asked
    return run


def write_outputs(
    run: DesignRun, model, oracle: TimedOracle, seconds: float, stop: StopFlag, designed: torch.Tensor
) -> None:
    recipe, result, run_dir = run.recipe, run.result, run.run_dir
    names = oracle.objective_names if len(oracle.objective_names) > 1 else []
    prompt = recipe.design.prompt if model.domain == "text" or (model.domain is None and recipe.design.prompt) else None
    table = rundir.designs_table(result, recipe.design.num_designs, names, prompt)
    fasta = recipe.output.fasta if recipe.output.fasta is not None else model.domain in ("dna", "protein", "ehrlich")
    rundir.write_designs(run_dir, table, fasta=fasta)
    rundir.write_curve(run_dir, result.curve_dataframe(), f"{recipe.name}: {recipe.search.algorithm}")
    if result.designs.rewards.shape[1] > 1:
        rundir.write_pareto(run_dir, result, oracle.objective_names)
    run.summary = summarize(run, model, oracle, seconds, stop)
    buffer = recipe.output.replay_buffer
    if buffer is not None and not stop.requested and len(result.designs):  # an interrupted run appends on resume
        from seqtree.buffer import append_to_buffer

        entry = {"name": recipe.name, "model": recipe.model.name, "algorithm": recipe.search.algorithm,
                 "seed": recipe.seed, "rows": len(result.designs)}  # fmt: skip
        total = append_to_buffer(buffer, result, designed, entry)
        run.summary["replay_buffer"] = {"path": str(buffer), "rows_added": len(result.designs), "rows": total}
    rundir.write_json(run_dir / rundir.SUMMARY, run.summary)


def summarize(run: DesignRun, model, oracle: TimedOracle, seconds: float, stop: StopFlag) -> dict[str, Any]:
    import transformers

    import seqtree

    result = run.result
    denoiser_seconds = float(result.extras.get("denoiser_seconds", 0.0))
    inner = oracle.oracle
    failures = dict(getattr(inner, "failures", {}) or {})
    for reason, count in result.extras.get("floored_rewards", {}).items():  # infinite values the engine floored
        failures[reason] = failures.get(reason, 0) + count
    return {
        "name": run.recipe.name,
        "algorithm": result.algorithm,
        "model": run.recipe.model.name,
        "seed": run.recipe.seed,
        "nfe": result.nfe,
        "oracle_calls": result.oracle_calls,
        "seconds": round(seconds, 3),
        "stop_reason": INTERRUPTED if stop.requested else result.stop_reason,
        "interrupted": stop.requested,
        "signal": stop.signal_name,
        "iterations": result.iterations,
        "best_reward": result.best_reward,
        "num_designs": len(result.designs),
        "invalid": {"count": int(sum(failures.values())), "reasons": failures},
        "time_split": {
            "denoiser_seconds": round(denoiser_seconds, 3),
            "oracle_seconds": round(oracle.seconds, 3),
            "engine_seconds": round(max(seconds - denoiser_seconds - oracle.seconds, 0.0), 3),
        },
        "versions": {
            "seqtree": seqtree.__version__,
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "python": platform.python_version(),
        },
    }


def load_run_recipe(run_dir: Path) -> DesignRecipe:
    """The resolved recipe a run directory was started with (``--resume``)."""
    path = run_dir / rundir.RECIPE
    if not path.is_file():
        raise FileNotFoundError(f"--resume {run_dir}: no {rundir.RECIPE} there; is it a seqtree design run?")
    return validate_design_recipe(yaml.safe_load(path.read_text()), str(path))


class SearchProgressBar:
    """A rich progress bar over the tightest budget, showing NFE, oracle calls and the best reward; silent when
    disabled (non-TTY, CI)."""

    def __init__(self, recipe: DesignRecipe, *, enabled: bool) -> None:
        self.enabled = enabled
        budget = recipe.budget
        if budget.nfe is not None:
            self.key, self.total = "nfe", budget.nfe
        elif budget.oracle_calls is not None:
            self.key, self.total = "oracle_calls", budget.oracle_calls
        else:
            self.key, self.total = "seconds", budget.seconds
        self.progress = None

    def __enter__(self):
        if self.enabled:
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

            self.progress = Progress(
                TextColumn("[bold]search"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                TextColumn("NFE {task.fields[nfe]} | oracle {task.fields[oracle]} | best {task.fields[best]}"),
                TimeElapsedColumn(), TimeRemainingColumn(), transient=False,
            )  # fmt: skip
            self.progress.start()
            self.task = self.progress.add_task("search", total=self.total, nfe=0, oracle=0, best="-")
        return self

    def update(self, point) -> None:
        if self.progress is None:
            return
        done = {"nfe": point.nfe, "oracle_calls": point.oracle_calls, "seconds": point.seconds}[self.key]
        best = "-" if point.best_reward != point.best_reward else f"{point.best_reward:.4g}"
        self.progress.update(self.task, completed=done, nfe=point.nfe, oracle=point.oracle_calls, best=best)

    def __exit__(self, *exc) -> None:
        if self.progress is not None:
            self.progress.stop()
