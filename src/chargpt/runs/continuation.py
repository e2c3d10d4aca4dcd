"""Continuing a sweep that stopped (Ctrl-C, SIGTERM, a lost machine): the same `chargpt-train -m
...` command with `hydra.sweep.dir=DIR` runs it again in DIR.

- a job that finished is kept as it is: its recorded best validation loss is returned without
  training, so a sweeper (an Optuna search too) sees the same results as before;
- a job with a checkpoint resumes from it, exactly as `ckpt_path=JOB_DIR` would, but for one
  resumed apart with other settings than the sweep's (a smaller batch, more steps), which is kept
  as it is, its own resume command named: the sweep's settings would undo the person's own;
- a job that never started, or stopped before its first checkpoint, starts over in its folder;
- a job that kept only a best older than its last step is refused, as a single run's re-run is.

Each job's first config stays in `.hydra`; a later launch's goes to `.hydra/resume-<time>`, as for
a resumed run. A job that failed is trained again the same way: from its last checkpoint, or from
the start. The run directory guard (runs/directory.py) decides that a sweep is continued: its
folder holds jobs of a sweep launched with the very same command (runs/sweep_record.py).
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from chargpt.checkpoint_step import checkpoint_step
from chargpt.data.sources.hf_datasets import LOCAL_BUILDERS
from chargpt.errors import SetupError
from chargpt.files import read_json_object
from chargpt.hydra_run import task_overrides, this_launch_resume_config
from chargpt.metric_names import loss_shown
from chargpt.overrides import launched_from
from chargpt.run_layout import (
    CONFIG_DIR,
    LOG_FILE,
    METRICS_FILE,
    OVERRIDES_FILE,
    RESUME_PREFIX,
    checkpoints_elsewhere,
    composed_data_name,
    last_checkpoint,
    launch_cwd,
    newest_best,
    overrides_files,
    read_launch,
    read_overrides,
)
from chargpt.run_state import read_status, state_of
from chargpt.runs.run_rows import changed_settings, parse_overrides
from chargpt.runs.status import FAILED_VALUE, forget_this_resume
from chargpt.runs.sweep_record import CONTINUED

log = logging.getLogger(__name__)

_SUBDIR_RESOLVER = "chargpt.config_subdir"


class OtherJobSettings(SetupError):
    """A job folder of a continued sweep holds a run with other settings."""


def continuation_overrides() -> list[str]:
    """Hydra overrides that make each job of this sweep a continued one."""
    return [
        f"++hydra.job.env_set.{CONTINUED}=yes",
        f"hydra.output_subdir='${{{_SUBDIR_RESOLVER}:${{hydra.runtime.output_dir}}}}'",
    ]


def in_continued_sweep() -> bool:
    return os.environ.get(CONTINUED) == "yes"


# The config folder each job folder's launch picked, decided once: the resolver is evaluated
# again later, when this launch's own `.hydra/overrides.yaml` is already there.
_subdirs: dict[str, str] = {}


def resume_subdir(run_dir: str | Path) -> str:
    """A new `.hydra/resume-<time>` folder name for a later launch into `run_dir` (`-2`, `-3`, ...
    after it when launches come within one second)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    name, n = f"{CONFIG_DIR}/{RESUME_PREFIX}{stamp}", 1
    while (Path(run_dir) / name).exists():
        n += 1
        name = f"{CONFIG_DIR}/{RESUME_PREFIX}{stamp}-{n}"
    return name


def forget_unstarted_job(run_dir: str | Path) -> None:
    """A job of a stopping sweep that never began: its folder, when this launch made it (its first
    config and Hydra's log are all it holds), goes, so the report and a continuation see a job not
    yet started rather than one that stopped."""
    folder = Path(run_dir)
    subdir = HydraConfig.get().output_subdir if HydraConfig.initialized() else None
    made_here = {CONFIG_DIR, LOG_FILE}
    if subdir == CONFIG_DIR and folder.is_dir() and {p.name for p in folder.iterdir()} <= made_here:
        shutil.rmtree(folder, ignore_errors=True)


def config_subdir(run_dir: str) -> str:
    """`.hydra` for a folder's first launch, `.hydra/resume-<time>` for a later one."""
    if run_dir not in _subdirs:
        first = not (Path(run_dir) / CONFIG_DIR / OVERRIDES_FILE).exists()
        _subdirs[run_dir] = CONFIG_DIR if first else resume_subdir(run_dir)
    return _subdirs[run_dir]


def forget_subdirs() -> None:
    """A new launch decides afresh (a process may launch into the same folders again)."""
    _subdirs.clear()


OmegaConf.register_new_resolver(_SUBDIR_RESOLVER, config_subdir, replace=True)


def first_overrides(run_dir: Path) -> list[str] | None:
    """The settings of the first launch into `run_dir`, as written; None where there was none."""
    try:
        return read_overrides(run_dir / CONFIG_DIR / OVERRIDES_FILE)
    except Exception:
        return None


def _launched_alone(folder: Path, first: bool = True) -> bool:
    """Whether the first launch into the run folder `folder` was a single run, not a job of a sweep;
    with `first` False, whether the launch `folder` records (a `.hydra/resume-*`) was."""
    try:
        return str(read_launch(folder / CONFIG_DIR if first else folder).mode) == "RUN"
    except Exception:
        return False


def _earlier_job(run_dir: Path) -> bool:
    """Whether this job's folder held the same job in an earlier launch of a continued sweep (Hydra
    then saved this launch's config in a resume-* folder). A job folder whose run had other
    settings is refused: the sweep's jobs no longer map onto its folders the same way."""
    if not in_continued_sweep() or this_launch_resume_config(run_dir) is None:
        return False
    now = task_overrides()
    first = first_overrides(run_dir)  # (relative files compared as named from where each was launched)
    here = HydraConfig.get().runtime.cwd
    # (data.data_files compared as named from there where the data.name each composed is local)
    first_cwd, first_data = launch_cwd(run_dir / CONFIG_DIR), composed_data_name(run_dir / CONFIG_DIR)
    now_data = composed_data_name(this_launch_resume_config(run_dir) or run_dir / CONFIG_DIR)
    if first is None or launched_from(first, first_cwd, LOCAL_BUILDERS, first_data) != \
            launched_from(now, here, LOCAL_BUILDERS, now_data):
        forget_this_resume(run_dir)  # a refused launch leaves nothing
        settings = " ".join(first or ["none"])
        if _launched_alone(run_dir):  # put there by hand, or by a version that did not refuse it
            raise OtherJobSettings(
                f"the job folder {run_dir} holds a single run ({settings}), not this sweep's job "
                f"({' '.join(now)}); move that run out of the sweep's folder, then continue the sweep again "
                "(its finished jobs are kept)"
            )
        raise OtherJobSettings(
            f"the job folder {run_dir} holds a run with other settings ({settings}) than "
            f"this job's ({' '.join(now)}); a sweep continues only with its own command: run this one with a "
            "new hydra.sweep.dir"
        )
    return True


def earlier_result(run_dir: str | Path, max_steps: Any = None) -> tuple[bool, float | None]:
    """(True, its best validation loss) when this job of a continued sweep finished before, or was
    resumed apart with other settings than the sweep's and did not finish (_resumed_apart): it is
    kept, and this launch's copy of its config is removed again. (False, None) for a job to train."""
    run_dir = Path(run_dir)
    if not _earlier_job(run_dir):
        return False, None
    status = read_status(run_dir)
    if status.get("status") != "finished":
        if not (changed := _resumed_apart(run_dir)):
            return False, None
        from chargpt.runs.resume import recorded_resume_command  # (it imports this module)

        forget_this_resume(run_dir)
        best = read_json_object(run_dir / METRICS_FILE).get("best_val_loss")
        log.warning("resumed apart with other settings than this sweep's (%s), %s: kept as it is, not "
                    "resumed with the sweep's; resume it with its own settings with: %s", " ".join(changed),
                    _where_it_stopped(run_dir, status, max_steps), recorded_resume_command(run_dir))
        return True, float(best) if isinstance(best, (int, float)) else None
    forget_this_resume(run_dir)
    value = status.get("value")
    result = float(value) if isinstance(value, (int, float)) else None
    log.info("finished in the earlier launch (best val loss %s): kept as it is", loss_shown(result))
    return True, result


def _resumed_apart(run_dir: Path) -> list[str]:
    """The settings (`data.batch_size=default→32`) that the job's latest launch, a run of its own
    (resumed apart, `ckpt_path` at its folder: an out-of-memory error's fix, more steps), gave other
    values than the sweep's; none for any other job. Resumed with the sweep's settings, such a job
    lost them: the batch that ran out again, or, stopped at or past the sweep's trainer.max_steps,
    nothing trained and the job recorded finished, its own steps to go forgotten."""
    earlier = overrides_files(run_dir)[:-1]  # (the last is this launch's)
    if len(earlier) < 2 or not _launched_alone(earlier[-1].parent, first=False):
        return []
    try:
        return changed_settings(parse_overrides(run_dir, earlier))
    except Exception:  # unreadable settings: not known to be other ones
        return []


def _where_it_stopped(run_dir: Path, status: dict[str, Any], max_steps: Any) -> str:
    """`it stopped at step 12`, `it failed at step 12`, with `, past this sweep's trainer.max_steps=20`
    where that step is at or past it."""
    checkpoint = last_checkpoint(run_dir)
    step = checkpoint_step(checkpoint) if checkpoint is not None else None
    verb = "failed" if status.get("status") == "failed" else "stopped"
    if step is None:
        return f"it {verb}"
    past = isinstance(max_steps, int) and 0 <= max_steps <= step
    return f"it {verb} at step {step}" + (f", past this sweep's trainer.max_steps={max_steps}" * past)


def continued_job(run_dir: str | Path) -> str | None:
    """How a job of a continued sweep that did not finish goes on: "resume" (from its last
    checkpoint) or "start over" (it stopped before its first); None for a job folder new to this
    launch, or outside a continued sweep, and for one that kept only a best older than the step it
    reached (or checkpoints in a folder of its own): started over, the new run's files would lie
    beside (or over) them, so its folder's check refuses it as it refuses a single run's re-run,
    naming the command that goes on from that best (runs/directory.py, check_run_dir)."""
    run_dir = Path(run_dir)
    if not _earlier_job(run_dir):
        return None
    if last_checkpoint(run_dir) is not None:
        state = state_of(read_status(run_dir), run_dir)
        if state != "running":  # a job still training elsewhere: its folder's lock refuses, saying so
            log.info("stopped in the earlier launch (%s): resuming from its last checkpoint",
                     state or "no status")
        return "resume"
    if newest_best(run_dir) is not None or checkpoints_elsewhere(run_dir) is not None:
        forget_this_resume(run_dir)  # a refused launch leaves nothing
        return None
    log.info("stopped in the earlier launch before its first checkpoint: starting over")
    return "start over"


def keep_finished_jobs(task: Callable[[DictConfig], float | None]) -> Callable[[DictConfig], float | None]:
    """Wrap a Hydra task function: in a continued sweep, a job that finished is not trained again."""

    @functools.wraps(task)
    def wrapper(cfg: DictConfig) -> float | None:
        kept, result = earlier_result(cfg.paths.output_dir, OmegaConf.select(cfg, "trainer.max_steps"))
        if not kept:
            return task(cfg)
        return FAILED_VALUE if result is None else result  # as a job without validation returns

    return wrapper
