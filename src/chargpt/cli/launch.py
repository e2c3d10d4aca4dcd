"""The console scripts' entry points. Each command's code is imported here, inside the same Ctrl-C
handling the command itself has: that import (torch, and Lightning for training) takes seconds, and
a Ctrl-C during it would otherwise print a traceback instead of one line."""

from __future__ import annotations

import importlib

from chargpt.errors import exit_interrupted


def _launch(command: str) -> None:
    try:
        module = importlib.import_module(f"chargpt.cli.{command}")
    except KeyboardInterrupt:
        exit_interrupted()
    module.main()


def train() -> None:
    _launch("train")


def sample() -> None:
    _launch("sample")


def evaluate() -> None:
    _launch("eval")


def report() -> None:
    _launch("report")


def export() -> None:
    _launch("export")


def serve() -> None:
    _launch("serve")
