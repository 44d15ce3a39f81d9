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
from collections.abc import Callable
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
    """Wraps an oracle as a design run calls it: measures the wall time spent scoring (for the denoiser / oracle /
    engine split) and, with ``to_oracle`` (a tokenizer's :meth:`~seqtree.models.tokenizers.Tokenizer.to_oracle`),
    first turns each design into the string the oracle reads: SELFIES designs are scored as canonical SMILES. This
    is the one place where designs become oracle inputs (search, fine-tuning and its evaluation all call it)."""

    def __init__(self, oracle, to_oracle: Callable[[str], str] | None = None) -> None:
        self.oracle = oracle
        self.to_oracle = to_oracle
        self.seconds = 0.0
        self.num_objectives = getattr(oracle, "num_objectives", 1)
        self.objective_names = list(getattr(oracle, "objective_names", []) or [])

    def __call__(self, sequences: list[str]) -> torch.Tensor:
        started = time.perf_counter()
        try:
            if self.to_oracle is not None:
                sequences = [self.to_oracle(s) for s in sequences]
            return self.oracle(sequences)
        finally:
            self.seconds += time.perf_counter() - started


def scored_as(tokenizer) -> tuple[str, Callable[[str], str]] | None:
    """(domain, decode) when a tokenizer's designs are scored in another representation (SELFIES: ``smiles`` and
    the canonical SMILES of a design), else None: what the oracle wrapper and the designs table use."""
    domain = getattr(tokenizer, "oracle_domain", None)
    return None if domain is None else (domain, tokenizer.to_oracle)


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
            raise KeyboardInterrupt("interrupted twice: stopped at once, without writing this run's results")
        flag.requested = True
        flag.signal_name = signal.Signals(signum).name

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield flag
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


class InterruptedBeforeStart(KeyboardInterrupt):
    """Ctrl-C or SIGTERM arrived before the run folder was written: nothing was written, nothing can be resumed."""

    def __init__(self, run_dir: Path, *, resume: bool, command: str = "design") -> None:
        if resume:
            message = (f"interrupted before the run continued: {run_dir} is as it was; "
                       f"seqtree {command} --resume {run_dir} continues it")  # fmt: skip
        else:
            message = (f"interrupted before the run started: nothing was written to {run_dir}, so there is nothing "
                       f"to resume; run seqtree {command} again without --resume")  # fmt: skip
        super().__init__(message)


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
    from seqtree.config import RecipeError
    from seqtree.generate import model_root
    from seqtree.models.tokenizers import TokenizationError

    design = recipe.design
    length = design.length if design.scaffold is None else None
    try:
        return model_root(model, length=length, prompt=design.prompt, scaffold=design.scaffold)
    except ValueError as error:  # a letter the tokenizer lacks, or more positions than the model takes
        field = ("design.scaffold" if design.scaffold is not None
                 else "design.prompt" if isinstance(error, TokenizationError) else "design.length")  # fmt: skip
        raise RecipeError(f"{field}: {error}") from None


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
        text = str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)  # KeyError quotes
        raise RecipeError("oracle: " + " ".join(text.split())) from None


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


def load_recipe_model(recipe: DesignRecipe):
    """The recipe's model on ``model.device`` at ``model.precision`` (a LoadedModel); a model that cannot be found
    is a RecipeError naming ``model.name``."""
    from seqtree.config import RecipeError
    from seqtree.models.loading import load_model

    device = model_device(recipe)
    try:
        return load_model(
            recipe.model.name, trust_remote_code=recipe.model.trust_remote_code, device=device,
            precision=recipe.model.precision, cuda_graphs=recipe.model.cuda_graphs,
        )  # fmt: skip
    except FileNotFoundError as error:
        raise RecipeError(f"model.name: {error}") from None


@dataclass
class PreparedDesign:
    """What a design run builds and checks before it spends compute (:func:`prepare_design`)."""

    device: torch.device
    model: Any  # LoadedModel: denoiser on ``device``, tokenizer, diffusion, frame
    oracle: TimedOracle
    root: torch.Tensor  # Long[L]: the design's root row in the model's frame, on the host
    designed: torch.Tensor  # Bool[L]: the positions the search designs


def prepare_design(recipe: DesignRecipe) -> PreparedDesign:
    """Everything that can refuse a design recipe, in the order a run meets it: the device (``model.device``,
    ``model.precision``), the model (``model.name``), the oracle (``oracle``), the oracle's alphabet against the
    model's letters, the design against the model's tokenizer and length (``design.*``) and the replay buffer
    (``output.replay_buffer``). ``seqtree design`` runs it before it writes anything and ``seqtree validate`` runs
    it alone, so the two refuse the same recipes with the same one-line messages."""
    from seqtree.config import RecipeError

    if recipe.design.prompts_file is not None or recipe.fluency is not None:  # seqtree design runs it in prompts.py
        field = "design.prompts_file" if recipe.design.prompts_file is not None else "fluency"
        raise RecipeError(f"{field}: this command searches one prompt without a fluency guard; seqtree design runs "
                          f"{'a prompts file' if field != 'fluency' else 'the fluency guard'}")  # fmt: skip
    model = load_recipe_model(recipe)
    device = model.device
    decode = scored_as(model.tokenizer)
    oracle = TimedOracle(build_oracle(recipe), None if decode is None else decode[1])
    check_alphabet(recipe, model, oracle.oracle)
    root = build_root(recipe, model)
    designed = root == model.diffusion.mask_id  # on the host, like the buffer
    if recipe.output.replay_buffer is not None:
        from seqtree.buffer import check_compatible

        check_compatible(recipe.output.replay_buffer, recipe.model.name, {
            "tokens": (len(root),), "designed": (len(root),), "log_prob": (recipe.model.num_steps,),
            "rewards": (oracle.num_objectives,),
        })  # fmt: skip
    return PreparedDesign(device, model, oracle, root, designed)


def check_design_recipe(recipe: DesignRecipe) -> dict[str, str]:
    """:func:`prepare_design` without running anything (``seqtree validate``): what the run would use."""
    from seqtree.models.loading import resolve_checkpoint
    from seqtree.prompts import check_prompts_recipe, uses_prompts

    if uses_prompts(recipe):
        return check_prompts_recipe(recipe)
    prepared = prepare_design(recipe)
    oracle = prepared.oracle.oracle
    return {
        "oracle": getattr(oracle, "name", type(oracle).__name__),
        "model": str(resolve_checkpoint(recipe.model.name)),
        "device": str(prepared.device),
    }


def check_alphabet(recipe: DesignRecipe, model, oracle) -> None:
    """Refuse an oracle (or a part of one) that declares an ``alphabet`` with letters the model cannot write: designs
    could never hold them (a 20-letter model against a 32-state Ehrlich function never reaches its optimum)."""
    from seqtree.config import RecipeError

    declared = _declared_alphabets(oracle)
    writable = _model_letters(model) if declared else set()
    for name, alphabet in declared:
        missing = "".join(c for c in dict.fromkeys(alphabet) if c not in writable)
        if missing:
            raise RecipeError(
                f"oracle: the {name} oracle's alphabet has {len(missing)} letters that model.name "
                f"{recipe.model.name!r} cannot write: {missing} (the oracle's alphabet: {alphabet}); choose a model "
                "over the oracle's alphabet, or an oracle over the model's letters"
            )


def _declared_alphabets(oracle) -> list[tuple[str, str]]:
    """(name, alphabet) of every part of an oracle pipeline that declares an ``alphabet`` string."""
    found, stack, seen = [], [oracle], set()
    while stack:
        part = stack.pop()
        if id(part) in seen:
            continue
        seen.add(id(part))
        alphabet, name = getattr(part, "alphabet", None), getattr(part, "name", type(part).__name__)
        if isinstance(alphabet, str) and alphabet and (name, alphabet) not in found:
            found.append((name, alphabet))
        parts = getattr(part, "parts", None)
        stack.extend(parts() if callable(parts) else [])
    return found


def _model_letters(model) -> set[str]:
    """The single letters a model's designs can hold: a token that encodes one letter, decodes back to it, and is
    neither special nor outside the design tokens of the model's frame."""
    tokenizer, framing = model.tokenizer, model.framing
    barred = set(tokenizer.special_ids) | set(framing.forbidden)
    letters = set()
    for token in tokenizer.content_ids:
        if token in barred:
            continue
        text = tokenizer.decode([token])
        if len(text) == 1:
            letters.add(text)
    return letters


def run_design(
    recipe: DesignRecipe,
    *,
    out: Path | None = None,
    resume: bool = False,
    progress: bool = False,
    stop: StopFlag | None = None,
    log=None,
) -> DesignRun:
    """Run the recipe and write the run directory; returns the run (result and summary). A recipe with
    ``design.prompts_file`` or ``fluency:`` runs one search per prompt (:func:`seqtree.prompts.run_prompts`)."""
    from seqtree.prompts import run_prompts, uses_prompts
    from seqtree.search import run_search

    if uses_prompts(recipe):
        return run_prompts(recipe, out=out, resume=resume, progress=progress, stop=stop, log=log)
    run_dir = resolved_run_dir(recipe, out)
    stop = stop or StopFlag()
    state_file = run_dir / rundir.SEARCH_STATE
    if not resume and (run_dir / rundir.SUMMARY).exists():
        raise FileExistsError(f"{run_dir} holds an earlier run; use --resume {run_dir} or choose another --out")
    prepared = prepare_design(recipe)
    device, model, oracle, root = prepared.device, prepared.model, prepared.oracle, prepared.root
    # The run folder appears only once everything that can refuse the recipe has (prepare_design), so a refused or
    # interrupted recipe leaves nothing behind; from here on --resume has the recipe it needs.
    if stop.requested:
        raise InterruptedBeforeStart(run_dir, resume=resume)
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
    try:
        with bar, torch.no_grad():
            result = run_search(recipe.search.algorithm, problem, budget, generator=generator, **params)
    except Exception:
        if not resume:
            remove_if_unstarted(run_dir)
        raise
    seconds = time.perf_counter() - started

    run = DesignRun(recipe, run_dir, result)
    write_outputs(run, model, oracle, seconds, stop, prepared.designed)
    if not recipe.output.save_tree and not stop.requested and state_file.exists():
        state_file.unlink()  # a finished run keeps its tree only when asked
    return run


def remove_if_unstarted(run_dir: Path) -> None:
    """Remove a run folder that holds nothing but its recipe: a search that failed before saving anything (an oracle
    answering with the wrong shape at its first batch) leaves no folder that ``--resume`` could not use."""
    if run_dir.is_dir() and [p.name for p in run_dir.iterdir()] == [rundir.RECIPE]:
        (run_dir / rundir.RECIPE).unlink()
        run_dir.rmdir()


def write_outputs(
    run: DesignRun, model, oracle: TimedOracle, seconds: float, stop: StopFlag, designed: torch.Tensor
) -> None:
    recipe, result, run_dir = run.recipe, run.result, run.run_dir
    names = oracle.objective_names if len(oracle.objective_names) > 1 else []
    # a prompt column for text, and for a SELFIES prompt (a fixed fragment) or any prompt of a model of unknown domain
    shown = model.domain == "text" or (bool(recipe.design.prompt) and model.domain in ("selfies", None))
    prompt = recipe.design.prompt if shown else None
    table = rundir.designs_table(
        result, recipe.design.num_designs, names, prompt, scored_as(model.tokenizer),
        length_unit=getattr(model.tokenizer, "length_unit", None),
    )  # fmt: skip
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
    from seqtree.config import read_yaml

    path = run_dir / rundir.RECIPE
    if not run_dir.is_dir():
        raise FileNotFoundError(
            f"--resume {run_dir}: no such run directory (a run interrupted before it started leaves none; start it "
            "again without --resume)"
        )
    if not path.is_file():
        raise FileNotFoundError(f"--resume {run_dir}: no {rundir.RECIPE} there; is it a seqtree design run?")
    return validate_design_recipe(read_yaml(path), str(path))


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
