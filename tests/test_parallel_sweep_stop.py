"""hydra/launcher=local_parallel: a signal stops every job of the sweep at a step boundary with a
checkpoint, wherever it lands (the sweep's process alone, one job, or all), and the sweep's own
command continues it."""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hydra.core.utils import JobReturn, JobStatus
from omegaconf import OmegaConf

from chargpt.run_state import read_status
from chargpt.runs.parallel_launcher import launch_stoppably
from chargpt.runs.status import record_status, record_trained
from chargpt.stop_request import (
    FILE_NAME,
    SWEEP_PROCESS,
    JobStopped,
    clear_stop,
    request_stop,
    requested_stop,
    sweep_process_ended,
)
from conftest import TINY_MODEL, write_corpus


def test_the_first_stop_request_stands_until_cleared(tmp_path: Path) -> None:
    assert requested_stop(tmp_path) is None
    request_stop(tmp_path, signal.SIGTERM)
    request_stop(tmp_path, signal.SIGINT)  # a later signal does not replace the first
    assert requested_stop(tmp_path) == signal.SIGTERM
    clear_stop(tmp_path)
    assert requested_stop(tmp_path) is None and not (tmp_path / FILE_NAME).exists()


def test_a_job_knows_its_sweeps_process_ended_only_when_it_ran_in_a_worker_of_it(monkeypatch) -> None:
    monkeypatch.delenv(SWEEP_PROCESS, raising=False)
    assert not sweep_process_ended()  # not a parallel sweep's job
    monkeypatch.setenv(SWEEP_PROCESS, str(os.getppid()))
    assert not sweep_process_ended()  # a worker whose sweep lives
    monkeypatch.setenv(SWEEP_PROCESS, str(os.getpid()))
    assert not sweep_process_ended()  # a job in the sweep's own process (joblib's threads): never orphaned
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    monkeypatch.setenv(SWEEP_PROCESS, str(dead.pid))
    assert sweep_process_ended()  # the worker's parent is no longer the sweep's process


def test_each_job_of_a_killed_sweep_says_so_after_another_asked_it_to_stop(tmp_path: Path, monkeypatch):
    # The first job to see its sweep's process gone writes the stop request (SIGTERM, for the exit
    # code); the others read it, but no signal was sent: each says what happened.
    from chargpt.training.callbacks.graceful_interrupt import GracefulInterrupt

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    monkeypatch.setenv(SWEEP_PROCESS, str(dead.pid))
    request_stop(tmp_path, signal.SIGTERM)  # the first job's
    job, said = GracefulInterrupt(str(tmp_path / "1")), []
    job.sweep_dir, job.on_signal = tmp_path, said.append
    job._read_sweep_stop()
    assert job.received == signal.SIGTERM
    assert said == ["the sweep's process has ended: this job stops after this step and writes a checkpoint"]


def test_a_stopped_job_travels_between_processes_intact() -> None:
    again = pickle.loads(pickle.dumps(JobStopped(signal.SIGINT, started=True)))
    assert (again.signum, again.started, str(again)) == (signal.SIGINT, True, "stopped by SIGINT")


def _config(sweep_dir: Path):
    return OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep_dir)}}})


def _result(value: object, status: JobStatus = JobStatus.COMPLETED) -> JobReturn:
    result = JobReturn()
    result.status, result._return_value = status, value
    return result


def test_a_sweep_whose_jobs_finished_returns_their_results_and_its_signal_handlers(tmp_path: Path,
                                                                                   monkeypatch) -> None:
    monkeypatch.delenv(SWEEP_PROCESS, raising=False)
    before = signal.getsignal(signal.SIGTERM)
    results = [_result(1.5), _result(2.5)]
    launched_in: list[str | None] = []

    def launch():
        launched_in.append(os.environ.get(SWEEP_PROCESS))  # what the workers started now inherit
        return results

    assert launch_stoppably(_config(tmp_path), launch) is results
    assert signal.getsignal(signal.SIGTERM) is before
    assert launched_in == [str(os.getpid())] and SWEEP_PROCESS not in os.environ


def test_a_signal_to_the_sweeps_process_becomes_a_stop_request_and_its_exit_code(tmp_path: Path,
                                                                                 capsys) -> None:
    seen: list[int | None] = []

    def launch() -> list[JobReturn]:  # the jobs run while the sweep's process gets a SIGTERM
        os.kill(os.getpid(), signal.SIGTERM)
        seen.append(requested_stop(tmp_path))  # what each job reads at its next step
        return [_result(JobStopped(signal.SIGTERM, started=True), JobStatus.FAILED)]

    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(SystemExit) as ended:
        launch_stoppably(_config(tmp_path), launch)
    assert ended.value.code == 128 + signal.SIGTERM and seen == [signal.SIGTERM]
    assert requested_stop(tmp_path) is None  # cleared: a continuation starts afresh
    assert signal.getsignal(signal.SIGTERM) is before
    assert "SIGTERM received: each running job of the sweep stops" in capsys.readouterr().err


@pytest.mark.parametrize("left", [False, True], ids=["complete", "a job left"])
def test_a_signal_after_the_last_jobs_finished_says_the_sweep_was_complete(left: bool, tmp_path: Path,
                                                                          capsys) -> None:
    # A Ctrl-C after the last step of the last jobs (each finishes, then the sweep stops) printed
    # `continue the sweep ... with: ...`, a command that had nothing left to run.
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    seeds = "1,2,3" if left else "1,2"  # a third job never started, or none left
    (sweep / "multirun.yaml").write_text(
        f"hydra:\n  overrides:\n    hydra: []\n    task: ['seed={seeds}']\n"
        "  sweeper:\n    _target_: hydra._internal.core_plugins.basic_sweeper.BasicSweeper\n")
    for job in ("0", "1"):
        (sweep / job / ".hydra").mkdir(parents=True)
        (sweep / job / ".hydra" / "overrides.yaml").write_text(f"- seed={int(job) + 1}\n")
        (sweep / job / "status.json").write_text('{"status": "finished"}')

    def launch() -> list[JobReturn]:  # the signal as the jobs return, each finished
        os.kill(os.getpid(), signal.SIGINT)
        return [_result(1.5), _result(2.5)]

    with pytest.raises(SystemExit) as ended:
        launch_stoppably(_config(sweep), launch)
    said = capsys.readouterr().err.splitlines()[-1]
    assert ended.value.code == 128 + signal.SIGINT
    if left:
        assert said.startswith("continue the sweep (its finished jobs are kept) with: ")
    else:
        assert said == (f"the sweep was complete: its 2 jobs had finished, and nothing is left to continue "
                        f"(chargpt-report {sweep} shows them)")


def test_a_job_stopped_by_its_own_signal_ends_the_sweep_once_all_returned(tmp_path: Path) -> None:
    results = [_result(1.5), _result(JobStopped(signal.SIGINT, started=True), JobStatus.FAILED)]
    with pytest.raises(SystemExit) as ended:
        launch_stoppably(_config(tmp_path), lambda: results)
    assert ended.value.code == 128 + signal.SIGINT


class BrokenProcessPool(RuntimeError):
    """Named as joblib's (loky's) report of a worker that died."""


class TerminatedWorkerError(BrokenProcessPool):
    pass


def test_a_worker_ended_by_its_own_signal_ends_the_sweep_with_that_signal(tmp_path: Path, capsys) -> None:
    # `kill` of one worker's pid, or the out-of-memory killer: no traceback, the continue path.
    def launch() -> list[JobReturn]:
        raise TerminatedWorkerError("A worker process ... The exit codes of the workers are {SIGKILL(-9)}")

    with pytest.raises(SystemExit) as ended:
        launch_stoppably(_config(tmp_path), launch)
    assert ended.value.code == 128 + signal.SIGKILL and requested_stop(tmp_path) is None
    assert "a worker process of the sweep was ended by SIGKILL" in capsys.readouterr().err

    def broken() -> list[JobReturn]:
        raise RuntimeError("a job's own bug")  # not a dead worker: raised as it is

    with pytest.raises(RuntimeError, match="own bug"):
        launch_stoppably(_config(tmp_path), broken)


def test_the_status_wrapper_sees_a_finished_run_in_a_worker_that_got_it_pickled(tmp_path: Path) -> None:
    # joblib's workers receive the task function by value, with copies of the globals it names.
    cloudpickle = pytest.importorskip("cloudpickle")

    def task(cfg):
        record_trained(cfg.paths.output_dir, 1.5)
        raise KeyboardInterrupt  # a Ctrl-C during the closing sample: the run is still finished

    wrapped = cloudpickle.loads(cloudpickle.dumps(record_status(task)))
    with pytest.raises(KeyboardInterrupt):
        wrapped(OmegaConf.create({"paths": {"output_dir": str(tmp_path)}}))
    assert read_status(tmp_path)["status"] == "finished"


def _status(job: Path) -> dict:
    try:
        return json.loads((job / "status.json").read_text())
    except (OSError, ValueError):
        return {}


def _two_jobs_at_once(corpus: Path, sweep: Path) -> list[str]:
    """A parallel sweep of three jobs, two at a time, each training until it is stopped."""
    return [
        sys.executable, "-c", "from chargpt.cli.launch import train; train()",
        "-m", "hydra/launcher=local_parallel", "hydra.launcher.n_jobs=2", "threads=1", "seed=1,2,3",
        "data=text", f"data.path={corpus}", *TINY_MODEL, "trainer.max_steps=100000",
        "trainer.val_check_interval=100000", "sample.max_new_tokens=0", "logger=none",
        "~callbacks.progress_bar", f"hydra.sweep.dir={sweep}",
    ]


@pytest.mark.slow  # two parallel jobs trained until a signal, then the sweep continued
def test_a_signal_to_the_sweeps_process_alone_checkpoints_every_job(tmp_path: Path) -> None:
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    corpus = write_corpus(tmp_path / "corpus é.txt", n_chars=20_000)
    sweep = tmp_path / "sweep 1"
    process = subprocess.Popen(_two_jobs_at_once(corpus, sweep), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while not all(_status(sweep / job).get("status") == "running" for job in ("0", "1")):
            assert process.poll() is None and time.monotonic() < deadline, process.stdout.read()
            time.sleep(0.2)
        time.sleep(1.0)
        process.send_signal(signal.SIGTERM)  # to the sweep's process only, not its jobs
        out, _ = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 128 + signal.SIGTERM, out
    for job in ("0", "1"):  # both running jobs stopped at a step boundary and kept their work
        assert _status(sweep / job)["status"] == "interrupted", out
        assert (sweep / job / "checkpoints" / "last.ckpt").is_file()
    assert not (sweep / "2").exists()  # not started after the signal: no folder, as for a job never begun
    assert not (sweep / FILE_NAME).exists()
    assert out.count("SIGTERM sent to the sweep: this job stops after this step") == 2
    continue_line = next(line for line in out.splitlines() if line.startswith("continue the sweep ("))
    assert f"hydra.sweep.dir={sweep}" in continue_line


@pytest.mark.slow  # two parallel jobs trained until their sweep's process was killed
def test_jobs_whose_sweep_was_killed_outright_stop_with_a_checkpoint(tmp_path: Path) -> None:
    # SIGKILL (the out-of-memory killer, `kill -9`) gives the sweep's process no chance to ask its
    # jobs to stop: they used to train on, orphaned, to their last step.
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    corpus = write_corpus(tmp_path / "corpus.txt", n_chars=20_000)
    sweep = tmp_path / "sweep"
    process = subprocess.Popen(_two_jobs_at_once(corpus, sweep), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 120
        while not all(_status(sweep / job).get("status") == "running" for job in ("0", "1")):
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.2)
        workers = [_status(sweep / job)["pid"] for job in ("0", "1")]
        time.sleep(1.0)
        process.kill()
        process.wait()
        deadline = time.monotonic() + 60
        while any(_status(sweep / job).get("status") == "running" for job in ("0", "1")):
            assert time.monotonic() < deadline, "the jobs trained on after their sweep was killed"
            time.sleep(0.2)
        while any(_alive(pid) for pid in workers):  # (they waited for work forever)
            assert time.monotonic() < deadline, "the workers outlived their jobs"
            time.sleep(0.2)
    finally:
        process.kill()
        for pid in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    for job in ("0", "1"):
        assert _status(sweep / job)["status"] == "interrupted"
        assert (sweep / job / "checkpoints" / "last.ckpt").is_file()
    for job in ("0", "1"):  # each saw it for itself, not as a signal sent to the sweep
        log = (sweep / job / "train.log").read_text(encoding="utf-8")
        assert "the sweep's process has ended: this job stops after this step and writes a checkpoint" in log
        assert "sent to the sweep" not in log
    assert not (sweep / "2").exists()


def _alive(pid: int) -> bool:
    """A process that has not exited (the killed sweep's workers are reaped by init: no zombie stays)."""
    if not Path("/proc").is_dir():  # (not Linux)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.parametrize("trains", [True, False], ids=["training", "sampling"])
def test_only_a_training_sweep_stops_at_a_step_with_a_checkpoint(trains: bool, tmp_path: Path,
                                                                 monkeypatch) -> None:
    # A sampling sweep stopped by a signal said its jobs would write checkpoints, and advised
    # `chargpt-train -m ... hydra.sweep.dir=TEMPORARY` (a folder removed as it ended) to continue it.
    from hydra_plugins.chargpt_launcher import JoblibLauncher, StoppableJoblibLauncher

    results = [_result(1.5)]
    monkeypatch.setattr(JoblibLauncher, "launch", lambda self, overrides, first: results)
    stoppably: list[bool] = []
    monkeypatch.setattr("chargpt.runs.parallel_launcher.launch_stoppably",
                        lambda config, launch: stoppably.append(True) or launch())
    launcher = StoppableJoblibLauncher()
    launcher.config = OmegaConf.merge(_config(tmp_path), {"trainer": {"max_steps": 1}} if trains else {})
    assert launcher.launch([["seed=1"]], 0) is results
    assert stoppably == ([True] if trains else [])
