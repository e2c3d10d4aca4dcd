"""A stop request to the jobs of a sweep that run in parallel processes (hydra/launcher=local_parallel).

A signal sent to the sweep's own process (`kill PID`, a scheduler that signals only the process it
started) does not reach its jobs, and a signal that reaches one job alone would stop that one while
the sweep's end kills the others mid-step. So the first signal any of them gets is written down in
the sweep's folder: every running job reads it at its next step boundary, stops there and writes a
checkpoint, and a job that has not started does not start. A file, not a forwarded signal: a Ctrl-C
in a terminal already reaches every process, and a second signal means "quit at once".
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

from chargpt.files import write_text_atomic
from chargpt.stop_signals import handling_stop_signals

FILE_NAME = ".stop-requested"
# The launcher that reads the request in the sweep's process (its jobs read it too).
LAUNCHER = "hydra_plugins.chargpt_launcher.StoppableJoblibLauncher"
# The sweep's process id, set there for the worker processes it starts (they inherit it).
SWEEP_PROCESS = "CHARGPT_SWEEP_PROCESS"


class JobStopped(Exception):
    """A parallel sweep job that stopped for a signal (`started`: it trained and wrote a
    checkpoint; else it never started). It travels back to the sweep's process as the job's
    result, where the sweep ends with the signal's exit code once every job has stopped."""

    def __init__(self, signum: int, started: bool) -> None:
        super().__init__(signum, started)  # the arguments again: the exception is pickled
        self.signum, self.started = int(signum), started

    def __str__(self) -> str:
        return f"stopped by {signal.Signals(self.signum).name}"


def request_stop(sweep_dir: str | Path, signum: int) -> None:
    """Ask every job of the sweep to stop (the first request stands)."""
    path = Path(sweep_dir) / FILE_NAME
    if not path.exists():
        with contextlib.suppress(OSError):  # a folder gone or read-only: the jobs' own signals remain
            write_text_atomic(path, signal.Signals(signum).name + "\n")


def requested_stop(sweep_dir: str | Path) -> int | None:
    """The signal a stop was requested for, or None."""
    try:
        name = (Path(sweep_dir) / FILE_NAME).read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return int(signal.Signals[name]) if name in signal.Signals.__members__ else int(signal.SIGTERM)


def clear_stop(sweep_dir: str | Path) -> None:
    (Path(sweep_dir) / FILE_NAME).unlink(missing_ok=True)


@contextlib.contextmanager
def naming_the_sweep_process() -> Iterator[None]:
    """The sweep's process id in the environment while its jobs are launched: the workers started
    then inherit it (for sweep_process_ended); the process's own environment is as it was after."""
    earlier = os.environ.get(SWEEP_PROCESS)
    os.environ[SWEEP_PROCESS] = str(os.getpid())
    try:
        yield
    finally:
        if earlier is None:
            os.environ.pop(SWEEP_PROCESS, None)
        else:
            os.environ[SWEEP_PROCESS] = earlier


def sweep_process_ended() -> bool:
    """The sweep's process of this job's worker is gone: killed outright (`kill -9`, the
    out-of-memory killer), it could ask nothing of its jobs. joblib's workers then train on, and
    wait for more work forever, each holding its memory (joblib's own idle timeout does not end
    them: each worker holds both ends of the pipes it shares with the others)."""
    sweep = os.environ.get(SWEEP_PROCESS, "")
    return sweep.isdigit() and os.getpid() != int(sweep) and os.getppid() != int(sweep)


@contextlib.contextmanager
def stopping_untrained(sweep_dir: str | Path) -> Iterator[None]:
    """A parallel sweep's job outside its training loop (being built, timing model=auto shapes,
    drawing its closing sample): a signal asks the whole sweep to stop, and this job stops where
    it is, as it has nothing to save. The training loop's own handlers take over while it runs."""

    def handle(signum: int, frame: FrameType | None) -> None:
        request_stop(sweep_dir, signum)
        raise JobStopped(signum, started=False)

    with handling_stop_signals(handle):
        yield
