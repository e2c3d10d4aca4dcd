"""hydra/launcher=local_parallel: Hydra's joblib launcher, made safe to stop (the launcher class,
which Hydra finds only in its `hydra_plugins` package, is src/hydra_plugins/chargpt_launcher).

Its jobs run in worker processes. A signal sent to the sweep's process alone (`kill PID`, or a
scheduler that signals only the process it started) used to end that process and, with it, every
worker mid-step: no checkpoint, however long they had trained. So did a signal that reached a
single job, once that job exited. Here the first signal, wherever it lands, becomes a stop request
in the sweep's folder (chargpt/stop_request.py): each running job stops at its next step boundary
and writes a checkpoint, jobs not yet started do not start, and the sweep waits for all of them
before it ends with the signal's exit code and the command that continues it.
"""

from __future__ import annotations

import re
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType

from hydra.core.utils import JobReturn, JobStatus
from omegaconf import DictConfig

from chargpt.errors import signal_exit_code
from chargpt.hydra_internals import job_result
from chargpt.runs.sweep_record import continue_line
from chargpt.stop_request import (
    JobStopped,
    clear_stop,
    naming_the_sweep_process,
    request_stop,
    requested_stop,
)
from chargpt.stop_signals import handling_stop_signals


def launch_stoppably(
    config: DictConfig, launch: Callable[[], Sequence[JobReturn]]
) -> Sequence[JobReturn]:
    """Run `launch` (the joblib launcher's) with the sweep's stop request in place of the default
    signal handling; end the sweep with the signal's exit code when its jobs stopped for one."""
    sweep_dir = Path(str(config.hydra.sweep.dir))
    clear_stop(sweep_dir)  # an earlier launch's request, left by a sweep that stopped

    def on_signal(signum: int, frame: FrameType | None) -> None:
        request_stop(sweep_dir, signum)
        signal.signal(signum, quit_now)
        print(f"\n{signal.Signals(signum).name} received: each running job of the sweep stops after its "
              "current step and writes a checkpoint, and no new job starts (send it again to quit at "
              "once without them)", file=sys.stderr, flush=True)

    def quit_now(signum: int, frame: FrameType | None) -> None:
        # Raised in this process, joblib ends the workers on its way out (the default action of
        # SIGTERM would end this process alone, and leave them running).
        raise QuitNow(signum)

    try:
        # (its jobs stop by themselves if this process is killed outright)
        with handling_stop_signals(on_signal), naming_the_sweep_process():
            results = launch()
    except BaseException as err:
        # A second signal (QuitNow), or a worker that a signal ended before its job began (joblib
        # then ends the others): the stop was requested, and what ran had stopped or had nothing to save.
        signum = requested_stop(sweep_dir) or (err.signum if isinstance(err, QuitNow) else None)
        if signum is None:
            if (signum := worker_ended_by(err)) is None:
                raise
            # A worker's own signal outside its job (`kill` of that pid, the out-of-memory killer):
            # joblib ended the other jobs with it, each at its last checkpoint.
            print(f"a worker process of the sweep was ended by {signal.Signals(signum).name}, and the sweep "
                  "with it", file=sys.stderr, flush=True)
    else:
        signum = requested_stop(sweep_dir)
        if signum is None:  # (a job's own signal requests the stop too, unless the folder was unwritable)
            signum = next((job_result(r).signum for r in results if _stopped(r)), None)
        if signum is None:
            return results
    clear_stop(sweep_dir)
    if line := continue_line(config.hydra):
        print(line, file=sys.stderr, flush=True)
    sys.exit(signal_exit_code(signum))


def worker_ended_by(err: BaseException) -> int | None:
    """The signal that ended a worker, when `err` is joblib's report of a worker that died (loky
    names only its exit codes, in the message: `{SIGTERM(-15)}`)."""
    if not any(cls.__name__ == "BrokenProcessPool" for cls in type(err).__mro__):
        return None
    if (found := re.search(r"\(-(\d+)\)", str(err))) is None:
        # Died before it could report an exit code: a signal while it unpickled its first job.
        return int(signal.SIGINT) if "KeyboardInterrupt" in repr(err.__cause__) else None
    number = int(found.group(1))
    return number if number in {s.value for s in signal.Signals} else None


class QuitNow(BaseException):  # unwinds through joblib, which then ends the workers
    """A second signal to the sweep's process: quit at once, without the jobs' checkpoints."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _stopped(result: JobReturn) -> bool:
    """A job that stopped for a signal (its exception is the job's result: reading return_value
    would raise it)."""
    return result.status == JobStatus.FAILED and isinstance(job_result(result), JobStopped)
