"""User-facing errors: each carries one line that names the problem and the fix."""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import re
import signal
import sys
from collections.abc import Callable, Iterator
from typing import NoReturn, TypeVar

from chargpt.shell_words import join

F = TypeVar("F", bound=Callable[..., object])
E = TypeVar("E", bound=BaseException)

# Exit status for a usage error (bad config, bad input file), as argparse and most CLIs use.
USAGE_EXIT_CODE = 2


class ChargptError(Exception):
    """A problem the user can fix; the message says how."""


class ConfigError(ChargptError):
    """An invalid setting."""


class SettingError(ConfigError):
    """An invalid value of one setting: `setting` names it as the message does (`sample.top_k`),
    for a caller that reports it elsewhere (the server's `param`)."""

    def __init__(self, message: str, setting: str) -> None:
        super().__init__(message)
        self.setting = setting

    def __reduce__(self) -> tuple[type, tuple[str, str]]:  # pickled whole (a parallel sweep's job)
        return type(self), (str(self), self.setting)


class SetupError(ConfigError):
    """A problem with where or how runs are launched, not with one run: it stops a whole sweep
    (instead of failing one job) and writes no run status."""


class DataError(ChargptError):
    """A missing or unusable corpus."""


class UnknownCharactersError(DataError):
    """A text has characters a fixed vocabulary (a trained model's) lacks: `chars` names them."""

    def __init__(self, message: str, chars: str) -> None:
        super().__init__(message)
        self.chars = chars


class CheckpointError(ChargptError):
    """A missing, damaged or incompatible checkpoint."""


class OutOfMemory(ChargptError):
    """Memory ran out: the message names which (CPU or GPU), the settings that most likely asked for
    it, and smaller values to use."""


def needs_extra(what: str, missing: str, extra: str) -> str:
    """The message for `what` (a setting, a command) when `missing`, a package of chargpt's
    optional `extra`, is not installed: what needs it, and the command that installs it (chargpt
    is installed from its folder, as `make` does, not from a package index)."""
    return (f"{what} needs {missing}; install the {extra} extra in chargpt's folder: "
            f"pip install -e '.[{extra}]'")


def cannot_read(path: str | os.PathLike, err: OSError) -> str:
    """The message for a file or folder this user may not read (chmod 000): the chmod that lets
    them (a folder's search permission too), never a guess that it is damaged or missing."""
    name = os.fspath(path)
    mode = "u+rx" if os.path.isdir(name) else "u+r"
    return f"cannot read {name} ({err.strerror}); make it readable ({join(['chmod', mode, name])})"


# numpy's error for an array whose size cannot even be counted (`data.batch_size=1e20`)
_TOO_LARGE_TO_COUNT = "Maximum allowed dimension exceeded"
# torch's CPU allocator refusing a tensor is a plain RuntimeError, not its OutOfMemoryError
# (`model.n_embd=1048576` on a CPU): "DefaultCPUAllocator: can't allocate memory: you tried to
# allocate 13194139533312 bytes." ("not enough memory" on Windows).
_CPU_ALLOCATOR_REFUSED = re.compile(
    r"DefaultCPUAllocator: (?:can't allocate memory|not enough memory): you tried to allocate (\d+) bytes")


def memory_ran_out(err: BaseException) -> str | None:
    """Which memory `err` says ran out: "GPU memory" (torch's OutOfMemoryError), "CPU memory" (a
    MemoryError, numpy's among them, an array too large to count, or torch's CPU allocator
    refusing), else None. Without importing torch: the report starts without it."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(err, getattr(torch, "OutOfMemoryError", ())):
        return "GPU memory"
    if isinstance(err, MemoryError) or (isinstance(err, ValueError) and str(err) == _TOO_LARGE_TO_COUNT):
        return "CPU memory"
    if isinstance(err, RuntimeError) and _CPU_ALLOCATOR_REFUSED.search(str(err)):
        return "CPU memory"
    return None


def _asked_for(err: BaseException) -> str | None:
    """How much memory `err` says was asked for, as torch's CUDA message writes it ("20.00 GiB")."""
    if asked := re.search(r"allocate (\d[\d.]* [KMGTP]?i?B)", str(err)):
        return asked[1]
    if refused := _CPU_ALLOCATOR_REFUSED.search(str(err)):
        size, unit = float(refused[1]), "B"
        for larger in ("KiB", "MiB", "GiB", "TiB", "PiB"):
            if size < 1024:
                break
            size, unit = size / 1024, larger
        return f"{size:.2f} {unit}"
    return None


def out_of_memory(err: BaseException, advice: Callable[[], str]) -> OutOfMemory | None:
    """The OutOfMemory for `err` when memory ran out (else None): one line naming the memory, how
    much was asked for, and `advice()`: the settings most likely too large and the fix."""
    what = memory_ran_out(err)
    if what is None:
        return None
    asked = _asked_for(err)
    size = f" (could not allocate {asked})" if asked else ""
    return OutOfMemory(f"out of {what}{size}; {advice()}")


@contextlib.contextmanager
def naming_what_ran_out(advice: Callable[[], str]) -> Iterator[None]:
    """Memory running out in the block (a traceback from numpy or torch) becomes an OutOfMemory: one
    line naming the memory, how much was asked for, and `advice()`: the settings most likely too
    large and the fix. The traceback stays with HYDRA_FULL_ERROR=1."""
    try:
        yield
    except Exception as err:
        said = None if full_errors_requested() else out_of_memory(err, advice)
        if said is None:
            raise
        raise said from err


NO_ROOM = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}  # an OSError of a write that found no room


def exit_usage(message: str) -> NoReturn:
    """A usage error: `error: message` as one line on stderr, and exit code 2."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(USAGE_EXIT_CODE)


def signal_exit_code(signum: int) -> int:
    """What a shell reports for a command a signal ended: 128 + the signal's number (Ctrl-C's
    SIGINT 130, SIGTERM 143)."""
    return 128 + int(signum)


def say_stopped_by(signum: int) -> None:
    """The console's one line for a command a signal stops: `interrupted` for Ctrl-C (SIGINT),
    `terminated` for SIGTERM."""
    print("\ninterrupted" if signum == signal.SIGINT else "\nterminated", file=sys.stderr, flush=True)


def exit_stopped_by(signum: int) -> NoReturn:
    """A command a signal stopped: its one line, and the exit code a shell reports for it."""
    say_stopped_by(signum)
    sys.exit(signal_exit_code(signum))


def first_line(err: BaseException | str, limit: int | None = None) -> str:
    """The first line of an error's message, cut to `limit` characters, for a one-line error; the
    error's type when it has no message (a library's multi-line errors keep their gist)."""
    text = str(err).strip()
    line = text.splitlines()[0].strip() if text else ("" if isinstance(err, str) else type(err).__name__)
    return line[:limit] if limit is not None else line


def full_errors_requested() -> bool:
    return os.environ.get("HYDRA_FULL_ERROR") == "1"


def cause_of(err: BaseException | None, kind: type[E]) -> E | None:
    """The exception of `kind` behind `err` (itself, or what it was raised from or during), also
    when a library wrapped it."""
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, kind):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


def user_error_in(err: BaseException | None) -> ChargptError | None:
    """The ChargptError behind `err`, also when a library wrapped it (e.g. Hydra's instantiate)."""
    return cause_of(err, ChargptError)


def exit_on_user_error(fn: F) -> F:
    """Turn a ChargptError into one line on stderr and exit code 2 (traceback with HYDRA_FULL_ERROR=1)."""

    @functools.wraps(fn)
    def wrapper(*args: object, **kwargs: object) -> object:
        try:
            return fn(*args, **kwargs)
        except Exception as err:
            user_error = user_error_in(err)
            if user_error is None or full_errors_requested():
                raise
            exit_usage(str(user_error))

    return wrapper  # type: ignore[return-value]
