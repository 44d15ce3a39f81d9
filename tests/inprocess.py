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


# A process of its own, without the interpreter start: children forked from a server process that imported these
# once. `python -m seqtree.cli finetune ...` spends 7-10 s importing Lightning (and through it torch._dynamo and
# torchmetrics) before it does anything; a child of the server starts in well under a second. The server is a fresh
# interpreter (multiprocessing's forkserver, started on first use by each test worker), so a child shares nothing
# with the test process: its own global RNGs, environment, signal handlers and Lightning state, as a subprocess has.
# seqtree.cli itself is not preloaded: `-m seqtree.cli` runs it as __main__, as the interpreter would.
FORKSERVER_PRELOAD = ["torch", "lightning", "transformers", "pandas", "seqtree.finetune", "seqtree.training.run"]


def _forked_main(argv: list[str], stdout_path: str, stderr_path: str) -> None:
    """The child: `python *argv` from the repository root on one torch thread, its stdout and stderr (file
    descriptors 1 and 2, so that native and Lightning output is caught too) written to the two files."""
    import runpy
    import sys

    import torch

    torch.set_num_threads(1)
    for fd, path in ((1, stdout_path), (2, stderr_path)):
        target = os.open(path, os.O_WRONLY | os.O_CREAT)
        os.dup2(target, fd)
        os.close(target)
    os.chdir(ROOT)
    sys.path.insert(0, str(ROOT))  # as the interpreter puts the working directory first for -c and -m
    option, name, *rest = argv
    if option == "-c":
        sys.argv = ["-c", *rest]
        exec(compile(name, "<string>", "exec"), {"__name__": "__main__"})
    elif option == "-m":
        sys.argv = [name, *rest]
        runpy.run_module(name, run_name="__main__", alter_sys=True)
    else:
        raise ValueError(f"python_forked runs `-c CODE` or `-m MODULE`, not {option!r}")


class ForkedProcess:
    """``python *argv`` (``-m MODULE ARGS`` or ``-c CODE ARGS``) started in a fresh process from the repository
    root, as ``subprocess.Popen([sys.executable, *argv], cwd=ROOT)`` starts it, with one torch thread as the test
    process has (conftest): its stderr read line by line as it is written, a signal sent, its end awaited."""

    def __init__(self, *argv: str) -> None:
        import multiprocessing
        import tempfile

        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(FORKSERVER_PRELOAD)
        self.argv = list(argv)
        self._folder = tempfile.TemporaryDirectory()
        self._stdout, self._stderr = (Path(self._folder.name) / name for name in ("stdout", "stderr"))
        self._stdout.touch()
        self._stderr.touch()
        self._child = context.Process(target=_forked_main, args=(self.argv, str(self._stdout), str(self._stderr)))
        self._child.start()

    @property
    def returncode(self) -> int | None:
        return self._child.exitcode

    def send_signal(self, signal_number: int) -> None:
        os.kill(self._child.pid, signal_number)

    def stderr_lines(self):
        """The lines of stderr as the child writes them, until it has ended and every line is read."""
        import time

        with self._stderr.open() as handle:
            line = ""
            while True:
                line += handle.readline()
                if line.endswith("\n"):
                    yield line
                    line = ""
                elif not self._child.is_alive():
                    line += handle.read()
                    yield from line.splitlines(keepends=True)
                    return
                else:
                    time.sleep(0.01)

    def communicate(self, timeout: float) -> tuple[str, str]:
        """(stdout, stderr) once the child has ended; killed, and ``subprocess.TimeoutExpired``, after ``timeout``."""
        import subprocess

        self._child.join(timeout)
        if self._child.is_alive():
            self._child.kill()
            self._child.join()
            raise subprocess.TimeoutExpired(["python", *self.argv], timeout)
        out = self._stdout.read_text(), self._stderr.read_text()
        self._folder.cleanup()
        return out


def python_forked(*argv: str, timeout: float = 600) -> CliResult:
    """``python *argv`` run to its end in a fresh process (``ForkedProcess``), as ``subprocess.run(...,
    capture_output=True, text=True)`` runs it: the exit code (1 with a traceback on stderr for an uncaught
    exception, the code of ``sys.exit``) and both streams."""
    process = ForkedProcess(*argv)
    stdout, stderr = process.communicate(timeout)
    return CliResult(process.returncode, stdout, stderr)


def seqtree_forked(*args: str, timeout: float = 600) -> CliResult:
    """``python -m seqtree.cli *args`` in a fresh process (``python_forked``): for runs that seed the global RNGs
    or set Lightning's environment, which must not leak into the test process."""
    return python_forked("-m", "seqtree.cli", *args, timeout=timeout)
