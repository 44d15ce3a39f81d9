"""Array storage of a search tree in the manner of mctx: one preallocated array per node field, grown by doubling.

Node i is the i-th node added; nothing is a Python object per node. The children of a node sit contiguously, in
order of creation, in one shared pool array (``child_pool[child_start[i] : child_start[i] + num_children[i]]``):
a node's block doubles (moving to the pool's end) when full, as a vector would, so that progressive widening can add
children one at a time while ``children(i)`` stays one array slice, with no Python loop over siblings. Tokens are
stored compactly (uint8 when the vocabulary fits, else int16 / int32). A tree is saved to one safetensors file
(arrays plus string metadata; nothing is unpickled on load) together with whatever extra arrays the caller needs to
resume (generator state, counters, curve).

Memory per node: 2 L bytes (tokens, and the uint8 unmask offsets that let a design's path be replayed) + about
60 + 8 (K - 1) * 2 + 8 S bytes (S = branch_every, K = objectives), plus the child pool: at most 4 int32 slots per
child (blocks double), typically under 2.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.numpy import save_file
from torch import Tensor

NO_NODE = -1
CHILD_BLOCK = 4  # slots of a node's first children block
NOT_UNMASKED = 255  # unmask_offset of a position not unmasked in the node's segment
_GROWN = (
    "parent", "depth", "step", "child_start", "child_capacity", "num_children", "terminal", "closed",
    "visits",
    "value", "value_sum", "soft_value", "reward", "log_prob", "log_prob_model", "step_log_prob",
    "step_log_prob_model", "tokens", "unmask_offset",
)  # fmt: skip
_DEFAULTS = {"parent": NO_NODE, "value": np.nan, "soft_value": np.nan, "reward": np.nan, "unmask_offset": NOT_UNMASKED}


def token_dtype(vocab_size: int) -> np.dtype:
    if vocab_size <= 256:
        return np.dtype(np.uint8)
    if vocab_size <= 32768:
        return np.dtype(np.int16)
    return np.dtype(np.int32)


@dataclass
class Tree:
    """A growable search tree; arrays have ``capacity`` rows, the first ``size`` are nodes. Node 0 is the root."""

    num_steps: int
    branch_every: int
    num_objectives: int
    vocab_size: int
    size: int
    parent: np.ndarray  # [C] int32, NO_NODE for the root
    depth: np.ndarray  # [C] int16 segments from the root
    step: np.ndarray  # [C] int16 diffusion step k of the node's state (t = 1 - k / num_steps)
    child_start: np.ndarray  # [C] int64 offset of the node's block in child_pool (0 while it has no block)
    child_capacity: np.ndarray  # [C] int32 slots of that block
    num_children: np.ndarray  # [C] int32
    terminal: np.ndarray  # [C] bool: no masked position left
    closed: np.ndarray  # [C] bool: nothing left to explore below (terminal, or every child closed; MCTS)
    visits: np.ndarray  # [C] int64
    value: np.ndarray  # [C] float64 scalar value (max backup of DTS*, mean of MCTS)
    value_sum: np.ndarray  # [C, K] float64 sum of backed-up reward vectors (MCTS)
    soft_value: np.ndarray  # [C] float64 soft value alpha log mean exp(V(child) / alpha) (DTS)
    reward: np.ndarray  # [C, K] float64 oracle reward of a terminal node, NaN until scored
    log_prob: np.ndarray  # [C] float32 log-probability of the segment parent -> node under the proposal
    log_prob_model: np.ndarray  # [C] float32 the same under the untempered model
    step_log_prob: np.ndarray  # [C, S] float32 per reverse step of the segment (proposal), 0 past its end
    step_log_prob_model: np.ndarray  # [C, S] float32 per reverse step (model)
    tokens: np.ndarray  # [C, L] uint8 / int16 / int32 state at the node's step
    unmask_offset: np.ndarray  # [C, L] uint8 step of the segment (from the parent's step) a position unmasked at
    child_pool: np.ndarray  # [P] int32 children blocks; the first pool_size slots are allocated
    pool_size: int = 0
    extras: dict[str, np.ndarray] = field(default_factory=dict)  # saved alongside (generator state, counters)

    # ------------------------------------------------------------------------------------------------ build
    @classmethod
    def create(
        cls,
        root: Tensor,
        *,
        num_steps: int,
        branch_every: int,
        num_objectives: int,
        vocab_size: int,
        mask_id: int,
        capacity: int = 1024,
    ) -> Tree:
        """A tree holding only ``root`` [L] at step 0."""
        if branch_every >= NOT_UNMASKED:
            raise ValueError(f"branch_every must be below {NOT_UNMASKED} (uint8 unmask offsets), got {branch_every}")
        length = int(root.shape[0])
        capacity = max(int(capacity), 1)
        k, s = num_objectives, branch_every
        tree = cls(
            num_steps=num_steps,
            branch_every=branch_every,
            num_objectives=num_objectives,
            vocab_size=vocab_size,
            size=0,
            parent=np.full(capacity, NO_NODE, np.int32),
            depth=np.zeros(capacity, np.int16),
            step=np.zeros(capacity, np.int16),
            child_start=np.zeros(capacity, np.int64),
            child_capacity=np.zeros(capacity, np.int32),
            num_children=np.zeros(capacity, np.int32),
            terminal=np.zeros(capacity, bool),
            closed=np.zeros(capacity, bool),
            visits=np.zeros(capacity, np.int64),
            value=np.full(capacity, np.nan),
            value_sum=np.zeros((capacity, k)),
            soft_value=np.full(capacity, np.nan),
            reward=np.full((capacity, k), np.nan),
            log_prob=np.zeros(capacity, np.float32),
            log_prob_model=np.zeros(capacity, np.float32),
            step_log_prob=np.zeros((capacity, s), np.float32),
            step_log_prob_model=np.zeros((capacity, s), np.float32),
            tokens=np.zeros((capacity, length), token_dtype(vocab_size)),
            unmask_offset=np.full((capacity, length), NOT_UNMASKED, np.uint8),
            child_pool=np.full(2 * capacity, NO_NODE, np.int32),
        )
        tree.size = 1
        tree.tokens[0] = root.cpu().numpy()
        tree.terminal[0] = tree.closed[0] = not bool((root == mask_id).any())
        return tree

    @property
    def capacity(self) -> int:
        return int(self.parent.shape[0])

    @property
    def length(self) -> int:
        return int(self.tokens.shape[1])

    def _reserve(self, extra: int) -> None:
        need = self.size + extra
        if need <= self.capacity:
            return
        new_capacity = self.capacity
        while new_capacity < need:
            new_capacity *= 2
        for name in _GROWN:
            old = getattr(self, name)
            default = _DEFAULTS.get(name, 0)
            grown = np.full((new_capacity, *old.shape[1:]), default, dtype=old.dtype)
            grown[: self.size] = old[: self.size]
            setattr(self, name, grown)

    def add_children(
        self,
        parents: np.ndarray,
        tokens: Tensor | np.ndarray,
        steps: np.ndarray,
        step_log_prob: Tensor | np.ndarray,
        step_log_prob_model: Tensor | np.ndarray,
        terminal: Tensor | np.ndarray,
        unmask_step: Tensor | np.ndarray,
    ) -> np.ndarray:
        """Append one child per row: parents [B] int, tokens [B, L], steps [B] (the children's step),
        step_log_prob(_model) [B, S] float, terminal [B] bool, unmask_step [B, L] long (absolute step at which each
        position unmasked in the segment parent -> child, -1 if it did not). Returns the new ids [B] int64."""
        count = int(parents.shape[0])
        self._reserve(count)
        ids = np.arange(self.size, self.size + count, dtype=np.int64)
        self.size += count
        parents = parents.astype(np.int32)
        self.parent[ids] = parents
        self.depth[ids] = self.depth[parents] + 1
        self.step[ids] = steps
        self.tokens[ids] = _host(tokens).astype(self.tokens.dtype)
        self.unmask_offset[ids] = self._unmask_offsets(_host(unmask_step), self.step[parents])
        slp = _host(step_log_prob).astype(np.float32)
        slpm = _host(step_log_prob_model).astype(np.float32)
        self.step_log_prob[ids] = slp
        self.step_log_prob_model[ids] = slpm
        self.log_prob[ids] = slp.sum(-1)
        self.log_prob_model[ids] = slpm.sum(-1)
        self.terminal[ids] = _host(terminal)
        self.closed[ids] = self.terminal[ids]
        for par, extra in zip(*(a.tolist() for a in np.unique(parents, return_counts=True))):
            count = int(self.num_children[par])
            if count + extra > self.child_capacity[par]:  # one move per parent per batch, doubling
                self._move_block(par, max(CHILD_BLOCK, 2 * count, count + extra))
        for node, par in zip(ids.tolist(), parents.tolist()):  # append to the parent's block, in creation order
            count = int(self.num_children[par])
            self.child_pool[self.child_start[par] + count] = node
            self.num_children[par] = count + 1
        return ids

    def _unmask_offsets(self, unmask_step: np.ndarray, start: np.ndarray) -> np.ndarray:
        """Absolute unmask steps [B, L] (-1: none) -> uint8 offsets from the segments' first steps ``start`` [B]."""
        offset = unmask_step.astype(np.int64) - start.astype(np.int64)[:, None]
        unmasked = unmask_step >= 0
        if (unmasked & ((offset < 0) | (offset >= self.branch_every))).any():
            raise ValueError("unmask_step holds a step outside the segment parent -> child")
        return np.where(unmasked, offset, NOT_UNMASKED).astype(np.uint8)

    def _move_block(self, node: int, slots: int) -> None:
        """Give ``node`` a block of ``slots`` at the pool's end, carrying its children over."""
        start, count = int(self.child_start[node]), int(self.num_children[node])
        if self.pool_size + slots > self.child_pool.shape[0]:
            grown = np.full(max(2 * self.child_pool.shape[0], self.pool_size + slots), NO_NODE, np.int32)
            grown[: self.pool_size] = self.child_pool[: self.pool_size]
            self.child_pool = grown
        self.child_pool[self.pool_size : self.pool_size + count] = self.child_pool[start : start + count]
        self.child_start[node], self.child_capacity[node] = self.pool_size, slots
        self.pool_size += slots

    # ----------------------------------------------------------------------------------------------- query
    def children(self, node: int) -> np.ndarray:
        """Ids of the children of ``node`` in creation order, [num_children] int64 (a new array)."""
        start = int(self.child_start[node])
        return self.child_pool[start : start + int(self.num_children[node])].astype(np.int64)

    def path(self, node: int) -> np.ndarray:
        """Ids from the root to ``node`` inclusive."""
        out = []
        while node != NO_NODE:
            out.append(node)
            node = int(self.parent[node])
        return np.array(out[::-1], np.int64)

    def token_tensor(self, ids: np.ndarray) -> Tensor:
        """Tokens of nodes ``ids`` as Long[len(ids), L]."""
        return torch.from_numpy(self.tokens[ids].astype(np.int64))

    def path_step_log_probs(self, node: int) -> tuple[Tensor, Tensor]:
        """Per-step log-probabilities (proposal, model) along the root -> node path, two Float[num_steps]."""
        proposal, model = self.paths_step_log_probs(np.array([node], np.int64))
        return proposal[0], model[0]

    def path_unmask_steps(self, node: int) -> Tensor:
        """Reverse step at which each position was unmasked along the root -> node path, Long[L]; -1 where the
        position was not masked in the root or is still masked at ``node``."""
        return self.paths_unmask_steps(np.array([node], np.int64))[0]

    def paths_step_log_probs(self, nodes: np.ndarray) -> tuple[Tensor, Tensor]:
        """:meth:`path_step_log_probs` of many nodes at once, two Float[n, num_steps]: one pass per tree level over
        all paths together, not a Python walk per node (a search's archive asks for hundreds per iteration, and on a
        GPU that host time is time the denoiser waits; issue 13)."""
        proposal = np.zeros((len(nodes), self.num_steps), np.float32)
        model = np.zeros((len(nodes), self.num_steps), np.float32)
        for rows, segment, start, width in self._segments(nodes):
            cols = start[:, None] + np.arange(self.branch_every)
            inside = np.arange(self.branch_every) < width[:, None]
            where = (np.broadcast_to(rows[:, None], cols.shape)[inside], cols[inside])
            proposal[where] = self.step_log_prob[segment][inside]
            model[where] = self.step_log_prob_model[segment][inside]
        return torch.from_numpy(proposal), torch.from_numpy(model)

    def paths_unmask_steps(self, nodes: np.ndarray) -> Tensor:
        """:meth:`path_unmask_steps` of many nodes at once, Long[n, L] (one pass per tree level)."""
        steps = np.full((len(nodes), self.length), -1, np.int64)
        for rows, segment, start, _ in self._segments(nodes):
            offset = self.unmask_offset[segment].astype(np.int64)  # [m, L]
            unmasked = np.where(offset != NOT_UNMASKED, start[:, None] + offset, -1)
            steps[rows] = np.maximum(steps[rows], unmasked)  # a position unmasks in one segment
        return torch.from_numpy(steps)

    def _segments(self, nodes: np.ndarray):
        """The segments on the root -> node paths of ``nodes``, a tree level at a time: yields (rows, segment,
        start, width): which entries of ``nodes`` are still below the root, the node ending each one's segment at
        this level, and that segment's first step and number of steps."""
        rows = np.arange(len(nodes))
        current = np.asarray(nodes, np.int64)
        while True:
            below = self.parent[current] != NO_NODE
            rows, current = rows[below], current[below]
            if not rows.size:
                return
            parents = self.parent[current].astype(np.int64)
            start = self.step[parents].astype(np.int64)
            yield rows, current, start, self.step[current].astype(np.int64) - start
            current = parents

    def nbytes(self) -> int:
        """Bytes held by the node arrays and the child pool (capacity included)."""
        return sum(getattr(self, name).nbytes for name in _GROWN) + self.child_pool.nbytes

    # ---------------------------------------------------------------------------------------------- persist
    def save(self, path: str | Path) -> Path:
        """Write the used part of every array, the extras and the metadata to one safetensors file."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {name: np.ascontiguousarray(getattr(self, name)[: self.size]) for name in _GROWN}
        arrays["child_pool"] = np.ascontiguousarray(self.child_pool[: max(self.pool_size, 1)])
        arrays.update({f"extra.{k}": np.ascontiguousarray(v) for k, v in self.extras.items()})
        meta = {
            "num_steps": self.num_steps,
            "branch_every": self.branch_every,
            "num_objectives": self.num_objectives,
            "vocab_size": self.vocab_size,
            "size": self.size,
            "pool_size": self.pool_size,
        }
        tmp = path.with_suffix(path.suffix + ".tmp")
        save_file(arrays, str(tmp), metadata={"seqtree_tree": json.dumps(meta)})
        tmp.replace(path)  # atomic
        return path

    @classmethod
    def load(cls, path: str | Path) -> Tree:
        arrays: dict[str, np.ndarray] = {}
        with safe_open(str(path), framework="numpy") as handle:
            meta = json.loads(handle.metadata()["seqtree_tree"])
            for key in handle.keys():
                arrays[key] = handle.get_tensor(key)
        missing = [name for name in (*_GROWN, "child_pool") if name not in arrays]
        if missing:
            raise ValueError(
                f"{path} has no {', '.join(missing)}: it was saved by an older seqtree and cannot be resumed "
                "(its designs' unmasking paths were not recorded); start a new search"
            )
        extras = {k.removeprefix("extra."): v for k, v in arrays.items() if k.startswith("extra.")}
        fields = {name: arrays[name] for name in (*_GROWN, "child_pool")}
        tree = cls(extras=extras, **meta, **fields)
        tree.child_pool = np.concatenate([tree.child_pool, np.full(max(1024, tree.pool_size), NO_NODE, np.int32)])
        tree._reserve(max(1024, tree.size))  # room to grow (also makes the arrays writable copies)
        return tree


def _host(values: Tensor | np.ndarray) -> np.ndarray:
    """A tensor (on any device) or an array as a host array."""
    return values.cpu().numpy() if isinstance(values, Tensor) else np.asarray(values)
