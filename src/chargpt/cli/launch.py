"""The console scripts' entry points. Each command's code is imported here, inside the same Ctrl-C
handling the command itself has: that import (torch, and Lightning for training) takes seconds, and
a Ctrl-C during it would otherwise print a traceback instead of one line."""

from __future__ import annotations

import functools
import importlib

from chargpt.errors import exit_interrupted


def _launch(command: str) -> None:
    try:
        module = importlib.import_module(f"chargpt.cli.{command}")
    except KeyboardInterrupt:
        exit_interrupted()
    module.main()


# One entry per console script (pyproject.toml's [project.scripts]).
train = functools.partial(_launch, "train")
sample = functools.partial(_launch, "sample")
evaluate = functools.partial(_launch, "eval")
report = functools.partial(_launch, "report")
export = functools.partial(_launch, "export")
serve = functools.partial(_launch, "serve")
