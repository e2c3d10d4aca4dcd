"""status.json: how each run ended (finished / failed / interrupted; running while it trains), and
sweeps that survive a failing job.

In a multirun (`chargpt-train -m ...`) a job that raises is recorded as failed and returns
FAILED_VALUE (worse than any loss, so Optuna ranks it last) instead of aborting the whole sweep.
A single run's error ends its command, as any command's does.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import shutil
import socket
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from chargpt.distributed import is_rank_zero
from chargpt.errors import NO_ROOM, SetupError, cause_of, first_line, no_room_line, user_error_in
from chargpt.files import write_json_atomic
from chargpt.hydra_run import is_multirun, this_launch_resume_config
from chargpt.metric_names import loss_shown
from chargpt.run_layout import STATUS_FILE, last_checkpoint, log_handlers_in
from chargpt.stop_request import JobStopped
from chargpt.stop_signals import StoppedAfterLastStep

log = logging.getLogger(__name__)

FAILED_VALUE = math.inf


def write_status(run_dir: str | Path, status: str, **fields: Any) -> None:
    if not is_rank_zero():
        return
    when = time.strftime("%Y-%m-%dT%H:%M:%S")
    write_json_atomic(Path(run_dir) / STATUS_FILE, {"status": status, "time": when, **fields})


# Run folders whose training started in this process (any failure from then on is the run's, and
# recorded), and those whose training ended (a Ctrl-C during the closing sample after it does not
# make a finished run "interrupted").
# The task wrapper below reads them only through the functions beside them: a parallel sweep's
# workers receive the wrapper pickled by value, with copies of the globals it names itself.
_started: set[str] = set()
_trained: dict[str, float | None] = {}  # run folder -> its best val loss, once training ended


def _key(run_dir: str | Path) -> str:
    """One name per folder, however it was given (relative, through a link)."""
    return str(Path(run_dir).resolve())


def has_started(run_dir: str | Path) -> bool:
    """Whether the run took its first training step in this process."""
    return _key(run_dir) in _started


def _has_trained(run_dir: str | Path) -> bool:
    return _key(run_dir) in _trained


def _trained_to(run_dir: str | Path) -> float | None:
    """The best validation loss of a run whose training ended in this process."""
    return _trained.get(_key(run_dir))


def _forget_progress(run_dir: str | Path) -> None:
    _started.discard(_key(run_dir))
    _trained.pop(_key(run_dir), None)


def record_started(run_dir: str | Path) -> None:
    """Training starts: the run is "running" until it ends; a status that still says so after its
    process is gone (kill -9, a lost machine) tells the report it was killed."""
    write_status(run_dir, "running", pid=os.getpid(), host=socket.gethostname())
    _started.add(_key(run_dir))


def record_signalled(run_dir: str | Path, line: str) -> None:
    """A stop signal arrived while the run trains: "interrupted" now, and the console's `line` in
    the run's log, as a second signal ends the process at once with no chance to write either. A
    run that goes on to finish (the signal came after its last step) is marked finished then."""
    if has_started(run_dir) and not _has_trained(run_dir):
        try:
            write_status(run_dir, "interrupted")
        except OSError as err:  # raised in a signal handler, mid-step: the stop must go on
            log.warning("could not record the interruption in %s: %s", run_dir, err)
    _note_in_log(run_dir, line)


def record_trained(run_dir: str | Path, best_val_loss: float | None) -> None:
    """Training ended: the run is finished, whatever happens while its sample is drawn."""
    write_status(run_dir, "finished", value=best_val_loss)
    _trained[_key(run_dir)] = best_val_loss


def _interrupted(err: BaseException) -> bool:
    # (Imported here: it brings Lightning, and every command imports this module, through
    # runs/claims.py: those that train nothing start without Lightning.)
    from chargpt.training.callbacks.graceful_interrupt import TrainingInterrupted

    # A signal checkpoints and exits (TrainingInterrupted, then exit 130/143); Lightning turns a
    # Ctrl+C outside that path into a graceful shutdown followed by exit(1).
    return isinstance(err, (KeyboardInterrupt, JobStopped)) or (
        isinstance(err, SystemExit) and isinstance(err.__context__, (KeyboardInterrupt, TrainingInterrupted))
    )


def forget_this_resume(run_dir: str | Path) -> None:
    """A later launch into a run's folder that trains nothing (a resume refused before it trained
    or with nothing left to train, a continued sweep's job kept or refused) leaves no
    `.hydra/resume-*` config behind: the report reads the latest one as the run's settings."""
    if (config := this_launch_resume_config(run_dir)) is not None:
        shutil.rmtree(config, ignore_errors=True)


def _note_in_log(run_dir: str | Path, message: str) -> None:
    """A line for the run's own log file (train.log) alone: the console has already said it."""
    record = log.makeRecord(log.name, logging.INFO, __file__, 0, "%s", (message,), None)
    for handler in log_handlers_in(run_dir):
        handler.handle(record)


def _note_end(run_dir: str | Path, how: str) -> None:
    """How the run ended, as the last line of its own log file (train.log). The console has
    already said it, in its own words (an error: line, the resume command, the closing figures)."""
    _note_in_log(run_dir, f"run ended: {how}")


def _stopped_by(err: BaseException) -> str:
    if _interrupted(err) or cause_of(err, KeyboardInterrupt) is not None:
        return "Ctrl-C or a signal"
    return "its output's reader closed the pipe" if isinstance(err, BrokenPipeError) else type(err).__name__


def _finished(best_val_loss: float | None) -> str:
    return "finished" + ("" if best_val_loss is None else f", best val loss {loss_shown(best_val_loss)}")


def _said_in_one_line(err: BaseException, user_error: BaseException | None) -> str | None:
    """The one line the console gives the error that ended a run: a user error's, or a full disk's
    (no_room_line: the file it could not write, where status.json recorded `OSError: [Errno 28] ...`);
    None for any other error, whose traceback is a defect's, shown."""
    if user_error is not None:
        return str(user_error)
    if isinstance(err, OSError) and err.errno in NO_ROOM:
        return no_room_line(err)
    return None


def record_status(task: Callable[[DictConfig], float | None]) -> Callable[[DictConfig], float | None]:
    """Wrap a Hydra task function: status.json in the run dir, and failure isolation in sweeps."""
    @functools.wraps(task)
    def wrapper(cfg: DictConfig) -> float | None:
        run_dir = cfg.paths.output_dir
        _forget_progress(run_dir)
        try:
            result = task(cfg)
        except BaseException as err:
            if not _recorded_and_the_sweep_goes_on(cfg, run_dir, err):
                raise
            return FAILED_VALUE
        write_status(run_dir, "finished", value=result)
        _note_end(run_dir, _finished(result))
        if result is None and is_multirun():
            return FAILED_VALUE  # no validation ran: nothing to rank; sweepers need a number
        return result

    return wrapper


def _recorded_and_the_sweep_goes_on(cfg: DictConfig, run_dir: str, err: BaseException) -> bool:
    """What `err`, ending the task, leaves in status.json and the run's log; and whether the sweep
    goes on past it (a sweep's failed job: logged here) or it ends the command (called while `err`
    is handled: its traceback is the one logged)."""
    if _has_trained(run_dir):  # trained and recorded finished: stopped after its last step
        sample = "skipped" if cause_of(err, StoppedAfterLastStep) is not None else "was stopped"
        _note_end(run_dir, f"{_finished(_trained_to(run_dir))}; its closing sample {sample} "
                           f"({_stopped_by(err)})")
        return False
    if isinstance(err, JobStopped) and not has_started(run_dir):
        return False  # a parallel sweep stopped before this job began training: nothing to record
    if _interrupted(err):
        write_status(run_dir, "interrupted")
        resumable = last_checkpoint(Path(run_dir)) is not None
        # The console's command: `ckpt_path` alone would take the defaults for the rest.
        # (Imported here: runs/resume.py imports this module, through continuation.py.)
        from chargpt.runs.resume import resume_command
        _note_end(run_dir, f"interrupted; continue it with {resume_command(run_dir)}" if resumable
                  else "interrupted before its first checkpoint")
        return False
    if isinstance(err, SystemExit) and not err.code:
        write_status(run_dir, "finished")
        return False
    user_error = user_error_in(err)  # also when a library wrapped it
    refused_resume = cfg.get("ckpt_path") and user_error is not None and not has_started(run_dir)
    if refused_resume:
        forget_this_resume(run_dir)
        # Its log now ends with this launch's lines (the other text's `data:` line, say), not the run's.
        _note_in_log(run_dir, f"a resume was refused: {user_error}")
    if isinstance(user_error, SetupError) or refused_resume:
        return False  # another run's directory, a bad launch, a refused resume: nothing to record
    said = _said_in_one_line(err, user_error)  # as the console says it
    message = said or f"{type(err).__name__}: {err}"
    write_status(run_dir, "failed", error=first_line(message) or type(err).__name__)
    if not is_multirun() or not isinstance(err, Exception):
        # A sweep's job logs its failure below; a single run's console error is kept in its log too.
        _note_end(run_dir, f"failed: {message}" if said
                  else f"failed:\n{traceback.format_exc().rstrip()}")
        return False
    if said:
        log.error("this job failed, the sweep goes on: %s", message)
    else:
        log.error("this job failed, the sweep goes on:\n%s", traceback.format_exc())
    return True
