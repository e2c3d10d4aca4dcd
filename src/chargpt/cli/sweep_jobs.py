"""A sweep (-m) of a command that reads a run (chargpt-sample, chargpt-eval, chargpt-export): Hydra's
sweep folder (multirun.yaml and a folder per job) goes to a temporary folder removed when the command
ends, however it ends; each job's output is headed by the settings the sweep gave it; chargpt-eval's
jobs end in a table comparing them; chargpt-export's jobs each write a folder of their own."""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from chargpt.cli.argv import override_positions
from chargpt.hydra_run import as_written, is_multirun, sweep_dir, task_overrides
from chargpt.overrides import as_typed, hydra_quoted, is_sweep, override_key

F = TypeVar("F", bound=Callable[..., Any])

# The settings the running sweep varies (SweptKeys records them as it starts); None where this
# process did not start the sweep: a parallel launcher's worker, which reads them in the sweep's record.
_swept: list[str] | None = None
# Each finished job of chargpt-eval's sweep: its heading's settings and its result.
_results: list[tuple[list[str], dict[str, Any]]] = []


class SweptKeys(Callback):
    """A Hydra callback: records which settings the sweep varies, so that a job's heading names
    those (`max_new_tokens=1,2` -> `max_new_tokens=1`) and not the ones every job shares."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        global _swept
        _swept = _swept_keys(config.hydra.overrides.task)
        _results.clear()


def _swept_keys(overrides: Any) -> list[str]:
    return [override_key(o) for o in as_written(overrides) if is_sweep(o)]


def in_a_worker() -> bool:
    """Whether this is a sweep's job run in a process of its own, beside others (a parallel launcher)."""
    return is_multirun() and _swept is None


def job_settings() -> list[str]:
    """This sweep job's settings as typed: those the sweep varies; none outside a sweep."""
    if not is_multirun():
        return []
    return _settings_of(task_overrides())


def _settings_of(overrides: list[str]) -> list[str]:
    """Of a sweep job's overrides, those the sweep varies, as typed (all of them where it is not
    known which)."""
    swept = _swept
    folder = sweep_dir()
    if swept is None and folder is not None and (folder / "multirun.yaml").is_file():  # in a worker
        swept = _swept_keys(OmegaConf.load(folder / "multirun.yaml").hydra.overrides.task)
    given = [as_typed(o) for o in overrides]
    return given if swept is None else [o for o in given if override_key(o) in swept]


def job_heading() -> str | None:
    """The line that heads a sweep job's output, as `head` heads each of several files; None
    outside a sweep, or for a sweep's only job (nothing varies)."""
    settings = job_settings()
    return f"==> {' '.join(settings)} <==" if settings else None


def job_folder(out: Path) -> Path:
    """Where a sweep job writes what its command writes to `out`: `out/N`, N its job number (0, 1,
    ...), as Hydra numbers a sweep's folders; `out` itself outside a sweep."""
    return out / str(HydraConfig.get().job.num) if is_multirun() else out


def record_returns(returns: list[JobReturn]) -> None:
    """What a sweep's jobs returned, as its sweeper has them back from the launcher (also from jobs
    run in other processes): chargpt-eval's results, for its table. The sweep before is forgotten."""
    # (A training job returns its loss, sampling and export nothing: only evaluations are kept.)
    _results[:] = [(_settings_of(list(r.overrides)), r.return_value) for r in returns
                   if r.status == JobStatus.COMPLETED and isinstance(r.return_value, dict)]


def whole_in_parallel_sweeps(task: F) -> F:
    """Wrap a Hydra task: a job that runs beside others (a parallel launcher's worker) writes its
    output, stdout then stderr, whole when it ends (however it ends), one job at a time; the jobs'
    characters and lines interleaved as they were written. Elsewhere the task writes as it goes."""

    @functools.wraps(task)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not in_a_worker():
            return task(*args, **kwargs)
        with _output_held_whole():
            return task(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


@contextlib.contextmanager
def _output_held_whole() -> Iterator[None]:
    """This process's stdout and stderr (its file descriptors, so every writer's output) held in
    temporary files, written out when the block ends under a lock on the sweep's folder."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        sys.stdout.flush()
        sys.stderr.flush()
        saved = [os.dup(1), os.dup(2)]
        os.dup2(out.fileno(), 1)
        os.dup2(err.fileno(), 2)
        try:
            yield
        finally:
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(OSError, ValueError):
                    stream.flush()
            for fd, original in enumerate(saved, start=1):
                os.dup2(original, fd)
                os.close(original)
            with _one_job_at_a_time(sweep_dir() / ".output.lock"):
                for held, fd in ((out, 1), (err, 2)):
                    held.seek(0)
                    with open(fd, "wb", closefd=False) as stream:
                        shutil.copyfileobj(held, stream)


@contextlib.contextmanager
def _one_job_at_a_time(lock_file: Path) -> Iterator[None]:
    if fcntl is None:  # (Windows: no lock; a job's output may meet another's)
        yield
        return
    with open(lock_file, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


# The table's figures: (JSON key, column title).
_FIGURES = (("loss", "loss"), ("bpc", "bpc"), ("tokens", "tokens"), ("step", "step"))


def results_table() -> str | None:
    """The jobs of a chargpt-eval sweep side by side, lowest loss marked; None for fewer than two.
    Read once: the next command of this process (a notebook, the tests) starts with none."""
    results = list(_results)
    _results.clear()
    if len(results) < 2:
        return None
    best = min(range(len(results)), key=lambda i: results[i][1]["loss"])
    rows = [["settings", *(title for _, title in _FIGURES)]]
    for i, (settings, result) in enumerate(results):
        figures = [_figure(result.get(key)) for key, _ in _FIGURES]
        rows.append([" ".join(settings) + (" *" if i == best else ""), *figures])
    widths = [max(len(row[c]) for row in rows) for c in range(len(rows[0]))]
    # The settings left-aligned, the figures right-aligned.
    lines = ["  ".join([row[0].ljust(widths[0]),
                        *(cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True))])
             for row in rows]
    return "\n".join([*(line.rstrip() for line in lines), "* lowest loss"])


def _figure(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.5f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


# Launchers whose jobs run on this machine (Hydra's own, chargpt's configs/hydra/launcher/).
LOCAL_LAUNCHERS = ("basic", "local_parallel", "joblib")


@contextlib.contextmanager
def sweep_folder_removed() -> Iterator[Any]:
    """For run_main's `prepare`: a sweep's command line gets `hydra.sweep.dir` in a new temporary
    folder, removed when the block ends (a finished sweep, a failed job, Ctrl-C): Hydra's sweeper
    always makes that folder and writes multirun.yaml there, which a command that writes nothing
    must not leave behind. A `hydra.sweep.dir` given on the command line is kept, as asked. Under a
    launcher that runs jobs on other machines (`hydra/launcher=slurm`), which read their job files in
    it, the folder is made in the current one, not in this machine's own temporary folder."""
    made: list[str] = []
    _results.clear()  # an earlier command of this process that stopped before its table

    def prepare(argv: list[str]) -> list[str]:
        given = {override_key(argv[i]) for i in override_positions(argv)}
        if not {"-m", "--multirun"} & set(argv) or "hydra.sweep.dir" in given:
            return argv
        launcher = next((argv[i].split("=", 1)[1] for i in override_positions(argv)
                         if override_key(argv[i]) == "hydra/launcher"), "basic")
        here = launcher.strip() not in LOCAL_LAUNCHERS
        made.append(tempfile.mkdtemp(prefix=".chargpt-sweep-" if here else "chargpt-sweep-",
                                     dir=os.getcwd() if here else None))
        return [*argv, f"hydra.sweep.dir={hydra_quoted(made[-1])}"]

    try:
        yield prepare
    finally:
        for folder in made:
            shutil.rmtree(folder, ignore_errors=True)
