"""Optional dependencies: one way to import them and one error when one is missing.

The extras are those of ``pyproject.toml``'s ``[project.optional-dependencies]`` (a test keeps :data:`INSTALL` equal
to them, less ``dev``). Code that needs one imports it with :func:`import_extra`; when it is missing, the
:class:`MissingExtra` raised is one line naming what needs it, the extra and the command that installs it, and the
command line prints that line and exits 2 (bad input), never a traceback.
"""

from __future__ import annotations

import importlib
from types import ModuleType

# Extra -> the command that installs it. pytorch-holo itself installs without its dependencies: its metadata pins
# numpy<2, which its Ehrlich code does not need (see pyproject.toml).
INSTALL: dict[str, str] = {
    "holo": 'pip install "seqtree[holo]" && pip install --no-deps pytorch-holo',
    "ray": 'pip install "seqtree[ray]"',
    "text": 'pip install "seqtree[text]"',
    "data": 'pip install "seqtree[data]"',
}


class MissingExtra(ImportError):
    """An optional dependency is not installed; the message is one line naming the extra and how to install it."""


def missing_extra(what: str, extra: str, detail: str = "") -> MissingExtra:
    """The error for ``what`` (e.g. "the ehrlich oracle") needing ``extra``; ``detail`` says what was not found."""
    if extra not in INSTALL:
        raise KeyError(f"unknown extra {extra!r}; the extras are {', '.join(INSTALL)}")
    found = f" ({detail})" if detail else ""
    return MissingExtra(f"{what} needs the '{extra}' extra{found}: {INSTALL[extra]}")


def import_extra(module: str, *, extra: str, what: str) -> ModuleType:
    """``importlib.import_module(module)``, or a :class:`MissingExtra` naming ``extra`` when it cannot be imported."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise missing_extra(what, extra, _not_found(error)) from error


def _not_found(error: ImportError) -> str:
    name = getattr(error, "name", None)
    return f"no module {name}" if name else str(error).splitlines()[0] if str(error) else ""
