"""A real signal to a real training process: checkpoint at the step boundary, the exact resume
command, and a resume that loses no step."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from unittest.mock import ANY

import pytest
import torch

from chargpt.cli.train import main as train_main
from conftest import StepHook, bare_train_args, run_main, signal_at_step_end, write_corpus

SRC = Path(__file__).resolve().parents[1] / "src"


# A real process and a real signal; tests/test_resume.py sends the same signals in-process.
@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_checkpoints_and_prints_the_resume_command(signum, tmp_path, monkeypatch, capsys):
    corpus = write_corpus(tmp_path / "corpus.txt")
    run = tmp_path / "run"
    args = bare_train_args(corpus, run, "trainer.max_steps=1000000", "trainer.val_check_interval=5")
    env = {
        **os.environ,
        "CHARGPT_CACHE_DIR": str(tmp_path / "cache"),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")])),
    }
    last = run / "checkpoints" / "last.ckpt"
    with (tmp_path / "out.txt").open("w") as out, (tmp_path / "err.txt").open("w") as err_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "chargpt.cli.train", *args], stdout=out, stderr=err_file, env=env
        )
        deadline = time.monotonic() + 120
        while not last.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert proc.poll() is None, (tmp_path / "err.txt").read_text()
        # Running, and by which process: the report tells it from a run that was killed.
        assert json.loads((run / "status.json").read_text()) == {
            "status": "running", "pid": proc.pid, "host": ANY, "time": ANY}
        proc.send_signal(signum)  # training is running: the first validation checkpoint exists
        proc.wait(timeout=120)
    err = (tmp_path / "err.txt").read_text()
    assert proc.returncode == 128 + signum, err
    assert "Traceback" not in err
    name = signal.Signals(signum).name
    match = re.search(rf"stopped by {name} after step (\d+): checkpoint written to (\S+)", err)
    assert match, err
    step = int(match[1])
    assert Path(match[2]) == last
    assert torch.load(last, weights_only=True)["global_step"] == step  # nothing done is lost
    assert json.loads((run / "status.json").read_text())["status"] == "interrupted"
    # The run's own log says how it ended, with the console's command: `ckpt_path` alone would
    # take the defaults for the run's other settings (here its 1000000 steps, for 3000).
    resume = err.split("resume with: ", 1)[1].splitlines()[0]
    ended = f"run ended: interrupted; continue it with {resume}"
    assert (run / "train.log").read_text().splitlines()[-1].endswith(ended)

    python_path, *command = shlex.split(resume)
    assert python_path == f"PYTHONPATH={env['PYTHONPATH']}"  # where it imported chargpt from
    assert command == ["chargpt-train", *[a for a in args if not a.startswith("hydra.")], f"ckpt_path={run}"]
    # Resume, two more steps: the run continues at step + 1 in the same directory.
    command = [a if a != "trainer.max_steps=1000000" else f"trainer.max_steps={step + 2}" for a in command]
    monkeypatch.setenv("CHARGPT_CACHE_DIR", str(tmp_path / "cache"))
    code, _, err = run_main(train_main, command[1:], capsys)
    assert code == 0, err
    assert torch.load(last, weights_only=True)["global_step"] == step + 2
    assert json.loads((run / "status.json").read_text())["status"] == "finished"
    assert "run ended: finished, best val loss " in (run / "train.log").read_text().splitlines()[-1]


@pytest.mark.parametrize("kept", [[], ["~callbacks.last_checkpoint"]], ids=["last.ckpt", "no last.ckpt"])
@pytest.mark.parametrize(("stop", "exit_code"), [(KeyboardInterrupt, 130), (BrokenPipeError, 141)],
                         ids=["Ctrl-C", "closed pipe"])
def test_a_stop_during_the_closing_sample_leaves_the_run_finished(stop, exit_code, kept, tmp_path,
                                                                 monkeypatch, capsys):
    # Training ended and its checkpoint is written: stopping the sample (Ctrl-C, `| head`) loses
    # nothing, and the run's status says so (an interrupted or failed run would be left out of a
    # report's figures).
    from chargpt.inference import TrainedModel

    def stream_then_ctrl_c(self, prompt, **settings):
        yield "x"
        raise stop

    monkeypatch.setenv("CHARGPT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(TrainedModel, "stream", stream_then_ctrl_c)
    run = tmp_path / "run"
    args = bare_train_args(write_corpus(tmp_path / "corpus.txt"), run, "trainer.max_steps=2",
                           "trainer.val_check_interval=2", "sample.max_new_tokens=50", *kept)
    code, _, err = run_main(train_main, args, capsys)
    assert code == exit_code, err
    status = json.loads((run / "status.json").read_text())
    assert status["status"] == "finished" and isinstance(status["value"], float)
    assert "before training" not in err  # it trained
    # Its log ends as every run's does: how it ended (it had no last line).
    why = "Ctrl-C or a signal" if stop is KeyboardInterrupt else "its output's reader closed the pipe"
    assert (run / "train.log").read_text().splitlines()[-1].endswith(
        f"run ended: finished, best val loss {status['value']:.4f}; its closing sample was stopped ({why})")


@pytest.mark.slow
def test_a_stop_before_training_says_the_same_command_starts_over(tmp_path, monkeypatch, capsys) -> None:
    # A Ctrl-C while the run is built (its text read, model=auto timing shapes) leaves no
    # checkpoint and no resume command: the console says what that means, and it is true.
    from chargpt.training import build as training_build

    build_run = training_build.build_run

    def ctrl_c_while_building(cfg):
        raise KeyboardInterrupt

    monkeypatch.setenv("CHARGPT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(training_build, "build_run", ctrl_c_while_building)
    run = tmp_path / "my run"
    args = bare_train_args(write_corpus(tmp_path / "corpus.txt"), run, "trainer.max_steps=2")
    code, _, err = run_main(train_main, args, capsys)
    assert code == 130
    assert err.endswith("stopped by SIGINT before training began: no checkpoint was written; run the same "
                        "command to start the run again\n\ninterrupted\n"), err
    assert not run.exists()  # the folder it made for the run holds nothing to keep: removed
    monkeypatch.setattr(training_build, "build_run", build_run)
    code, _, err = run_main(train_main, args, capsys)
    assert code == 0, err
    assert json.loads((run / "status.json").read_text())["status"] == "finished"
    # A resume stopped the same way: its checkpoint is as it was, and the same command resumes.
    last = run / "checkpoints" / "last.ckpt"
    before = last.read_bytes()
    monkeypatch.setattr(training_build, "build_run", ctrl_c_while_building)
    resume = [*[a for a in args if not a.startswith("trainer.max_steps=")], "trainer.max_steps=4",
              f"ckpt_path={run}"]
    code, _, err = run_main(train_main, resume, capsys)
    assert code == 130 and last.read_bytes() == before
    assert err.endswith("stopped by SIGINT before training resumed: the checkpoint stays as it was; run the "
                        "same command to resume\n\ninterrupted\n"), err
    monkeypatch.setattr(training_build, "build_run", build_run)
    code, _, err = run_main(train_main, resume, capsys)
    assert code == 0 and torch.load(last, weights_only=True)["global_step"] == 4, err


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_one_signal_stops_the_closing_sample(signum, tmp_path) -> None:
    # Training's handler only sets a flag for the next step: still installed after fit, it would
    # leave a scheduler's SIGTERM (or a first Ctrl-C) unanswered while a long sample runs.
    run = tmp_path / "run"
    args = bare_train_args(write_corpus(tmp_path / "corpus.txt"), run, "trainer.max_steps=2",
                           "trainer.val_check_interval=2", "sample.max_new_tokens=10000000")
    env = {
        **os.environ,
        "CHARGPT_CACHE_DIR": str(tmp_path / "cache"),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")])),
    }
    proc = subprocess.Popen([sys.executable, "-m", "chargpt.cli.train", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, env=env, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("--- sample"):
            break
    proc.stdout.read(100)  # the sample is being drawn
    proc.send_signal(signum)
    proc.communicate(timeout=60)  # without the fix: still sampling after a minute
    assert proc.returncode in (-signum, 128 + signum)
    assert json.loads((run / "status.json").read_text())["status"] == "finished"


@pytest.mark.slow  # a training process, its output into a pipe that `head` closes
@pytest.mark.parametrize("both", [False, True], ids=["stdout", "stdout and stderr"])
def test_a_run_whose_console_reader_is_gone_trains_to_its_end(tmp_path: Path, both: bool) -> None:
    # `chargpt-train ... | head -1`: each log line after the first printed a logging traceback,
    # and the run then failed (exit 1, status failed) with nothing trained. With `2>&1` the
    # progress bar's stderr failed it too.
    corpus, run = write_corpus(tmp_path / "corpus.txt"), tmp_path / "run é"
    shown = ("~callbacks.progress_bar", "trainer.enable_model_summary=false")  # on, as users see them
    typed = bare_train_args(corpus, run, "trainer.max_steps=6", "trainer.val_check_interval=3")
    args = " ".join(shlex.quote(a) for a in typed if a not in shown)
    result = subprocess.run(
        f"{sys.executable} -m chargpt.cli.train {args} {'2>&1 ' if both else ''}| head -1; "
        "echo \"exit ${PIPESTATUS[0]}\"",
        shell=True, env={**os.environ, "PYTHONPATH": str(SRC)}, capture_output=True, text=True,
        timeout=300, executable="/bin/bash",
    )
    assert result.stdout.splitlines()[-1] == "exit 0", result.stderr[-2000:]
    assert "Traceback" not in result.stderr and "Logging error" not in result.stderr
    assert result.stderr.count("warning: the console's reader closed its pipe; the run goes on") == (not both)
    assert json.loads((run / "status.json").read_text())["status"] == "finished"
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 6
    assert "run ended: finished, best val loss " in (run / "train.log").read_text().splitlines()[-1]



@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_after_the_last_step_skips_the_closing_sample(signum, tmp_path, monkeypatch, capsys) -> None:
    # Ctrl-C (or a scheduler's SIGTERM) while the run validates and saves after its last step: the
    # run finishes and is saved, but the command stops there as it said it would, rather than
    # drawing its closing sample and exiting 0 as if no signal had come (a sweep's job does so too).
    monkeypatch.setenv("CHARGPT_CACHE_DIR", str(tmp_path / "cache"))
    signal_at_step_end(monkeypatch, 2, signum)  # the last step
    run = tmp_path / "run"
    args = bare_train_args(write_corpus(tmp_path / "corpus.txt"), run, "trainer.max_steps=2",
                           "trainer.val_check_interval=2", "sample.max_new_tokens=50")
    code, out, err = run_main(train_main, args, capsys)
    assert code == 128 + signum, err
    name = signal.Signals(signum).name
    assert f"stopped by {name} after the last step: the run finished (no closing sample)" in err
    assert "--- sample" not in out
    status = json.loads((run / "status.json").read_text())
    assert status["status"] == "finished" and isinstance(status["value"], float)
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 2
    ended = (run / "train.log").read_text().splitlines()[-1]
    assert ended.endswith("; its closing sample skipped (Ctrl-C or a signal)"), ended


@contextlib.contextmanager
def started_ignoring(signum: int, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The process as a starter that ignores `signum` leaves it (a script's `cmd &` for SIGINT,
    `trap '' TERM` for SIGTERM); afterwards, the signal must be left ignored as it was found."""
    import chargpt.stop_signals as stop_signals

    monkeypatch.setattr(stop_signals, "_IGNORED_BY_STARTER", frozenset({signum}), raising=False)
    earlier = signal.signal(signum, signal.SIG_IGN)
    try:
        yield
        assert signal.getsignal(signum) is signal.SIG_IGN
    finally:
        signal.signal(signum, earlier)


def test_a_run_started_with_ctrl_c_ignored_ignores_it_throughout(tmp_path, monkeypatch, capsys) -> None:
    # A script's `chargpt-train ... &` starts the run with SIGINT ignored, so that a Ctrl-C meant for
    # the script leaves it running. It was ignored while the run was built, then taken over by the
    # training loop's handler (a Ctrl-C to the script then stopped the run). It stays ignored, and
    # SIGTERM stops the run as ever.
    with started_ignoring(signal.SIGINT, monkeypatch):
        hook = StepHook(monkeypatch)
        hook.send_signal_at(2, signal.SIGINT)
        hook.send_signal_at(3, signal.SIGTERM)
        run = tmp_path / "run"
        args = bare_train_args(write_corpus(tmp_path / "corpus.txt"), run, "trainer.max_steps=6")
        code, _, err = run_main(train_main, args, capsys)
    assert code == 143, err
    assert "SIGINT" not in err and "stopped by SIGTERM after step 3" in err


def test_a_run_started_with_sigterm_ignored_trains_on_through_one(tmp_path, monkeypatch, capsys) -> None:
    # The starter ignores SIGTERM: it stays ignored, as Ctrl-C's SIGINT does above. Lightning's own
    # SIGTERM handler (set as fit starts) was left in its place: a SIGTERM ended the run at the next
    # step with exit 0, no checkpoint, no resume command, and status.json saying "finished".
    with started_ignoring(signal.SIGTERM, monkeypatch):
        hook = StepHook(monkeypatch)
        hook.send_signal_at(2, signal.SIGTERM)
        run = tmp_path / "run"
        args = bare_train_args(write_corpus(tmp_path / "corpus.txt"), run, "trainer.max_steps=4")
        code, _, err = run_main(train_main, args, capsys)
    assert code == 0, err
    assert "SIGTERM" not in err, err
    assert [step for step, _ in hook.take()] == [1, 2, 3, 4]
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 4


def test_a_sigterm_its_starter_ignores_as_lightning_sets_its_handler_leaves_the_run_training(
    tmp_path, monkeypatch, capsys
) -> None:
    # Between Lightning setting its SIGTERM handler (with the ignored one composed in, as if it were
    # a handler) and the training loop's own, a SIGTERM the starter ignores set Lightning's
    # received_sigterm: the run ended at its first step, exit 0, "finished" after one step.
    from lightning.pytorch.trainer.connectors.signal_connector import _SignalConnector

    register = _SignalConnector.register_signal_handlers

    def registered_then_terminated(self: _SignalConnector) -> None:
        register(self)
        signal.raise_signal(signal.SIGTERM)  # to this thread: its handler runs before training starts

    monkeypatch.setattr(_SignalConnector, "register_signal_handlers", registered_then_terminated)
    with started_ignoring(signal.SIGTERM, monkeypatch):
        hook = StepHook(monkeypatch)
        run = tmp_path / "run"
        args = bare_train_args(write_corpus(tmp_path / "corpus.txt"), run, "trainer.max_steps=3")
        code, _, err = run_main(train_main, args, capsys)
    assert code == 0, err
    assert [step for step, _ in hook.take()] == [1, 2, 3]
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 3
