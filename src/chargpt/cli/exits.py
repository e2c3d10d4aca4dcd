"""How every command ends when the user stops it: Ctrl-C is one line and exit 130; output into a
pipe whose reader stopped (`| head`) ends quietly with exit 141, as other Unix tools do, except
training, which goes on without its console (console_outliving_its_reader). No torch here: the
report uses it too, and starts without torch."""

from __future__ import annotations

import atexit
import codecs
import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, NoReturn

from chargpt.errors import (
    NO_ROOM,
    exit_stopped_by,
    exit_usage,
    full_errors_requested,
    no_room_line,
    refused_path_line,
    signal_exit_code,
)
from chargpt.stop_signals import (
    STOP_SIGNALS,
    SignalOutsideTraining,
    handled_stop_signals,
    handling_stop_signals,
)

if TYPE_CHECKING:
    from omegaconf import DictConfig

BROKEN_PIPE_EXIT_CODE = signal_exit_code(13)  # SIGPIPE: what `yes | head` reports for `yes`


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the command is, as Ctrl-C raises KeyboardInterrupt: whatever unwinds a
    Ctrl-C (cleanup, a run's recorded status) unwinds it too, and no `except Exception` keeps it.
    `signum` tells the two apart for the exit code."""

    signum = int(signal.SIGTERM)


def signal_of(stop: KeyboardInterrupt) -> int:
    """The signal a KeyboardInterrupt stands for: SIGTERM for Terminated, Ctrl-C's SIGINT otherwise."""
    return getattr(stop, "signum", int(signal.SIGINT))


# The error handler of stdout as the command started (PYTHONIOENCODING=latin-1:replace names one),
# before clean_exits has what the console cannot write escaped: sampling reads it.
_started_errors: str | None = None


def stdout_errors_as_started() -> str:
    return _started_errors or getattr(sys.stdout, "errors", None) or "strict"


def stdout_writes_any_text() -> bool:
    """Whether standard output's encoding is a UTF, which writes every character a text can hold."""
    return codecs.lookup(sys.stdout.encoding or "utf-8").name.startswith("utf")


@contextlib.contextmanager
def _escaping_what_the_console_cannot_write() -> Iterator[None]:
    """A character the console's encoding cannot write (an emoji of the text in a log line, the
    report's ± on an ASCII terminal) is written as its escape, where it was logging's "Logging
    error" traceback or the command's crash. Samples, which must be the model's text, are refused
    before any text instead (prompts.check_output_writes)."""
    global _started_errors
    outer = _started_errors  # (a command run inside another, as tests do: the first's stays)
    _started_errors = outer or getattr(sys.stdout, "errors", None)
    changed = []
    for stream in (sys.stdout, sys.stderr):
        if getattr(stream, "errors", None) == "strict" and hasattr(stream, "reconfigure"):
            with contextlib.suppress(ValueError, OSError):
                stream.reconfigure(errors="backslashreplace")
                changed.append(stream)
    try:
        yield
    finally:
        for stream in changed:
            with contextlib.suppress(ValueError, OSError):
                stream.reconfigure(errors="strict")
        _started_errors = outer


@contextlib.contextmanager
def clean_exits() -> Iterator[None]:
    """Ctrl-C: one line and exit 130. Output into a pipe whose reader stopped (`| head`): quiet,
    exit 141, as other Unix tools. A full disk (the output redirected to a file there, or a file
    the command writes): one error line and exit 2. What the console's encoding cannot write is
    written escaped."""
    _leave_no_room_in_threads_to_the_main_thread()
    try:
        with _escaping_what_the_console_cannot_write():
            yield
        sys.stdout.flush()  # here, not at the interpreter's exit, where a failed write is a traceback
    except KeyboardInterrupt as stop:  # Terminated too
        exit_stopped_by(signal_of(stop))
    except BrokenPipeError:
        _quiet_broken_pipe()
    except OSError as err:
        exit_on_os_error(err)
        raise
    except SystemExit as exit_:
        if exit_.code == BROKEN_PIPE_EXIT_CODE:
            _quiet_broken_pipe()
        raise


def _leave_no_room_in_threads_to_the_main_thread() -> None:
    """A full disk met by a background thread (TensorBoard's event writer) is not printed by that
    thread: its traceback came after the command's one error line, cut short as the process exited.
    The main thread meets the same error at its next write (TensorBoard raises the thread's error
    again there) and reports it as that line. Installed for good, not restored: the thread may print
    only as the command exits. Any other error in a thread is printed as before."""
    previous = threading.excepthook
    if getattr(previous, "leaves_no_room_to_main", False):
        return

    def hook(args: threading.ExceptHookArgs) -> None:
        if not (isinstance(args.exc_value, OSError) and args.exc_value.errno in NO_ROOM):
            previous(args)

    hook.leaves_no_room_to_main = True  # type: ignore[attr-defined]
    threading.excepthook = hook


def exit_on_os_error(err: OSError) -> None:
    """One error line and exit 2 for an OSError the user fixes by where the command reads or writes:
    no room there (a full disk, a quota), or a path the file system refuses to look up (a name too
    long, a symbolic link loop, a file taken for a folder), said with the setting that named it
    (its traceback with HYDRA_FULL_ERROR=1). Returns for any other OSError: the caller raises it."""
    if err.errno in NO_ROOM:
        exit_no_room(err)
    if (line := refused_path_line(err)) is not None and not full_errors_requested():
        exit_usage(line)


def exit_no_room(err: OSError, then: str | None = None, within: str | None = None) -> NoReturn:
    """A write that found no room (a full disk, a quota): one error line (no_room_line's) and exit 2."""
    _drop_stdout()  # what is still buffered for it would fail again at exit
    exit_usage(no_room_line(err, then, within))


TRAINING_JOB = "train"  # hydra.job.name of chargpt-train's jobs (its module's name), whose sweeps continue


@contextlib.contextmanager
def no_room_said_with_the_continue_command(hydra: DictConfig) -> Iterator[None]:
    """A sweep (of the config whose `hydra` node is given) that finds no room for what Hydra writes
    outside every job (the next job's config, as the disk fills between jobs; a job's own failures
    are its status's): one error line with the command that continues a training sweep once there is
    room, where it was Hydra's traceback and exit 1."""
    try:
        yield
    except OSError as err:
        if err.errno not in NO_ROOM or full_errors_requested():
            raise
        # (imported here: the sweep's record is a training sweep's concern, read only now)
        from chargpt.runs.sweep_record import continue_line

        exit_no_room(err, continue_line(hydra) if hydra.job.name == TRAINING_JOB else None,
                     within=str(hydra.sweep.dir))


def _quiet_broken_pipe() -> None:
    _drop_stdout()
    sys.exit(BROKEN_PIPE_EXIT_CODE)


def _drop_stdout() -> None:
    # Python would write stdout's buffer again when it flushes at exit: point stdout at /dev/null
    # first (only the real stdout; a test's replacement is left alone).
    if sys.stdout is sys.__stdout__:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


@contextlib.contextmanager
def raising_on_sigterm() -> Iterator[None]:
    """SIGTERM (a `kill`, a job scheduler) raises Terminated while the block runs: its default action
    would end the process where it stands, with no word. A second one ends it at once. Left alone
    where whoever started the process ignores it, and off the main thread (no handler can be set)."""
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGTERM) is signal.SIG_IGN:
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def exiting_past_stop_signals() -> Iterator[None]:
    """The block is a command's whole run (a console script's process): after it the process only
    exits, and its output is complete (`exported ...` said). There a Ctrl-C or SIGTERM was a
    KeyboardInterrupt traceback from an atexit callback (torch's finalizers, ~0.4 s), or ended the
    process silently with 130, the signal's default action once Python had let its handlers go. So
    after the block a first stop signal is ignored (a second ends the process at once: something
    hung in its exit), and after the last exit callback every one is. A signal the starter ignores
    stays ignored."""
    atexit.register(_ignore_stop_signals)  # registered before the command's own: run after them
    try:
        yield
    finally:
        for s in handled_stop_signals():
            signal.signal(s, _second_stop_ends_it)


def _second_stop_ends_it(signum: int, frame: object) -> None:
    signal.signal(signum, signal.SIG_DFL)


def _ignore_stop_signals() -> None:
    # SIG_IGN outlives the interpreter's teardown, which sets its own handlers back to the default.
    for s in handled_stop_signals():
        signal.signal(s, signal.SIG_IGN)


@contextlib.contextmanager
def nothing_to_save_until_training(active: bool = True) -> Iterator[None]:
    """Inside trainer.fit but outside its training loop a signal stops the run as one before fit
    does (one line, exit 130 or 143): raised as Ctrl-C's KeyboardInterrupt, or Terminated. A signal
    its starter ignores stays ignored. `active`: False where another handler has these signals (a
    parallel sweep's job)."""
    if not active:
        yield
        return
    owner = os.getpid()
    originals = {s: signal.getsignal(s) for s in STOP_SIGNALS}

    def stop(signum: int, frame: object) -> None:
        earlier = originals[signum]
        if earlier == signal.SIG_IGN:
            return  # ignored by whoever started the run: it stays so
        if os.getpid() == owner:
            raise SignalOutsideTraining(signum)
        # A data loader's worker, forked meanwhile: it reacts as it did before this handler.
        if callable(earlier):
            earlier(signum, frame)
        else:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)

    try:
        with handling_stop_signals(stop):
            yield
    except SignalOutsideTraining as sig:
        raise (Terminated() if sig.signum == signal.SIGTERM else KeyboardInterrupt()) from None


def _raise_terminated(signum: int, frame: object) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends the process at once
    raise Terminated


class _OutlivingItsReader:
    """A console stream that a closed pipe does not stop: the first write or flush that finds its
    reader gone points the stream's file at /dev/null (what is still buffered and all that follows
    goes there) and says so once on stderr. Everything else is the stream's own."""

    def __init__(self, stream: Any, note: str) -> None:
        self._stream, self._note, self.reader_gone = stream, note, False

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            self._lose_the_reader()
            return self._stream.write(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._lose_the_reader()
            self._stream.flush()

    def _lose_the_reader(self) -> None:
        if self.reader_gone:
            return  # /dev/null has the file's place already: the retry says what else is wrong
        self.reader_gone = True
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, self._stream.fileno())
        os.close(devnull)
        if self._note:
            with contextlib.suppress(OSError):  # said where it can be: stderr may share the closed pipe
                print(self._note, file=sys.stderr, flush=True)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


@contextlib.contextmanager
def console_outliving_its_reader(note: str) -> Iterator[None]:
    """stdout and stderr for a command whose work must not end because its console's reader did
    (`| head`, `2>&1 | tee` stopped): Python would raise at the next print, Lightning would fail
    the run, and logging would print a traceback for each line. `note`: what stderr says when that
    happens (none when empty). A stream that is no real file (a test's capture) is left as it is."""
    with contextlib.ExitStack() as guards:
        for name in ("stdout", "stderr"):
            guards.enter_context(_guarded(name, note))
        yield


@contextlib.contextmanager
def _guarded(name: str, note: str) -> Iterator[None]:
    stream = getattr(sys, name)
    try:
        stream.fileno()
        real = True
    except (AttributeError, OSError, ValueError):
        real = False  # not yielded in here: what the block raises would take this as its context
    if not real or isinstance(stream, _OutlivingItsReader):  # guarded already: the command's process
        yield
        return
    guard = _OutlivingItsReader(stream, note)
    # The log handlers made before the block (a parallel sweep's worker logs its job from them) too.
    handlers = [h for h in _log_handlers() if isinstance(h, logging.StreamHandler) and h.stream is stream]
    setattr(sys, name, guard)
    for handler in handlers:
        handler.setStream(guard)  # type: ignore[arg-type]
    try:
        yield
    finally:
        setattr(sys, name, stream)
        for handler in handlers:
            if handler.stream is guard:
                handler.setStream(stream)


def _log_handlers() -> list[logging.Handler]:
    loggers = [logging.getLogger(), *(logger for logger in logging.Logger.manager.loggerDict.values()
                                      if isinstance(logger, logging.Logger))]
    return [handler for logger in loggers for handler in logger.handlers]
