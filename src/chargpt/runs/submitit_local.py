"""hydra/launcher=submitit_local, made safe to stop: submitit's local executor runs each job under a
controller process of its own (`python -m submitit.local._local`), which waits for the job.

Those controllers were in the terminal's process group, so a Ctrl-C reached them as it reached the
jobs: each controller ended in a `KeyboardInterrupt` traceback, sent its job a second SIGINT (a
training job's "quit at once, without a checkpoint") and a SIGKILL a second later, so no job could
write the checkpoint its first signal asked for. A signal sent to the sweep's process alone reached
no job at all. Here each controller starts in a session of its own, where no terminal signal reaches
it or its job, and leaves SIGINT to its job; the sweep's process hands each signal it gets (the
terminal's Ctrl-C, `kill PID`) to every job once, waits for them to stop, and then stops as before,
with the command that continues the sweep. A second signal reaches each job as its second.

A job whose process a signal ended (`kill -9` of its pid, the out-of-memory killer) left submitit no
result: the sweep ended in submitit's `UncompletedJobError` traceback. Here its controller exits as
its job did, and the sweep, once its other jobs have ended, says which signal ended a job and gives
the continue command, as a parallel sweep whose worker a signal ended does.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import shlex
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import submitit.local.local as submitit_local
from omegaconf import DictConfig
from submitit.core.utils import JobPaths

from chargpt.errors import signal_exit_code
from chargpt.runs.sweep_record import continue_line

# The controllers this process started, while a sweep launches its jobs, each with its job's folder.
_controllers: dict[subprocess.Popen[bytes], Path] = {}


def start_controller(folder: Path, command: str, tasks_per_node: int = 1, cuda_devices: str = "",
                     timeout_min: float = 5.0, signal_delay_s: int = 30, stderr_to_stdout: bool = False,
                     setup: tuple[str, ...] | list[str] = ()) -> subprocess.Popen[bytes]:
    """submitit 1.5's `start_controller` (the same environment for its Controller), with this
    module's controller in a session of its own."""
    env = dict(os.environ)
    env.update(
        SUBMITIT_LOCAL_NTASKS=str(tasks_per_node),
        SUBMITIT_LOCAL_COMMAND=command,
        SUBMITIT_LOCAL_TIMEOUT_S=str(int(60 * timeout_min)),
        SUBMITIT_LOCAL_SIGNAL_DELAY_S=str(int(signal_delay_s)),
        SUBMITIT_LOCAL_NODEID="0",
        SUBMITIT_LOCAL_JOB_NUM_NODES="1",
        SUBMITIT_STDERR_TO_STDOUT="1" if stderr_to_stdout else "",
        SUBMITIT_EXECUTOR="local",
        CUDA_VISIBLE_DEVICES=cuda_devices,
        SUBMITIT_LOCAL_WITH_SHELL="1" if setup else "",
    )
    controller = shlex.join([sys.executable, "-m", __name__, str(folder)])
    # (with setup lines, a shell runs them first: submitit's Controller then names its job by the
    # shell's pid, as submitit does)
    process: subprocess.Popen[bytes] = subprocess.Popen(
        " && ".join([*setup, controller]) if setup else shlex.split(controller),
        shell=bool(setup), env=env, start_new_session=True)
    _controllers[process] = folder
    return process


@contextlib.contextmanager
def stoppable_controllers(config: DictConfig) -> Iterator[None]:
    """submitit's local executor starting this module's controllers while the block runs. A signal
    that stops the block (KeyboardInterrupt: Ctrl-C, or SIGTERM as chargpt raises it) is handed to
    every job, which stops at its next step with a checkpoint; the block ends once they have. A job
    a signal ended ends the sweep, once the others have ended, with one line and the continue command.

    Another submitit, whose `start_controller` takes other arguments than the copy above or which has
    no `Controller` class, keeps its own (its controller may need what it passes): the sweep runs, and
    stops, as submitit's does."""
    original = submitit_local.start_controller
    if not _copies(original):
        print(f"note: submitit {_submitit_version()}'s local launcher is not the one chargpt stops with "
              "checkpoints (submitit 1.5.4's): a signal stops this sweep's jobs as submitit does, without "
              'them; pip install "submitit==1.5.4" for it', file=sys.stderr, flush=True)
        yield
        return
    submitit_local.start_controller = start_controller
    _controllers.clear()
    try:
        yield
    except KeyboardInterrupt as stop:
        _stop_jobs(getattr(stop, "signum", int(signal.SIGINT)))
        _say_what_each_job_kept()
        raise
    except Exception:  # submitit's report of a job without a result
        for process in _controllers:
            process.wait()
        ended_by = [code - 128 for process in _controllers if (code := process.returncode) > 128]
        if not ended_by:
            raise
        _say_a_job_was_ended(config, ended_by[0])
    finally:
        submitit_local.start_controller = original
        _controllers.clear()


def _copies(original: object) -> bool:
    """Whether submitit's `start_controller` takes the arguments of this module's copy of it, and its
    `Controller`, which this module's controller runs, is there."""
    if not isinstance(getattr(submitit_local, "Controller", None), type):
        return False
    try:
        theirs = inspect.signature(original)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    return list(theirs.parameters) == list(inspect.signature(start_controller).parameters)


def _submitit_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("submitit")
    except PackageNotFoundError:
        return "(unknown version)"


def _stop_jobs(signum: int) -> None:
    """`signum` to every running job (each controller's session: the controller leaves it to its
    job), then wait for them; each further signal is handed on too (a second one: quit at once)."""
    def hand_on(signum: int, frame: FrameType | None) -> None:
        _signal_jobs(signum)

    _signal_jobs(signum)
    earlier = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    for s in earlier:
        signal.signal(s, hand_on)
    try:
        for process in _controllers:
            process.wait()
    finally:
        for s, handler in earlier.items():
            signal.signal(s, handler)


def _say_what_each_job_kept() -> None:
    """Each stopped job's `stopped by ...` line (the step and the checkpoint it wrote), which is in its
    log, not in the terminal: a sweep whose jobs print there shows it."""
    for process, folder in _controllers.items():
        paths = JobPaths(folder, job_id=str(process.pid), task_id=0)
        for log in (paths.stderr, paths.stdout):
            with contextlib.suppress(OSError):
                for line in log.read_text(errors="replace").splitlines():
                    if line.startswith("stopped by "):
                        print(line, file=sys.stderr, flush=True)


def _signal_jobs(signum: int) -> None:
    for process in _controllers:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signum)


def _say_a_job_was_ended(config: DictConfig, signum: int) -> None:
    print(f"a job's process of the sweep was ended by {signal.Signals(signum).name} (the out-of-memory "
          "killer, or a kill of its pid)", file=sys.stderr, flush=True)
    if line := continue_line(config.hydra):
        print(line, file=sys.stderr, flush=True)
    sys.exit(signal_exit_code(signum))


def _leave_to_the_job(signum: int, frame: FrameType | None) -> None:
    """A controller's SIGINT or SIGTERM: its job, in the same process group, got the same signal and
    stops by itself."""


def _run_controller(folder: str) -> None:
    # (defined here, in the controller's process: a submitit without the class keeps its own launcher,
    # with a note, where a class defined on import would end the sweep before that check)
    class _Controller(submitit_local.Controller):
        """submitit's controller, which exits 0 however its job ended: here it keeps its job's exit
        codes, for its own exit to say which signal ended the job."""

        exit_codes: tuple[int | None, ...] = ()

        def wait(self, freq: int = 24) -> tuple[int | None, ...]:
            self.exit_codes = tuple(super().wait(freq))
            return self.exit_codes

    # A handler, not SIG_IGN: the job's process starts with SIGINT's default action, as exec resets
    # a handled signal (an ignored one would stay ignored, and Ctrl-C would not stop the job).
    signal.signal(signal.SIGINT, _leave_to_the_job)
    controller = _Controller(Path(folder))
    # submitit's controller hands SIGTERM on to its job, which the sweep's process signals already (the
    # controller's whole process group): handed on, it would reach the job twice (the second: quit at once).
    signal.signal(signal.SIGTERM, _leave_to_the_job)
    controller.run()
    # (a job that exits by itself for a signal, 130 or 143, ends with that code: not ended by it)
    if ended_by := [-code for code in controller.exit_codes if code is not None and code < 0]:
        sys.exit(signal_exit_code(ended_by[0]))


if __name__ == "__main__":
    _run_controller(sys.argv[1])
