"""A sweep's record in its folder (multirun.yaml): the command it was launched with, which a
continuation must repeat (runs/continuation.py), the command that continues it; and for
chargpt-report, how many jobs it launches, which settings it sweeps, and which sweep a run folder
is a job of."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from chargpt import shell_words
from chargpt.data.sources.hf_datasets import LOCAL_BUILDERS
from chargpt.hydra_internals import basic_sweeper
from chargpt.hydra_run import as_written, config_folders_given, is_multirun
from chargpt.overrides import (
    is_drawn,
    is_sweep,
    launched_from,
    numbers_typed_twice,
    override_key,
    parsed_override,
    typed_numbers,
)
from chargpt.plural import counted
from chargpt.run_layout import (
    ENVIRONMENT_FILE,
    SWEEP_CONFIG,
    composed_data_name,
    find_runs,
    overrides_files,
    recorded_environment,
)
from chargpt.run_state import read_status
from chargpt.runs.sweep_outcome import SEARCH_RESULT

CONTINUED = "CHARGPT_SWEEP_CONTINUED"  # set (through hydra.job.env_set) for each job of a continued sweep

# Hydra overrides that are not part of a sweep's command: where it is (a continuation names it by
# absolute path) and what Hydra or chargpt add at launch.
_ADDED = ("hydra.sweep.dir=", "hydra.mode=", "hydra.output_subdir=", f"++hydra.job.env_set.{CONTINUED}=")
# ... and those that change how its jobs are launched, not which jobs run or what they train.
_HOW_LAUNCHED = ("hydra/launcher=", "hydra.launcher.")


def record_sweep(config: DictConfig, sweep_dir: Path) -> None:
    """The sweep's config in its folder, as Hydra's basic sweeper writes it (a search's sweeper
    does not): what a continuation compares its own command with."""
    OmegaConf.save(config, sweep_dir / SWEEP_CONFIG)


def _command(overrides: DictConfig, leave_out: tuple[str, ...]) -> list[str]:
    given = [*as_written(overrides.hydra), *as_written(overrides.task)]
    return [o for o in given if not o.startswith(leave_out)]


def _as_launched(hydra: DictConfig, leave_out: tuple[str, ...], data_name: str | None) -> list[str]:
    """The sweep's command (of its config's `hydra` node; `data_name`: the data.name its config
    composed) as typed, its relative files and folders named from where it was launched."""
    cwd = OmegaConf.select(hydra, "runtime.cwd", default=None)
    return launched_from(_command(hydra.overrides, leave_out), cwd, LOCAL_BUILDERS, data_name)


def sweep_identity(hydra: DictConfig, data_name: str | None) -> list[str]:
    """The overrides that say which jobs a sweep runs and what they train (of its config's `hydra`
    node; `data_name`: the data.name its config composed, where none is typed): the task's, and
    Hydra's such as hydra.sweep.subdir or a search's space; files and folders named absolute, from
    where it was launched (the same command from elsewhere names other files)."""
    return _as_launched(hydra, _ADDED + _HOW_LAUNCHED, data_name)


def recorded_sweep(sweep_dir: Path) -> DictConfig | None:
    """The `hydra` node of the sweep's multirun.yaml; None when there is none or it is unreadable."""
    try:
        return OmegaConf.load(sweep_dir / SWEEP_CONFIG).hydra
    except Exception:  # missing or unreadable: not a sweep that can be continued
        return None


def recorded_identity(sweep_dir: Path) -> list[str] | None:
    """sweep_identity of the sweep recorded in `sweep_dir`; None when it records none."""
    recorded = recorded_sweep(sweep_dir)
    return None if recorded is None else sweep_identity(recorded, composed_data_name(sweep_dir))


def settings_changed(recorded: list[str], now: list[str]) -> str:
    """How a command's sweep_identity differs from the one a sweep recorded, in words: each setting
    with its value in that sweep and here, or that the same settings come in another order (which
    orders the jobs otherwise)."""
    there, here = _values(recorded), _values(now)
    changed = [f"{key}: {there.get(key, 'not set')} in that sweep, {here.get(key, 'not set')} here"
               for key in dict.fromkeys([*there, *here]) if there.get(key) != here.get(key)]
    return ", ".join(changed) if changed else "the same settings in another order"


def _values(overrides: list[str]) -> dict[str, str]:
    return {override_key(o): o.partition("=")[2] if "=" in o else "removed" for o in overrides}


def stored_study(hydra: DictConfig) -> bool:
    """Whether the sweep (its `hydra` node) is a search whose study lives in a storage (Optuna's
    hydra.sweeper.storage). Such a study goes on with new trials, drawn from what it holds, so it
    continues in a new folder: in its own, the new trials would meet the first ones' job folders."""
    return bool(OmegaConf.select(hydra, "sweeper.storage", default=None))


def kept_on_continuing(hydra: DictConfig) -> str:
    """What the continue command keeps, in words."""
    if stored_study(hydra):
        return "its finished trials stay in the study, which goes on in a new folder"
    return "its finished jobs are kept"


def continue_command(sweep_dir: Path, runs: list[Path] | None = None) -> str | None:
    """The command that continues the sweep in `sweep_dir`: its own overrides, in its own folder
    (a stored study: in a new one), with the variables its jobs' launches kept (the PYTHONPATH of
    code of one's own they imported: runs/resume.py record_environment). `runs`: the run folders
    under `sweep_dir` (find_runs) where the caller has found them already."""
    if (recorded := recorded_sweep(sweep_dir)) is None:
        return None
    overrides = [o for o in _as_launched(recorded, _ADDED, composed_data_name(sweep_dir))
                 if override_key(o) != "hydra.searchpath"]
    where = [] if stored_study(recorded) else [f"hydra.sweep.dir={sweep_dir.resolve()}"]
    words = ["chargpt-train", "-m", *config_folders_given(recorded), *overrides, *where]
    return " ".join([*shell_words.assignments(_jobs_environment(sweep_dir, runs)), shell_words.join(words)])


def _jobs_environment(sweep_dir: Path, runs: list[Path] | None) -> dict[str, str]:
    """The variables the sweep's jobs' latest launches kept, each job's latest alone (an earlier
    one's may need what the latest no longer does; a job's resume command is its latest's too), a
    later job's over an earlier one's."""
    latest = [overrides_files(job)[-1].parent for job in _jobs(sweep_dir, runs)]
    kept = [config_dir for config_dir in latest if (config_dir / ENVIRONMENT_FILE).is_file()]
    variables: dict[str, str] = {}
    for config_dir in sorted(kept, key=lambda folder: (folder / ENVIRONMENT_FILE).stat().st_mtime):
        variables.update(recorded_environment(config_dir))
    return variables


def _jobs(sweep_dir: Path, runs: list[Path] | None) -> list[Path]:
    """The sweep's job folders: the run folders under `sweep_dir` (`runs`, else found now) but itself."""
    return [run for run in (find_runs(sweep_dir) if runs is None else runs) if run != sweep_dir]


def continue_line(hydra: DictConfig | None = None, after_resume: bool = False) -> str | None:
    """What a stopped sweep says last, whichever process says it: what continuing it keeps, and
    the command that continues it (`after_resume`: as the other way on, after a stopped job's own
    resume command); that the sweep is complete where it is (a signal as Hydra closes it, after its
    last job). Of the sweep whose config's `hydra` node is given (its launcher's), else of the
    sweep this process runs a job of; None outside a sweep."""
    if hydra is None:
        hydra = HydraConfig.get() if is_multirun() else None
    if hydra is None:
        return None
    sweep_dir = Path(hydra.sweep.dir)
    runs = find_runs(sweep_dir)  # one walk of its folder for both lines
    if complete := complete_line(sweep_dir, runs):
        return complete
    if command := continue_command(sweep_dir, runs):
        lead = "or continue the whole sweep" if after_resume else "continue the sweep"
        return f"{lead} ({kept_on_continuing(hydra)}) with: {command}"
    return None


def complete_line(sweep_dir: Path, runs: list[Path]) -> str | None:
    """That the sweep in `sweep_dir` was complete when a signal came (finished_sweep), in place of a
    continue command that would run nothing; None where something is left to continue. `runs`: the
    run folders under `sweep_dir` (find_runs)."""
    if (jobs := finished_sweep(sweep_dir, runs)) is None:
        return None
    return (f"the sweep was complete: its {counted(jobs, 'job')} had finished, and nothing is left to "
            f"continue (chargpt-report {shell_words.quote(str(sweep_dir.resolve()))} shows them)")


def finished_sweep(sweep_dir: Path, runs: list[Path]) -> int | None:
    """The number of jobs of the sweep in `sweep_dir` where every job it launches has finished (a
    search: and its best trial is written), so that continuing it would do nothing; else None (a
    failed job, which a continuation trains again, included). `runs`: the run folders under
    `sweep_dir` (find_runs)."""
    planned = planned_jobs(sweep_dir)
    statuses = [read_status(job).get("status") for job in _jobs(sweep_dir, runs)]
    search = (recorded := recorded_sweep(sweep_dir)) is not None and "n_trials" in recorded.sweeper
    if (planned is None or len(statuses) < planned or any(s != "finished" for s in statuses)
            or (search and not (sweep_dir / SEARCH_RESULT).is_file())):
        return None
    return len(statuses)


def planned_jobs(sweep_dir: Path) -> int | None:
    """How many jobs the sweep in `sweep_dir` launches: its sweeper's trials, or the combinations
    of its swept values; None when that cannot be told."""
    if (recorded := recorded_sweep(sweep_dir)) is None:
        return None
    try:
        if "n_trials" in recorded.sweeper:
            return int(recorded.sweeper.n_trials)
        if not str(recorded.sweeper.get("_target_", "")).endswith("BasicSweeper"):
            return None
        # The basic sweeper's own expansion of `a=1,2 b=range(3)`: no second reading of the grammar.
        parsed = [parsed_override(override) for override in as_written(recorded.overrides.task)]
        return sum(len(batch) for batch in basic_sweeper().split_arguments(parsed, None))
    except Exception:  # an older or hand-made multirun.yaml: the count is only a hint
        return None


def swept_by(sweep_dir: Path) -> set[str]:
    """The settings the sweep recorded in `sweep_dir` (its multirun.yaml) sweeps: its command's
    sweeps (`optimizer.lr=1e-3,3e-3`, `range(...)`, a search's `interval(...)`) and a search's
    space (hydra.sweeper.params) less what the command fixed; none when the folder records no sweep."""
    if (hydra := recorded_sweep(sweep_dir)) is None:
        return set()  # missing or unreadable: nothing known to be swept
    try:
        task = as_written(hydra.overrides.task)
        space = OmegaConf.select(hydra, "sweeper.params", default=None) or {}
    except Exception:  # a record of another shape: nothing known to be swept
        return set()
    return set(varied_settings(task, space))


def varied_settings(task: list[str], space: Iterable[Any]) -> list[str]:
    """The settings a sweep varies, in order: its command's (`task`) sweeps, then the keys of a
    search's `space` (hydra.sweeper.params) that the command did not fix to one value."""
    sweeps = [override_key(override) for override in task if is_sweep(override)]
    fixed = {override_key(override) for override in task if "=" in override}
    # A search's dimension the command fixed to one value is left out of its space (Optuna's sweeper).
    searched = [override_key(str(key)) for key in space if override_key(str(key)) not in fixed]
    return list(dict.fromkeys([*sweeps, *searched]))


def drawn_by(sweep_dir: Path) -> set[str]:
    """The settings a search recorded in `sweep_dir` draws from an `interval(...)`, on its command or
    in its space, less what the command fixed: their values are drawn, with every digit, not typed."""
    if (hydra := recorded_sweep(sweep_dir)) is None:
        return set()
    try:
        task = as_written(hydra.overrides.task)
        space = OmegaConf.select(hydra, "sweeper.params", default=None) or {}
    except Exception:  # a record of another shape: nothing known to be drawn
        return set()
    fixed = {override_key(override) for override in task if "=" in override and not is_sweep(override)}
    dimensions = [*task, *(f"{key}={value}" for key, value in space.items())]
    return {override_key(o) for o in dimensions if is_drawn(o) and override_key(o) not in fixed}


def drawn_settings(rows: list[dict[str, Any]], top: Path) -> set[str]:
    """The settings drawn (drawn_by) by the searches the runs are jobs of."""
    sweeps = {sweep for row in rows if (sweep := sweep_of(row["dir"], top)) is not None}
    return set().union(*(drawn_by(sweep) for sweep in sweeps))


def sweep_of(run_dir: Path, top: Path) -> Path | None:
    """The folder of the sweep whose job `run_dir` is (it records the sweep), up to `top`."""
    for folder in run_dir.parents:
        if (folder / SWEEP_CONFIG).is_file():
            return folder
        if folder == top:
            return None
    return None


def swept_settings(rows: list[dict[str, Any]], top: Path) -> set[str]:
    """The settings swept by the sweeps the runs are jobs of."""
    sweeps = {sweep for row in rows if (sweep := sweep_of(row["dir"], top)) is not None}
    return set().union(*(swept_by(sweep) for sweep in sweeps))


def as_typed_in_sweeps(rows: list[dict[str, Any]], top: Path) -> list[dict[str, Any]]:
    """The rows (run_row's) with each number a sweep's command gave shown as typed there: Hydra
    records a job's `optimizer.lr=1e-3` as `0.001`, and 1e9 as `1000000000.0`. The seeds of one
    setting typed otherwise in two sweeps (`1e-3`, `0.001`) are still grouped as one (setting_of
    compares numbers)."""
    typed_by_sweep: dict[Path, dict[str, dict[float, str]]] = {}
    shown = []
    for row in rows:
        sweep = sweep_of(row["dir"], top)
        if sweep is not None and sweep not in typed_by_sweep:
            typed_by_sweep[sweep] = _typed_sweeps(sweep)
        typed = typed_by_sweep.get(sweep, {}) if sweep is not None else {}
        overrides = {key: _as_typed(value, typed[key]) if key in typed else value
                     for key, value in row["overrides"].items()}
        shown.append({**row, "overrides": overrides})
    return shown


def _typed_sweeps(sweep_dir: Path) -> dict[str, dict[float, str]]:
    """The numbers each setting of the sweep's command gives or sweeps: {key: {0.001: "1e-3"}}."""
    return {override_key(o): numbers for o in _task(sweep_dir) if (numbers := typed_numbers(o))}


def _task(sweep_dir: Path) -> list[str]:
    """The settings the sweep's command gave, as typed; none where no sweep is recorded."""
    if (hydra := recorded_sweep(sweep_dir)) is None:
        return []
    try:
        return list(as_written(hydra.overrides.task))
    except Exception:  # a record of another shape: shown as its jobs recorded them
        return []


def one_number_typed_twice(rows: list[dict[str, Any]], top: Path) -> list[str]:
    """A line for each number a sweep's command listed typed two ways (`-m optimizer.lr=1e-3,0.001`),
    naming the runs (run_row's) of it: Hydra gives those jobs one value, so their rows read alike
    (shown as first typed) and are one setting, run once for each way it was typed."""
    lines = []
    for sweep in dict.fromkeys(sweep for row in rows if (sweep := sweep_of(row["dir"], top)) is not None):
        for override in _task(sweep):
            key = override_key(override)
            for texts in numbers_typed_twice(override):
                runs = [row["run"] for row in rows if sweep_of(row["dir"], top) == sweep
                        and _is_number(row["overrides"].get(key), float(texts[0]))]
                lines.append(f"{key}={' and '.join(texts)} are one number, typed {len(texts)} ways: "
                             f"{'runs' if len(runs) > 1 else 'run'} {', '.join(runs)} show it as {texts[0]}, "
                             "one setting")
    return lines


def _is_number(value: str | None, number: float) -> bool:
    try:
        return value is not None and float(value) == number
    except ValueError:
        return False


def _as_typed(value: str, typed: dict[float, str]) -> str:
    """A job's value (`0.001`, or a resumed run's `0.001→default`) with each number as typed."""
    parts = []
    for part in value.split("→"):
        try:
            parts.append(typed.get(float(part), part))
        except ValueError:
            parts.append(part)
    return "→".join(parts)
