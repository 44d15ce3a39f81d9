"""log p(x_0 | node) of tree nodes, kept within a byte budget, so that widening a node again skips its first call.

A tree search widens the same nodes many times (DTS*'s greedy path, a node whose children an MCTS expansion adds):
every widening begins with the denoiser's clean-token distribution at the node's state, which is the same each
time. The distribution of a node is known the moment the node is made, because a rollout needs it for its next
segment anyway (:meth:`seqtree.search.engine.Engine.expand` with ``keep_final``), so keeping it costs memory, not
compute. Entries are evicted least recently used first; the ids, in that order, are saved with a tree so that a
resumed search refills the same cache (at no charge: that compute was paid for) and equals an uninterrupted one.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import torch
from torch import Tensor


class NodeCache:
    """Node id -> log p(x_0 | node) [L, V], least recently used evicted first beyond ``max_bytes`` (0: off)."""

    def __init__(self, max_bytes: int = 0) -> None:
        self.max_bytes = int(max_bytes)
        self.entries: OrderedDict[int, Tensor] = OrderedDict()
        self.bytes = 0

    def __bool__(self) -> bool:
        return self.max_bytes > 0

    def put(self, ids: np.ndarray, log_probs: Tensor) -> None:
        """Keep row i of ``log_probs`` [B, L, V] for node ``ids[i]`` (a copy, so the batch tensor is not held)."""
        if not self or not len(ids):
            return
        size = log_probs[0].numel() * log_probs.element_size()
        if size > self.max_bytes:
            return
        for row, node in enumerate(np.asarray(ids, np.int64).tolist()):
            if node in self.entries:
                self.entries.move_to_end(node)
                continue
            self.entries[node] = log_probs[row].clone()
            self.bytes += size
        while self.bytes > self.max_bytes:
            _, evicted = self.entries.popitem(last=False)
            self.bytes -= evicted.numel() * evicted.element_size()

    def get(self, ids: np.ndarray) -> tuple[Tensor, np.ndarray] | None:
        """(log_probs [B, L, V], known: host bool [B]) for ``ids``, zeros where not kept; None when none is kept."""
        ids = np.asarray(ids, np.int64).tolist()
        found = [self.entries.get(node) for node in ids]
        present = [row for row in found if row is not None]
        if not present:
            return None
        for node, row in zip(ids, found):
            if row is not None:
                self.entries.move_to_end(node)
        zero = torch.zeros_like(present[0])
        known = np.array([row is not None for row in found], bool)
        return torch.stack([zero if row is None else row for row in found]), known

    def ids(self) -> np.ndarray:
        """The kept node ids, least recently used first (what a saved search stores)."""
        return np.fromiter(self.entries.keys(), np.int64, len(self.entries))
