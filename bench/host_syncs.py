"""Count, on any machine, the places where a search would make the host wait for a GPU (issue 13).

On CUDA the host queues kernels and runs ahead; it waits for the device only when it needs a value the device
computes (``item``, ``bool``, ``tolist``, ``cpu``, ``nonzero`` and other ops whose output size depends on the data,
a boolean index) or copies host memory to the device without ``non_blocking`` (PyTorch synchronises the stream after
such a copy). Every wait drains the queue, so the GPU idles for all the host work done between the wait and the next
forward pass: the DTS* and MCTS rates of ``bench device`` are set by how many waits a denoiser call carries.

Those rates need a GPU; the waits do not. :class:`HostSyncCounter` is a ``TorchFunctionMode`` that follows which
tensors would live on the device (the problem's root, whatever the denoiser returns, every result of an op that
takes one, every factory call given a ``device``, every ``.to(device)``) and counts each would-be wait by kind and by
the line of seqtree that made it. It runs on CPU in the test suite, so a change that adds a wait to the search loop
fails there (``tests/test_host_syncs.py``), and ``python -m bench device --host-syncs`` prints the counts per
algorithm. What it cannot see: waits inside C++ (none in the ops seqtree calls) and copies from host memory that a
numpy array backs before any torch op touches it (``torch.from_numpy`` is invisible to modes; the ``.to(device)``
that follows is counted).
"""

from __future__ import annotations

import collections
import sys
import weakref
from pathlib import Path

import torch
from torch.overrides import TorchFunctionMode

_READS = {"item", "tolist", "numpy", "cpu", "__bool__", "__int__", "__float__", "__index__", "equal", "allclose"}
_DATA_SIZED = {"nonzero", "argwhere", "unique", "unique_consecutive", "masked_select", "bincount"}
_METADATA = {"__get__", "dim", "size", "stride", "element_size", "is_contiguous", "_set_grad_enabled", "__len__"}
_INDEXING = {"__getitem__", "__setitem__", "index_put", "index_put_"}
_ROOT = str(Path(__file__).resolve().parents[1])
_SEQTREE = (str(Path(_ROOT, "seqtree")), str(Path(_ROOT, "models")), str(Path(_ROOT, "oracles")))


def _tensors(value):
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _tensors(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _tensors(item)


class HostSyncCounter(TorchFunctionMode):
    """Counts would-be host waits: ``counts[kind]`` and ``sites[(file:line, kind)]``; ``mark(*tensors)`` declares
    tensors that live on the device (a search's root, a model's parameters need not be marked: an op's result is on
    the device when any input is)."""

    def __init__(self, denoiser: torch.nn.Module | None = None) -> None:
        super().__init__()
        self._device: dict[int, weakref.ref] = {}  # id -> tensor (a WeakSet would compare tensors by value)
        self.counts: collections.Counter[str] = collections.Counter()
        self.sites: collections.Counter[tuple[str, str]] = collections.Counter()
        self.calls = 0  # denoiser calls seen (with ``denoiser``)
        self.idle_ops = 0  # torch ops between the first wait after a denoiser call and the next call
        self._state = "before"  # "launched": a call is queued, nothing has waited for it; "idle": something has
        self._hooks = []
        if denoiser is not None:
            self._hooks = [denoiser.register_forward_pre_hook(self._call_starts),
                           denoiser.register_forward_hook(self._call_queued)]  # fmt: skip

    def _call_starts(self, module, args) -> None:
        self.calls += 1
        self._state = "inside"

    def _call_queued(self, module, args, output) -> None:
        self._state = "launched"

    def mark(self, *tensors: torch.Tensor) -> None:
        for t in tensors:
            self._device[id(t)] = weakref.ref(t)

    def on_device(self, t: torch.Tensor) -> bool:
        ref = self._device.get(id(t))
        return ref is not None and ref() is t

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def _on_device(self, args, kwargs) -> bool:
        return any(self.on_device(t) for t in _tensors((args, kwargs)))

    def _count(self, kind: str) -> None:
        self.counts[kind] += 1
        frame = sys._getframe(2)
        while frame is not None and not frame.f_code.co_filename.startswith(_SEQTREE):
            frame = frame.f_back
        site = "?" if frame is None else f"{Path(frame.f_code.co_filename).relative_to(_ROOT)}:{frame.f_lineno}"
        self.sites[(site, kind)] += 1

    def _kind(self, name: str, args, kwargs) -> str | None:
        """The kind of wait ``name`` would be on CUDA, or None."""
        on_device = self._on_device(args, kwargs)
        if name in _READS:
            return "read" if on_device else None
        if name in _DATA_SIZED or (name == "where" and len(args) == 1 and not kwargs):
            return "data-sized" if on_device else None
        if name == "repeat_interleave" and len(args) > 1 and isinstance(args[1], torch.Tensor):
            return "data-sized" if on_device and "output_size" not in kwargs else None
        if name in _INDEXING:
            index = args[1] if len(args) > 1 else kwargs.get("indices")
            boolean = any(t.dtype == torch.bool for t in _tensors(index))
            return "boolean index" if on_device and boolean else None
        if name in {"to", "cuda", "copy_"} and not on_device and not kwargs.get("non_blocking", False):
            source = args[1] if name == "copy_" else args[0]
            moved = name == "cuda" or any(isinstance(a, torch.device) for a in args[1:])
            moved = moved or isinstance(kwargs.get("device"), torch.device)
            if name == "copy_":
                return "host-to-device" if self.on_device(args[0]) and not self.on_device(source) else None
            return "host-to-device" if moved and isinstance(source, torch.Tensor) else None
        if name == "tensor" and kwargs.get("device") is not None:
            return "host-to-device"
        return None

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        kind = self._kind(name, args, kwargs)
        if kind is not None:
            self._count(kind)
            if self._state == "launched":  # this wait drains the call: the GPU idles from here to the next one
                self._state = "idle"
        if self._state == "idle" and name not in _METADATA:
            self.idle_ops += 1
        out = func(*args, **kwargs)
        if name == "cpu" and out is args[0]:
            return out.clone()  # a host copy, as it is off the CPU (on the CPU ``cpu()`` returns the tensor itself)
        if name in {"cpu", "numpy", "tolist", "item"}:
            return out
        if self._on_device(args, kwargs) or kwargs.get("device") is not None or kind == "host-to-device":
            self.mark(*_tensors(out))
        elif name == "to" and any(isinstance(a, torch.device) for a in args[1:]):
            self.mark(*_tensors(out))  # .to(self.device): the engine's device, whatever it is
        return out

    def __enter__(self):
        """Also treats :func:`seqtree.device.to_device` as what it is on a GPU, a copy queued without a wait: its
        results are device tensors (on the CPU it returns the host tensor itself)."""
        import seqtree.device

        original = seqtree.device.to_device
        self._original = original

        def queued_copy(values, device):
            out = original(values, device)
            self.mark(out)
            return out

        self._patched = [
            (module, name)
            for module in list(sys.modules.values())
            if getattr(module, "__name__", "").startswith("seqtree")
            for name, value in list(vars(module).items())
            if value is original
        ]
        for module, name in self._patched:
            setattr(module, name, queued_copy)
        return super().__enter__()

    def __exit__(self, *exc):
        for hook in self._hooks:
            hook.remove()
        for module, name in self._patched:
            setattr(module, name, self._original)
        return super().__exit__(*exc)

    def report(self, per: int = 1, top: int = 12) -> str:
        """The counts by kind and the busiest sites, each divided by ``per`` (e.g. the run's denoiser calls)."""
        lines = [f"{kind}: {n / per:.2f}" for kind, n in self.counts.most_common()]
        lines += [f"  {site} {kind}: {n / per:.2f}" for (site, kind), n in self.sites.most_common(top)]
        return "\n".join(lines)
