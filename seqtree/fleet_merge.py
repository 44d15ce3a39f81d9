"""Merging a fleet's seed directories into one record: designs best first with a ``seed`` column, the curves of
every seed, and one summary (:mod:`seqtree.fleet` runs the seeds). Merging reads the seed directories back from
disk, so an interrupted or failed fleet merges whatever its seeds wrote."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from seqtree import rundir

DONE, INTERRUPTED, MISSING = "done", "interrupted", "missing"  # a seed's state in the fleet record


def seed_dir(fleet_dir: Path, seed: int) -> Path:
    return Path(fleet_dir) / f"seed-{seed}"


def merge_designs(tables: dict[int, pd.DataFrame]) -> pd.DataFrame:
    """All seeds' designs, best first: ``rank`` over the fleet, then ``seed`` and the seed's own ``seed_rank``;
    equal rewards keep seed order. A design found by several seeds appears once per seed."""
    frames = [t.rename(columns={"rank": "seed_rank"}).assign(seed=s) for s, t in tables.items() if len(t)]
    if not frames:
        return pd.DataFrame(columns=["rank", "seed", "seed_rank", "sequence", "reward"])
    merged = pd.concat(frames, ignore_index=True)
    merged = merged.sort_values(
        ["reward", "seed", "seed_rank"], ascending=[False, True, True], kind="stable", na_position="last"
    )
    rest = [c for c in merged.columns if c not in ("seed", "seed_rank")]
    merged = merged[["seed", "seed_rank", *rest]].reset_index(drop=True)
    merged.insert(0, "rank", range(1, len(merged) + 1))
    return merged


def merge_curves(curves: dict[int, pd.DataFrame]) -> pd.DataFrame:
    """Every seed's curve, one after another, with a leading ``seed`` column."""
    frames = [c.assign(seed=s)[["seed", *c.columns]] for s, c in curves.items() if len(c)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["seed"])


def fleet_summary(
    summaries: dict[int, dict[str, Any]], seeds: list[int], *, workers: int, backend: str, seconds: float, **facts
) -> dict[str, Any]:
    """The fleet's summary: totals over the seeds that wrote one, the best reward and its seed, which seeds are done,
    interrupted or missing, and each seed's own summary. ``nfe`` and ``oracle_calls`` are the fleet's totals;
    ``seconds`` is wall time (summed over resumes), ``search_seconds`` the seeds' own times added up."""
    status = {s: MISSING if s not in summaries else INTERRUPTED if summaries[s].get("interrupted") else DONE
              for s in seeds}  # fmt: skip
    rewards = {s: float(summaries[s]["best_reward"]) for s in summaries if not _nan(summaries[s]["best_reward"])}
    best_seed = max(rewards, key=lambda s: (rewards[s], -seeds.index(s))) if rewards else None
    incomplete = [s for s in seeds if status[s] != DONE]
    return {
        **facts,
        "fleet": True,
        "seeds": seeds,
        "workers": workers,
        "backend": backend,
        "nfe": sum(int(x["nfe"]) for x in summaries.values()),
        "oracle_calls": sum(int(x["oracle_calls"]) for x in summaries.values()),
        "seconds": round(seconds, 3),
        "search_seconds": round(sum(float(x["seconds"]) for x in summaries.values()), 3),
        "best_reward": rewards[best_seed] if best_seed is not None else float("nan"),
        "best_seed": best_seed,
        "seeds_done": [s for s in seeds if status[s] == DONE],
        "seeds_interrupted": [s for s in seeds if status[s] == INTERRUPTED],
        "seeds_missing": [s for s in seeds if status[s] == MISSING],
        "stop_reason": INTERRUPTED if incomplete else "completed",
        "interrupted": bool(incomplete),
        "runs": [summaries[s] for s in seeds if s in summaries],
    }


def merge_runs(
    fleet_dir: Path, seeds: list[int], *, workers: int, backend: str, seconds: float, facts: dict | None = None
) -> dict[str, Any]:
    """Read each seed's directory and write the merged ``designs.{csv,jsonl[,fasta]}``, ``curve.csv`` /
    ``curve.png`` and ``summary.json`` (atomically); returns the summary. Only seeds with a summary count: a seed
    killed before writing one has nothing trustworthy on disk. ``facts`` (name, algorithm, model) lead the summary."""
    fleet_dir = Path(fleet_dir)
    summaries, designs, curves = {}, {}, {}
    fasta = False
    for s in seeds:
        folder = seed_dir(fleet_dir, s)
        summary = read_json(folder / rundir.SUMMARY)
        if summary is None:
            continue
        summaries[s] = summary
        designs[s] = _read_csv(folder / rundir.DESIGNS_CSV)
        curves[s] = _read_csv(folder / rundir.CURVE_CSV)
        fasta = fasta or (folder / rundir.DESIGNS_FASTA).is_file()
    first = next(iter(summaries.values()), {})
    facts = facts or {key: first.get(key) for key in ("name", "algorithm", "model")}
    summary = fleet_summary(summaries, seeds, workers=workers, backend=backend, seconds=seconds, **facts)
    table = merge_designs(designs)
    summary["num_designs"] = len(table)
    rundir.write_designs(fleet_dir, table, fasta=fasta)
    curve = merge_curves(curves)
    rundir.write_atomic(fleet_dir / rundir.CURVE_CSV, curve.to_csv(index=False))
    _plot_curves(fleet_dir / rundir.CURVE_PNG, curve, f"{facts['name']}: {facts['algorithm']}, {len(seeds)} seeds")
    rundir.write_json(fleet_dir / rundir.SUMMARY, summary)
    return summary


def _plot_curves(path: Path, curve: pd.DataFrame, title: str) -> None:
    """Best reward versus NFE (left) and oracle calls (right), one line per seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for axis, x, label in ((axes[0], "nfe", "NFE (denoiser rows)"), (axes[1], "oracle_calls", "oracle calls")):
        for seed, rows in curve.groupby("seed", sort=False) if len(curve) else ():
            axis.step(rows[x], rows["best_reward"], where="post", label=f"seed {seed}", alpha=0.8)
        axis.set_xlabel(label)
        axis.set_ylabel("best reward")
        axis.grid(alpha=0.3)
        if len(curve) and curve["seed"].nunique() <= 10:
            axis.legend(loc="lower right", fontsize="small")
    figure.suptitle(title)
    rundir.save_figure(figure, path)


def read_json(path: Path) -> dict[str, Any] | None:

    return json.loads(path.read_text()) if path.is_file() else None


def _read_csv(path: Path) -> pd.DataFrame:
    """A seed's CSV exactly as written: only empty cells are missing (a sequence may read ``NA``), floats round-trip."""
    if not path.is_file():
        return pd.DataFrame()
    exact = {"float_precision": "round_trip"} if int(pd.__version__.split(".")[0]) < 3 else {}  # pandas 3: default
    return pd.read_csv(path, keep_default_na=False, na_values=[""], **exact)


def _nan(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))
