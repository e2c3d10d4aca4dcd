"""The console scripts' entry points. Each command's code is imported here, inside the same Ctrl-C
and SIGTERM handling the command itself has: that import (torch, and Lightning for training) takes
seconds, and a Ctrl-C during it would otherwise print a traceback instead of one line (a SIGTERM
would end the process without a word)."""

from __future__ import annotations

import contextlib
import functools
import gc
import importlib
import sys
from collections.abc import Iterator
from typing import NoReturn

from chargpt.cli.exits import exiting_past_stop_signals, raising_on_sigterm, signal_of
from chargpt.errors import exit_stopped_by


@contextlib.contextmanager
def collector_off_then_frozen() -> Iterator[None]:
    """For a command's import: it makes over a million objects that live as long as the process,
    and almost no garbage. Left on, the cyclic collector scans them again and again while they load
    (~0.5 s of a training command's start-up on a 2-core CPU) and once more at exit (~0.5 s): it
    stays off here, and freezing what was made keeps it out of its later passes (docs/BENCHMARKS.md,
    "Start-up and exit")."""
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.enable()


def _launch(command: str) -> None:
    with exiting_past_stop_signals():  # once the command has ended, a stop signal has nothing to stop
        try:
            with raising_on_sigterm(), collector_off_then_frozen():
                module = importlib.import_module(f"chargpt.cli.{command}")
        except KeyboardInterrupt as stop:  # Terminated too
            exit_stopped_by(signal_of(stop))
        module.main()


def run_as_main(command: str) -> NoReturn:
    """`python -m chargpt.cli.COMMAND`, from the top of that module: the command runs as its console
    script does. Run as __main__, the module's own imports (torch, Lightning) came first, outside
    any handling: a Ctrl-C there was a KeyboardInterrupt traceback, a SIGTERM a silent exit 143."""
    _launch(command)
    sys.exit()


# One entry per console script (pyproject.toml's [project.scripts]).
train = functools.partial(_launch, "train")
sample = functools.partial(_launch, "sample")
evaluate = functools.partial(_launch, "eval")
report = functools.partial(_launch, "report")
export = functools.partial(_launch, "export")
serve = functools.partial(_launch, "serve")
