"""The replay buffer a design run fills: searched trajectories for fine-tuning (TR2-D2, Tang et al. 2025, Sec. 3.2,
fine-tunes on the trajectories its tree search found, weighted by their rewards).

One safetensors file holds, row-aligned: the final ``tokens`` [N, L] and the ``designed`` mask [N, L] of the
positions the search chose (prompt, scaffold and padding are fixed, so a fine-tuning loss must not mask them), the
per-step ``log_prob`` and ``log_prob_model`` [N, T] of the path that produced them (under the sampled and the
untempered model), the ``rewards`` [N, K] and scalarised ``scores`` [N], and the algorithm's ``weights`` [N] (NaN
where it has none). Runs that name the same buffer append to it; every write replaces the file atomically, so an
interrupted run never leaves a half-written buffer. The metadata records each contributing run (name, model,
algorithm, seed, rows); one buffer holds the trajectories of one model.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, safe_open, save

from seqtree.rundir import write_atomic
from seqtree.search.result import SearchResult

COLUMNS = ("tokens", "designed", "log_prob", "log_prob_model", "rewards", "scores", "weights")


def result_rows(result: SearchResult, designed: torch.Tensor) -> dict[str, torch.Tensor]:
    """The buffer rows of one search: its designs with their trajectories; ``designed`` is the [L] free mask."""
    designs, paths = result.designs, result.trajectories
    weights = designs.weights if designs.weights is not None else torch.full((len(designs),), float("nan"))
    return {
        "tokens": designs.tokens.long(), "designed": designed.bool().expand(len(designs), -1).clone(),
        "log_prob": paths.log_prob.float(), "log_prob_model": paths.log_prob_model.float(),
        "rewards": designs.rewards.double(), "scores": designs.scores.double(), "weights": weights.double(),
    }  # fmt: skip


def read_buffer(path: str | Path) -> tuple[dict[str, torch.Tensor], list[dict]]:
    """(columns, runs) of a buffer file."""
    with safe_open(str(path), framework="pt") as handle:
        runs = json.loads((handle.metadata() or {}).get("runs", "[]"))
    return load_file(str(path)), runs


def check_compatible(path: str | Path, model: str, row_shapes: dict[str, tuple[int, ...]]) -> None:
    """Raise ValueError, naming the buffer and what differs, when rows of ``model`` with these per-row shapes
    cannot join the buffer at ``path`` (nothing to check when it does not exist yet). Called before a search so
    that a mismatch costs no compute."""
    path = Path(path)
    if not path.exists():
        return
    try:
        with safe_open(str(path), framework="pt") as handle:
            runs = json.loads((handle.metadata() or {}).get("runs", "[]"))
            shapes = {name: tuple(handle.get_slice(name).get_shape()[1:]) for name in handle.keys()}
    except Exception as error:  # safetensors raises its own error types for a damaged or foreign file
        raise ValueError(f"replay buffer {path}: not a readable seqtree buffer ({error})") from None
    models = {run.get("model") for run in runs}
    if models and models != {model}:
        held = ", ".join(sorted(map(str, models)))
        raise ValueError(f"replay buffer {path}: holds trajectories of model {held}, this run uses {model}")
    for name, shape in row_shapes.items():
        if name not in shapes:
            raise ValueError(f"replay buffer {path}: column {name} is missing; is this a seqtree replay buffer?")
        if shapes[name] != tuple(shape):
            raise ValueError(
                f"replay buffer {path}: column {name} has shape {shapes[name]} per row, this run gives "
                f"{tuple(shape)}; use another buffer for another number of steps or objectives"
            )


def append_to_buffer(path: str | Path, result: SearchResult, designed: torch.Tensor, run: dict) -> int:
    """Append ``result``'s rows to the buffer at ``path`` (created if missing); returns the buffer's row count.

    ``run`` describes the contributing run and must name its ``model``. Rows must match the buffer's model,
    sequence length, number of steps and number of objectives (``check_compatible``); a mismatch leaves the file
    unchanged."""
    path = Path(path)
    rows = result_rows(result, designed)
    check_compatible(path, run["model"], {name: tuple(value.shape[1:]) for name, value in rows.items()})
    runs = [run]
    if path.exists():
        old, earlier = read_buffer(path)
        rows = {name: torch.cat([old[name], rows[name]]) for name in COLUMNS}
        runs = earlier + runs
    owned = {name: value.clone(memory_format=torch.contiguous_format) for name, value in rows.items()}  # no aliasing
    write_atomic(path, save(owned, metadata={"runs": json.dumps(runs)}))
    return int(rows["tokens"].shape[0])
