"""Fleets of searches: one design recipe run once per seed, in parallel, into one merged run directory.

Users who design many seeds outgrow one process. ``seqtree design RECIPE --seeds 0-7 --workers N`` runs
:func:`seqtree.design.run_design` once per seed, each into a complete run directory of its own
(``<fleet>/seed-<s>/``, the recipe with ``seed`` replaced), then :func:`merge_runs` writes the merged
``designs.csv`` (best first, with a ``seed`` column), ``curve.csv`` / ``curve.png`` and one ``summary.json``.

Backends: ``--workers 1`` runs the seeds one after another in this process; otherwise Ray when it is installed (a
local Ray of ``workers`` CPUs, or the cluster at ``--ray-address``, one GPU per seed where the cluster has GPUs), else
local processes (``spawn``; visible CUDA GPUs dealt round-robin). The seed directories are the record: merging reads
them back from disk, so an interrupted fleet merges whatever its seeds wrote, and ``--resume`` (``fleet.json`` marks a
fleet directory) runs exactly the seeds whose summary is missing or says interrupted. On a Ray cluster the run
directory must be on a filesystem every node sees.
"""

from __future__ import annotations

import functools
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from seqtree import rundir
from seqtree.design import InterruptedBeforeStart, StopFlag, resolved_run_dir, run_design, stop_on_signals
from seqtree.extras import MissingExtra, missing_extra
from seqtree.fleet_merge import DONE, INTERRUPTED, MISSING, merge_runs, read_json, seed_dir
from seqtree.recipe import DesignRecipe

FLEET = "fleet.json"
SEQUENTIAL, PROCESSES, RAY = "sequential", "processes", "ray"


def parse_seeds(text: str) -> list[int]:
    """``0-7``, ``0,3,5`` or ``0-3,8`` -> seeds in the order given; a ValueError naming ``--seeds`` otherwise.

    A seed named twice is an error rather than dropped: two runs of one seed would write one directory."""
    seeds: list[int] = []
    for part in text.split(","):
        start, dash, stop = part.strip().partition("-")
        try:
            first, last = int(start), int(stop) if dash else int(start)
        except ValueError:
            raise ValueError(f"--seeds {text!r}: expected seeds such as 0-7, 0,3,5 or 0-3,8") from None
        if first < 0 or last < first:
            raise ValueError(f"--seeds {text!r}: {part.strip()!r} is not a range of seeds >= 0 (low-high)")
        seeds.extend(range(first, last + 1))
    seen: set[int] = set()
    for seed in seeds:
        if seed in seen:
            raise ValueError(f"--seeds {text!r}: seed {seed} is named twice")
        seen.add(seed)
    return seeds


def is_fleet_dir(path: Path) -> bool:
    return (Path(path) / FLEET).is_file()


def seed_status(run_dir: Path) -> str:
    """``done``, ``interrupted`` or ``missing`` (no summary: never started, or killed before writing one)."""
    summary = read_json(Path(run_dir) / rundir.SUMMARY)
    if summary is None:
        return MISSING
    return INTERRUPTED if summary.get("interrupted") else DONE


def pending_seeds(fleet_dir: Path, seeds: list[int]) -> list[int]:
    """The seeds a resume must run: those not done; finished seeds are left alone."""
    return [s for s in seeds if seed_status(seed_dir(fleet_dir, s)) != DONE]


def choose_backend(workers: int, ray_address: str | None) -> str:
    """Ray when asked for by address or when installed; one worker needs no pool at all."""
    if ray_address is not None:
        if not _ray_installed():
            raise missing_extra(f"--ray-address {ray_address}", "ray", "Ray is not installed")
        return RAY
    if workers == 1:
        return SEQUENTIAL
    return RAY if _ray_installed() else PROCESSES


# ----------------------------------------------------------------------------------------------- one seed
@dataclass
class SeedOutcome:
    """What a seed's run hands back to the driver: its summary, or one line of error; neither when it was stopped
    before it began."""

    seed: int
    run_dir: str
    summary: dict[str, Any] | None = None
    error: str | None = None


def run_seed(
    recipe: DesignRecipe,
    run_dir: Path,
    *,
    resume: bool = False,
    stop: StopFlag | None = None,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
) -> SeedOutcome:
    """One seed's design run (the recipe's ``seed`` is the seed) into ``run_dir``.

    A bad-input error (missing model, wrong length, a recipe the oracle rejects) is returned as one line rather than
    raised, so that it crosses process and Ray boundaries intact and the other seeds still merge; bugs raise."""
    from seqtree.models.tokenizers import TokenizationError

    try:
        run = run_design(recipe, out=Path(run_dir), resume=resume, progress=progress, stop=stop, log=log)
    except InterruptedBeforeStart:  # stopped before its run folder was written: a seed still to run
        return SeedOutcome(recipe.seed, str(run_dir))
    except (FileNotFoundError, FileExistsError, TokenizationError, ValueError, MissingExtra) as error:
        return SeedOutcome(recipe.seed, str(run_dir), error=" ".join(str(error).split()))
    return SeedOutcome(recipe.seed, str(run_dir), summary=run.summary)


class _WorkerStop:
    """A worker's stop flag (duck-typed as :class:`StopFlag`): its own signals, or the driver's event."""

    def __init__(self, event=None) -> None:
        self.event = event
        self.signalled = False
        self.signal_name: str | None = None

    @property
    def requested(self) -> bool:
        return self.signalled or (self.event is not None and self.event.is_set())

    @requested.setter
    def requested(self, value: bool) -> None:
        self.signalled = value


_STOP_EVENT = None  # the driver's stop event, in a worker process of the process backend


def _worker_run(recipe: DesignRecipe, run_dir: str, resume: bool, cwd: str) -> SeedOutcome:
    """A seed in a worker (process or Ray task): the driver's working directory, so relative paths in the recipe
    mean what they meant there; a seed the driver stopped before it began is skipped without loading anything."""
    if _STOP_EVENT is not None and _STOP_EVENT.is_set():
        return SeedOutcome(recipe.seed, run_dir)
    if Path(cwd).is_dir():
        os.chdir(cwd)
    with stop_on_signals(_WorkerStop(_STOP_EVENT), second_sigint_interrupts=False) as flag:
        return run_seed(recipe, Path(run_dir), resume=resume, stop=flag)


def _init_process_worker(event, counter, gpus: list[str], threads: int | None) -> None:
    """Each worker process: the driver's stop event, SIGINT left to the driver between seeds, one GPU dealt
    round-robin (before CUDA starts), and its share of the CPU threads."""
    global _STOP_EVENT
    _STOP_EVENT = event
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with counter.get_lock():
        index = counter.value
        counter.value += 1
    if gpus:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpus[index % len(gpus)]
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


# ---------------------------------------------------------------------------------------------- the fleet
@dataclass
class FleetRun:
    recipe: DesignRecipe
    run_dir: Path
    seeds: list[int]
    backend: str
    workers: int
    summary: dict[str, Any] = field(default_factory=dict)


def run_fleet(
    recipe: DesignRecipe,
    *,
    seeds: list[int] | None = None,
    out: Path | None = None,
    workers: int | None = None,
    ray_address: str | None = None,
    resume: bool = False,
    stop: StopFlag | None = None,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
    backend: str | None = None,
) -> FleetRun:
    """Run ``recipe`` once per seed and write the merged run directory; ``backend`` forces one (tests).

    With ``resume`` the seeds come from ``fleet.json`` and only the seeds not done run again. However the runs end
    (done, Ctrl-C, a seed's error), the merged outputs are written from what the seed directories hold; then the
    first seed error, if any, is raised as a ValueError naming the seed."""
    log = log or (lambda line: None)
    stop = stop or StopFlag()
    fleet_dir = resolved_run_dir(recipe, out)
    previous = read_json(fleet_dir / rundir.SUMMARY) or {}
    if resume:
        record = read_json(fleet_dir / FLEET)
        if record is None:
            raise FileNotFoundError(f"--resume {fleet_dir}: no {FLEET} there; is it a fleet of seeds?")
        if seeds is not None and seeds != record["seeds"]:
            raise ValueError(
                f"--seeds: the fleet in {fleet_dir} runs seeds {record['seeds']}; resume it without --seeds"
            )
        seeds, workers = record["seeds"], workers or record["workers"]
    elif (fleet_dir / FLEET).exists() or (fleet_dir / rundir.SUMMARY).exists():
        raise FileExistsError(f"{fleet_dir} holds an earlier run; use --resume {fleet_dir} or choose another --out")
    if not seeds:
        raise ValueError("--seeds: give at least one seed, e.g. --seeds 0-7")
    workers = max(1, min(workers or 1, len(seeds)))
    backend = backend or choose_backend(workers, ray_address)
    if backend not in (SEQUENTIAL, PROCESSES, RAY):
        raise ValueError(f"backend {backend!r}: choose {SEQUENTIAL}, {PROCESSES} or {RAY}")
    if backend != SEQUENTIAL and recipe.output.replay_buffer is not None:
        raise ValueError(
            "output.replay_buffer: parallel seeds would overwrite each other's rows in one buffer file; "
            "run the fleet with --workers 1 to append every seed"
        )
    todo = pending_seeds(fleet_dir, seeds) if resume else list(seeds)
    record = {"seeds": seeds, "workers": workers, "backend": backend, "ray_address": ray_address}
    rundir.write_json(fleet_dir / FLEET, record)
    rundir.write_atomic(fleet_dir / rundir.RECIPE, yaml.safe_dump(recipe.model_dump(mode="json"), sort_keys=False))
    runs = {s: (recipe.model_copy(update={"seed": s}), seed_dir(fleet_dir, s).resolve()) for s in todo}
    size = max(1, min(workers, len(todo)))  # no idle workers on a resume of a few seeds
    log(f"fleet: {len(todo)} of {len(seeds)} seeds to run in {fleet_dir}, {_describe(backend, size)}")

    started = time.perf_counter()
    errors: list[str] = []

    def collect(outcome: SeedOutcome) -> None:
        if outcome.error is not None:
            errors.append(f"seed {outcome.seed}: {outcome.error}")
            log(errors[-1])
        elif outcome.summary is not None:
            s = outcome.summary
            log(f"seed {outcome.seed}: best reward {s['best_reward']:.4g}, {s['nfe']} NFE, {s['seconds']:.1f} s"
                f" ({s['stop_reason']})")  # fmt: skip

    try:
        if runs and backend == SEQUENTIAL:
            _run_sequential(runs, resume, stop, progress, log, collect)
        elif runs and backend == PROCESSES:
            _run_processes(runs, resume, stop, size, log, collect)
        elif runs:
            _run_ray(runs, resume, stop, size, ray_address, log, collect)
    finally:  # Ctrl-C, an error or done: merge what the seed directories hold
        seconds = time.perf_counter() - started + float(previous.get("seconds", 0.0))
        facts = {"name": recipe.name, "algorithm": recipe.search.algorithm, "model": recipe.model.name}
        summary = merge_runs(fleet_dir, seeds, workers=workers, backend=backend, seconds=seconds, facts=facts)
    if summary["best_seed"] is not None:
        log(f"fleet: best reward {summary['best_reward']:.4g} from seed {summary['best_seed']}")
    if errors:
        raise ValueError(errors[0] if len(errors) == 1 else f"{errors[0]} (and {len(errors) - 1} more seeds)")
    return FleetRun(recipe, fleet_dir, seeds, backend, workers, summary)


def _describe(backend: str, workers: int) -> str:
    if backend == SEQUENTIAL:
        return "one after another in this process"
    return f"{workers} at a time on {'Ray' if backend == RAY else 'local processes'}"


def _run_sequential(runs, resume, stop, progress, log, collect) -> None:
    """``--workers 1``: the seeds in turn, sharing the command's stop flag (Ctrl-C ends the current seed cleanly and
    starts no other)."""
    for seed, (recipe, run_dir) in runs.items():
        if stop.requested:
            break
        prefixed = functools.partial(_prefixed, log, f"seed {seed}: ")
        collect(run_seed(recipe, run_dir, resume=resume, stop=stop, progress=progress, log=prefixed))


def _prefixed(log: Callable[[str], None], prefix: str, line: str) -> None:
    log(prefix + line)


def _run_processes(runs, resume, stop, workers, log, collect) -> None:
    """Local worker processes (``spawn``: no forked torch state). The driver polls its stop flag and passes a stop on
    through an event the workers' searches read; seeds not yet begun are then skipped."""
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    if not _ray_installed():
        log(f"Ray is not installed: running {workers} seeds at a time on local processes "
            "(pip install 'seqtree[ray]' runs them on Ray)")  # fmt: skip
    context = multiprocessing.get_context("spawn")
    event, counter = context.Event(), context.Value("i", 0)
    threads = None if "OMP_NUM_THREADS" in os.environ else max(1, (os.cpu_count() or 1) // workers)
    initargs = (event, counter, _visible_gpus(), threads)
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_init_process_worker, initargs=initargs)
    pending = {pool.submit(_worker_run, recipe, str(d), resume, os.getcwd()) for recipe, d in runs.values()}
    try:
        while pending:
            done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
            for future in done:
                if not future.cancelled():
                    collect(future.result())
            if stop.requested and not event.is_set():
                event.set()
                for future in pending:
                    future.cancel()
    finally:
        event.set()  # a second Ctrl-C or an error here: the running seeds stop and write what they have
        # Every seed done: the idle workers may exit on their own; otherwise wait for the seeds still writing.
        pool.shutdown(wait=bool(pending), cancel_futures=True)


def _visible_gpus() -> list[str]:
    """CUDA devices this process may use, as CUDA_VISIBLE_DEVICES names them (none without CUDA)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [d.strip() for d in visible.split(",") if d.strip() and d.strip() != "-1"]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]


def _run_ray(runs, resume, stop, workers, ray_address, log, collect) -> None:
    """Ray: at most ``workers`` seeds in flight, each a task with one CPU (and one GPU where the cluster has any).
    A stop cancels the running tasks, which Ray delivers as SIGINT: the seeds stop at their next step and write."""
    import logging

    import ray
    from ray.exceptions import TaskCancelledError

    owned = not ray.is_initialized()
    if owned:
        options = {"address": ray_address or "local", "include_dashboard": False, "log_to_driver": False,
                   "logging_level": logging.ERROR}  # fmt: skip
        ray.init(**options, **({} if ray_address else {"num_cpus": workers}))
    try:
        gpus = ray.cluster_resources().get("GPU", 0)
        where = f"the cluster at {ray_address}" if ray_address else "a local Ray"
        log(f"ray: {where}, {int(ray.cluster_resources().get('CPU', 0))} CPUs, {int(gpus)} GPUs")
        task = ray.remote(_worker_run).options(num_cpus=1, num_gpus=1 if gpus else 0, max_retries=0)
        queue, running, cancelled = list(runs.values()), {}, False
        while queue or running:
            while queue and len(running) < workers and not stop.requested:
                recipe, run_dir = queue.pop(0)
                running[task.remote(recipe, str(run_dir), resume, os.getcwd())] = recipe.seed
            if stop.requested and not cancelled:
                queue, cancelled = [], True
                for ref in running:
                    ray.cancel(ref)
            if not running:
                break
            done, _ = ray.wait(list(running), num_returns=1, timeout=0.2)
            for ref in done:
                seed = running.pop(ref)
                try:
                    outcome = ray.get(ref)
                except TaskCancelledError:
                    continue
                if outcome.summary is None and outcome.error is None:
                    continue
                if outcome.summary is not None and not Path(outcome.run_dir, rundir.SUMMARY).is_file():
                    raise FileNotFoundError(
                        f"seed {seed} ran on the cluster but {outcome.run_dir} is not visible here; "
                        "--ray-address needs a run directory on a filesystem every node shares"
                    )
                collect(outcome)
    finally:
        if owned:
            ray.shutdown()


def _ray_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("ray") is not None


# ----------------------------------------------------------------------------------------------- merging
