"""Many prompts, one search configuration: ``seqtree design`` with ``design.prompts_file`` (or a ``fluency:``
section).

Each prompt is a complete search of its own, exactly as a single-prompt run of the same recipe with ``design.prompt``
set to it and ``seed`` + the prompt's index in the file would run it: the same root, generator, oracle values and
**budget, which applies per prompt** (``budget.nfe`` NFE for every prompt; ``budget.seconds`` is each search's own
clock, which runs while the prompts of its group search together). Up to ``design.prompt_batch`` prompts search at
once, one thread each, and their denoiser calls are merged into batched forward passes by a
:class:`~seqtree.lockstep.LockstepBatcher` (the searches advance in lockstep): NFE is counted per prompt in rows, as a
single run counts it, and the forward calls actually made are counted apart (``summary.json``'s ``forward``). The
per-prompt results equal single-prompt runs where the denoiser's forward pass is batch-invariant (seqtree's
transformer on CPU; see :mod:`seqtree.lockstep`). The oracle is shared and called under a lock with each search's
own batches; the fluency of every written completion is scored (:mod:`seqtree.oracles.fluency`), and with
``fluency.min_fluency`` / ``fluency.weight`` it is also a constraint / reward term during the search.

Run directory: ``recipe.yaml``, ``prompts.jsonl`` (the prompts, so ``--resume`` needs no prompts file),
``prompts/<id>/`` (``designs.csv`` / ``designs.jsonl``, ``curve.csv``, ``summary.json`` and a tree search's state),
and merged: ``designs.csv`` / ``designs.jsonl`` (``prompt_id``, ``prompt``, ``rank``, ``completion``, ``reward``,
``fluency``, ..., prompt by prompt in file order, best first within a prompt), ``prompts.csv`` (one row per prompt:
budget used, reward mean / best, fluency, distinct-1/2/3, fluency compute; :mod:`seqtree.prompt_metrics`),
``curve.csv`` (best and mean reward against NFE averaged over prompts), ``curves.csv`` (every prompt's curve),
``curve.png`` and ``summary.json``. Ctrl-C stops every running search at its next step; each writes its prompt
folder, the merged files are written from the prompt folders, and ``--resume`` runs only the prompts not done (a tree
search continues its saved tree). A single-prompt recipe with a ``fluency:`` section runs here as prompt ``0``.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from seqtree import prompt_report, rundir
from seqtree.config import RecipeError
from seqtree.design import (
    DesignRun,
    InterruptedBeforeStart,
    StopFlag,
    TimedOracle,
    build_budget,
    build_oracle,
    build_problem,
    check_alphabet,
    load_recipe_model,
    resolved_run_dir,
    scored_as,
    supports_state,
)
from seqtree.device import make_generator
from seqtree.lockstep import LockstepBatcher
from seqtree.oracles.base import Oracle, OracleOutput
from seqtree.prompt_file import FIELD, PromptItem, load_run_prompts, prompts_jsonl, read_prompts
from seqtree.recipe import DesignRecipe, FluencySection

PROMPTS_JSONL = "prompts.jsonl"


def uses_prompts(recipe: DesignRecipe) -> bool:
    """Whether ``seqtree design`` runs this recipe here rather than as one search."""
    return recipe.design.prompts_file is not None or recipe.fluency is not None


# ------------------------------------------------------------------------------------------------------ preparing
@dataclass
class PreparedPrompts:
    """Everything a multi-prompt run builds and checks before it spends compute."""

    device: torch.device
    model: Any  # LoadedModel
    oracle: TimedOracle  # shared by every prompt, called under ``oracle_lock``
    prompts: list[PromptItem]
    roots: dict[str, torch.Tensor]  # id -> Long[L] root row in the model's frame, on the host
    fluency: FluencySection
    scorer: Any  # FluencyScorer
    oracle_lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)


def prepare_prompts(recipe: DesignRecipe, prompts: list[PromptItem] | None = None) -> PreparedPrompts:
    """Device, model, oracle, prompts (each against the model, errors naming the file and line) and the fluency
    model, in that order; ``seqtree validate`` runs it alone. ``prompts``: those a run directory recorded."""
    from seqtree.generate import model_root
    from seqtree.oracles.fluency import SELF, CausalLMFluency, SelfNelboFluency

    if recipe.output.replay_buffer is not None:
        raise RecipeError("output.replay_buffer: a multi-prompt run does not append to a replay buffer (one prompt "
                          "per buffer: run the prompt alone with design.prompt)")  # fmt: skip
    model = load_recipe_model(recipe)
    device = model.device
    decode = scored_as(model.tokenizer)
    oracle = TimedOracle(build_oracle(recipe), None if decode is None else decode[1])
    check_alphabet(recipe, model, oracle.oracle)
    file = recipe.design.prompts_file
    if prompts is None:
        prompts = read_prompts(file) if file is not None else [PromptItem("0", recipe.design.prompt, 0, 0)]
    roots = {}
    for item in prompts:
        try:
            roots[item.id] = model_root(model, length=recipe.design.length, prompt=item.text)
        except ValueError as error:  # a character the tokenizer lacks, or longer than the model takes
            where = f"{FIELD}: {file} line {item.line}" if file is not None else "design.prompt"
            raise RecipeError(f"{where}: {' '.join(str(error).split())}") from None
    fluency = recipe.fluency or FluencySection()
    if fluency.weight and oracle.num_objectives != 1:
        raise RecipeError(f"fluency.weight: adds to one reward, but the oracle has {oracle.num_objectives} objectives")
    if fluency.model == SELF:
        scorer = SelfNelboFluency(model, samples=fluency.samples)
    else:
        scorer = CausalLMFluency(fluency.model, device=device)
        try:
            scorer.load()
        except (OSError, ValueError) as error:
            raise RecipeError(f"fluency.model: {fluency.model!r}: {str(error).splitlines()[0]}") from None
    return PreparedPrompts(device, model, oracle, prompts, roots, fluency, scorer)


def check_prompts_recipe(recipe: DesignRecipe) -> dict[str, str]:
    """``seqtree validate`` of a multi-prompt recipe: what the run would use."""
    from seqtree.models.loading import resolve_checkpoint

    prepared = prepare_prompts(recipe)
    oracle = prepared.oracle.oracle
    return {
        "oracle": f"{getattr(oracle, 'name', type(oracle).__name__)}, {len(prepared.prompts)} prompts, fluency "
        f"{prepared.fluency.model}",
        "model": str(resolve_checkpoint(recipe.model.name)),
        "device": str(prepared.device),
    }


# --------------------------------------------------------------------------------------------------- one prompt
class _LockedOracle(Oracle):
    """One prompt's view of the run's shared oracle: called under the run's lock (the searches run in threads), the
    design turned into the oracle's string as :class:`~seqtree.design.TimedOracle` does, the time added to the
    shared total, and this prompt's floored sequences counted in its own ``failures``."""

    def __init__(self, shared: TimedOracle, lock: threading.Lock) -> None:
        self.shared, self.lock = shared, lock
        inner = shared.oracle
        for attr in ("name", "direction", "optimum", "bounds", "num_objectives", "floor"):
            setattr(self, attr, getattr(inner, attr))
        self.objective_names = list(inner.objective_names)
        super().__init__()

    def _evaluate(self, sequences: list[str]):  # pragma: no cover - _score_uncounted is overridden
        raise NotImplementedError

    def _score_uncounted(self, sequences: list[str]) -> OracleOutput:
        with self.lock:
            started = time.perf_counter()
            try:
                shown = sequences if self.shared.to_oracle is None else [self.shared.to_oracle(s) for s in sequences]
                return self.shared.oracle.score(shown)
            finally:
                self.shared.seconds += time.perf_counter() - started


class _LockedDecoder:
    """The tokenizer's ``decode`` under a lock: Rust-backed tokenizers are not meant to be shared across threads."""

    def __init__(self, tokenizer, lock: threading.Lock) -> None:
        self.tokenizer, self.lock = tokenizer, lock

    def decode(self, ids: list[int]) -> str:
        with self.lock:
            return self.tokenizer.decode(ids)


@dataclass
class _Run:
    """A multi-prompt run in progress: what each prompt's thread needs."""

    recipe: DesignRecipe
    run_dir: Path
    prepared: PreparedPrompts
    batcher: LockstepBatcher
    resume: bool
    stop: StopFlag
    abort: threading.Event
    decode_lock: threading.Lock
    progress: Any


def prompt_objective(prepared: PreparedPrompts, item: PromptItem, decode) -> tuple[Oracle, Any]:
    """(objective, fluency) of one prompt: the run's shared oracle under its lock, with the fluency guard when the
    recipe asks for one (``fluency.min_fluency`` / ``fluency.weight``), and the prompt's
    :class:`~seqtree.oracles.fluency.CompletionFluency` (which strips the decoded prompt ``decode(root)``). The
    search and fine-tuning's evaluation of plain samples (:mod:`seqtree.finetune_prompts`) score with the same."""
    from seqtree.oracles.fluency import CompletionFluency, guard

    fluency = CompletionFluency(prepared.scorer, item.text, decode(prepared.roots[item.id].tolist()))
    objective: Oracle = _LockedOracle(prepared.oracle, prepared.oracle_lock)
    section = prepared.fluency
    if section.weight or section.min_fluency is not None:
        objective = guard(objective, fluency, weight=section.weight, min_fluency=section.min_fluency)
    return objective, fluency


def _search_prompt(run: _Run, item: PromptItem):
    """Search one prompt (a member of the lockstep batcher while it searches) and write its folder; returns its
    summary and its search result (without the tree)."""
    from seqtree.search import run_search

    recipe, prepared = run.recipe, run.prepared
    model, root = prepared.model, prepared.roots[item.id]
    folder = prompt_report.prompt_dir(run.run_dir, item.id)
    decoder = _LockedDecoder(model.tokenizer, run.decode_lock)
    objective, fluency = prompt_objective(prepared, item, decoder.decode)
    params = recipe.search.params()
    state = folder / rundir.SEARCH_STATE
    if supports_state(recipe):
        params["save_to"] = str(state)
        if run.resume and state.exists():
            params["resume_from"] = str(state)

    def observe(point) -> bool:
        return run.stop.requested or run.abort.is_set()

    generator = make_generator(recipe.seed + item.index, prepared.device)
    started = time.perf_counter()
    with run.batcher.member() as member, torch.no_grad():
        problem = build_problem(recipe, model, objective, root.to(prepared.device), observe)
        problem = dataclasses.replace(problem, denoiser=member, tokenizer=decoder)
        result = run_search(recipe.search.algorithm, problem, build_budget(recipe), generator=generator, **params)
    seconds = time.perf_counter() - started
    interrupted = result.stop_reason == "interrupted"
    summary = prompt_report.write_prompt(
        folder, recipe, item, result, objective, fluency, model, root == model.diffusion.mask_id, decoder.decode,
        seconds=seconds, interrupted=interrupted,
    )  # fmt: skip
    if not recipe.output.save_tree and not interrupted and state.exists():
        state.unlink()
    return summary, dataclasses.replace(result, tree=None)


# ---------------------------------------------------------------------------------------------------- the run
def run_prompts(
    recipe: DesignRecipe,
    *,
    out: Path | None = None,
    resume: bool = False,
    progress: bool = False,
    stop: StopFlag | None = None,
    log=None,
    prepared: PreparedPrompts | None = None,
) -> DesignRun:
    """Run every prompt not yet done and write the merged run directory (module docstring). ``prepared``: what
    :func:`prepare_prompts` built, given by a caller that searches with another model than ``model.name`` (the
    policy of a fine-tuning round, :mod:`seqtree.finetune_prompts`)."""
    log = log or (lambda line: None)
    stop = stop or StopFlag()
    run_dir = resolved_run_dir(recipe, out)
    previous = _read_summary(run_dir)
    if not resume and previous is not None:
        raise FileExistsError(f"{run_dir} holds an earlier run; use --resume {run_dir} or choose another --out")
    recorded = run_dir / PROMPTS_JSONL
    if prepared is None:
        prepared = prepare_prompts(recipe, load_run_prompts(recorded) if resume and recorded.is_file() else None)
    if stop.requested:
        raise InterruptedBeforeStart(run_dir, resume=resume)
    rundir.write_atomic(run_dir / rundir.RECIPE, yaml.safe_dump(recipe.model_dump(mode="json"), sort_keys=False))
    rundir.write_atomic(recorded, prompts_jsonl(prepared.prompts))
    todo = [p for p in prepared.prompts if not resume or prompt_report.status(run_dir, p.id) != prompt_report.DONE]
    width = max(1, min(recipe.design.prompt_batch, len(todo)))
    log(f"prompts: {len(todo)} of {len(prepared.prompts)} to search, {width} at a time in lockstep: "
        f"{recipe.search.algorithm} on {recipe.model.name} ({prepared.device}), budget {build_budget(recipe)} per "
        "prompt")  # fmt: skip
    bar = prompt_report.PromptsProgress(len(todo), enabled=progress)
    run = _Run(recipe, run_dir, prepared, LockstepBatcher(prepared.model.inference_denoiser), resume, stop,
               threading.Event(), threading.Lock(), bar)  # fmt: skip
    errors: list[tuple[PromptItem, BaseException]] = []
    results: dict[str, Any] = {}
    started = time.perf_counter()
    try:
        with bar:
            _run_threads(run, deque(todo), width, errors, results, log)
    finally:  # done, Ctrl-C or an error: merge what the prompt folders hold
        seconds = time.perf_counter() - started
        summary = prompt_report.merge(
            run_dir, recipe, prepared, run.batcher.count, seconds, previous, interrupted=stop.requested,
            signal_name=stop.signal_name,
        )  # fmt: skip
    if errors:  # the earliest prompt's error, whichever thread raised first
        order = {p.id: k for k, p in enumerate(prepared.prompts)}
        item, error = min(errors, key=lambda pair: order[pair[0].id])
        if not resume and not summary["prompts_done"] and not summary["prompts_interrupted"]:
            _remove_unstarted(run_dir)
        if isinstance(error, ValueError):  # bad input (an oracle's wrong shape, a refused sequence): one line
            kind = RecipeError if isinstance(error, RecipeError) else ValueError
            raise kind(f"prompt {item.id} (line {item.line}): {' '.join(str(error).split())}") from error
        raise error
    return DesignRun(recipe, run_dir, {p.id: results[p.id] for p in prepared.prompts if p.id in results}, summary)


def _read_summary(run_dir: Path) -> dict | None:
    import json

    path = Path(run_dir) / rundir.SUMMARY
    return json.loads(path.read_text()) if path.is_file() else None


def _remove_unstarted(run_dir: Path) -> None:
    """Remove what a run whose every search failed before writing its prompt's folder wrote, so that the run can be
    started again without --resume (as :func:`seqtree.design.remove_if_unstarted` does for one prompt); files this
    run did not write are left, and so is a folder holding them."""
    names = [rundir.RECIPE, PROMPTS_JSONL, rundir.DESIGNS_CSV, rundir.DESIGNS_JSONL, prompt_report.PROMPTS_CSV,
             rundir.CURVE_CSV, prompt_report.CURVES_CSV, rundir.CURVE_PNG, rundir.SUMMARY]  # fmt: skip
    for name in names:
        (run_dir / name).unlink(missing_ok=True)
    for folder in (run_dir / prompt_report.PROMPTS_DIR, run_dir):
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


def _run_threads(run: _Run, queue: deque, width: int, errors: list, results: dict, log) -> None:
    """``width`` threads take prompts from ``queue`` until it is empty, Ctrl-C is pressed or a prompt fails (the
    others then stop at their next step); this thread waits, so that it receives the signals. ``results`` gets each
    prompt's search result by id, ``errors`` (prompt, exception) for each prompt that failed."""
    lock = threading.Lock()

    def worker() -> None:
        while True:
            with lock:
                if not queue or run.stop.requested or run.abort.is_set():
                    return
                item = queue.popleft()
            try:
                summary, results[item.id] = _search_prompt(run, item)
            except BaseException as error:  # noqa: BLE001 - handed to the main thread, which raises it
                errors.append((item, error))
                run.abort.set()
                return
            run.progress.advance(summary)
            log(f"prompt {item.id}: best reward {summary['best_reward']:.4g}, reward mean "
                f"{summary['metrics']['reward_mean']:.4g}, fluency {summary['metrics']['fluency_mean']:.3g}, "
                f"{summary['nfe']} NFE ({summary['stop_reason']})")  # fmt: skip

    threads = [threading.Thread(target=worker, name=f"prompt-search-{i}", daemon=True) for i in range(width)]
    for thread in threads:
        thread.start()
    for thread in threads:
        while thread.is_alive():
            thread.join(timeout=0.1)
