"""hydra/launcher=submitit_local: a signal stops every job of the sweep with a checkpoint, whether
it reaches the whole process group (Ctrl-C in a terminal) or the sweep's process alone, and the
sweep ends with its continue command, without submitit's tracebacks."""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import TINY_MODEL, write_corpus


def _status(job: Path) -> dict:
    try:
        return json.loads((job / "status.json").read_text())
    except (OSError, ValueError):
        return {}


@contextlib.contextmanager
def _submitit_sweep(tmp_path: Path, *overrides: str) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    """A sweep of tiny training runs under hydra/launcher=submitit_local, its output in one text, in a
    session of its own: its process group is the terminal's foreground group, which Ctrl-C signals.
    Whatever of it is left when the block ends is killed."""
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    corpus = write_corpus(tmp_path / "corpus.txt", n_chars=20_000)
    sweep = tmp_path / "sweep 1"
    argv = [sys.executable, "-c", "from chargpt.cli.launch import train; train()",
            "-m", "hydra/launcher=submitit_local", "threads=1", "data=text", f"data.path={corpus}",
            *TINY_MODEL, "sample.max_new_tokens=0", "logger=none", "~callbacks.progress_bar", *overrides,
            f"hydra.sweep.dir={sweep}"]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)
    try:
        yield process, sweep
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)


def _wait_until_running(process: subprocess.Popen[str], *jobs: Path) -> None:
    deadline = time.monotonic() + 240
    while not all(_status(job).get("status") == "running" for job in jobs):
        assert process.poll() is None and time.monotonic() < deadline, process.stdout.read()
        time.sleep(0.2)


@pytest.mark.slow  # submitit's jobs start, import torch and train until the signal
@pytest.mark.parametrize(("to_the_group", "signum"),
                         [(True, signal.SIGINT), (False, signal.SIGINT), (False, signal.SIGTERM)],
                         ids=["ctrl-c", "kill-INT-sweep-pid", "kill-sweep-pid"])
def test_a_signal_stops_each_submitit_job_with_a_checkpoint_and_no_traceback(
    to_the_group: bool, signum: signal.Signals, tmp_path: Path
) -> None:
    # Ctrl-C reached submitit's controllers too: each ended in a KeyboardInterrupt traceback and sent
    # its job a second SIGINT (quit at once) and a SIGKILL a second later, so no job kept its work.
    # A SIGINT to the sweep's process alone reached no job. A SIGTERM, handed on by submitit's
    # controller too, would reach each job twice (quit at once).
    with _submitit_sweep(tmp_path, "seed=1,2", "trainer.max_steps=100000",
                         "trainer.val_check_interval=100000") as (process, sweep):
        _wait_until_running(process, sweep / "0", sweep / "1")
        time.sleep(1.0)
        if to_the_group:
            os.killpg(process.pid, signum)
        else:
            process.send_signal(signum)
        out, _ = process.communicate(timeout=180)
    assert process.returncode == 128 + signum, out
    assert "Traceback" not in out, out
    for job in ("0", "1"):  # each stopped at a step boundary and kept its work
        assert _status(sweep / job)["status"] == "interrupted", out
        assert (sweep / job / "checkpoints" / "last.ckpt").is_file()
    logs = "".join(p.read_text() for p in (sweep / ".submitit").glob("*/*_log.err"))
    assert "Traceback" not in logs, logs
    assert logs.count(f"stopped by {signum.name} after step ") == 2, logs
    # what each job kept is said where the sweep was started, not only in its log
    said = [line for line in out.splitlines() if line.startswith(f"stopped by {signum.name} after step ")]
    assert len(said) == 2 and all("checkpoint written to " in line for line in said), out
    assert out.splitlines()[-1].startswith("continue the sweep (its finished jobs are kept) with: "), out


@pytest.mark.slow  # submitit's jobs start, import torch and train
def test_a_submitit_job_killed_outright_ends_the_sweep_with_one_line_and_its_continue_command(
    tmp_path: Path,
) -> None:
    # The killed job handed submitit no result: the sweep ended in submitit's UncompletedJobError
    # traceback, exit code 1.
    with _submitit_sweep(tmp_path, "trainer.max_steps=20,100000",
                         "trainer.val_check_interval=10") as (process, sweep):
        _wait_until_running(process, sweep / "1")
        os.kill(_status(sweep / "1")["pid"], signal.SIGKILL)
        out, _ = process.communicate(timeout=180)
    assert process.returncode == 128 + signal.SIGKILL, out
    assert "Traceback" not in out, out
    assert _status(sweep / "0")["status"] == "finished", out  # the other job went on to its end
    lines = out.splitlines()
    assert lines[-2] == ("a job's process of the sweep was ended by SIGKILL (the out-of-memory killer, or a "
                         "kill of its pid)"), out
    assert lines[-1].startswith("continue the sweep (its finished jobs are kept) with: "), out
    assert f"hydra.sweep.dir={sweep}" in lines[-1], out


def test_another_submitits_start_controller_is_kept_with_a_note(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The copy of submitit 1.5.4's start_controller was swapped in whatever submitit was installed (the
    # `slurm` extra allows 1.3.3 on): another one's executor, passing an argument the copy lacks, would
    # end every job's start in a TypeError, or its controller would miss what its own passes.
    submitit_local = pytest.importorskip("submitit.local.local")
    from omegaconf import OmegaConf

    from chargpt.runs import submitit_local as stoppable

    def theirs(folder: Path, command: str, tasks_per_node: int = 1, cuda_devices: str = "",
               timeout_min: float = 5.0, signal_delay_s: int = 30, stderr_to_stdout: bool = False,
               setup: tuple[str, ...] = (), environment: dict | None = None) -> None:
        """A later submitit's, with an argument the copy does not take."""

    monkeypatch.setattr(submitit_local, "start_controller", theirs)
    with stoppable.stoppable_controllers(OmegaConf.create({})):
        assert submitit_local.start_controller is theirs
    assert submitit_local.start_controller is theirs
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1, err
    assert err.startswith("note: submitit ") and "as submitit does" in err, err


def test_the_installed_submitits_start_controller_is_swapped_for_the_stoppable_one(
    capsys: pytest.CaptureFixture[str],
) -> None:
    submitit_local = pytest.importorskip("submitit.local.local")
    from omegaconf import OmegaConf

    from chargpt.runs import submitit_local as stoppable

    original = submitit_local.start_controller
    with stoppable.stoppable_controllers(OmegaConf.create({})):
        assert submitit_local.start_controller is stoppable.start_controller
    assert submitit_local.start_controller is original
    assert capsys.readouterr().err == ""


def test_a_submitit_without_a_controller_class_keeps_its_own_launcher_with_a_note(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The stoppable controller subclassed submitit's Controller as its module was imported, so a
    # submitit without the class ended the sweep in an AttributeError before the check that keeps
    # submitit's own launcher.
    submitit_local = pytest.importorskip("submitit.local.local")
    from omegaconf import OmegaConf

    import chargpt.runs

    monkeypatch.delattr(submitit_local, "Controller")
    monkeypatch.setattr(chargpt.runs, "submitit_local", None, raising=False)  # restored afterwards
    monkeypatch.delitem(sys.modules, "chargpt.runs.submitit_local", raising=False)
    stoppable = importlib.import_module("chargpt.runs.submitit_local")
    original = submitit_local.start_controller
    with stoppable.stoppable_controllers(OmegaConf.create({})):
        assert submitit_local.start_controller is original
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith("note: submitit "), err


def test_a_controller_leaves_the_stopping_signals_to_its_job(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The sweep's process signals each controller's whole process group, its job included, and
    # submitit's controller handed SIGTERM on to its job as well: the job got it twice, the second
    # meaning "quit at once, without a checkpoint", where the job's handler ran between the two (a
    # stopped sweep's test tells only then; this one asks the controller itself).
    submitit_local = pytest.importorskip("submitit.local.local")
    from chargpt.runs import submitit_local as stoppable

    handed_on: list[int] = []

    class Job:
        def send_signal(self, signum: int) -> None:
            handed_on.append(signum)

    def run(controller: object, max_retry: int = 6) -> None:
        controller.tasks = [Job()]  # type: ignore[attr-defined]
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.raise_signal(signum)  # its handler runs before this returns

    for name, value in {"SUBMITIT_LOCAL_NTASKS": "1", "SUBMITIT_LOCAL_COMMAND": "true",
                        "SUBMITIT_LOCAL_TIMEOUT_S": "60", "SUBMITIT_LOCAL_SIGNAL_DELAY_S": "30",
                        "SUBMITIT_STDERR_TO_STDOUT": "", "SUBMITIT_LOCAL_WITH_SHELL": ""}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(submitit_local.Controller, "run", run)
    earlier = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        stoppable._run_controller(str(tmp_path))
    finally:
        for s, handler in earlier.items():
            signal.signal(s, handler)
    assert handed_on == []


@pytest.mark.parametrize("left", [False, True], ids=["complete", "a job left"])
def test_a_job_killed_after_every_job_finished_says_the_sweep_was_complete(
    left: bool, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A job's process killed once its run had finished (its closing sample, its exit) ended the sweep
    # with `continue the sweep ... with: ...`, a command that had nothing left to run (the
    # parallel launcher said the sweep was complete).
    pytest.importorskip("submitit.local.local")
    from omegaconf import OmegaConf

    from chargpt.runs import submitit_local as stoppable

    sweep = tmp_path / "sweep"
    seeds = "1,2,3" if left else "1,2"  # a third job never started, or none left
    for job in ("0", "1"):
        (sweep / job / ".hydra").mkdir(parents=True)
        (sweep / job / ".hydra" / "overrides.yaml").write_text(f"- seed={int(job) + 1}\n")
        (sweep / job / "status.json").write_text('{"status": "finished"}')
    (sweep / "multirun.yaml").write_text(
        f"hydra:\n  overrides:\n    hydra: []\n    task: ['seed={seeds}']\n"
        "  sweeper:\n    _target_: hydra._internal.core_plugins.basic_sweeper.BasicSweeper\n")
    with pytest.raises(SystemExit) as ended, \
            stoppable.stoppable_controllers(OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep)}}})):
        # a controller whose job a SIGKILL ended, and submitit's report of the job without a result
        stoppable._controllers[subprocess.Popen(["sh", "-c", "exit 137"])] = sweep / ".submitit"
        raise RuntimeError("UncompletedJobError")
    assert ended.value.code == 128 + signal.SIGKILL
    said = capsys.readouterr().err.splitlines()
    assert said[0].startswith("a job's process of the sweep was ended by SIGKILL"), said
    if left:
        assert said[-1].startswith("continue the sweep (its finished jobs are kept) with: "), said
    else:
        assert said[-1] == (f"the sweep was complete: its 2 jobs had finished, and nothing is left to "
                            f"continue (chargpt-report {sweep} shows them)"), said
