"""A process pool for slow scorers, with a per-call time-out.

The batch is cut into chunks of ``chunk_size`` sequences, each scored by ``oracle.score`` in a worker process.
Time-outs are enforced twice:

- in the worker, a ``SIGALRM`` timer interrupts a chunk after ``timeout_s`` seconds (effective for Python code and
  for C code that returns to the interpreter), and the chunk's sequences get the floor with reason ``"timeout"``;
- in the parent, a hard deadline (``timeout_s`` per round of chunks plus a grace period) catches a worker stuck in
  native code: the pool is terminated, unfinished sequences get ``"timeout (worker killed)"``, and a new pool is
  started on the next call.

``multiprocessing.Pool`` is used rather than ``concurrent.futures`` because it can terminate a hung worker.
Workers start with ``spawn`` by default (safe with torch and OpenMP threads); the wrapped oracle must be picklable,
so models should be loaded lazily on first call, as seqtree's oracles do.
"""

from __future__ import annotations

import math
import multiprocessing as mp
import signal
import time
from multiprocessing.pool import AsyncResult, Pool
from typing import Any

import torch

from seqtree.oracles.base import ForwardingOracle, Oracle, OracleOutput, OracleShapeError, _exception_reason

TIMEOUT_REASON = "timeout"
KILLED_REASON = "timeout (worker killed)"
_GRACE_S = 5.0

_worker_oracle: Oracle | None = None


def _init_worker(oracle: Oracle) -> None:
    global _worker_oracle
    _worker_oracle = oracle
    torch.set_num_threads(1)


class _ChunkTimeout(BaseException):
    """Raised by the alarm; a BaseException so that the oracle's own failure isolation does not swallow it."""


def _on_alarm(signum: int, frame: Any) -> None:
    raise _ChunkTimeout()


def _score_chunk(chunk: list[str], timeout_s: float | None) -> tuple[torch.Tensor, list[str | None]]:
    assert _worker_oracle is not None
    if timeout_s is not None:
        signal.signal(signal.SIGALRM, _on_alarm)
        signal.setitimer(signal.ITIMER_REAL, timeout_s)
    try:
        out = _worker_oracle.score(chunk)
        return out.values, out.reasons
    except _ChunkTimeout:
        return _worker_oracle._empty(len(chunk)), [TIMEOUT_REASON] * len(chunk)
    finally:
        if timeout_s is not None:
            signal.setitimer(signal.ITIMER_REAL, 0)


class PooledOracle(ForwardingOracle):
    """Score chunks of a batch in worker processes, giving the floor to chunks that exceed ``timeout_s``."""

    def __init__(
        self,
        oracle: Oracle,
        *,
        workers: int = 2,
        chunk_size: int = 16,
        timeout_s: float | None = None,
        start_method: str = "spawn",
    ) -> None:
        if workers < 1 or chunk_size < 1:
            raise ValueError("workers and chunk_size must be >= 1")
        if timeout_s is not None and timeout_s <= 0:
            raise ValueError("timeout_s must be positive or None")
        self._adopt(oracle)
        super().__init__()
        self.workers, self.chunk_size, self.timeout_s = workers, chunk_size, timeout_s
        self.start_method = start_method
        self._pool: Pool | None = None

    def _ensure_pool(self) -> Pool:
        if self._pool is None:
            ctx = mp.get_context(self.start_method)
            self._pool = ctx.Pool(self.workers, initializer=_init_worker, initargs=(self.inner,))
        return self._pool

    def close(self) -> None:
        """Terminate the worker processes (a new pool starts on the next call)."""
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
            self._pool = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_pool": None}

    def score(self, sequences: list[str]) -> OracleOutput:
        if isinstance(sequences, str):
            raise TypeError(f"{self.name}: expected a list of strings, got a single string")
        sequences = list(sequences)
        self.calls += len(sequences)
        values = self._empty(len(sequences))
        reasons: list[str | None] = [None] * len(sequences)
        chunks = [list(range(i, min(i + self.chunk_size, len(sequences))))
                  for i in range(0, len(sequences), self.chunk_size)]
        if chunks:
            pool = self._ensure_pool()
            jobs: list[AsyncResult] = [
                pool.apply_async(_score_chunk, ([sequences[i] for i in c], self.timeout_s)) for c in chunks
            ]
            deadline = None
            if self.timeout_s is not None:
                rounds = math.ceil(len(chunks) / self.workers)
                deadline = time.monotonic() + rounds * self.timeout_s + _GRACE_S
            killed = False
            for c, job in zip(chunks, jobs, strict=True):
                if killed:
                    _fill(reasons, c, KILLED_REASON)
                    continue
                try:
                    wait = None if deadline is None else max(0.0, deadline - time.monotonic())
                    got, rs = job.get(timeout=wait)
                    values[c] = got
                    for i, r in zip(c, rs, strict=True):
                        reasons[i] = r
                except mp.TimeoutError:
                    killed = True
                    _fill(reasons, c, KILLED_REASON)
                    self.close()
                except OracleShapeError:  # a scorer answering for the wrong batch is a bug: no sequence is to blame
                    raise
                except Exception as err:  # the worker died or the result could not be pickled
                    _fill(reasons, c, _exception_reason(err))
        self.failures.update(r for r in reasons if r is not None)
        valid = torch.tensor([r is None for r in reasons], dtype=torch.bool)
        return OracleOutput(values=values, valid=valid, reasons=reasons)


def _fill(reasons: list[str | None], idx: list[int], reason: str) -> None:
    for i in idx:
        reasons[i] = reason
