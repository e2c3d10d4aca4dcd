"""A sweep (-m) of a command that reads a run (chargpt-sample, chargpt-eval, chargpt-export): Hydra's
sweep folder (multirun.yaml and a folder per job) goes to a temporary folder removed when the command
ends, however it ends; each job's output is headed by the settings the sweep gave it; chargpt-eval's
jobs end in a table comparing them; chargpt-export's jobs each write a folder of their own."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from chargpt.cli.argv import override_positions
from chargpt.hydra_run import as_written, is_multirun, task_overrides
from chargpt.overrides import as_typed, hydra_quoted, is_sweep, override_key

# The settings the running sweep varies (SweptKeys records them as it starts); None where this
# process did not start the sweep (a parallel launcher's worker): its jobs are headed by every setting.
_swept: list[str] | None = None
# Each finished job of chargpt-eval's sweep: its heading's settings and its result.
_results: list[tuple[list[str], dict[str, Any]]] = []


class SweptKeys(Callback):
    """A Hydra callback: records which settings the sweep varies, so that a job's heading names
    those (`max_new_tokens=1,2` -> `max_new_tokens=1`) and not the ones every job shares."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        global _swept
        _swept = [override_key(o) for o in as_written(config.hydra.overrides.task) if is_sweep(o)]
        _results.clear()


def job_settings() -> list[str]:
    """This sweep job's settings as typed: those the sweep varies (all of them where it is not known
    which); none outside a sweep."""
    if not is_multirun():
        return []
    given = [as_typed(o) for o in task_overrides()]
    return given if _swept is None else [o for o in given if override_key(o) in _swept]


def job_heading() -> str | None:
    """The line that heads a sweep job's output, as `head` heads each of several files; None
    outside a sweep, or for a sweep's only job (nothing varies)."""
    settings = job_settings()
    return f"==> {' '.join(settings)} <==" if settings else None


def job_folder(out: Path) -> Path:
    """Where a sweep job writes what its command writes to `out`: `out/N`, N its job number (0, 1,
    ...), as Hydra numbers a sweep's folders; `out` itself outside a sweep."""
    return out / str(HydraConfig.get().job.num) if is_multirun() else out


def record_result(result: dict[str, Any]) -> None:
    """A chargpt-eval sweep job's result, for the table at the end (outside a sweep, nothing)."""
    if is_multirun():
        _results.append((job_settings(), result))


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


@contextlib.contextmanager
def sweep_folder_removed() -> Iterator[Any]:
    """For run_main's `prepare`: a sweep's command line gets `hydra.sweep.dir` in a new temporary
    folder, removed when the block ends (a finished sweep, a failed job, Ctrl-C): Hydra's sweeper
    always makes that folder and writes multirun.yaml there, which a command that writes nothing
    must not leave behind. A `hydra.sweep.dir` given on the command line is kept, as asked."""
    made: list[str] = []
    _results.clear()  # an earlier command of this process that stopped before its table

    def prepare(argv: list[str]) -> list[str]:
        given = {override_key(argv[i]) for i in override_positions(argv)}
        if not {"-m", "--multirun"} & set(argv) or "hydra.sweep.dir" in given:
            return argv
        made.append(tempfile.mkdtemp(prefix="chargpt-sweep-"))
        return [*argv, f"hydra.sweep.dir={hydra_quoted(made[-1])}"]

    try:
        yield prepare
    finally:
        for folder in made:
            shutil.rmtree(folder, ignore_errors=True)
