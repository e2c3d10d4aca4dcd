"""The run directory guard: a Hydra callback that runs before Hydra creates or writes anything.

Each run (and each sweep) claims its directory before anything is written there (runs/claims.py:
an exclusive mkdir for a time-stamped default name, then a lock held for as long as it runs).
A directory that already holds a run (checkpoints or metrics.json) is only reused to resume that
same run, an output folder that cannot be written is reported before any work starts, and what a
failed or interrupted start created is removed again, unless the run wrote something of its own
there (release_claims). A sweep's job, which the guard does not see, is checked when it starts
(prepare_run_dir).
"""
from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, open_dict, read_write
from omegaconf.errors import InterpolationResolutionError

from chargpt import shell_words
from chargpt.checkpoint_step import checkpoint_writer
from chargpt.checkpoints import (
    older_best_held,
    read_checkpoint,
    resolve_checkpoint,
    stopped_before_checkpoint,
)
from chargpt.distributed import is_rank_zero
from chargpt.errors import ChargptError, ConfigError, SetupError, exit_on_user_error, first_line
from chargpt.export_layout import CONFIG_FILE, is_export
from chargpt.files import read_json_object
from chargpt.hydra_run import as_written, is_multirun
from chargpt.overrides import hydra_quoted, omegaconf_literal, override_key
from chargpt.run_layout import (
    BUDGET_FILE,
    CHECKPOINT_DIR,
    CONFIG_DIR,
    HYDRA_FILE,
    LAST,
    LOG_FILE,
    METRICS_FILE,
    OVERRIDES_FILE,
    SAVED_CONFIG,
    STATUS_FILE,
    checkpoints_elsewhere,
    holds_run,
    in_callback_folder,
    last_checkpoint,
    newest_best,
    overrides_files,
    run_dir_of,
    written_by,
)
from chargpt.run_state import held_now, lock_owner, read_status, state_of
from chargpt.runs.claims import (
    FolderLocked,
    RunDirInUse,
    check_writable,
    claim_job,
    claim_named,
    claim_new,
    claims,
    release_job,
)
from chargpt.runs.continuation import continuation_overrides, continued_job, first_overrides, forget_subdirs
from chargpt.runs.resume import recorded_resume_command
from chargpt.runs.search_sampler import check_drawn_again
from chargpt.runs.sweep_record import (
    SWEEP_CONFIG,
    continue_command,
    record_sweep,
    recorded_identity,
    settings_changed,
    stored_study,
    sweep_identity,
    varied_settings,
)

log = logging.getLogger(__name__)


# Files a run writes at its top level, with a key chargpt's own copy always holds: a file of that
# name without it is the user's, which a run must not overwrite.
RUN_FILES = {STATUS_FILE: "status", BUDGET_FILE: "budget_seconds", METRICS_FILE: "best_val_loss"}


HYDRA_RECORDS = (SAVED_CONFIG, HYDRA_FILE, OVERRIDES_FILE)  # what Hydra writes in .hydra/


def _foreign_hydra_dir(hydra_dir: Path) -> bool:
    """A `.hydra/` folder holding files Hydra would write over, none of them chargpt's (whose
    config and hydra.yaml name chargpt's classes): another program's. A run launched with
    hydra.output_subdir=null holds only its resumes' records there, which Hydra does not touch."""
    records = [hydra_dir / name for name in HYDRA_RECORDS if (hydra_dir / name).is_file()]
    if not records:
        return False
    for record in records:
        try:
            with record.open("rb") as f:
                if b"chargpt." in f.read(1 << 20):
                    return False
        except OSError:
            pass
    return True


_LOG_LINE = re.compile(rb"\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}\]\[")  # Hydra's "[time][logger]"


def foreign_files(folder: Path) -> list[str]:
    """The files in `folder` a run would overwrite (or append to) that no chargpt run wrote."""
    found = []
    if _foreign_hydra_dir(folder / CONFIG_DIR):
        found.append(f"{CONFIG_DIR}/ (another program's Hydra output)")
    if (folder / LOG_FILE).is_file():
        with (folder / LOG_FILE).open("rb") as log_file:
            first = log_file.readline(100)
        if first and not _LOG_LINE.match(first):
            found.append(LOG_FILE)
    for name, key in RUN_FILES.items():
        if not (folder / name).exists():
            continue
        if key not in read_json_object(folder / name):
            found.append(name)
    return found


def check_not_foreign(folder: Path, setting: str) -> None:
    if is_export(folder):  # one path would name two models: sampling reads the export, a resume the run
        raise RunDirInUse(
            f"{folder} holds a chargpt export (its {CONFIG_FILE}); give the run a new or empty folder: "
            f"{setting}=NEW_FOLDER"
        )
    if foreign := foreign_files(folder):
        raise RunDirInUse(
            f"{folder} holds {' and '.join(foreign)}, which a run would overwrite and no chargpt run "
            f"wrote; pick a new {setting} (a new or empty folder)"
        )


def check_run_dir(run_dir: Path, ckpt_path: str | None, setting: str = "hydra.run.dir",
                  start_over: bool = False, say_start_over: bool = True) -> None:
    """`setting` names what picks this directory: hydra.sweep.dir for the jobs of a sweep.
    `start_over`: a continued sweep's job that stopped before its first checkpoint trains again there.
    `say_start_over`: log that a run stopped before its first checkpoint starts over (said once, by
    the check made as the run is prepared: absolute, and in the run's own log)."""
    check_not_foreign(run_dir, setting)
    if not ckpt_path and not start_over and (why := stopped_before_checkpoint(run_dir)):
        # Nothing there can be continued: the run starts over (its old curves hidden, see build.py).
        if say_start_over:
            log.info("%s holds a run that %s: starting it over there", run_dir, why.removeprefix("it "))
        start_over = True
    if holds_run(run_dir) and not start_over:
        if not ckpt_path:
            raise RunDirInUse(_holds_a_run(run_dir, setting))
        try:
            file = resolve_checkpoint(ckpt_path)
        except ChargptError:
            file = None  # train() reports the unusable checkpoint
        if file is not None and not written_by(run_dir, file):
            raise RunDirInUse(_not_its_checkpoint(run_dir, file, ckpt_path, setting))
        if file is not None:
            check_not_rewinding(file, run_dir)
    check_writable(run_dir, setting)


def _not_its_checkpoint(run_dir: Path, file: Path, ckpt_path: str, setting: str) -> str:
    """Why a resume from `file` in the folder of a run that did not write it is refused: it would
    train another run on there, over that run's files. A file in the folder the run's checkpoint
    callback writes in (dirpath: cc1) may be another run's, whose callback writes there too: the
    file records its writer, named with the command that continues that run."""
    if not in_callback_folder(run_dir, file):
        return (f"{setting}={run_dir} holds another run, and resuming {ckpt_path} there would overwrite "
                "its checkpoints; leave hydra.run.dir out to continue in the checkpoint's own run directory")
    writer = checkpoint_writer(file)  # recorded: a file of no record there is taken for the run's
    ours = f"the run in {run_dir}, whose checkpoint callback writes in {file.parent} too"
    if writer is not None and holds_run(writer):
        went = f"continue that run with {_continue_command(writer, file)}"
    else:
        went = f"go on from it in a new run folder with {shell_words.quote(f'ckpt_path={file}')} alone"
    own = checkpoints_elsewhere(run_dir)
    then = "" if own is None else \
        f", or this one from its own newest with {_continue_command(run_dir, own.file)}"
    return f"{file} was written by the run in {writer}, not by {ours}; {went}{then}"


def check_not_rewinding(file: Path, run_dir: Path) -> None:
    """A resume from an earlier checkpoint of the run, in the run's own folder, would replace its
    later last.ckpt (and metrics.json): refused, with the ways to go back that keep it."""
    last = last_checkpoint(run_dir)
    if last is None or last.resolve() == file.resolve():
        return
    newest = read_json_object(run_dir / METRICS_FILE).get("step")  # the newest checkpoint's step
    try:
        step = read_checkpoint(file, mapped=True).get("global_step")
    except ChargptError:
        return  # train() reports the unusable checkpoint
    if isinstance(newest, int) and isinstance(step, int) and step < newest:
        raise SetupError(
            f"{file} is at step {step}, but its run is at step {newest}: resuming from it in {run_dir} "
            f"would replace the run's later checkpoints; to go back to step {step}, continue it in a new "
            "folder (add hydra.run.dir=NEW_FOLDER), or resume the run itself with "
            f"{_continue_command(run_dir)}"
        )


def _holds_a_run(run_dir: Path, setting: str) -> str:
    """Why a launch without ckpt_path into a folder holding a run is refused, with the command that
    continues it. A run that keeps only a best older than its last step (trained without
    callbacks.last_checkpoint, stopped or finished after a validation that did not improve on it)
    goes on from that best, named: its folder gives none; one whose checkpoint callback wrote in a
    folder of its own, from that callback's newest file (ckpt_path=RUN_DIR finds none there)."""
    held = last_checkpoint(run_dir) is not None
    best = None if held else newest_best(run_dir)
    elsewhere = None if held or best is not None else checkpoints_elsewhere(run_dir)
    if elsewhere is not None:
        return (f"the run directory {run_dir} already holds a run, whose checkpoint callback "
                f"callbacks.{elsewhere.callback} wrote its checkpoints in {elsewhere.file.parent} (dirpath: "
                f"{elsewhere.dirpath}); continue it from its newest there with "
                f"{_continue_command(run_dir, elsewhere.file)}, or pick a new {setting}")
    if best is None:
        return (f"the run directory {run_dir} already holds a run; continue it with "
                f"{_continue_command(run_dir)}, or pick a new {setting}")
    # (a sweep's job, resumed apart to its end, is kept as it is by the sweep's continuation)
    then = ", then continue the sweep (its finished jobs are kept)" if setting == "hydra.sweep.dir" else ""
    return (f"the run directory {run_dir} already holds a run whose newest checkpoint, "
            f"{older_best_held(run_dir, best)}, and no {CHECKPOINT_DIR}/{LAST}; continue it from that best "
            f"with {_continue_command(run_dir, best)}{then}, or pick a new {setting}")


def _continue_command(run_dir: Path, checkpoint: Path | None = None) -> str:
    """The command that continues the run in `run_dir` (from `checkpoint`, where its folder gives
    none): its own (its latest launch's settings), as `ckpt_path` alone would take the defaults for
    the rest; that alone where none is recorded."""
    if overrides_files(run_dir)[-1].is_file():
        return recorded_resume_command(run_dir, checkpoint=checkpoint)
    if checkpoint is not None and run_dir_of(checkpoint).resolve() != run_dir.resolve():
        return shell_words.join([f"ckpt_path={checkpoint}", f"hydra.run.dir={os.path.abspath(run_dir)}"])
    return shell_words.quote(f"ckpt_path={checkpoint or run_dir}")


def claim_this_job(cfg: DictConfig) -> None:
    """On rank 0, a sweep's job claims its folder as it starts, before it imports Lightning (seconds
    in a parallel launcher's own process, once Hydra has made the folder): until then a report of the
    running sweep took the job for one stopped ('incomplete'). A single run's folder is claimed
    before Hydra writes there (RunDirGuard)."""
    if is_multirun() and is_rank_zero():
        claim_job(Path(cfg.paths.output_dir))


def prepare_run_dir(cfg: DictConfig) -> None:
    """The run's folder made ready before the run is built: a job of a continued sweep that did not
    finish resumes there (cfg.ckpt_path set to its folder) or starts over; on rank 0 the folder is
    checked (check_run_dir), a sweep's job's once claimed (claim_this_job)."""
    output_dir = cfg.paths.output_dir
    continued = continued_job(output_dir)  # a job of a continued sweep that did not finish
    if continued == "resume":
        with open_dict(cfg):
            cfg.ckpt_path = str(output_dir)
    if is_rank_zero():
        # Sweep jobs (which Hydra's run-directory callback does not see) are checked here.
        setting = "hydra.sweep.dir" if is_multirun() else "hydra.run.dir"
        check_run_dir(Path(output_dir), cfg.ckpt_path, setting, start_over=continued == "start over")


def _is_default(node: DictConfig, key: str) -> bool:
    """A time-stamped name, as configs/hydra/default.yaml gives: another launch may pick it too."""
    return "${now:" in str(OmegaConf.to_container(node, resolve=False).get(key, ""))


def _resolved_name(config: DictConfig, node: DictConfig, key: str, setting: str, fix: str) -> str:
    """`node[key]`, a folder name of `config`, resolved. Its `${...}` are interpolations
    (`${now:%H-%M-%S}`, `${hydra:runtime.cwd}`); one that cannot be resolved (`fix` says what to do),
    or a literal `${` (escaped), is a one-line error: Hydra reads the run's folder into other
    settings, which would take a literal `${` for an interpolation again."""
    raw = OmegaConf.to_container(node, resolve=False).get(key)
    # The `hydra:` resolver reads the config Hydra sets only once the job starts: set it now, as
    # Hydra will (with the same config) right after this callback.
    HydraConfig.instance().set_config(config)
    try:
        resolved = str(node[key])
    except InterpolationResolutionError as err:
        raise ConfigError(f"{setting}={raw}: cannot resolve it ({first_line(err)}){fix}") from None
    if "${" in resolved:
        raise ConfigError(f"{setting}={raw}: a run's folder name cannot hold a literal '${{'; "
                          "pick another name")
    return resolved


def _resolved_dir(config: DictConfig, mode: str) -> Path:
    """The directory hydra.run.dir or hydra.sweep.dir (`mode`) names; an empty name (or an empty
    paths.output_root under the default) is refused: it would put the run's files into the current
    folder, or at the root of the file system."""
    root = OmegaConf.select(config, "paths.output_root", default="outputs", throw_on_resolution_failure=False)
    if isinstance(root, str) and not root.strip():
        raise ConfigError("paths.output_root is empty: what goes under it (dated runs, an MLflow store) "
                          "would be written at the root of the file system; name a folder "
                          "(paths.output_root=outputs, the default) or leave it out")
    fix = (": '${' starts an interpolation such as ${now:%H-%M-%S}; name an existing key, or pick a "
           "folder name without '${'")
    name = _resolved_name(config, config.hydra[mode], "dir", f"hydra.{mode}.dir", fix)
    if not name.strip():
        what = "run" if mode == "run" else "sweep"
        raise ConfigError(f"hydra.{mode}.dir is empty: the {what}'s files would go into the current folder; "
                          f"name a new folder (hydra.{mode}.dir=outputs/my-{what}), or leave it out for a "
                          "new dated one")
    return Path(name)


def _check_job_subdir(config: DictConfig) -> None:
    """hydra.sweep.subdir names each job's folder and is resolved per job, once the job's number is
    known: Hydra would fail then, with a traceback. Resolve it now for a stand-in first job."""
    if OmegaConf.is_missing(config.hydra.sweep, "subdir"):
        return  # Hydra's own error
    probe = config.copy()
    with read_write(probe.hydra.job), open_dict(probe.hydra.job):
        probe.hydra.job.num, probe.hydra.job.id, probe.hydra.job.override_dirname = 0, "0", "seed=0"
    # Swept settings are not in the config yet (Hydra composes each job with its own values): a
    # stand-in value for those the config lacks, so that only keys no job would have fail.
    for override in config.hydra.overrides.task:
        if override.startswith("~"):
            continue
        key = override_key(override)
        if OmegaConf.select(probe, key, default=None, throw_on_missing=False) is None:
            OmegaConf.update(probe, key, "0", force_add=True)
    fix = ("; name each job's folder with existing keys, e.g. ${hydra.job.num}"
           " or ${hydra.job.override_dirname}")
    try:
        name = _resolved_name(probe, probe.hydra.sweep, "subdir", "hydra.sweep.subdir", fix)
    finally:
        HydraConfig.instance().set_config(config)
    if Path(name).is_absolute() or os.path.normpath(name).split(os.sep)[0] in ("..", "."):
        # The sweep's lock, its record and its continuation all cover the sweep's folder only.
        raw = OmegaConf.to_container(config.hydra.sweep, resolve=False).get("subdir")
        raise ConfigError(f"hydra.sweep.subdir={raw} puts a job's folder outside the sweep's folder "
                          f"(hydra.sweep.dir); name a folder inside it{fix}")
    _check_subdirs_differ(config)


# In a job folder's name, these differ from job to job whatever is swept.
_PER_JOB = ("job.num", "job.id", "job.override_dirname")


def _check_subdirs_differ(config: DictConfig) -> None:
    """Two jobs must not share a folder: Hydra writes a job's config into it before the job can
    refuse it, over the first job's. A name without the job's number must name every swept
    setting (and every setting a search draws)."""
    raw = str(OmegaConf.to_container(config.hydra.sweep, resolve=False).get("subdir", ""))
    if any(key in raw for key in _PER_JOB):
        return
    space = OmegaConf.to_container(config.hydra.sweeper).get("params") or {}  # a search's
    swept = varied_settings(as_written(config.hydra.overrides.task), space)
    missing = [key for key in swept if "${" + key + "}" not in raw]
    if missing:
        raise ConfigError(
            f"hydra.sweep.subdir={raw} names two jobs' folders the same when {missing[0]} varies, and "
            "the second would overwrite the first's config; add ${hydra.job.num} (or ${" + missing[0] + "})"
        )


def _resumes(ckpt_path: str | None, run_dir: Path) -> bool:
    """Whether `ckpt_path` (a run folder or a checkpoint of one) resumes the run in `run_dir`."""
    if not ckpt_path:
        return False
    typed = Path(ckpt_path)
    return typed.resolve() == run_dir.resolve() if typed.is_dir() else written_by(run_dir, typed)


def check_not_in_sweep(run_dir: Path, config: DictConfig) -> None:
    """A single run goes into a sweep's folder only as one of its jobs, resumed or started over
    with that job's own settings. Any other run there would be taken for a job: the report would
    list it, and the sweep's continuation would meet a folder of other settings."""
    folder = Path(os.path.abspath(run_dir))
    sweep = next((f for f in (folder, *folder.parents) if (f / SWEEP_CONFIG).is_file()), None)
    if sweep is None:
        return
    if sweep == folder:
        raise RunDirInUse(f"hydra.run.dir={run_dir} is a sweep's folder, where a run would be taken for one "
                          "of its jobs; pick another hydra.run.dir (a new or empty folder)")
    if _resumes(config.get("ckpt_path"), folder):
        return
    if held_now(sweep):  # its jobs' folders are its own until it ends: "continue it" would be refused
        owner = lock_owner(sweep) or "unknown"
        raise RunDirInUse(f"hydra.run.dir={run_dir} is a job folder of the sweep {sweep}, which is still "
                          f"running (pid {owner}); wait for it to end, or pick another hydra.run.dir")
    if first_overrides(folder) == as_written(config.hydra.overrides.task):
        return
    command = continue_command(sweep)
    raise RunDirInUse(
        f"hydra.run.dir={run_dir} is inside the sweep folder {sweep}, where a single run would be taken "
        "for one of its jobs; pick another hydra.run.dir"
        + (f", or continue the sweep with: {command}" if command else "")
    )


def _set_folder(node: DictConfig, key: str, folder: Path) -> None:
    """hydra.run.dir or hydra.sweep.dir set to `folder`, its name taken literally (a `${` in it is
    no interpolation)."""
    with read_write(node), open_dict(node):
        node[key] = omegaconf_literal(str(folder))


def _continue_sweep(config: DictConfig, sweep_dir: Path) -> None:
    """The same sweep again in its own folder: its jobs go on where they stopped (runs/continuation.py)."""
    forget_subdirs()
    with read_write(config.hydra.overrides):
        config.hydra.overrides.hydra.extend(continuation_overrides())
    log.info("continuing the sweep in %s: finished jobs are kept, the others resume or start over", sweep_dir)


def _refuse_resuming_a_live_run(ckpt_path: str | None, run_dir: Path, err: FolderLocked) -> None:
    """A resume (ckpt_path=RUN_DIR or a checkpoint of it, which picks hydra.run.dir itself) of a run
    that another process still trains: the error names what was typed."""
    if _resumes(ckpt_path, run_dir):  # (a run with no checkpoint yet is named by its folder too)
        raise FolderLocked(
            f"ckpt_path={ckpt_path}: that run is still being trained by another process (pid {err.owner}); "
            "wait for it to end (or stop it), then resume it again", err.owner,
        ) from None


def _check_same_sweep(sweep_dir: Path, earlier: list[str], recorded: list[str] | None,
                      now: list[str]) -> None:
    """Refuse a sweep into `sweep_dir` whose command (`now`, its sweep_identity) is not the one its
    earlier sweep recorded, naming the settings that differ and the command that continues it."""
    if recorded == now:
        return
    runs = ", ".join(earlier[:3]) + (", ..." if len(earlier) > 3 else "")
    held = f"runs of an earlier sweep ({runs})" if earlier else "an earlier sweep (no job of it trained yet)"
    changed = f" ({settings_changed(recorded, now)})" if recorded is not None else ""
    command = continue_command(sweep_dir)
    raise RunDirInUse(
        f"the sweep directory {sweep_dir} already holds {held} with other settings{changed}; "
        "pick a new hydra.sweep.dir, or continue that sweep with its own command"
        + (f": {command}" if command else "")
    )


def _every_job_failed(sweep_dir: Path) -> bool:
    """Whether each job the sweep left a status for failed, none trained or stopped: a setting its
    own command would meet again, so a command with it corrected starts the sweep over."""
    states = [state_of(read_status(job), job) for job in sweep_dir.iterdir() if (job / STATUS_FILE).is_file()]
    return bool(states) and all(state == "failed" for state in states)


class RunDirGuard(Callback):
    @exit_on_user_error
    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        if not is_rank_zero():
            return  # an extra rank of a multi-process run: it shares rank 0's directory
        run_dir = _resolved_dir(config, "run")
        if _is_default(config.hydra.run, "dir"):
            run_dir = claim_new(run_dir, "hydra.run.dir").folder
            _set_folder(config.hydra.run, "dir", run_dir)  # Hydra creates and writes the claimed folder
        else:
            check_not_in_sweep(run_dir, config)
            try:
                check_not_foreign(run_dir, "hydra.run.dir")  # before the lock file is written beside them
            except RunDirInUse:
                # Unless a run holds it: another launch into it at this moment, whose .hydra/ Hydra is
                # writing (read half written, it was "another program's"); claim_named names that run.
                if not held_now(run_dir):
                    raise
            try:
                claim_named(run_dir, "hydra.run.dir", tidy=True)
            except FolderLocked as err:
                _refuse_resuming_a_live_run(config.get("ckpt_path"), run_dir, err)
                raise
        check_writable(run_dir, "hydra.run.dir")  # with room for what Hydra writes there next
        # (a start over is said as the run is prepared, once: prepare_run_dir checks the folder again)
        check_run_dir(run_dir, config.get("ckpt_path"), say_start_over=False)

    @exit_on_user_error
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = _resolved_dir(config, "sweep")
        _check_job_subdir(config)
        if _is_default(config.hydra.sweep, "dir"):
            sweep_dir = claim_new(sweep_dir, "hydra.sweep.dir").folder
            _set_folder(config.hydra.sweep, "dir", sweep_dir)
            # Each job's config is composed again from these overrides: they must name it too.
            with read_write(config.hydra.overrides):
                config.hydra.overrides.hydra.append(f"hydra.sweep.dir={hydra_quoted(str(sweep_dir))}")
        else:
            claim_named(sweep_dir, "hydra.sweep.dir")
            earlier = sorted(p.name for p in sweep_dir.iterdir() if p.is_dir() and holds_run(p))
            if earlier and stored_study(config.hydra):
                raise RunDirInUse(
                    f"the sweep directory {sweep_dir} already holds trials of a search, and a stored study "
                    "(hydra.sweeper.storage) goes on with new trials drawn from its storage: run the same "
                    "command with a new hydra.sweep.dir, or without one"
                )
            # Compared with the sweep's record also where none of its jobs trained (each was stopped
            # or failed while being built): its continuation is refused other settings all the same.
            recorded = recorded_identity(sweep_dir)
            if earlier or (recorded is not None and not _every_job_failed(sweep_dir)):
                now = sweep_identity(config.hydra, OmegaConf.select(config, "data.name"))
                _check_same_sweep(sweep_dir, earlier, recorded, now)
            if earlier:  # (else each job starts in its folder, over what a stop there left)
                check_drawn_again(sweep_dir, config)
                _continue_sweep(config, sweep_dir)
        for claim in claims:
            claim.sweep = claim.sweep or claim.folder == sweep_dir
        check_writable(sweep_dir, "hydra.sweep.dir")
        record_sweep(config, sweep_dir)

    def on_job_end(self, config: DictConfig, **kwargs: Any) -> None:
        forget_subdirs()  # the job's config folder was decided for this launch only
        if config.hydra.mode == RunMode.MULTIRUN:
            release_job(Path(config.hydra.runtime.output_dir))
