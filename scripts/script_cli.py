"""What the benchmark scripts' command lines share: a bad argument is one `error:` line on stderr
and exit code 2, as chargpt's own commands give, whether argparse, chargpt or Hydra finds it."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from hydra.errors import HydraException

from chargpt.errors import exit_on_user_error, exit_usage, first_line, full_errors_requested, path_refused


class ScriptParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line (argparse prints its usage block first).
        exit_usage(f"{message}; see {self.prog} --help")


def positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return int(text)


def whole_number(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 0")
    return int(text)


def positive_number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number above 0")
    return value


def existing_folder(text: str) -> Path:
    try:
        is_folder = Path(text).is_dir()
    except OSError as err:  # a name too long: argparse would let it through as a traceback
        raise argparse.ArgumentTypeError(f"{text!r}: {path_refused(err) or err.strerror}") from None
    if not is_folder:
        raise argparse.ArgumentTypeError(f"{text!r} is not a folder; give one that exists")
    return Path(text)


def run_script(main: Callable[[], int | None]) -> NoReturn:
    """Run a script's main: a ChargptError (a value chargpt's checks refuse) or a Hydra error (no
    such --model preset, a malformed --override) is one error line and exit code 2, not a traceback
    (the traceback with HYDRA_FULL_ERROR=1)."""
    try:
        code = exit_on_user_error(main)()
    except HydraException as err:
        if full_errors_requested():
            raise
        exit_usage(first_line(err))
    sys.exit(code)
