"""seqtree: design sequences with masked discrete diffusion models steered by tree search.

The public entry points; everything else is reachable through its submodule. They are imported on first use (PEP
562), so ``import seqtree`` and the command line's start do not wait for torch (a Ctrl-C there is one line).
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# Public name -> the submodule that defines it.
_EXPORTS = {
    "Denoiser": "seqtree.diffusion",
    "MaskedDiffusion": "seqtree.diffusion",
    "SAMPLERS": "seqtree.samplers",
    "SampleOutput": "seqtree.samplers",
    "get_sampler": "seqtree.samplers",
    "make_schedule": "seqtree.schedules",
}

__all__ = ["SAMPLERS", "Denoiser", "MaskedDiffusion", "SampleOutput", "__version__", "get_sampler", "make_schedule"]


def __getattr__(name: str) -> object:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'seqtree' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
