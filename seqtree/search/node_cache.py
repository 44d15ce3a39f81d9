"""log p(x_0 | node) of tree nodes, kept within a byte budget, so that widening a node again skips its first call.

A tree search widens the same nodes many times (DTS*'s greedy path, a node whose children an MCTS expansion adds):
every widening begins with the denoiser's clean-token distribution at the node's state, which is the same each
time. The distribution of a node is known the moment the node is made, because a rollout needs it for its next
segment anyway (:meth:`seqtree.search.engine.Engine.expand` with ``keep_final``), so keeping it costs memory, not
compute. Entries are evicted least recently used first; the ids, in that order, are saved with a tree so that a
resumed search refills the same cache (at no charge: that compute was paid for) and equals an uninterrupted one.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np
from torch import Tensor

from seqtree.device import to_device


class NodeCache:
    """Node id -> log p(x_0 | node) [L, V], least recently used evicted first beyond ``max_bytes`` (0: off).

    The rows live in one slab on the distributions' device, so a batch goes in with one indexed copy and comes out
    with one gather (issue 13: a copy per node was two operations queued per node on a GPU, host time the device
    waited for at every expansion). The slab doubles as rows arrive, up to ``max_bytes``; its last row stays zero
    (unknown nodes)."""

    def __init__(self, max_bytes: int = 0) -> None:
        self.max_bytes = int(max_bytes)
        self.entries: OrderedDict[int, int] = OrderedDict()  # node -> slot, least recently used first
        self.slab: Tensor | None = None
        self.free: list[int] = []  # unused slots, the next one last
        self.row_bytes = 0
        self.capacity = 0  # slots in the slab now
        self.slots = 0  # slots the byte budget allows

    def __bool__(self) -> bool:
        return self.max_bytes > 0

    @property
    def bytes(self) -> int:
        return len(self.entries) * self.row_bytes

    def _slab_for(self, log_probs: Tensor) -> int:
        """Slots of a slab that holds rows like ``log_probs``' (made on first use, or when their shape changes)."""
        row_bytes = math.prod(log_probs.shape[1:]) * log_probs.element_size()
        slots = self.max_bytes // row_bytes
        slab = self.slab
        if slots and (slab is None or slab.shape[1:] != log_probs.shape[1:] or slab.device != log_probs.device
                      or slab.dtype != log_probs.dtype):  # fmt: skip
            self.slab = log_probs.new_zeros((1, *log_probs.shape[1:]))
            self.entries.clear()
            self.free, self.capacity, self.slots, self.row_bytes = [], 0, slots, row_bytes
        return slots

    def _grow(self, wanted: int) -> None:
        """Room for ``wanted`` rows in all, within the budget: at least double the slab (amortised copies)."""
        capacity = min(self.slots, max(wanted, 2 * self.capacity, 16))
        slab = self.slab.new_zeros((capacity + 1, *self.slab.shape[1:]))
        slab[: self.capacity] = self.slab[: self.capacity]
        self.free[:0] = range(capacity - 1, self.capacity - 1, -1)  # used after the slots freed by evictions
        self.slab, self.capacity = slab, capacity

    def put(self, ids: np.ndarray, log_probs: Tensor) -> None:
        """Keep row i of ``log_probs`` [B, L, V] for node ``ids[i]`` (a copy, so the batch tensor is not held)."""
        if not self or not len(ids):
            return
        slots = self._slab_for(log_probs)
        if not slots:
            return
        ids = np.asarray(ids, np.int64).tolist()
        writes: dict[int, tuple[int, int]] = {}  # node -> (row, slot) of this batch's new rows
        for row, node in enumerate(ids):
            if node in self.entries:
                self.entries.move_to_end(node)
                continue
            if not self.free and self.capacity < self.slots:
                self._grow(len(self.entries) + len(ids) - row)
            if not self.free:  # full: the least recently used goes (a row of this batch, if it is the oldest)
                evicted, slot = self.entries.popitem(last=False)
                writes.pop(evicted, None)
                self.free.append(slot)
            self.entries[node] = slot = self.free.pop()
            writes[node] = (row, slot)
        rows = [row for row, _ in writes.values()]
        targets = [slot for _, slot in writes.values()]
        if rows:
            device = log_probs.device
            self.slab[to_device(np.asarray(targets), device)] = log_probs[to_device(np.asarray(rows), device)]

    def get(self, ids: np.ndarray) -> tuple[Tensor, np.ndarray] | None:
        """(log_probs [B, L, V], known: host bool [B]) for ``ids``, zeros where not kept; None when none is kept."""
        ids = np.asarray(ids, np.int64).tolist()
        found = [self.entries.get(node) for node in ids]
        known = np.array([slot is not None for slot in found], bool)
        if not known.any():
            return None
        for node, slot in zip(ids, found):
            if slot is not None:
                self.entries.move_to_end(node)
        zero = self.slab.shape[0] - 1
        index = np.array([zero if slot is None else slot for slot in found], np.int64)
        return self.slab[to_device(index, self.slab.device)], known

    def ids(self) -> np.ndarray:
        """The kept node ids, least recently used first (what a saved search stores)."""
        return np.fromiter(self.entries.keys(), np.int64, len(self.entries))
