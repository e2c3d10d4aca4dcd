"""Typed checks of settings: a value of the wrong type is one SettingError naming the setting and
what it takes, before torch or Lightning meet it (their own errors name neither). Hydra reads
`true`/`false` as booleans and numbers as numbers, so any other text arrives here as a string."""

from __future__ import annotations

import contextlib
import math
import numbers
from collections.abc import Iterator
from typing import Literal, overload

from chargpt.errors import ConfigError, SettingError

SEED_RANGE = (-(2**63), 2**64 - 1)  # what torch.Generator.manual_seed accepts
TRAINING_SEED_MAX = 2**32 - 1  # numpy's seeds, which Lightning seeds too
_OR_NULL = {True: ", or null", False: ""}
WITHOUT_DECIMAL_POINT = "write it without a decimal point or exponent"  # a whole number typed as 1e6


@contextlib.contextmanager
def named_under(label: str) -> Iterator[None]:
    """A part's own check names its bare setting (`check_every=0 must be ...`): said here under the
    config that holds it (`callbacks.nonfinite_guard.check_every=0 must be ...`). A setting named in
    full already (a schedule's `scheduler.warmup_steps`: its group is always `scheduler`) is kept."""
    try:
        yield
    except SettingError as err:
        if err.setting.startswith(f"{label}."):
            raise
        raise SettingError(f"{label}.{err}", f"{label}.{err.setting}") from None
    except ConfigError as err:
        raise ConfigError(f"{label}.{err}") from None


def shown(value: object) -> str:
    """A setting's value as it is typed on the command line: null, true and false as YAML spells
    them, text quoted. It names a bad value in a message, where text keeps Python's quotes so that
    '5' reads as the text Hydra made of it; it is not written to be run again."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


def as_utf8(text: str) -> str:
    """`text` as UTF-8 can carry it: bytes of another encoding (a Latin-1 terminal's typing, an old
    folder's name), which reach Python as lone surrogates, written as escapes (caf\\xe9)."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        try:
            return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        except UnicodeEncodeError:  # a surrogate no byte stands for (a JSON escape's)
            return text.encode("utf-8", "backslashreplace").decode("utf-8")


def utf8_text(name: str, value: object) -> None:
    """A setting whose text goes into JSON or a file (a model's name) must be UTF-8 text."""
    if isinstance(value, str) and as_utf8(value) != value:
        raise SettingError(f"{name}={as_utf8(value)} is not UTF-8 text; type it in UTF-8", name)


def yes_no(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise SettingError(f"{name}={shown(value)} must be true or false", name)
    return value


@overload
def whole_number(name: str, value: object, low: int | None = ..., optional: Literal[False] = ...) -> int: ...
@overload
def whole_number(name: str, value: object, low: int | None = ..., *, optional: bool) -> int | None: ...
def whole_number(name: str, value: object, low: int | None = None, optional: bool = False) -> int | None:
    """An integer (not a bool; numpy's too) >= low; None too when optional."""
    if value is None and optional:
        return None
    wrong_type = isinstance(value, bool) or not isinstance(value, numbers.Integral)
    if wrong_type or (low is not None and value < low):
        at_least = f" >= {low}" if low is not None else ""
        # Hydra reads 1e6 as the decimal 1000000.0: say how to type the whole number meant.
        spelled = isinstance(value, float) and value.is_integer() and (low is None or value >= low)
        hint = f"; {WITHOUT_DECIMAL_POINT}: {name}={int(value)}" if spelled else ""
        message = f"{name}={shown(value)} must be a whole number{at_least}{_OR_NULL[optional]}{hint}"
        raise SettingError(message, name)
    return int(value)


def real_number(name: str, value: object, low: float | None = None, optional: bool = False) -> float | None:
    """A finite real number (not a bool; numpy's too) >= low; None too when optional."""
    if value is None and optional:
        return None
    if (isinstance(value, bool) or not isinstance(value, numbers.Real) or not _finite(value)
            or (low is not None and value < low)):
        at_least = f" >= {low:g}" if low is not None else ""
        message = f"{name}={shown(value)} must be a finite number{at_least}{_OR_NULL[optional]}"
        raise SettingError(message, name)
    return float(value)


def _finite(value: numbers.Real) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float
        return False


def training_seed(name: str, value: object) -> int:
    """A seed for every generator of a run (Lightning would warn and train with seed 0 outside
    numpy's range)."""
    number = whole_number(name, value)
    if not 0 <= number <= TRAINING_SEED_MAX:
        raise SettingError(f"{name}={value} must be a whole number from 0 to {TRAINING_SEED_MAX}", name)
    return number


def check_seed(name: str, value: object, optional: bool = False) -> int | None:
    """A seed torch takes; None too when optional (a fresh seed from the OS)."""
    number = whole_number(name, value, optional=optional)
    if number is None:
        return None
    if not SEED_RANGE[0] <= number <= SEED_RANGE[1]:
        raise SettingError(f"{name}={number} is outside the 64-bit range torch seeds take", name)
    return number
