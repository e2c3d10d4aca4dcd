"""A parallel sweep's job output held whole: a job's stdout and stderr go to files in the sweep's
folder and are written out when it ends, one job at a time, so that jobs' lines do not interleave.
What a job run apart (submitit's launchers) or killed before then held, the sweep's process prints
in the jobs' order (print_held_output).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

from hydra.core.hydra_config import HydraConfig

from chargpt import file_locks

# Launchers whose jobs run on this machine (Hydra's own, chargpt's configs/hydra/launcher/).
LOCAL_LAUNCHERS = ("basic", "local_parallel", "joblib")


@contextlib.contextmanager
def output_held_whole(folder: Path, job: int) -> Iterator[None]:
    """This process's stdout and stderr (its file descriptors, so every writer's output) held in
    files of the sweep's folder, written out when the block ends, one job at a time, and removed.
    A job killed before then (beside a failed job, a crash, Ctrl-C) leaves them to the sweep's
    process: print_held_output."""
    out, err = held_files(folder, job)
    # Both to one place (`2>&1`, a terminal): one file keeps their lines in the order written. (A job
    # apart from its sweep has log files of its own: the sweep says where its own output goes.)
    together = os.path.samestat(os.fstat(1), os.fstat(2)) or (folder / _TOGETHER).exists()
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with open(out, "wb") as held_out, contextlib.ExitStack() as closing:
        held_err = held_out if together else closing.enter_context(open(err, "wb"))
        os.dup2(held_out.fileno(), 1)
        os.dup2(held_err.fileno(), 2)
    try:
        yield
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        for fd, original in enumerate(saved, start=1):
            os.dup2(original, fd)
            os.close(original)
        if jobs_write_where_the_sweep_does():
            with _one_job_at_a_time(folder):
                _write_held(out, err)


def jobs_write_where_the_sweep_does() -> bool:
    """Whether this sweep job's stdout and stderr are its sweep's (a parallel launcher's workers inherit
    them): under a launcher that runs jobs apart (submitit's, not LOCAL_LAUNCHERS) they are log files in
    the sweep's folder, so the job's held output is left there, for its sweep to print in the jobs'
    order once the launcher has them back (print_held_output)."""
    return HydraConfig.get().runtime.choices.get("hydra/launcher") in LOCAL_LAUNCHERS


# In a sweep's folder while it runs, where the sweep's stdout and stderr go to one place: its jobs run
# apart (their own log files) hold theirs in one file too, for their lines to keep their order.
_TOGETHER = ".job-output-together"


@contextlib.contextmanager
def jobs_told_where_output_goes(folder: Path) -> Iterator[None]:
    """For the sweep's process, around its jobs: whether its stdout and stderr go to one place, in
    its folder for jobs run apart (output_held_whole), and removed after them."""
    marker = folder / _TOGETHER
    if os.path.samestat(os.fstat(1), os.fstat(2)):
        folder.mkdir(parents=True, exist_ok=True)
        marker.touch()
    try:
        yield
    finally:
        marker.unlink(missing_ok=True)


def held_outputs(folder: Path) -> dict[Path, int]:
    """The held stdout files in a sweep's folder, in the jobs' order, each with its time of change."""
    held = {}
    for path in folder.glob(".job-*.out"):
        if re.fullmatch(r"\.job-\d+\.out", path.name):
            with contextlib.suppress(FileNotFoundError):
                held[path] = path.stat().st_mtime_ns
    return dict(sorted(held.items(), key=lambda item: int(item[0].stem.removeprefix(".job-"))))


def print_held_output(folder: Path, earlier: dict[Path, int] | None = None) -> int:
    """For the sweep's process, once its jobs have ended: the output a job killed before it could
    write it (its worker ended beside a failed job, by Ctrl-C, by a crash) written as that job
    would have, headed by its heading, in the jobs' order. Files `earlier` lists unchanged (held_outputs
    before the sweep: a sweep killed outright left them in a folder the user named, on a file system
    without locks, where the sweep's start could not tell them stale) are not this sweep's, and are
    left as they are. Returns the number of jobs whose output it wrote."""
    earlier = earlier or {}
    held = [path for path, changed in held_outputs(folder).items() if earlier.get(path) != changed]
    if held:
        with _one_job_at_a_time(folder):
            for out in held:
                _write_held(out, out.with_suffix(".err"))
    return len(held)


def held_files(folder: Path, job: int) -> tuple[Path, Path]:
    """Where job `job` of the sweep in `folder` holds its stdout and stderr."""
    return folder / f".job-{job}.out", folder / f".job-{job}.err"


def _write_held(out: Path, err: Path) -> None:
    """A job's held output to this process's stdout and stderr, a line cut short by its end ended
    (the next job's heading starts a line); the files removed. Those already written (by the job, or
    by the sweep's process for a job it outlived) are gone."""
    for held, fd in ((out, 1), (err, 2)):
        with contextlib.suppress(FileNotFoundError), open(held, "rb") as source:
            with open(fd, "wb", closefd=False) as stream:
                shutil.copyfileobj(source, stream)
                if size := source.tell():
                    source.seek(size - 1)
                    if source.read(1) != b"\n":
                        stream.write(b"\n")
            held.unlink()


@contextlib.contextmanager
def _one_job_at_a_time(folder: Path) -> Iterator[None]:
    """A lock on the sweep's folder itself (a lock file would be left in a folder the user named)."""
    if not file_locks.LOCKING:  # (Windows: no lock; a job's output may meet another's)
        yield
        return
    lock = os.open(folder, os.O_RDONLY)
    try:
        # A file system without such locks (NFS takes none on a folder): the jobs write unlocked.
        with contextlib.suppress(OSError):
            file_locks.lock(lock)
        yield
    finally:
        os.close(lock)
