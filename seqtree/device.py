"""Where a model runs and in which precision: device names, autocast and the run's generators.

A recipe names a device (``auto``, ``cpu``, ``cuda``, ``cuda:N``, ``mps``) and a precision (``fp32``, ``bf16``,
``fp16``). :func:`resolve_device` turns the name into a ``torch.device`` that exists on this machine, or raises a
:class:`DeviceError` that says which device is missing, so the CLI can name the recipe field instead of failing
later inside CUDA. Mixed precision is autocast around the denoiser's forward pass only
(:class:`AutocastDenoiser`): the SUBS rule, the reverse step and every log-probability stay float32.

Randomness (issue 13): the search's generator lives on the model's device, so the reverse process draws its
uniforms where its tensors are, without a host round trip. Host-side draws (tree selection, resampling indices,
remask proposals) use :func:`host_generator`: on CPU the same generator (CPU runs are unchanged), elsewhere a CPU
generator seeded from the device generator's seed, so a seed still fixes the whole run on one kind of device.
"""

from __future__ import annotations

import math
import os
from contextlib import AbstractContextManager, nullcontext
from typing import Literal

import numpy as np
import torch
from torch import nn

Precision = Literal["fp32", "bf16", "fp16"]
PRECISION_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
HOST_SEED_OFFSET = 0x5EED  # keeps the host stream apart from the device stream of the same seed


class DeviceError(ValueError):
    """A device that this machine does not have, or a precision it cannot run."""


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` is CUDA when available, else MPS, else CPU; an explicit device must exist here."""
    name = str(name).strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise DeviceError(f"{name!r} is not a device; use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cpu":
        return torch.device("cpu")
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise DeviceError(f"{name!r}: CUDA is not available on this machine (use auto or cpu)")
        index = 0 if device.index is None else device.index
        if index >= count:
            raise DeviceError(f"{name!r}: this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1}")
        return torch.device("cuda", index)
    if device.type == "mps":
        if not _mps_available():
            raise DeviceError(f"{name!r}: MPS (Apple GPU) is not available on this machine (use auto or cpu)")
        return device
    raise DeviceError(f"{name!r}: seqtree runs on cpu, cuda or mps")


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def check_precision(precision: Precision, device: torch.device) -> None:
    """fp16 autocast needs an accelerator; bf16 runs everywhere (slowly on old CPUs)."""
    if precision not in PRECISION_DTYPES:
        raise DeviceError(f"precision {precision!r}: choose fp32, bf16 or fp16")
    if precision == "fp16" and device.type == "cpu":
        raise DeviceError("fp16 autocast needs a GPU; use bf16 or fp32 on cpu")


def autocast(device: torch.device, precision: Precision) -> AbstractContextManager:
    """The autocast context for ``precision`` on ``device`` (a no-op for fp32)."""
    dtype = PRECISION_DTYPES[precision]
    if dtype is None:
        return nullcontext()
    # no weight-cast cache: each weight is cast once per forward pass anyway, and a cache would outlive a CUDA graph
    # capture (seqtree.cuda_graphs)
    return torch.autocast(device_type=device.type, dtype=dtype, cache_enabled=False)


class AutocastDenoiser(nn.Module):
    """A denoiser whose forward pass runs under autocast; its logits come back as float32 for the SUBS rule.

    Wrapping keeps precision out of every algorithm: the engine, the samplers and the benchmarks call it like any
    denoiser. ``inner`` is the wrapped network (training and saving use it, not the wrapper).
    """

    def __init__(self, inner: nn.Module, precision: Precision) -> None:
        super().__init__()
        self.inner = inner
        self.precision = precision

    @property
    def config(self):
        return getattr(self.inner, "config", None)

    def forward(self, tokens: torch.Tensor, t: torch.Tensor | None = None) -> torch.Tensor:
        with autocast(tokens.device, self.precision):
            logits = self.inner(tokens, t)
        return logits.float()


def with_precision(denoiser: nn.Module, precision: Precision) -> nn.Module:
    """``denoiser`` itself for fp32, else wrapped in :class:`AutocastDenoiser`."""
    return denoiser if PRECISION_DTYPES[precision] is None else AutocastDenoiser(denoiser, precision)


def make_generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A generator on ``device`` seeded with ``seed`` (the run's one source of randomness)."""
    return torch.Generator(device=torch.device(device)).manual_seed(int(seed))


def host_generator(generator: torch.Generator) -> torch.Generator:
    """The generator for host-side draws: ``generator`` itself on CPU, else a CPU generator seeded from it."""
    if generator.device.type == "cpu":
        return generator
    return torch.Generator().manual_seed(generator.initial_seed() + HOST_SEED_OFFSET)


def set_threads(threads: int | None) -> None:
    """Use ``threads`` CPU threads for torch here and in the processes this one starts (``OMP_NUM_THREADS``: a
    fleet's seeds, Lightning's DDP ranks); None leaves torch's choice. Every ``--threads`` option and every recipe's
    ``threads`` field goes through this one function."""
    if threads is None:
        return
    if threads < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    torch.set_num_threads(threads)
    os.environ["OMP_NUM_THREADS"] = str(threads)


def to_device(values, device: torch.device) -> torch.Tensor:
    """A host array or tensor (index lists, tree tokens, steps) on ``device`` without waiting for it.

    A plain copy from host memory to a GPU synchronises the stream afterwards (issue 13: a tree expansion's tokens,
    steps and row indices each drained the queue); a copy from pinned memory with ``non_blocking`` is queued like a
    kernel, and PyTorch's pinned-memory cache keeps the buffer until the copy has run. On the CPU it is
    ``torch.as_tensor`` (no copy)."""
    tensor = torch.as_tensor(values)
    if device.type == "cpu" or tensor.device == device:
        return tensor
    if device.type == "cuda":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


_CARRIER = {8: torch.int64, 4: torch.int32, 2: torch.int16}  # a float's item size -> an integer of its bits


def _bits(dtype: torch.dtype) -> torch.dtype | None:
    """The integer dtype a float tensor's bits travel as (None: an integer or bool tensor travels as its values)."""
    return _CARRIER[dtype.itemsize] if dtype.is_floating_point else None


def _packed(tensors: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """The bits of ``tensors`` (one leading size B) as int64 columns of one [B, C] tensor, copied to the host."""
    batch = tensors[0].shape[0]
    columns = []
    for t in tensors:
        flat = t.reshape(batch, math.prod(t.shape[1:]))
        carrier = _bits(t.dtype)
        columns.append((flat if carrier is None else flat.view(carrier)).to(torch.int64))
    return torch.cat(columns, 1).cpu()


def _column_slices(tensors: tuple[torch.Tensor, ...]):
    """(tensor, slice of its columns in :func:`_packed`) for each tensor."""
    start = 0
    for t in tensors:
        width = math.prod(t.shape[1:])
        yield t, slice(start, start + width)
        start += width


def host_arrays(*tensors: torch.Tensor, pack: bool | None = None) -> list[np.ndarray]:
    """``tensors`` (one leading size B, one device) as host arrays, in one device-to-host copy.

    Every copy off a GPU waits for the device to finish what it was given (issue 13): a tree expansion that fetched
    its rows, tokens, steps, log-probabilities and terminal flags one by one waited seven times. Here each tensor's
    bits are carried as int64 columns of one [B, C] tensor (floats reinterpreted bit for bit, not converted) and
    taken apart by numpy views on the host (a torch op per column would cost the host microseconds that a GPU
    waiting for the next step spends idle). ``pack`` (default: off the CPU only) forces either way; a CPU tensor
    needs no copy. Not for bfloat16, which numpy lacks."""
    if not tensors:
        return []
    if pack is None:
        pack = tensors[0].device.type != "cpu"
    if not pack:
        return [t.cpu().numpy() for t in tensors]
    host = _packed(tensors).numpy()
    out = []
    for t, columns in _column_slices(tensors):
        part, dtype = host[:, columns], _numpy_dtype(t.dtype)
        carrier = _bits(t.dtype)
        part = part.astype(dtype) if carrier is None else part.astype(_numpy_dtype(carrier)).view(dtype)
        out.append(part.reshape(t.shape))
    return out


_NUMPY_TYPES = {
    torch.bool: np.dtype(bool), torch.uint8: np.dtype(np.uint8), torch.int8: np.dtype(np.int8),
    torch.int16: np.dtype(np.int16), torch.int32: np.dtype(np.int32), torch.int64: np.dtype(np.int64),
    torch.float16: np.dtype(np.float16), torch.float32: np.dtype(np.float32), torch.float64: np.dtype(np.float64),
}  # fmt: skip


def _numpy_dtype(dtype: torch.dtype) -> np.dtype:
    if dtype not in _NUMPY_TYPES:
        raise TypeError(f"{dtype} has no numpy type: convert it before reading it to the host")
    return _NUMPY_TYPES[dtype]
