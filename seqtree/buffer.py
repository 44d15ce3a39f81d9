"""The replay buffer: searched (or sampled, or imported) sequences with the importance weights that fine-tune a model
towards the reward-tilted distribution pi*(x) ~ p_pre(x) exp(r(x) / alpha) (TR2-D2, Tang et al. 2025, Sec. 3.2-3.3).

Each row holds the final ``tokens`` [L], the ``designed`` mask [L] (prompt, scaffold and padding are fixed, so a
fine-tuning loss must never mask them), the path that produced it (``unmask_step`` [L], the reverse step at which each
position was unmasked, -1 where fixed, :data:`UNKNOWN_STEP` for imported rows; per-step ``log_prob`` [T] under the
proposal that was sampled and ``log_prob_model`` [T] under the untempered policy), ``log_prob_pretrained`` (the same
path's log-probability under the frozen pretrained model), the ``rewards`` [K] and scalarised ``score``, and where it
came from (``source``, ``round``, ``seed``).

The log importance weight of a row is (TR2-D2 Eq. 9, the trajectory's log Radon-Nikodym derivative of the tilted
path measure against the proposal's)

    log w = score / alpha + log p_pre(path) - log q(path),

with q the distribution the path was actually drawn from (temperature and truncation included, so a tempered proposal
does not silently change the target). Rows from the pretrained model itself have log p_pre = the recorded untempered
log-probability; rows from a fine-tuned policy get it by replaying the path under the pretrained model
(:mod:`seqtree.trajectory`); imported rows (lab data) have no path and are weighted by their reward alone
(log p_pre - log q = 0: they are treated as draws of the pretrained model). A row whose weight is not finite is
refused with its index and the reason.

The WDCE weights self-normalise exp(log w) within each round by default, and within a round among the rows of one
prompt (the rows sharing their fixed tokens; each of the G (round, prompt) groups sums to 1 / G): a round's rows of one
prompt come from one proposal, so each round is a consistent self-normalised estimate of pi*, and
pooling them would let round 1 (proposal = p_pre, log-ratio 0) drown every later round's finds, whose policy already
leans towards them (log p_pre - log q << 0). TR2-D2's reference code rebuilds the buffer at every search, which is
the one-round case. ``normalization="buffer"`` pools all rows instead. Deduplication keeps one row per sequence, the
best-weighted copy (after normalisation). With a ``capacity``, the lowest-weighted rows are
evicted first; with several objectives the ``pareto`` policy keeps a Pareto archive instead: whole non-dominated
fronts in order, the last one thinned by crowding distance (NSGA-II, Deb et al. 2002, Sec. III-B). Rows are kept
sorted by log weight, best first. The file (safetensors, metadata in JSON) is replaced atomically on every save.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
from safetensors.torch import load_file, safe_open, save
from torch import Tensor

from seqtree.rundir import write_atomic
from seqtree.search.result import UNKNOWN_STEP as UNKNOWN_STEP  # re-exported: imported rows use it too
from seqtree.search.result import SearchResult, first_copies, pareto_mask

FORMAT = "seqtree-replay-buffer/2"
COLUMNS = (
    "tokens", "designed", "unmask_step", "log_prob", "log_prob_model", "log_prob_pretrained", "rewards", "scores",
    "source", "round", "seed",
)  # fmt: skip
Eviction = Literal["weight", "pareto"]
Normalization = Literal["round", "buffer"]


class BufferError(ValueError):
    """A buffer file or rows that cannot be used; the message names the file, row or column."""


@dataclass
class ReplayBuffer:
    """Rows as aligned columns (see the module docstring); ``sources`` names the ``source`` indices."""

    columns: dict[str, Tensor]
    model: str  # the pretrained model every row's weight refers to
    alpha: float = 1.0  # temperature of the tilt exp(r / alpha)
    capacity: int | None = None
    eviction: Eviction = "weight"
    normalization: Normalization = "round"
    sources: list[str] = field(default_factory=list)
    runs: list[dict] = field(default_factory=list)  # one entry per contribution (name, algorithm, seed, rows, ...)

    # ------------------------------------------------------------------------------------------------- build
    @classmethod
    def empty(
        cls,
        *,
        model: str,
        length: int,
        num_steps: int,
        num_objectives: int = 1,
        alpha: float = 1.0,
        capacity: int | None = None,
        eviction: Eviction = "weight",
        normalization: Normalization = "round",
    ) -> ReplayBuffer:
        if alpha <= 0 or not math.isfinite(alpha):
            raise BufferError(f"replay buffer: alpha must be a positive number, got {alpha}")
        if capacity is not None and capacity < 1:
            raise BufferError(f"replay buffer: capacity must be >= 1, got {capacity}")
        columns = _empty_columns(length, num_steps, num_objectives)
        return cls(columns, model, alpha, capacity, eviction, normalization)

    def __len__(self) -> int:
        return int(self.columns["tokens"].shape[0])

    @property
    def length(self) -> int:
        return int(self.columns["tokens"].shape[1])

    @property
    def num_steps(self) -> int:
        return int(self.columns["log_prob"].shape[1])

    @property
    def num_objectives(self) -> int:
        return int(self.columns["rewards"].shape[1])

    def log_weights(self, alpha: float | None = None) -> Tensor:
        """[N] float64 log importance weights score / alpha + log p_pre(path) - log q(path) (TR2-D2 Eq. 9)."""
        return log_weights(self.columns, self.alpha if alpha is None else alpha)

    def normalized_weights(self) -> Tensor:
        """[N] self-normalised weights (sum 1): the WDCE weights, per round or over the whole buffer."""
        return normalized_log_weights(self.columns, self.alpha, self.normalization).exp()

    def effective_sample_size(self) -> float:
        """Kish's ESS of the normalised weights: 1 / sum w^2, between 1 and N."""
        if not len(self):
            return 0.0
        return float(1.0 / (self.normalized_weights() ** 2).sum())

    def sequences(self, tokenizer) -> list[str]:
        return [tokenizer.decode(row) for row in self.columns["tokens"].tolist()]

    # --------------------------------------------------------------------------------------------------- add
    def add(
        self, rows: dict[str, Tensor], *, source: str, run: dict | None = None, skip_invalid: bool = False
    ) -> list[str]:
        """Add ``rows`` (columns as :data:`COLUMNS`, without ``source``), deduplicate, evict; returns the reasons
        of refused rows. A row with a non-finite log weight is an error naming it, or skipped with
        ``skip_invalid`` (a search whose oracle returned -inf still fills the buffer with its other rows)."""
        rows = {name: value for name, value in rows.items() if name != "source"}
        _check_rows(self, rows)
        count = int(rows["tokens"].shape[0])
        weights = log_weights(rows, self.alpha)
        bad = ~torch.isfinite(weights)
        reasons = [_why_not_finite(rows, int(i), self.alpha) for i in bad.nonzero().flatten().tolist()]
        if reasons and not skip_invalid:
            raise BufferError(f"replay buffer: refused {len(reasons)} row(s): " + "; ".join(reasons[:3]))
        keep = ~bad
        if source not in self.sources:
            self.sources.append(source)
        rows = {name: value[keep] for name, value in rows.items()}
        rows["source"] = torch.full((int(keep.sum()),), self.sources.index(source), dtype=torch.long)
        merged = {name: torch.cat([self.columns[name], rows[name].to(self.columns[name].dtype)]) for name in COLUMNS}
        self.columns = _select(merged, self.alpha, self.capacity, self.eviction, self.normalization)
        if run is not None:
            self.runs.append({**run, "rows": count - len(reasons)})
        return reasons

    # ----------------------------------------------------------------------------------------------- persist
    def save(self, path: str | Path) -> Path:
        """Write the buffer atomically: a reader sees the old file or the new one, never a half-written one."""
        owned = {name: value.contiguous().clone() for name, value in self.columns.items()}
        meta = {
            "format": FORMAT, "model": self.model, "alpha": self.alpha, "capacity": self.capacity,
            "eviction": self.eviction, "normalization": self.normalization, "sources": self.sources, "runs": self.runs,
        }  # fmt: skip
        return write_atomic(Path(path), save(owned, metadata={"seqtree": json.dumps(meta)}))

    @classmethod
    def load(cls, path: str | Path) -> ReplayBuffer:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"replay buffer {path} does not exist")
        try:
            with safe_open(str(path), framework="pt") as handle:
                metadata = handle.metadata() or {}
            columns = load_file(str(path))
        except Exception as error:  # safetensors raises its own error types for a damaged or foreign file
            raise BufferError(f"replay buffer {path}: not a readable seqtree buffer ({error})") from None
        if "seqtree" not in metadata:
            raise BufferError(
                f"replay buffer {path}: written by an older seqtree (no importance-weight columns); start a new buffer"
            )
        meta = json.loads(metadata["seqtree"])
        if meta.get("format") != FORMAT:
            raise BufferError(f"replay buffer {path}: format {meta.get('format')!r}, this seqtree reads {FORMAT}")
        missing = [name for name in COLUMNS if name not in columns]
        if missing:
            raise BufferError(f"replay buffer {path}: column {missing[0]} is missing")
        return cls(
            columns, meta["model"], meta["alpha"], meta["capacity"], meta["eviction"],
            meta.get("normalization", "round"), meta["sources"], meta["runs"],
        )  # fmt: skip


# ------------------------------------------------------------------------------------------------ pure helpers
def log_weights(columns: dict[str, Tensor], alpha: float) -> Tensor:
    """score / alpha + log p_pre(path) - log q(path), [N] float64 (TR2-D2 Eq. 9; q = the proposal sampled)."""
    proposal = columns["log_prob"].double().sum(-1)
    return columns["scores"].double() / alpha + columns["log_prob_pretrained"].double() - proposal


def normalized_log_weights(columns: dict[str, Tensor], alpha: float, normalization: Normalization) -> Tensor:
    """[N] log of the self-normalised weights. ``buffer``: log_softmax of log w over all rows. ``round``: each round's
    rows (imported rows form a group of their own) are self-normalised among themselves and the G groups weigh 1 / G
    each, the average of G self-normalised estimates of pi*, each consistent on its own. Rows of a later round came
    from a policy already moved towards pi*, so their log p_pre - log q is strongly negative; pooled with round 1's
    they would all but vanish, however good."""
    weights = log_weights(columns, alpha)
    if normalization == "buffer" or not weights.numel():
        return torch.log_softmax(weights, 0)
    group = weight_groups(columns)
    count = int(group.max()) + 1
    out = torch.empty_like(weights)
    for index in range(count):
        members = group == index
        out[members] = torch.log_softmax(weights[members], 0) - math.log(count)
    return out


def weight_groups(columns: dict[str, Tensor]) -> Tensor:
    """[N] long: the group of each row for ``round`` normalisation, one per (round, fixed tokens). Rows of one round
    that share their fixed positions (prompt, scaffold, padding: ``tokens`` where not ``designed``) came from one
    proposal for one target pi*(x | prompt) ~ p_pre(x | prompt) exp(r / alpha); each such group is self-normalised
    on its own, so that every prompt of a multi-prompt fine-tuning round weighs the same (a prompt whose rewards
    run high does not drown the others), and the conditional denoiser WDCE trains still targets pi*(. | prompt) for
    each. A buffer of one prompt has one group per round."""
    fixed = columns["tokens"].masked_fill(columns["designed"], -1)
    _, condition = torch.unique(fixed, dim=0, return_inverse=True)
    key = torch.stack([columns["round"].long(), condition.long()], 1)
    _, group = torch.unique(key, dim=0, return_inverse=True)
    return group.flatten()


def _why_not_finite(rows: dict[str, Tensor], index: int, alpha: float) -> str:
    score = float(rows["scores"][index])
    pre, proposal = float(rows["log_prob_pretrained"][index]), float(rows["log_prob"][index].double().sum())
    if not math.isfinite(score):
        cause = f"reward {score}"
    elif not math.isfinite(pre):
        cause = f"pretrained log-probability {pre} (the pretrained model gives the path zero probability)"
    else:
        cause = f"proposal log-probability {proposal}"
    return f"row {index}: log weight is not finite ({cause}, alpha {alpha})"


def _empty_columns(length: int, num_steps: int, num_objectives: int) -> dict[str, Tensor]:
    return {
        "tokens": torch.zeros(0, length, dtype=torch.long), "designed": torch.zeros(0, length, dtype=torch.bool),
        "unmask_step": torch.zeros(0, length, dtype=torch.long), "log_prob": torch.zeros(0, num_steps),
        "log_prob_model": torch.zeros(0, num_steps), "log_prob_pretrained": torch.zeros(0, dtype=torch.float64),
        "rewards": torch.zeros(0, num_objectives, dtype=torch.float64),
        "scores": torch.zeros(0, dtype=torch.float64), "source": torch.zeros(0, dtype=torch.long),
        "round": torch.zeros(0, dtype=torch.long), "seed": torch.zeros(0, dtype=torch.long),
    }  # fmt: skip


def _check_rows(buffer: ReplayBuffer, rows: dict[str, Tensor]) -> None:
    for name in COLUMNS:
        if name == "source":
            continue
        if name not in rows:
            raise BufferError(f"replay buffer: rows lack column {name}")
        want, got = tuple(buffer.columns[name].shape[1:]), tuple(rows[name].shape[1:])
        if want != got:
            raise BufferError(
                f"replay buffer: column {name} has shape {want} per row, the new rows give {got}; use another buffer "
                "for another sequence length, number of steps or number of objectives"
            )
    counts = {int(value.shape[0]) for name, value in rows.items()}
    if len(counts) > 1:
        raise BufferError(f"replay buffer: the new rows' columns differ in length {sorted(counts)}")


def _select(
    columns: dict[str, Tensor], alpha: float, capacity: int | None, eviction: Eviction, normalization: Normalization
) -> dict[str, Tensor]:
    """Deduplicate by sequence (best-weighted copy), evict down to ``capacity``, sort by normalised weight (best
    first). Weights are compared after normalisation, so that each round competes on its own scale."""
    weights = normalized_log_weights(columns, alpha, normalization)
    order = torch.argsort(weights, descending=True, stable=True)
    keep = order[first_copies(columns["tokens"][order])]  # the best-weighted copy of each sequence, best first
    if capacity is not None and len(keep) > capacity:
        if eviction == "pareto" and columns["rewards"].shape[1] > 1:
            chosen = pareto_archive(columns["rewards"][keep], capacity)
            keep = keep[chosen.sort().values]
        else:
            keep = keep[:capacity]
    return {name: value[keep] for name, value in columns.items()}


def pareto_archive(rewards: Tensor, capacity: int) -> Tensor:
    """Indices of at most ``capacity`` rows of ``rewards`` [N, K] (maximised): whole non-dominated fronts in order,
    the front that does not fit thinned to its largest crowding distances (NSGA-II, Deb et al. 2002, Sec. III)."""
    remaining = torch.arange(rewards.shape[0])
    chosen: list[Tensor] = []
    room = capacity
    while room > 0 and remaining.numel():
        front = remaining[pareto_mask(rewards[remaining])]
        if front.numel() > room:
            distance = crowding_distance(rewards[front])
            front = front[torch.argsort(distance, descending=True, stable=True)[:room]]
        chosen.append(front)
        room -= front.numel()
        remaining = remaining[~torch.isin(remaining, front)]
    return torch.cat(chosen) if chosen else torch.zeros(0, dtype=torch.long)


def crowding_distance(points: Tensor) -> Tensor:
    """[N, K] -> [N] float64: the sum over objectives of the normalised gap between each point's neighbours along
    that objective; the extremes of every objective get +inf so they are always kept (NSGA-II Sec. III-B)."""
    count, objectives = points.shape
    distance = torch.zeros(count, dtype=torch.float64)
    if count <= 2:
        return torch.full((count,), math.inf, dtype=torch.float64)
    for j in range(objectives):
        order = torch.argsort(points[:, j], stable=True)
        values = points[order, j].double()
        span = float(values[-1] - values[0])
        distance[order[0]] = distance[order[-1]] = math.inf
        if span > 0:
            distance[order[1:-1]] += (values[2:] - values[:-2]) / span
    return distance


# --------------------------------------------------------------------------------------------- filling it
def result_rows(
    result: SearchResult,
    designed: Tensor,
    *,
    log_prob_pretrained: Tensor | None = None,
    round_index: int = 0,
    seed: int = 0,
) -> dict[str, Tensor]:
    """Buffer rows of any algorithm's result: its designs with their paths; ``designed`` is the [L] free mask.

    ``log_prob_pretrained`` [N]: the paths' log-probabilities under the pretrained model; by default the recorded
    untempered log-probabilities, which are exactly that when the search ran the pretrained model itself."""
    designs, paths = result.designs, result.trajectories
    count = len(designs)
    if log_prob_pretrained is None:
        log_prob_pretrained = paths.log_prob_model.double().sum(-1)
    return {
        "tokens": designs.tokens.long(), "designed": designed.bool().expand(count, -1).clone(),
        "unmask_step": paths.unmask_step.long(), "log_prob": paths.log_prob.float(),
        "log_prob_model": paths.log_prob_model.float(), "log_prob_pretrained": log_prob_pretrained.double(),
        "rewards": designs.rewards.double(), "scores": designs.scores.double(),
        "round": torch.full((count,), round_index, dtype=torch.long),
        "seed": torch.full((count,), seed, dtype=torch.long),
    }  # fmt: skip


def check_compatible(path: str | Path, model: str, row_shapes: dict[str, tuple[int, ...]]) -> None:
    """Raise BufferError, naming the buffer and what differs, when rows of ``model`` with these per-row shapes
    cannot join the buffer at ``path`` (nothing to check when it does not exist yet). Called before a search so
    that a mismatch costs no compute."""
    path = Path(path)
    if not path.exists():
        return
    buffer = ReplayBuffer.load(path)
    if buffer.model != model:
        raise BufferError(f"replay buffer {path}: holds trajectories of model {buffer.model}, this run uses {model}")
    for name, shape in row_shapes.items():
        held = tuple(buffer.columns[name].shape[1:])
        if held != tuple(shape):
            raise BufferError(
                f"replay buffer {path}: column {name} has shape {held} per row, this run gives {tuple(shape)}; "
                "use another buffer for another number of steps or objectives"
            )


def append_to_buffer(path: str | Path, result: SearchResult, designed: Tensor, run: dict) -> int:
    """Add ``result``'s rows to the buffer file at ``path`` (created if missing: alpha 1, no capacity); returns
    the buffer's row count. ``run`` describes the contributing run and must name its ``model`` and ``algorithm``."""
    path = Path(path)
    rows = result_rows(result, designed, seed=int(run.get("seed", 0)))
    check_compatible(path, run["model"], {name: tuple(value.shape[1:]) for name, value in rows.items()})
    if path.exists():
        buffer = ReplayBuffer.load(path)
    else:
        length, steps = rows["tokens"].shape[1], rows["log_prob"].shape[1]
        buffer = ReplayBuffer.empty(model=run["model"], length=length, num_steps=steps,
                                    num_objectives=rows["rewards"].shape[1])  # fmt: skip
    buffer.add(rows, source=str(run.get("algorithm", "search")), run=run, skip_invalid=True)
    buffer.save(path)
    return len(buffer)


def read_buffer(path: str | Path) -> tuple[dict[str, Tensor], list[dict]]:
    """(columns, runs) of a buffer file."""
    buffer = ReplayBuffer.load(path)
    return buffer.columns, buffer.runs
