"""``seqtree finetune``: rounds of search -> replay buffer -> WDCE fine-tuning (TR2-D2, Tang et al. 2025, Alg. 1).

Each round k = 1..R searches with the current policy (the recipe's ``search:`` and ``budget:``; or, with
``finetune.buffer_from: policy``, plain samples of the policy at the same budget: the on-policy baseline), adds the
results to the replay buffer with their importance weights (paths of a fine-tuned policy are replayed under the frozen
pretrained model; :mod:`seqtree.trajectory`), trains ``steps_per_round`` WDCE steps on the buffer
(:mod:`seqtree.training.wdce`), evaluates plain samples of the new policy (:mod:`seqtree.finetune_eval`) and exports
a checkpoint folder (``rounds/<k>/model``) that ``load_model``, ``seqtree sample`` and any recipe's ``model.name``
accept. Round 0 of ``metrics.csv`` is the pretrained model's evaluation.

A recipe with ``design.prompts_file`` (or a ``fluency:`` guard) fine-tunes on all its prompts
(:mod:`seqtree.finetune_prompts`): each round searches every prompt in lockstep into ``rounds/<k>/`` (a prompts run
directory), the buffer holds every prompt's trajectories with the prompt as fixed tokens, and the evaluation draws
``eval_samples`` plain samples per prompt (``rounds/<k>/eval.csv``, ``samples.csv``); ``metrics.csv``'s rewards and
fluency are then means over prompts.

Run directory: ``recipe.yaml``, ``rounds/<k>/`` (designs, curve, summary, model), ``buffer.safetensors``,
``state.ckpt`` (Lightning: policy, frozen copy, EMA, optimizer), ``csv/round_<k>/metrics.csv`` (Lightning's log of
the WDCE loss per step), ``metrics.csv`` (one row per round),
``finetune.png``, ``summary.json``, ``model/`` (the last round's export). A round is committed when its files are
written, ``progress.json`` last; Ctrl-C stops the round in progress, which is dropped, and ``--resume`` repeats it
from the committed state. Every round draws from generators seeded by (seed, round), so a resumed run reaches the
same result as an uninterrupted one.

Several processes (``finetune.strategy: ddp`` with ``devices`` and ``num_nodes``; Lightning's launcher, torchrun or
SLURM): the processes start and join before anything is written (:mod:`seqtree.training.ranks`). Rank 0 alone
searches, weighs, evaluates and writes the run directory; each round it hands its buffer to the other ranks, and
every rank trains WDCE on it, drawing its own minibatch rows, so one step averages the gradients of batch_size x
processes rows. The other ranks return rank 0's metrics and summary.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path
from typing import Any

import torch
import yaml

from seqtree import rundir
from seqtree.buffer import ReplayBuffer, result_rows
from seqtree.config import RecipeError
from seqtree.design import (
    InterruptedBeforeStart,
    SearchProgressBar,
    StopFlag,
    TimedOracle,
    build_budget,
    build_problem,
    prepare_design,
    resolved_run_dir,
    scored_as,
)
from seqtree.device import make_generator, set_threads
from seqtree.finetune_eval import evaluate_policy
from seqtree.prompts import uses_prompts
from seqtree.recipe import DesignRecipe, FinetuneSection
from seqtree.training.ranks import Ranks, launch_ranks

PROGRESS = "progress.json"
METRICS = "metrics.csv"
BUFFER = "buffer.safetensors"
STATE = "state.ckpt"
PLOT = "finetune.png"
ROUNDS = "rounds"
MODEL = "model"
POLICY_SAMPLES = 10**9  # best-of-N "as many as the budget allows" for the on-policy baseline


@dataclasses.dataclass
class FinetuneRun:
    recipe: DesignRecipe
    run_dir: Path
    metrics: list[dict[str, Any]]
    summary: dict[str, Any]


def round_seed(seed: int, round_index: int) -> int:
    """The seed of round k's search, training and evaluation draws (distinct per round, fixed per run)."""
    return seed * 1_000_003 + round_index


@dataclasses.dataclass
class _Session:
    """What every round of one run shares: the recipe, the model and its fine-tuning system, the oracle, the
    design's root, the buffer and the metrics so far."""

    recipe: DesignRecipe
    run_dir: Path
    model: Any  # LoadedModel of the pretrained checkpoint (its denoiser is the policy being trained)
    system: Any  # WDCEFineTuner
    oracle: TimedOracle
    root: torch.Tensor  # [L]
    buffer: ReplayBuffer
    metrics: list[dict[str, Any]]
    stop: StopFlag
    progress: bool
    log: Any
    device: torch.device = torch.device("cpu")  # where the policy searches and samples (model.device)
    ranks: Ranks = Ranks()  # the DDP processes; one unless finetune.devices / num_nodes ask for more
    prompts: Any = None  # PreparedPrompts of a prompts file (seqtree.finetune_prompts); root is then its first prompt's

    @property
    def cfg(self) -> FinetuneSection:
        return self.recipe.finetune

    def policy(self):
        """The current policy as a LoadedModel (the EMA weights when kept), in eval mode."""
        return dataclasses.replace(self.model, denoiser=self.system.export_model().eval())

    def pretrained_model(self):
        """The frozen pretrained model as a LoadedModel (fluency, and the NELBO of evaluation samples)."""
        return dataclasses.replace(self.model, denoiser=self.system.pretrained)

    def evaluate(self, seed: int):
        policy = self.policy()
        if self.prompts is not None:
            from seqtree.finetune_prompts import evaluate_prompts

            return evaluate_prompts(self.recipe, policy, self.pretrained_model(), self.prompts,
                                    num_samples=self.cfg.eval_samples, seed=seed)  # fmt: skip
        scalarize = build_problem(self.recipe, policy, self.oracle, self.root).scalarize
        return evaluate_policy(
            policy, self.system.pretrained, self.oracle, self.root, num_samples=self.cfg.eval_samples,
            num_steps=self.recipe.model.num_steps, scalarize=scalarize, seed=seed,
        )  # fmt: skip


def run_finetune(
    recipe: DesignRecipe,
    *,
    out: Path | None = None,
    resume: bool = False,
    progress: bool = False,
    stop: StopFlag | None = None,
    log=None,
) -> FinetuneRun:
    """Run (or resume) the recipe's fine-tuning rounds and write the run directory."""
    from seqtree.training.wdce import WDCEFineTuner

    cfg = recipe.finetune
    if cfg is None:
        raise RecipeError("finetune: the recipe has no finetune: section (rounds, steps_per_round, alpha, ...)")
    run_dir = resolved_run_dir(recipe, out)
    done = _read_progress(run_dir)
    if not resume and (done or (run_dir / rundir.SUMMARY).exists()):
        raise FileExistsError(f"{run_dir} holds an earlier run; use --resume {run_dir} or choose another --out")
    # Several processes (DDP): all of them from here on; rank 0 searches, evaluates and writes (module docstring).
    ranks = launch_ranks(accelerator=cfg.accelerator, devices=cfg.devices, num_nodes=cfg.num_nodes,
                         strategy=cfg.strategy)  # fmt: skip
    progress, log = (progress, log) if ranks.is_zero else (False, None)
    set_threads(cfg.threads)
    prompts = None
    if uses_prompts(recipe):  # a prompts file (or a fluency guard): every prompt searched in lockstep each round
        from seqtree.finetune_prompts import prepare as prepare_prompts

        prompts = prepare_prompts(recipe)
        device, model, oracle = prompts.device, prompts.model, prompts.oracle
        root = prompts.roots[prompts.prompts[0].id]  # the buffer's row length; every prompt's row is this long
    else:
        prepared = prepare_design(recipe)  # every refusal before the run folder appears (seqtree validate's checks)
        device, model, oracle, root = prepared.device, prepared.model, prepared.oracle, prepared.root
    if (stop or StopFlag()).requested:
        raise InterruptedBeforeStart(run_dir, resume=resume, command="finetune")
    if ranks.is_zero:
        rundir.write_atomic(run_dir / rundir.RECIPE, yaml.safe_dump(recipe.model_dump(mode="json"), sort_keys=False))
    system = WDCEFineTuner(
        model.denoiser, model.diffusion, lr=cfg.lr, weight_decay=cfg.weight_decay, replicates=cfg.replicates,
        cap=cfg.weight_cap, ema_decay=cfg.ema_decay, seed=recipe.seed,
    )  # fmt: skip
    started = time.perf_counter()
    session = _Session(recipe, run_dir, model, system, oracle, root, None, [], stop or StopFlag(), progress,
                       log or (lambda line: None), device, ranks)  # fmt: skip
    if prompts is not None:
        from seqtree.finetune_prompts import with_pretrained_fluency

        session.prompts = with_pretrained_fluency(prompts, session.pretrained_model())
    if done:
        state = torch.load(run_dir / STATE, map_location="cpu", weights_only=True)
        system.load_state_dict(state["state_dict"])
        session.buffer = ReplayBuffer.load(run_dir / BUFFER)
        session.metrics = _read_metrics(run_dir)[: done["rounds_done"] + 1]
        session.log(f"resuming {run_dir} after round {done['rounds_done']} of {cfg.rounds}")
    else:
        session.buffer = _new_buffer(recipe, cfg, root, model, oracle.num_objectives)
        if ranks.is_zero:
            evaluation = session.evaluate(round_seed(recipe.seed, 0))
            _write_evaluation(run_dir / ROUNDS / "0", evaluation)
            session.metrics = [_metrics_row(0, None, evaluation.as_dict(), previous=None)]
            _write_metrics(run_dir, session.metrics)

    for k in range((done or {}).get("rounds_done", 0) + 1, cfg.rounds + 1):
        target = cfg.target_reward
        if ranks.share(ranks.is_zero and target is not None and session.metrics[-1]["best_so_far"] >= target):
            session.log(f"target reward {cfg.target_reward} reached after round {k - 1}")
            break
        if not _run_round(session, k):
            break
    seconds = time.perf_counter() - started
    summary = None
    if ranks.is_zero:
        summary = _summarize(session, interrupted=session.stop.requested, seconds=seconds, resumed=bool(done))
        rundir.write_json(run_dir / rundir.SUMMARY, summary)
    summary, metrics = ranks.share((summary, session.metrics))  # the other ranks return rank 0's record
    ranks.close()
    return FinetuneRun(recipe, run_dir, metrics, summary)


def _round_search(recipe: DesignRecipe) -> tuple[str, dict[str, Any]]:
    """(algorithm, parameters) of a round's search: the recipe's, handing over every scored sequence; or, with
    ``buffer_from: policy``, best-of-N plain samples of the policy at the same budget."""
    from seqtree.search import ALGORITHMS

    cfg = recipe.finetune
    if cfg.buffer_from == "search":
        algorithm, params = recipe.search.algorithm, recipe.search.params()
        if "num_samples" in ALGORITHMS[algorithm].params.model_fields and "num_samples" not in params:
            params["num_samples"] = cfg.buffer_capacity or POLICY_SAMPLES  # the whole tree's finds, not a top 16
        return algorithm, params
    return "best_of_n", {"num_samples": POLICY_SAMPLES, "batch_size": 64, "alpha": cfg.alpha}


def _search(session: _Session, seed: int, k: int):
    """Round k's search with the current policy, or plain samples of it at the same budget (buffer_from policy);
    with a prompts file, every prompt in lockstep into ``rounds/<k>`` (:mod:`seqtree.finetune_prompts`)."""
    from seqtree.search import run_search

    recipe = session.recipe
    algorithm, params = _round_search(recipe)
    policy = session.policy()
    if session.prompts is not None:
        from seqtree.finetune_prompts import search_round

        return search_round(
            recipe, session.prompts, policy, session.run_dir / ROUNDS / str(k), algorithm=algorithm, params=params,
            seed=seed, stop=session.stop, progress=session.progress, log=session.log,
        )  # fmt: skip
    bar = SearchProgressBar(recipe, enabled=session.progress)

    def observe(point) -> bool:
        bar.update(point)
        return session.stop.requested

    problem = build_problem(recipe, policy, session.oracle, session.root.to(policy.device), observe)
    with bar, torch.no_grad():
        return run_search(algorithm, problem, build_budget(recipe), generator=make_generator(seed, policy.device),
                          **params)  # fmt: skip


def _run_round(session: _Session, k: int) -> bool:
    """One round: search, weigh and add, train, evaluate, commit. Returns False (writing nothing) when interrupted.
    Under DDP rank 0 searches while the other ranks wait for its buffer; all train; rank 0 evaluates and commits."""
    recipe, cfg, system = session.recipe, session.cfg, session.system
    seed = round_seed(recipe.seed, k)
    timings: dict[str, float] = {}
    found = _search_and_weigh(session, k, seed, timings) if session.ranks.is_zero else None
    stopped, session.buffer = session.ranks.share((session.stop.requested, session.buffer))
    if stopped:
        return False
    buffer = session.buffer
    tic = time.perf_counter()
    losses = _train(system, buffer, cfg, session.run_dir, k, seed, session.stop, session.progress)
    system.to(session.device).eval()  # Lightning's teardown leaves it on the CPU; the next search runs on the device
    timings["train_seconds"] = time.perf_counter() - tic
    if session.stop.requested:
        return False
    if not session.ranks.is_zero:
        return True  # on to the next round's buffer
    result, replay_nfe, refused = found
    tic = time.perf_counter()
    evaluation = session.evaluate(seed)
    timings["eval_seconds"] = time.perf_counter() - tic
    prompts = session.prompts is not None
    if prompts:  # means over prompts (seqtree.finetune_prompts)
        search_mean = result.mean_reward(float(getattr(session.oracle.oracle, "floor", -1e3)))
    else:
        search_mean = float(result.designs.scores.mean()) if len(result.designs) else math.nan
    search = {
        "algorithm": result.algorithm, "search_nfe": result.nfe, "search_oracle_calls": result.oracle_calls,
        "search_best": result.best_reward, "search_mean": search_mean,
        "replay_nfe": replay_nfe, "buffer_rows": len(buffer), "buffer_ess": buffer.effective_sample_size(),
        "refused_rows": len(refused), "wdce_loss": sum(losses) / max(len(losses), 1), **timings,
    }  # fmt: skip
    curve = None if prompts else result.curve
    session.metrics.append(_metrics_row(k, search, evaluation.as_dict(), session.metrics[-1], curve))
    _commit(session, k, result, evaluation)
    row = session.metrics[-1]
    fluency = f", fluency {row['eval_fluency_mean']:.3g}" if prompts else ""
    session.log(
        f"round {k}/{cfg.rounds}: {result.algorithm} best {row['search_best']:.4g} ({row['search_nfe']} NFE, "
        f"{row['search_oracle_calls']} oracle calls); buffer {row['buffer_rows']} rows (ESS {row['buffer_ess']:.1f}); "
        f"WDCE {row['wdce_loss']:.4g}; samples mean {row['eval_reward_mean']:.4g}{fluency}, pretrained NLL "
        f"{row['pretrained_nll_nats']:.1f} nats; best so far {row['best_so_far']:.4g}"
    )
    return True


def _search_and_weigh(session: _Session, k: int, seed: int, timings: dict[str, float]):
    """Rank 0's part of round k: search, weigh the results and add them to the buffer. Returns (result, replay NFE,
    refused rows), or None when interrupted."""
    recipe, buffer, system = session.recipe, session.buffer, session.system
    tic = time.perf_counter()
    result = _search(session, seed, k)
    timings["search_seconds"] = time.perf_counter() - tic
    if session.stop.requested:
        return None
    tic = time.perf_counter()
    mask_id = session.model.diffusion.mask_id
    if session.prompts is not None:
        from seqtree.finetune_prompts import prompt_rows

        rows = prompt_rows(result, session.prompts, mask_id, round_index=k, seed=seed)
    else:
        rows = result_rows(result, session.root == mask_id, round_index=k, seed=seed)
    replay_nfe = 0
    if k > 1 and rows is not None and len(rows["tokens"]):  # round 1 searched p_pre: its recorded log-probs are p_pre's
        rows["log_prob_pretrained"], replay_nfe = system.pretrained_path_log_prob(
            rows["tokens"], rows["unmask_step"], recipe.model.num_steps
        )
    refused = [] if rows is None else buffer.add(
        rows, source=result.algorithm, run={"round": k, "algorithm": result.algorithm, "seed": seed}, skip_invalid=True
    )  # fmt: skip
    timings["weight_seconds"] = time.perf_counter() - tic
    if not len(buffer):
        raise ValueError(f"round {k}: the search completed no design, so the buffer is empty; raise budget.nfe")
    return result, replay_nfe, refused


def _commit(session: _Session, k: int, result, evaluation) -> None:
    """Write round k's files; ``progress.json`` last, so a round either counts whole or not at all. A prompts
    file's search wrote its own round folder as it searched (a prompts run directory)."""
    run_dir, policy = session.run_dir, session.policy()
    if session.prompts is None:
        _write_round(run_dir / ROUNDS / str(k), session.recipe, result, policy, session.oracle, k)
    else:
        _export(policy, run_dir / ROUNDS / str(k) / MODEL, session.recipe, k)
    _write_evaluation(run_dir / ROUNDS / str(k), evaluation)
    session.buffer.save(run_dir / BUFFER)
    _write_metrics(run_dir, session.metrics)
    _plot(run_dir, session.metrics, session.recipe.name)
    _export(policy, run_dir / MODEL, session.recipe, k)
    rundir.write_json(run_dir / PROGRESS, {"rounds_done": k})


def _train(system, buffer, cfg: FinetuneSection, run_dir: Path, k: int, seed: int, stop, progress) -> list[float]:
    """``steps_per_round`` WDCE steps, continuing the optimizer from the last committed round's state."""
    import lightning as L
    from lightning.pytorch.callbacks import Callback
    from lightning.pytorch.loggers import CSVLogger

    from seqtree.training.buffer_data import BufferDataModule

    losses: list[float] = []

    class _Watch(Callback):
        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
            # DDP: the mean loss over the ranks, and a stop on any rank stops them all after the same step
            losses.append(float(trainer.strategy.reduce(outputs["loss"].detach().clone(), reduce_op="mean")))
            if trainer.strategy.reduce_boolean_decision(stop.requested, all=False):
                stop.requested = True
                trainer.should_stop = True

    import logging
    import warnings

    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)  # device banners and tips, once per round
    warnings.filterwarnings("ignore", message=r".*LeafSpec.*is deprecated")  # lightning's own pytree use
    L.seed_everything(seed, workers=True, verbose=False)
    system.reseed(seed)
    system.train()
    trainer = L.Trainer(
        max_steps=cfg.steps_per_round * k, accelerator=cfg.accelerator, devices=cfg.devices, strategy=cfg.strategy,
        num_nodes=cfg.num_nodes, use_distributed_sampler=False,  # every rank draws its own rows (BufferDataModule)
        precision=cfg.precision, gradient_clip_val=cfg.gradient_clip, enable_checkpointing=False,
        logger=CSVLogger(str(run_dir), name="csv", version=f"round_{k}"), log_every_n_steps=1,
        callbacks=[_Watch()], enable_progress_bar=progress, enable_model_summary=False, num_sanity_val_steps=0,
        limit_val_batches=0,
    )  # fmt: skip
    data = BufferDataModule(buffer, batch_size=cfg.batch_size, steps=cfg.steps_per_round, seed=seed)
    state = run_dir / STATE
    trainer.fit(system, datamodule=data, ckpt_path=str(state) if k > 1 else None, weights_only=True)
    system.cpu().eval()
    if not stop.requested:
        tmp = state.with_suffix(".tmp")
        trainer.save_checkpoint(str(tmp), weights_only=False)  # every rank calls it; rank 0 writes
        if trainer.is_global_zero:
            tmp.replace(state)
    return losses


def _new_buffer(recipe: DesignRecipe, cfg: FinetuneSection, root, model, num_objectives: int) -> ReplayBuffer:
    buffer = ReplayBuffer.empty(
        model=recipe.model.name, length=len(root), num_steps=recipe.model.num_steps, num_objectives=num_objectives,
        alpha=cfg.alpha, capacity=cfg.buffer_capacity, eviction=cfg.buffer_eviction,
        normalization=cfg.weight_normalization,
    )  # fmt: skip
    if cfg.seed_buffer is not None:
        from seqtree.buffer_import import imported_rows, read_scored

        sequences, rewards = read_scored(cfg.seed_buffer, cfg.reward_columns)
        if rewards.shape[1] != num_objectives:
            raise RecipeError(
                f"finetune.seed_buffer: {cfg.seed_buffer} has {rewards.shape[1]} reward column(s), the oracle "
                f"{num_objectives}; name them with finetune.reward_columns"
            )
        rows = imported_rows(sequences, rewards, tokenizer=model.tokenizer, root=root,
                             num_steps=recipe.model.num_steps, source=str(cfg.seed_buffer))  # fmt: skip
        buffer.add(rows, source="file", run={"file": str(cfg.seed_buffer)})
    return buffer


def _metrics_row(k: int, search: dict | None, evaluation: dict, previous: dict | None, curve=()) -> dict:
    """One row of metrics.csv. ``oracle_calls_to_best`` counts every oracle call (search and evaluation, all rounds)
    made until the best reward so far was first seen, read off the round's anytime ``curve``; with ``curve`` None (a
    prompts file, whose best is a mean over prompts of each prompt's best) the round's search calls all count.
    With a prompts file the rewards here are means over prompts (:mod:`seqtree.finetune_prompts`)."""
    search = search or {}
    before = previous["cumulative_oracle_calls"] if previous else 0
    prior_best = previous["best_so_far"] if previous else -math.inf
    search_best = search.get("search_best", -math.inf)
    best = max(prior_best, evaluation["eval_reward_best"], search_best)
    calls = search.get("search_oracle_calls", 0) + evaluation["eval_oracle_calls"]
    if best == prior_best and previous is not None:
        calls_to_best = previous["oracle_calls_to_best"]
    elif best == search_best:
        spent = search.get("search_oracle_calls", 0)
        if curve is not None:
            spent = next(p.oracle_calls for p in curve if p.best_reward >= best)
        calls_to_best = before + spent
    else:  # the evaluation samples found it: all of this round's calls were spent by then
        calls_to_best = before + calls
    nfe = search.get("search_nfe", 0) + search.get("replay_nfe", 0) + evaluation["eval_nfe"]
    return {
        "round": k, **search, **evaluation, "best_so_far": best, "oracle_calls_to_best": calls_to_best,
        "cumulative_oracle_calls": before + calls,
        "cumulative_nfe": (previous["cumulative_nfe"] if previous else 0) + nfe,
    }  # fmt: skip


def _write_evaluation(round_dir: Path, evaluation) -> None:
    """A prompts file's evaluation tables (``eval.csv`` per prompt, ``samples.csv``); nothing for one prompt."""
    if hasattr(evaluation, "write"):
        evaluation.write(round_dir)


def _write_round(round_dir: Path, recipe: DesignRecipe, result, policy, oracle, k: int) -> None:
    names = oracle.objective_names if len(oracle.objective_names) > 1 else []
    table = rundir.designs_table(
        result, recipe.design.num_designs, names, None, scored_as(policy.tokenizer),
        length_unit=getattr(policy.tokenizer, "length_unit", None),
    )  # fmt: skip
    rundir.write_designs(round_dir, table, fasta=policy.domain in ("dna", "protein", "ehrlich"))
    rundir.write_curve(round_dir, result.curve_dataframe(), f"{recipe.name}, round {k}: {result.algorithm}")
    _export(policy, round_dir / MODEL, recipe, k)


def _export(policy, directory: Path, recipe: DesignRecipe, k: int) -> None:
    """A checkpoint folder ``load_model`` reads: the seqtree backbone and tokenizer, or the wrapped Hugging Face
    model and its tokenizer, plus a short card."""
    denoiser, tokenizer = policy.denoiser, policy.tokenizer
    directory.mkdir(parents=True, exist_ok=True)
    if hasattr(denoiser, "save_pretrained"):
        denoiser.save_pretrained(directory, safe_serialization=True)
        tokenizer.save(directory)
    else:  # HFMaskedLMDenoiser: the wrapped AutoModelForMaskedLM with its own tokenizer
        denoiser.model.save_pretrained(directory, safe_serialization=True)
        tokenizer.hf.save_pretrained(directory)
    cfg = recipe.finetune
    (directory / "README.md").write_text(
        f"# {recipe.name}, fine-tuned (round {k})\n\nFine-tuned from `{recipe.model.name}` by `seqtree finetune` "
        f"(TR2-D2 WDCE): alpha {cfg.alpha}, {cfg.steps_per_round} steps per round at learning rate {cfg.lr}, "
        f"buffer from {cfg.buffer_from} ({recipe.search.algorithm}), seed {recipe.seed}.\n"
    )


def _write_metrics(run_dir: Path, metrics: list[dict]) -> None:
    import pandas as pd

    rundir.write_atomic(run_dir / METRICS, pd.DataFrame(metrics).to_csv(index=False))


def _read_metrics(run_dir: Path) -> list[dict]:
    import pandas as pd

    return pd.read_csv(run_dir / METRICS).to_dict("records")


def _read_progress(run_dir: Path) -> dict | None:
    path = run_dir / PROGRESS
    return json.loads(path.read_text()) if path.is_file() else None


def _plot(run_dir: Path, metrics: list[dict], title: str) -> None:
    """finetune.png: reward of the policy's samples per round (mean, top 10 %, best so far) and their negative
    log-likelihood under the pretrained model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    rounds = [m["round"] for m in metrics]
    figure, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    axes[0].plot(rounds, [m["eval_reward_mean"] for m in metrics], "o-", label="samples: mean")
    axes[0].plot(rounds, [m["eval_reward_top10"] for m in metrics], "s--", label="samples: top 10 %")
    axes[0].plot(rounds, [m["best_so_far"] for m in metrics], "k:", label="best found so far")
    axes[0].set_ylabel("reward")
    axes[1].plot(rounds, [m["pretrained_nll_nats"] for m in metrics], "o-", color="C3")
    axes[1].set_ylabel("NLL under the pretrained model (NELBO, nats)")
    for axis in axes:
        axis.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        axis.set_xlabel("round (0 = pretrained)")
        axis.grid(alpha=0.3)
    axes[0].legend(loc="best")
    figure.suptitle(title)
    rundir.save_figure(figure, run_dir / PLOT)


def _summarize(session: _Session, *, interrupted: bool, seconds: float, resumed: bool) -> dict[str, Any]:
    import seqtree

    recipe, run_dir, last = session.recipe, session.run_dir, session.metrics[-1]
    previous_seconds = 0.0
    if resumed and (run_dir / rundir.SUMMARY).is_file():
        previous_seconds = json.loads((run_dir / rundir.SUMMARY).read_text()).get("seconds", 0.0)
    return {
        "name": recipe.name, "model": recipe.model.name, "seed": recipe.seed,
        "rounds_done": int(last["round"]), "rounds": recipe.finetune.rounds, "interrupted": interrupted,
        "buffer_from": recipe.finetune.buffer_from, "algorithm": recipe.search.algorithm,
        "best_reward": float(last["best_so_far"]), "oracle_calls_to_best": int(last["oracle_calls_to_best"]),
        "final_eval_reward_mean": float(last["eval_reward_mean"]),
        **({"final_eval_fluency_mean": float(last["eval_fluency_mean"]), "prompts": len(session.prompts.prompts)}
           if session.prompts is not None else {}),
        "nfe": int(last["cumulative_nfe"]), "oracle_calls": int(last["cumulative_oracle_calls"]),
        "seconds": round(previous_seconds + seconds, 3), "buffer_rows": len(session.buffer),
        "model_dir": str(run_dir / MODEL) if last["round"] > 0 else None, "seqtree": seqtree.__version__,
    }  # fmt: skip
