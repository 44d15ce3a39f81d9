"""A caching wrapper: each distinct sequence is scored once.

Searches revisit the same designs (tree nodes sharing a completion, beams converging), so the cache keys on the
exact sequence string. ``calls`` counts cache misses only (the real scorer work) and ``hits`` counts the rest.
Time-outs are not cached (they say nothing about the sequence), every other result is, floors included, because
oracles are deterministic. Duplicates inside one batch are scored once as well.
"""

from __future__ import annotations

from collections import OrderedDict

import torch

from seqtree.oracles.base import ForwardingOracle, Oracle, OracleOutput


class CachedOracle(ForwardingOracle):
    """Wrap an oracle with a dict cache keyed by sequence; ``maxsize=None`` keeps everything (LRU otherwise)."""

    def __init__(self, oracle: Oracle, *, maxsize: int | None = None) -> None:
        self._adopt(oracle)
        super().__init__()
        self.maxsize = maxsize
        self.hits = 0
        self._store: OrderedDict[str, tuple[torch.Tensor, str | None]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._store)

    def clear(self) -> None:
        self._store.clear()

    def score(self, sequences: list[str]) -> OracleOutput:
        if isinstance(sequences, str):
            raise TypeError(f"{self.name}: expected a list of strings, got a single string")
        sequences = list(sequences)
        # Unique strings not yet cached, in first-seen order; non-strings go to the inner oracle every time.
        missing = list(dict.fromkeys(s for s in sequences if isinstance(s, str) and s not in self._store))
        others = [s for s in sequences if not isinstance(s, str)]
        fresh: dict[str, tuple[torch.Tensor, str | None]] = {}
        rows_other: list[tuple[torch.Tensor, str | None]] = []
        if missing or others:
            out = self.inner.score(missing + others)
            self.calls += len(missing) + len(others)
            for k, (v, r) in enumerate(zip(out.values, out.reasons, strict=True)):
                if r is not None:
                    self.failures[r] += 1
                if k >= len(missing):
                    rows_other.append((v, r))
                    continue
                fresh[missing[k]] = (v, r)
                if not (r or "").startswith("timeout"):
                    self._put(missing[k], v, r)
        self.hits += len(sequences) - len(missing) - len(others)
        rows, reasons = [], []
        other_iter = iter(rows_other)
        for s in sequences:
            if not isinstance(s, str):
                v, r = next(other_iter)
            else:
                v, r = fresh[s] if s in fresh else self._get(s)
            rows.append(v)
            reasons.append(r)
        values = torch.stack(rows) if rows else self._empty(0)
        valid = torch.tensor([r is None for r in reasons], dtype=torch.bool)
        return OracleOutput(values=values, valid=valid, reasons=reasons)

    def _get(self, s: str) -> tuple[torch.Tensor, str | None]:
        self._store.move_to_end(s)
        return self._store[s]

    def _put(self, s: str, v: torch.Tensor, r: str | None) -> None:
        self._store[s] = (v.clone(), r)
        if self.maxsize is not None and len(self._store) > self.maxsize:
            self._store.popitem(last=False)

    def describe(self) -> dict[str, object]:
        return {**super().describe(), "cache_hits": self.hits, "cache_size": len(self._store)}
