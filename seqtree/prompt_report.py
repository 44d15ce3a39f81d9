"""The files of a multi-prompt run (:mod:`seqtree.prompts`): each prompt's folder, and the merged tables, curves and
summary read back from those folders (so an interrupted or resumed run merges whatever its prompts wrote)."""

from __future__ import annotations

import json
import math
import platform
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from seqtree import rundir
from seqtree.prompt_metrics import DISTINCT_N, completion_metrics, mean_curve

PROMPTS_DIR = "prompts"
PROMPTS_CSV = "prompts.csv"
CURVES_CSV = "curves.csv"  # every prompt's anytime curve; curve.csv holds their mean
DONE, INTERRUPTED, MISSING = "done", "interrupted", "missing"
LEADING = ["prompt_id", "prompt", "rank", "completion", "reward", "fluency"]


def prompt_dir(run_dir: Path, prompt_id: str) -> Path:
    return Path(run_dir) / PROMPTS_DIR / prompt_id


def _read_json(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.is_file() else None


def status(run_dir: Path, prompt_id: str) -> str:
    """``done``, ``interrupted`` or ``missing`` (never started, or stopped before its folder was written)."""
    summary = _read_json(prompt_dir(run_dir, prompt_id) / rundir.SUMMARY)
    if summary is None:
        return MISSING
    return INTERRUPTED if summary.get("interrupted") else DONE


# ---------------------------------------------------------------------------------------------- one prompt
def write_prompt(
    folder: Path,
    recipe,
    item,
    result,
    objective,
    fluency,
    model,
    designed,
    decode,
    *,
    seconds: float,
    interrupted: bool,
) -> dict[str, Any]:
    """Write a prompt's ``designs.csv`` / ``designs.jsonl``, ``curve.csv`` and ``summary.json``; returns the summary.

    Completions are ``decode`` of the designed positions of each design's tokens (special tokens dropped by the
    tokenizer), so a prompt's text never leaks into its completion; their fluency comes from ``fluency`` (memoised
    when the search already scored it, else evaluated now and counted)."""
    from seqtree.design import scored_as

    count = recipe.design.completions_per_prompt or recipe.design.num_designs
    names = objective.objective_names if objective.num_objectives > 1 else []
    unit = getattr(model.tokenizer, "length_unit", None)  # e.g. bases, for tokens that hold several letters
    table = rundir.designs_table(result, count, names, item.text, scored_as(model.tokenizer), length_unit=unit)
    first = {}
    for index, sequence in enumerate(result.designs.sequences):
        first.setdefault(sequence, index)
    tokens = result.designs.tokens
    completions = [decode(tokens[first[s]][designed.cpu()].tolist()) for s in table["sequence"]]
    scored = fluency.score(list(table["sequence"])) if len(table) else None
    values = [] if scored is None else [v if ok else math.nan for v, ok in zip(scored.values.tolist(), scored.valid)]
    table.insert(0, "prompt_id", item.id)
    table["completion"] = completions
    table["fluency"] = values
    table = table[[*LEADING, *[c for c in table.columns if c not in LEADING and c != "sequence"], "sequence"]]
    rundir.write_designs(folder, table, fasta=False)
    rundir.write_atomic(folder / rundir.CURVE_CSV, result.curve_dataframe().to_csv(index=False))
    failures = dict(objective.failures)
    for reason, number in result.extras.get("floored_rewards", {}).items():
        failures[reason] = failures.get(reason, 0) + number
    metrics = completion_metrics(completions, list(table["reward"]), values, float(objective.floor))
    summary = {
        "prompt_id": item.id,
        "prompt": item.text,
        "index": item.index,
        "line": item.line,
        "seed": recipe.seed + item.index,
        "algorithm": result.algorithm,
        "nfe": result.nfe,
        "oracle_calls": result.oracle_calls,
        "denoiser_calls": int(result.extras.get("denoiser_calls", 0)),
        "seconds": round(seconds, 3),
        "stop_reason": result.stop_reason,
        "interrupted": interrupted,
        "iterations": result.iterations,
        "best_reward": result.best_reward,
        "num_designs": len(table),
        "invalid": {"count": int(sum(failures.values())), "reasons": failures},
        "fluency": {
            "rows": fluency.count.rows,
            "calls": fluency.count.calls,
            "seconds": round(fluency.count.seconds, 3),
        },  # fmt: skip
        "metrics": metrics,
    }
    rundir.write_json(folder / rundir.SUMMARY, summary)
    return summary


# -------------------------------------------------------------------------------------------------- merging
def _read_csv(path: Path) -> pd.DataFrame:
    if not path.is_file() or path.stat().st_size == 0:
        return pd.DataFrame()
    return pd.read_csv(path, keep_default_na=False, na_values=[""], dtype={"prompt_id": str})


def merge(
    run_dir: Path,
    recipe,
    prepared,
    forward,
    seconds: float,
    previous: dict[str, Any] | None,
    *,
    interrupted: bool,
    signal_name: str | None,
) -> dict[str, Any]:
    """Read every prompt's folder and write the merged ``designs.csv`` / ``designs.jsonl``, ``prompts.csv``,
    ``curves.csv``, ``curve.csv`` (the mean over prompts), ``curve.png`` and ``summary.json``; returns the summary.
    Counts that span sessions (forward calls, seconds) add the previous summary's."""
    import torch
    import transformers

    import seqtree

    previous = previous or {}
    summaries, tables, curves, rows = {}, [], {}, []
    for item in prepared.prompts:
        folder = prompt_dir(run_dir, item.id)
        summary = _read_json(folder / rundir.SUMMARY)
        state = MISSING if summary is None else INTERRUPTED if summary.get("interrupted") else DONE
        row: dict[str, Any] = {"prompt_id": item.id, "prompt": item.text, "index": item.index,
                               "seed": recipe.seed + item.index, "status": state}  # fmt: skip
        if summary is not None:
            summaries[item.id] = summary
            tables.append(_read_csv(folder / rundir.DESIGNS_CSV))
            curves[item.id] = _read_csv(folder / rundir.CURVE_CSV)
            row |= {key: summary[key] for key in ("nfe", "oracle_calls", "denoiser_calls", "seconds", "stop_reason")}
            row |= summary["metrics"]
            row |= {"search_best_reward": summary["best_reward"], "invalid": summary["invalid"]["count"]}
            row |= {"fluency_rows": summary["fluency"]["rows"], "fluency_calls": summary["fluency"]["calls"]}
        rows.append(row)
    designs = pd.concat([t for t in tables if len(t)], ignore_index=True) if any(len(t) for t in tables) else (
        pd.DataFrame(columns=[*LEADING, "sequence"]))  # fmt: skip
    rundir.write_designs(run_dir, designs, fasta=False)
    table = pd.DataFrame(rows)
    rundir.write_atomic(run_dir / PROMPTS_CSV, table.to_csv(index=False))
    frames = [c.assign(prompt_id=k)[["prompt_id", *c.columns]] for k, c in curves.items() if len(c)]
    all_curves = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["prompt_id"])
    rundir.write_atomic(run_dir / CURVES_CSV, all_curves.to_csv(index=False))
    mean = mean_curve(curves)
    rundir.write_atomic(run_dir / rundir.CURVE_CSV, mean.to_csv(index=False))
    _plot(run_dir / rundir.CURVE_PNG, curves, mean, f"{recipe.name}: {recipe.search.algorithm}, "
          f"{len(prepared.prompts)} prompts")  # fmt: skip

    done = list(summaries.values())
    failures: dict[str, int] = {}
    for s in done:
        for reason, number in s["invalid"]["reasons"].items():
            failures[reason] = failures.get(reason, 0) + number
    best = {k: s["best_reward"] for k, s in summaries.items() if not _nan(s["best_reward"])}
    best_prompt = max(best, key=best.get) if best else None
    statuses = table["status"].tolist()
    incomplete = any(s != DONE for s in statuses)
    forward_total = {key: getattr(forward, key) + previous.get("forward", {}).get(key, 0)
                     for key in ("calls", "rows", "seconds")}  # fmt: skip
    forward_total["seconds"] = round(forward_total["seconds"], 3)
    total_seconds = seconds + float(previous.get("seconds", 0.0))
    oracle_seconds = prepared.oracle.seconds + float(previous.get("time_split", {}).get("oracle_seconds", 0.0))
    fluency_seconds = sum(s["fluency"]["seconds"] for s in done)
    section = prepared.fluency
    summary = {
        "name": recipe.name,
        "algorithm": recipe.search.algorithm,
        "model": recipe.model.name,
        "seed": recipe.seed,
        "prompts": len(prepared.prompts),
        "prompts_file": None if recipe.design.prompts_file is None else str(recipe.design.prompts_file),
        "budget_per_prompt": recipe.budget.model_dump(),
        "nfe": sum(int(s["nfe"]) for s in done),
        "oracle_calls": sum(int(s["oracle_calls"]) for s in done),
        "denoiser_calls": sum(int(s["denoiser_calls"]) for s in done),
        "forward": forward_total,
        "fluency": {
            "model": section.model,
            "samples": section.samples,
            "weight": section.weight,
            "min_fluency": section.min_fluency,
            "rows": sum(s["fluency"]["rows"] for s in done),
            "calls": sum(s["fluency"]["calls"] for s in done),
            "seconds": round(fluency_seconds, 3),
        },
        "seconds": round(total_seconds, 3),
        "stop_reason": "interrupted" if incomplete else "completed",
        "interrupted": incomplete,
        "signal": signal_name if interrupted else None,
        "best_reward": best[best_prompt] if best_prompt is not None else math.nan,
        "best_prompt": best_prompt,
        "num_designs": len(designs),
        "metrics": _over_prompts(done),
        "invalid": {"count": int(sum(failures.values())), "reasons": failures},
        "prompts_done": [i for i, s in zip(table["prompt_id"], statuses) if s == DONE],
        "prompts_interrupted": [i for i, s in zip(table["prompt_id"], statuses) if s == INTERRUPTED],
        "prompts_missing": [i for i, s in zip(table["prompt_id"], statuses) if s == MISSING],
        "time_split": {
            "denoiser_seconds": forward_total["seconds"],
            "oracle_seconds": round(oracle_seconds, 3),
            "engine_seconds": round(
                max(total_seconds - forward_total["seconds"] - oracle_seconds - fluency_seconds, 0.0), 3
            ),  # fmt: skip
        },
        "versions": {
            "seqtree": seqtree.__version__,
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "python": platform.python_version(),
        },  # fmt: skip
    }
    rundir.write_json(run_dir / rundir.SUMMARY, summary)
    return summary


def _over_prompts(summaries: list[dict[str, Any]]) -> dict[str, float]:
    """Means over prompts of the per-prompt metrics (NaN-free prompts only, each key on its own)."""
    keys = ["reward_mean", "reward_best", "fluency_mean", *[f"distinct_{n}" for n in DISTINCT_N]]
    out = {}
    for key in keys:
        values = [s["metrics"][key] for s in summaries if not _nan(s["metrics"].get(key))]
        out[key] = float(np.mean(values)) if values else math.nan
    return out


def _plot(path: Path, curves: dict[str, pd.DataFrame], mean: pd.DataFrame, title: str) -> None:
    """Best reward so far against NFE: each prompt faintly (up to 50), their mean in bold."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6.5, 4.2), constrained_layout=True)
    for curve in list(curves.values())[:50]:
        if len(curve):
            axis.step(curve["nfe"], curve["best_reward"], where="post", color="0.6", alpha=0.35, linewidth=0.8)
    if len(mean):
        axis.plot(mean["nfe"], mean["best_reward"], color="C0", linewidth=2.2, label="best reward, mean over prompts")
        axis.plot(mean["nfe"], mean["mean_reward"], color="C1", linewidth=1.5, label="mean reward, mean over prompts")
        axis.legend(loc="lower right", fontsize="small")
    axis.set_xlabel("NFE per prompt (denoiser rows)")
    axis.set_ylabel("reward")
    axis.grid(alpha=0.3)
    figure.suptitle(title)
    rundir.save_figure(figure, path)


def _nan(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


class PromptsProgress:
    """A rich progress bar over the prompts to search, showing NFE spent and the best reward; silent when disabled."""

    def __init__(self, total: int, *, enabled: bool) -> None:
        self.total, self.enabled, self.progress = total, enabled, None
        self.nfe, self.best = 0, -math.inf

    def __enter__(self) -> PromptsProgress:
        if self.enabled:
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

            self.progress = Progress(
                TextColumn("[bold]prompts"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                TextColumn("NFE {task.fields[nfe]} | best {task.fields[best]}"), TimeElapsedColumn(),
                TimeRemainingColumn(),
            )  # fmt: skip
            self.progress.start()
            self.task = self.progress.add_task("prompts", total=self.total, nfe=0, best="-")
        return self

    def advance(self, summary: dict[str, Any]) -> None:
        self.nfe += int(summary["nfe"])
        if not _nan(summary["best_reward"]):
            self.best = max(self.best, float(summary["best_reward"]))
        if self.progress is not None:
            self.progress.update(self.task, advance=1, nfe=self.nfe, best=f"{self.best:.4g}")

    def __exit__(self, *exc) -> None:
        if self.progress is not None:
            self.progress.stop()
