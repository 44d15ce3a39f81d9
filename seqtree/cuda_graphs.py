"""CUDA graphs of the denoiser's forward pass: a search's small calls without the per-kernel launch cost.

Why (issue 13): a search calls the denoiser on a few dozen rows at a time, each call right after a host
synchronisation (the engine needs the number of distinct rows, the positions to unmask). The GPU queue is then
empty, so an eager forward pass runs at the pace at which the host launches its kernels. Measured on an H200 with
the 85M-parameter seqtree transformer under bf16 autocast at 59 rows of 256 tokens, the eager pass took about 17 ms
inside DTS* against 12 ms for the same pass with the queue full. A graph launches the whole pass at once.

How: rows are padded up to a bucket (multiples of 8 up to 256, of 64 up to 1024), and each
(bucket, length, time given) gets one graph, captured on first use from a shared memory pool. Padding rows are
copies of the first row; every row of the network is computed independently, so the real rows' logits do not
depend on them. Calls outside what a graph can replay run eagerly: on another device, with autograd on, in
inference mode, with the network in training mode, beyond the largest bucket, or when the logits would be larger
than ``max_output_bytes`` (or all graphs' logits together larger than 4 GiB).
Graphs read the weights where they are stored, so in-place updates (an optimiser's step) are seen; if a weight is
replaced (moved between devices, reloaded into new tensors) the graphs are dropped and captured again. A network
that cannot be captured (host-side control flow on tensor values) is called eagerly from then on, with a warning.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from seqtree.device import AutocastDenoiser

MAX_BUCKET = 1024
MAX_OUTPUT_BYTES = 1 << 30  # one graph's static logits
MAX_TOTAL_OUTPUT_BYTES = 4 << 30  # all graphs' static logits together (many lengths: prompts of many sizes)


def bucket_rows(rows: int) -> int | None:
    """The padded row count a graph is captured for: multiples of 8 up to 256, of 64 up to 1024 (at most 7 padding
    rows up to 256, 63 above: padding rows cost as much as real ones once a pass fills the GPU; an H200 run with
    multiples of 32 above 64 padded MCTS's calls of about 105 rows to 128 and ran slower than eager passes); None
    beyond 1024 (a GPU-bound call: eager)."""
    for limit, step in ((256, 8), (MAX_BUCKET, 64)):
        if rows <= limit:
            return max(step, -(-rows // step) * step)
    return None


def network_of(denoiser: nn.Module) -> nn.Module:
    """The network under any precision wrappers: its ``training`` flag says whether calls are training calls (an
    :class:`AutocastDenoiser` is created in training mode and never switched, so its own flag says nothing)."""
    while isinstance(denoiser, AutocastDenoiser):
        denoiser = denoiser.inner
    return denoiser


@dataclass
class _Graph:
    graph: torch.cuda.CUDAGraph
    tokens: Tensor  # [bucket, L] static input
    t: Tensor | None  # [bucket] static input
    output: Tensor  # [bucket, L, V] static output


class GraphedDenoiser(nn.Module):
    """``inner`` (a denoiser: tokens [B, L], t [B] -> logits [B, L, V]) replayed from CUDA graphs where it can be.

    Returns a fresh tensor (a copy of the graph's output rows), so callers may keep it across calls."""

    def __init__(self, inner: nn.Module, max_output_bytes: int = MAX_OUTPUT_BYTES) -> None:
        super().__init__()
        self.inner = inner
        self.max_output_bytes = max_output_bytes
        self.graphs: dict[tuple[int, int, bool], _Graph] = {}
        self.pool = None
        self.weights_at: tuple[int, ...] = ()
        self.failed = False
        self.output_bytes = 0

    @property
    def network(self) -> nn.Module:
        """The wrapped network itself (a property, not a second registered child: its weights appear once in
        ``state_dict`` and ``parameters``)."""
        return network_of(self.inner)

    @property
    def config(self):
        return getattr(self.inner, "config", None)

    def forward(self, tokens: Tensor, t: Tensor | None = None) -> Tensor:
        rows, length = tokens.shape
        bucket = bucket_rows(rows)
        if (
            self.failed
            or bucket is None
            or not tokens.is_cuda
            or torch.is_grad_enabled()
            or torch.is_inference_mode_enabled()  # static buffers made here could not be written outside it
            or self.network.training  # the network's flag: a precision wrapper's own never changes
        ):
            return self.inner(tokens, t)
        self._drop_if_weights_moved()
        key = (bucket, length, t is not None)
        entry = self.graphs.get(key)
        if entry is None:
            entry = self._capture(bucket, tokens, t)
            if entry is None:
                return self.inner(tokens, t)
        entry.tokens[:rows].copy_(tokens)
        entry.tokens[rows:].copy_(tokens[:1].expand(bucket - rows, length))
        if t is not None:
            entry.t[:rows].copy_(t)
            entry.t[rows:].copy_(t[:1].expand(bucket - rows))
        entry.graph.replay()
        return entry.output[:rows].clone()

    def _weights(self) -> tuple[int, ...]:
        return tuple(p.data_ptr() for p in self.inner.parameters()) + tuple(b.data_ptr() for b in self.inner.buffers())

    def _drop_if_weights_moved(self) -> None:
        now = self._weights()
        if now != self.weights_at:
            self.graphs.clear()
            self.pool = None
            self.output_bytes = 0
            self.weights_at = now

    def _capture(self, bucket: int, tokens: Tensor, t: Tensor | None) -> _Graph | None:
        """Capture one graph for ``bucket`` rows shaped like ``tokens`` (after two eager warm-up passes on a side
        stream, as CUDA graph capture requires); None (and eager from now on) if the network cannot be captured."""
        length = tokens.shape[1]
        static_tokens = tokens[:1].expand(bucket, length).clone()
        static_t = None if t is None else t[:1].expand(bucket).clone()
        try:
            side = torch.cuda.Stream(device=tokens.device)
            side.wait_stream(torch.cuda.current_stream(tokens.device))
            with torch.cuda.stream(side):
                for _ in range(2):
                    probe = self.inner(static_tokens, static_t)
            torch.cuda.current_stream(tokens.device).wait_stream(side)
            size = probe.numel() * probe.element_size()
            if size > self.max_output_bytes or self.output_bytes + size > MAX_TOTAL_OUTPUT_BYTES:
                return None  # too large to keep a static copy of: eager (GPU-bound at that size anyway)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, pool=self.pool):
                output = self.inner(static_tokens, static_t)
        except Exception as error:  # noqa: BLE001 - any capture failure means: run this network eagerly
            self.failed = True
            self.graphs.clear()
            warnings.warn(
                f"CUDA graph capture of the denoiser failed ({type(error).__name__}: {error}); running it eagerly "
                "(set model.cuda_graphs: false to skip the attempt)",
                RuntimeWarning,
                stacklevel=3,
            )
            return None
        self.pool = graph.pool()
        self.output_bytes += size
        entry = _Graph(graph, static_tokens, static_t, output)
        self.graphs[(bucket, length, t is not None)] = entry
        return entry
