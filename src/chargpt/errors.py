"""User-facing errors: each carries one line that names the problem and the fix."""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import re
import signal
import sys
import traceback
from collections.abc import Callable, Iterator
from typing import NoReturn, TypeVar

from chargpt.shell_words import join, quote

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


def no_checkpoint_given(command: str, example_rest: str = "") -> ConfigError:
    """The one error of every command that reads a trained model (sample, eval, export, serve)
    when ckpt_path is missing: each takes a run folder, a .ckpt file or an export folder alike."""
    return ConfigError(f"ckpt_path is required: the run folder, .ckpt file or export folder to read, "
                       f"e.g. {command} ckpt_path=RUN_DIR{example_rest}")


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
    # What the failed code held (a model half built) is freed before `advice` runs: kept by the
    # traceback's frames, it left none for the advice's own work, which ran out in turn.
    traceback.clear_frames(err.__traceback__)
    asked = _asked_for(err)
    size = f" (could not allocate {asked})" if asked else ""
    return OutOfMemory(f"out of {what}{size}; {advice()}")


def ask_for_less(too_large: str, retry: str, smaller: str | None, device: str | None = None,
                 why: str | None = None) -> str:
    """The advice after memory ran out: `too_large`, the settings that most likely asked for it
    ("max_new_tokens=500"), and `why` where it can be said; and the fix: `retry` ("sample") with
    `smaller` values (None where none is smaller), or, for a command that chooses its `device`, on
    another one (the model may be on one too small: the memory named is that device's)."""
    where = (f"the memory of the device the model is on (device={device})" if device is not None
             else "this machine")
    said = f"{too_large} is too large for {where}" + (f": {why}" if why else "")
    fixes = [f"with less, e.g. {smaller}"] if smaller else []
    if device is not None:
        fixes.append("on another device")
    return f"{said}; {' '.join([retry, ', or '.join(fixes)]).rstrip()}"


# An OutOfMemory's line up to its fix: the memory, what it could not allocate, and what asked for it
# (ask_for_less's `too_large` and `why`, which hold no semicolon).
_OUT_OF_MEMORY_SAID = re.compile(r"out of (?:CPU|GPU) memory(?: \(could not allocate [^)]*\))?; [^;]*; ")


def out_of_memory_fix(line: str) -> str | None:
    """The fix an OutOfMemory's line gives (ask_for_less's `retry` and what follows), as a run's
    status.json keeps the line; None for any other line."""
    said = _OUT_OF_MEMORY_SAID.match(line)
    return line[said.end():] if said else None


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


def no_room_line(err: OSError, then: str | None = None, within: str | None = None) -> str:
    """What a write that found no room (NO_ROOM: a full disk, a quota) says, in one line: the file it
    wrote, and to free some space there. `then`: what to do once there is room (continue the sweep
    with ...), where there is more to it than writing elsewhere; `within`: the folder written in, for
    an error that names no file (a buffered write's, failing as its file closes)."""
    what = (f"cannot write {err.filename}" if err.filename else f"cannot write in {within}" if within
            else "a write failed")  # stdout's, most often
    return f"{what} ({err.strerror}); free some space there, " + (f"then {then}" if then else
                                                                  "or write elsewhere")


def path_refused(err: OSError) -> str | None:
    """Why the file system refused to look `err`'s path up at all, whatever is there (a name too
    long for it, symbolic links round a loop, a file taken for a folder), and the fix; None for any
    other OSError. The path is the setting's to change: no retry or permission helps."""
    name = os.fsdecode(err.filename) if err.filename is not None else None
    if name is None:
        return None
    if err.errno == errno.ENAMETOOLONG:
        longest = max((len(os.fsencode(part)) for part in name.split(os.sep)), default=0)
        too_long = (f"a name in it is {longest:,} bytes long" if longest > _most_bytes("PC_NAME_MAX", 255)
                    else f"it is {len(os.fsencode(name)):,} bytes long")
        return f"{too_long}, more than the file system takes; give a shorter path"
    if err.errno == errno.ELOOP:
        return ("its symbolic links lead round in a loop; point the link at a file or folder, or give "
                "another path")
    if err.errno == errno.ENOTDIR:
        file = next((part for part in _parents(name) if os.path.isfile(part)), None)
        part = f"{shown_name(file)} is a file" if file else "a part of it is a file"
        return f"{part}, not a folder, so nothing can be inside it; give a path through folders"
    return None


def exists(path: str | os.PathLike) -> bool:
    """Whether something is at `path` (a link that leads nowhere: no). Unlike pathlib's exists(),
    a path the file system refuses (path_refused: a symbolic link loop, a file taken for a folder)
    raises its OSError, to be said as such instead of as "not found"."""
    try:
        os.stat(path)
    except (FileNotFoundError, ValueError):  # ValueError: a NUL in the name, which no file has
        return False
    return True


def visible(path: str | os.PathLike) -> str:
    """`path` as a message names it: as it is, unless it is blank, has white space at an end or holds
    a control character (a newline would break the one error line in two): then in Python's quotes,
    escaped, so that what the name is can be seen."""
    name = os.fspath(path)
    if name and name.strip() == name and not any(c < " " or c == "\x7f" for c in name):
        return name
    return repr(name)


def without_spaces_around(path: str | os.PathLike) -> str | None:
    """`path` without the white space typed or pasted around its names (after its last, or before
    its first: a space after `=`, "ckpt_path= my runs/r 1", read from the current folder), where
    something is there without it and nothing with it; else None (a name of spaces alone is no
    other name)."""
    name = os.fspath(path)
    names = name.strip().split(os.sep)  # (" /home/me/run": the space is before the root)
    if not names[-1].strip() or any(part and not part.strip() for part in names):
        return None
    # The spaces at its ends and around its last name first: a folder's own name may end in one
    # ("runs /r 1 " is "runs /r 1"), where every name stripped would be "runs/r 1", not there.
    head, tail = os.path.split(name.lstrip())
    for bare in (os.path.join(head, tail.strip()), os.sep.join(part.strip() for part in names)):
        if exists(bare) and not exists(name):
            return bare
    return None


def spaces_around(path: str | os.PathLike, setting: str | None = None) -> str | None:
    """For a path that is not there, but is without the white space typed or pasted around its last
    name (without_spaces_around): what to say after it, with the fix quoted to paste as it is, e.g.
    ` (the name has spaces around it, and 'my runs/a' exists); pass it without them: data.path='my
    runs/a'`. `setting`: the setting that named it; by default the command line's that did, if any."""
    if (bare := without_spaces_around(path)) is None:
        return None
    if setting is None and (word := _naming_word(os.fspath(path))) is not None and word[1]:
        setting = word[0].lstrip("+~")
    fix = quote(f"{setting}={bare}" if setting else bare)
    return f" (the name has spaces around it, and {quote(bare)} exists); pass it without them: {fix}"


def refused_path_line(err: OSError) -> str | None:
    """The error line for an OSError of a path the file system refuses (path_refused): the setting
    of the command line that named it, what is wrong and the fix. None for any other OSError."""
    why = path_refused(err)
    return None if why is None else f"{setting_naming(os.fsdecode(err.filename))}: {why}"


def setting_naming(path: str) -> str:
    """The setting of the command line (`ckpt_path=...`, or a word as typed) that names `path` or a
    folder it is in, as typed (the nearest, where several do); `path` itself where none does (a path
    the command made). A long one is cut, with its length."""
    if (word := _naming_word(path)) is None:
        return shown_name(path)
    key, equals, value = word
    return f"{key.lstrip('+~')}={shown_name(value)}" if equals else shown_name(value)


def _naming_word(path: str) -> tuple[str, str, str] | None:
    """The command line's word that names `path` or a folder it is in (the nearest, where several
    do), split as `key`, `=`, `value` (`''`, `''`, the word, for one that is no setting); None if none."""
    named = []
    for word in sys.argv[1:]:
        key, equals, value = word.partition("=")
        if not equals:
            key, value = "", word
        if value and _within(path, bare := value.strip("'\"")):
            named.append((len(os.path.abspath(os.path.expanduser(bare))), key, equals, value))
    return max(named)[1:] if named else None


def _within(path: str, named: str) -> bool:
    """Whether `path` is what `named` names (~ expanded, relative to this folder), or inside it."""
    inner, outer = os.path.abspath(path), os.path.abspath(os.path.expanduser(named))
    return inner == outer or inner.startswith(outer.rstrip(os.sep) + os.sep)


def shown_name(path: str | os.PathLike, most: int = 100) -> str:
    """A path as an error line names it, where the file system refused it: visible (quoted, with a
    newline escaped), and cut when long, with its length."""
    text = visible(path)
    return text if len(text) <= most else f"{text[:60]}…{text[-20:]} ({len(text):,} characters)"


def _most_bytes(limit: str, default: int) -> int:
    try:
        return os.pathconf("/", limit)
    except (OSError, ValueError):
        return default


def _parents(name: str) -> list[str]:
    """`name`'s folders, the outermost first: a/b/c's a and a/b."""
    parts = name.split(os.sep)
    return [os.sep.join(parts[:i]) for i in range(1, len(parts)) if parts[i - 1]]


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
    """Turn a ChargptError, or a path the file system refuses (refused_path_line), into one line on
    stderr and exit code 2 (traceback with HYDRA_FULL_ERROR=1)."""

    @functools.wraps(fn)
    def wrapper(*args: object, **kwargs: object) -> object:
        try:
            return fn(*args, **kwargs)
        except Exception as err:
            if full_errors_requested():
                raise
            if (user_error := user_error_in(err)) is not None:
                exit_usage(str(user_error))
            if isinstance(err, OSError) and (line := refused_path_line(err)) is not None:
                exit_usage(line)  # a path setting the file system refuses: the setting's to change
            raise

    return wrapper  # type: ignore[return-value]
