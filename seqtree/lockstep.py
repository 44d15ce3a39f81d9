"""Several searches, one denoiser: their forward passes merged into batched calls, each search unchanged.

A multi-prompt design run (:mod:`seqtree.prompts`) runs one search per prompt, each in its own thread with its own
generator, exactly as a single-prompt run would. The searches share a :class:`LockstepBatcher`: each search calls its
:class:`Member` as its denoiser; a call waits until every search still running has either submitted its own call or
finished, and then one forward pass evaluates all submitted rows (rows of equal length in one call; a model whose
rows differ in length across prompts, a Hugging Face model without padded rows, gets one call per length). Each
search gets back exactly its own rows' logits, so its meter counts NFE (rows) and denoiser calls as a single run
would; the batcher counts the forward calls and rows it actually made.

Why this equals single runs: a search's only inputs are its generator's draws, its denoiser outputs and its oracle
values. The generator is its own, the oracle is called with the same batches, and the denoiser's output for a row
does not depend on the other rows of its batch when the forward pass is batch-invariant. seqtree's transformer is on
CPU (checked bitwise by ``tests/test_prompts.py`` for ``text-tiny`` at batch sizes 1 to 300, one and two threads): its
rows never mix (attention runs within a row) and oneDNN/MKL reduce each row the same way whatever the batch size. On
CUDA, cuBLAS may pick other kernels for other batch sizes, so the logits agree to float32 rounding, not bitwise, and
designs may then differ from single runs where a draw falls within that rounding of a category boundary.

Threads rather than processes: the searches are Python loops that spend most of their time inside the forward pass
(which releases the GIL), and a batched call needs the rows of every search in one address space.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class ForwardCount:
    """What the shared model actually evaluated: forward calls, rows in them, and their wall time."""

    calls: int = 0
    rows: int = 0
    seconds: float = 0.0


class LockstepBatcher:
    """Merges the denoiser calls of the searches that are members at the time into batched forward passes.

    ``denoiser(tokens [B, L], t [B]) -> logits [B, L, V]`` is any denoiser (an autocast wrapper included). Members
    join with :meth:`member` before their search and :meth:`Member.leave` after it; a call blocks until all current
    members are waiting on a call or have left. An exception in the forward pass is raised in every search whose rows
    were in it."""

    def __init__(self, denoiser) -> None:
        self.denoiser = denoiser
        self.count = ForwardCount()
        self._condition = threading.Condition()
        self._members: set[int] = set()
        self._pending: dict[int, tuple[Tensor, Tensor]] = {}
        self._results: dict[int, Tensor | BaseException] = {}
        self._next_id = 0

    def member(self) -> Member:
        with self._condition:
            ident = self._next_id
            self._next_id += 1
            self._members.add(ident)
        return Member(self, ident)

    def _call(self, ident: int, tokens: Tensor, t: Tensor) -> Tensor:
        with self._condition:
            if ident not in self._members:
                raise RuntimeError("a search called the shared denoiser after leaving it")
            self._pending[ident] = (tokens, t)
            self._run_if_complete()
            while ident not in self._results:
                self._condition.wait()
            out = self._results.pop(ident)
        if isinstance(out, BaseException):
            raise out
        return out

    def _leave(self, ident: int) -> None:
        with self._condition:
            self._members.discard(ident)
            self._run_if_complete()

    def _run_if_complete(self) -> None:
        """Under the lock: once every member waits on a call, evaluate them all (grouped by row shape)."""
        if not self._pending or not self._members <= set(self._pending):
            return
        batch, self._pending = self._pending, {}
        groups: dict[tuple, list[int]] = {}
        for ident, (tokens, t) in batch.items():
            groups.setdefault((tuple(tokens.shape[1:]), tokens.device, t.dtype), []).append(ident)
        for idents in groups.values():
            try:
                tokens = torch.cat([batch[i][0] for i in idents])
                times = torch.cat([batch[i][1] for i in idents])
                started = time.perf_counter()
                with torch.no_grad():
                    logits = self.denoiser(tokens, times)
                self.count.seconds += time.perf_counter() - started
                self.count.calls += 1
                self.count.rows += int(tokens.shape[0])
                sizes = [int(batch[i][0].shape[0]) for i in idents]
                for ident, part in zip(idents, torch.split(logits, sizes)):
                    self._results[ident] = part
            except BaseException as error:  # every search in this call sees the failure
                for ident in idents:
                    self._results[ident] = error
        self._condition.notify_all()


class Member:
    """One search's view of the shared denoiser: called like the denoiser, with its ``config`` (error messages)."""

    def __init__(self, batcher: LockstepBatcher, ident: int) -> None:
        self._batcher = batcher
        self._ident = ident
        self.config = getattr(batcher.denoiser, "config", None)

    def __call__(self, tokens: Tensor, t: Tensor) -> Tensor:
        return self._batcher._call(self._ident, tokens, t)

    def leave(self) -> None:
        """The search is over: the others no longer wait for it."""
        self._batcher._leave(self._ident)

    def __enter__(self) -> Member:
        return self

    def __exit__(self, *exc) -> None:
        self.leave()
