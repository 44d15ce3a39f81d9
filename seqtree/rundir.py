"""The run directory of ``seqtree design``: every file written atomically (temporary file, then rename).

Files: ``recipe.yaml`` (resolved), ``designs.csv`` / ``designs.jsonl`` (and ``designs.fasta`` for biological
sequences), ``curve.csv`` / ``curve.png`` (best reward, mean reward of the valid sequences and the invalid fraction
versus NFE and oracle calls), ``pareto.png`` for several objectives, ``summary.json``, and the search state
(``search_state.safetensors``) that ``--resume`` reads.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

RECIPE = "recipe.yaml"
DESIGNS_CSV = "designs.csv"
DESIGNS_JSONL = "designs.jsonl"
DESIGNS_FASTA = "designs.fasta"
CURVE_CSV = "curve.csv"
CURVE_PNG = "curve.png"
PARETO_PNG = "pareto.png"
SUMMARY = "summary.json"
SEARCH_STATE = "search_state.safetensors"


def write_atomic(path: Path, data: str | bytes) -> Path:
    """Write ``data`` to ``path`` so that a reader sees the old file or the new one, never a half-written one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = "wb" if isinstance(data, bytes) else "w"
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, mode) as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def designs_table(
    result,
    num_designs: int,
    objective_names: list[str],
    prompt: str | None,
    scored_as: tuple[str, Callable[[str], str]] | None = None,
    length_unit: str | None = None,
) -> pd.DataFrame:
    """The best ``num_designs`` distinct designs: sequence, reward, each objective, log-probability, weight, rank.

    ``scored_as`` = (column, decode): designs written in another representation than the oracle read get a column
    with the string the oracle scored (SELFIES designs: ``smiles``, their canonical SMILES), after ``sequence``;
    designs are then distinct by that string (two SELFIES of one molecule are one design). ``length_unit``
    (a tokenizer's, e.g. ``bases`` for a DNA model whose tokens hold several bases: design lengths are stated in
    tokens) adds a column of that name after ``sequence`` with the length of each decoded design."""
    designs = result.designs
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    for index, sequence in enumerate(designs.sequences):
        scored = sequence if scored_as is None else scored_as[1](sequence)
        if scored in seen:
            continue
        seen.add(scored)
        row: dict[str, Any] = {"rank": len(rows) + 1, "sequence": sequence}
        if scored_as is not None:
            row[scored_as[0]] = scored
        if length_unit is not None:
            row[length_unit] = len(sequence)
        row["reward"] = float(designs.scores[index])
        if prompt is not None:
            row["prompt"] = prompt
        values = designs.rewards[index].tolist()
        if len(values) > 1 or objective_names:
            for name, value in zip(objective_names or [f"objective_{j}" for j in range(len(values))], values):
                row[name] = value
        row["log_prob"] = float(designs.log_prob_model[index])
        row["weight"] = None if designs.weights is None else float(designs.weights[index])
        rows.append(row)
        if len(rows) == num_designs:
            break
    columns = ["rank", "sequence", *([scored_as[0]] if scored_as is not None else [])]
    columns += [*([length_unit] if length_unit is not None else []), "reward"]
    columns += ["prompt"] if prompt is not None else []
    return pd.DataFrame(rows, columns=None if rows else columns + ["log_prob", "weight"])


def write_designs(run_dir: Path, table: pd.DataFrame, *, fasta: bool) -> None:
    write_atomic(run_dir / DESIGNS_CSV, table.to_csv(index=False))
    write_atomic(run_dir / DESIGNS_JSONL, table.to_json(orient="records", lines=True) if len(table) else "")
    if fasta:
        from Bio.Seq import Seq
        from Bio.SeqIO import write
        from Bio.SeqRecord import SeqRecord

        records = [
            SeqRecord(Seq(row.sequence), id=f"design_{row.rank}", description=f"reward={row.reward:.6g}")
            for row in table.itertuples()
        ]
        buffer = io.StringIO()
        write(records, buffer, "fasta")
        write_atomic(run_dir / DESIGNS_FASTA, buffer.getvalue())


def write_curve(run_dir: Path, curve: pd.DataFrame, title: str) -> None:
    """curve.csv and curve.png: best and mean reward (of the valid sequences; the floor of the invalid ones would
    drag it towards -1000) versus NFE (left) and oracle calls (right); the csv also has the invalid fraction."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    write_atomic(run_dir / CURVE_CSV, curve.to_csv(index=False))
    figure, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for axis, x, label in ((axes[0], "nfe", "NFE (denoiser rows)"), (axes[1], "oracle_calls", "oracle calls")):
        if len(curve):
            axis.step(curve[x], curve["best_reward"], where="post", label="best reward")
            axis.plot(curve[x], curve["mean_reward"], label="mean reward (valid)", alpha=0.7)
        axis.set_xlabel(label)
        axis.set_ylabel("reward")
        axis.grid(alpha=0.3)
        axis.legend(loc="lower right")
    figure.suptitle(title)
    save_figure(figure, run_dir / CURVE_PNG)


def write_pareto(run_dir: Path, result, objective_names: list[str]) -> None:
    """pareto.png: all designs of the first two objectives, the non-dominated ones highlighted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rewards = result.designs.rewards
    front = result.pareto_front
    names = objective_names or [f"objective {j}" for j in range(rewards.shape[1])]
    figure, axis = plt.subplots(figsize=(5, 4.5), constrained_layout=True)
    axis.scatter(rewards[:, 0], rewards[:, 1], s=12, alpha=0.4, label="designs")
    if front is not None and len(front):
        order = front.rewards[:, 0].argsort()
        axis.plot(front.rewards[order, 0], front.rewards[order, 1], "o-", color="C3", label="Pareto front")
    axis.set_xlabel(names[0])
    axis.set_ylabel(names[1])
    axis.grid(alpha=0.3)
    axis.legend()
    save_figure(figure, run_dir / PARETO_PNG)


def save_figure(figure, path: Path) -> None:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    plt.close(figure)
    write_atomic(path, buffer.getvalue())


def write_json(path: Path, data: dict[str, Any]) -> None:
    write_atomic(path, json.dumps(data, indent=2, default=str) + "\n")
