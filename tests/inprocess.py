"""Run the ``seqtree`` command line inside the test process.

The same Typer app that ``python -m seqtree.cli`` runs, with the exit code, stdout and stderr kept apart as a
``subprocess.CompletedProcess`` holds them, but without the 3-8 s that a fresh interpreter pays to import torch and
transformers. An unexpected exception propagates (a subprocess would exit 1 with a traceback), so a test that expects
a clean exit or a one-line error still fails on it. Tests that need a real process (signals, the console entry) keep
using ``subprocess``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str


def seqtree_inprocess(*args: str) -> CliResult:
    """``seqtree *args`` run from the repository root, as the subprocess tests run it."""
    from typer.testing import CliRunner

    from seqtree.cli import app

    previous = Path.cwd()
    os.chdir(ROOT)  # contextlib.chdir is Python 3.11+
    try:
        result = CliRunner().invoke(app, list(args), catch_exceptions=False, prog_name="seqtree")
    finally:
        os.chdir(previous)
    return CliResult(result.exit_code, result.stdout, result.stderr)
