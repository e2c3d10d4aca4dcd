"""Faults during training: a NaN loss, a failed checkpoint write; and TensorBoard after a resume."""

from __future__ import annotations

import errno
import json
import math
import os
import shlex
import socket
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import lightning as L
import pytest
import torch
from hydra import compose, initialize_config_dir
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from chargpt import checkpoints, files
from chargpt.cli import CONFIG_PATH
from chargpt.cli.train import main as train_main
from chargpt.errors import CheckpointError
from chargpt.runs.report import report
from chargpt.training.build import build_trainer
from chargpt.training.callbacks.graceful_interrupt import GracefulInterrupt
from chargpt.training.callbacks.nonfinite_guard import NonFiniteGuard, NonFiniteLossError, _last_checkpoint
from chargpt.training.callbacks.resume import ResumeState
from chargpt.training.checkpoint_io import AtomicCheckpointIO
from conftest import StepHook, assert_stopped_on_nan, bare_train_args, poison_weights, run_main, write_corpus


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHARGPT_CACHE_DIR", str(tmp_path / "cache"))


def _scalar_steps(folder: Path, tag: str) -> list[int]:
    events = EventAccumulator(str(folder))
    events.Reload()
    return [e.step for e in events.Scalars(tag)]


@pytest.mark.slow  # several runs; tests/test_device_syncs.py checks the guard by default
def test_nan_loss_stops_keeps_last_good_checkpoint_and_resume_continues_tensorboard(
    tmp_path, monkeypatch, capsys
):
    corpus = write_corpus(tmp_path / "corpus.txt")
    run = tmp_path / "run"
    args = bare_train_args(
        corpus, run, "trainer.max_steps=12", "trainer.val_check_interval=4", "logger=tensorboard"
    )
    hook = StepHook(monkeypatch)
    hook.actions[7] = poison_weights  # the loss of step 7 is NaN
    code, out, err = run_main(train_main, args, capsys)
    last = assert_stopped_on_nan(code, out, err, run, step=7)
    assert last["global_step"] == 4  # not overwritten by the validation/checkpoint at step 8
    # The stopped run logged steps 1-6 (at the steps taken, as everywhere), two of them after its
    # checkpoint.
    assert _scalar_steps(run / "tensorboard", "train/loss") == list(range(1, 7))

    hook.take()
    # TensorBoard reads a folder's event files in name order: the second, then the process and a
    # per-process counter, compared as text. Within one second of one process the counter can
    # sort the resumed run's file first (".10" before ".9"), and the purge then misses the stale
    # steps. A real resume starts seconds later; here, wait for the next second.
    time.sleep(1.0 - time.time() % 1.0 + 0.01)
    code, _, err = run_main(train_main, [*args, f"ckpt_path={run}"], capsys)
    assert code == 0, err
    assert [s for s, _ in hook.take()] == list(range(5, 13))
    # One point per step over the whole run: the steps logged after the checkpoint were purged.
    assert _scalar_steps(run / "tensorboard", "train/loss") == list(range(1, 13))
    assert _scalar_steps(run / "tensorboard", "val/loss") == [4, 8, 12]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["step"] == 12 and math.isfinite(metrics["best_val_loss"])


@pytest.mark.slow
def test_a_nan_before_any_checkpoint_says_to_start_again(tmp_path, monkeypatch, capsys):
    corpus = write_corpus(tmp_path / "corpus.txt")
    run = tmp_path / "run"
    args = bare_train_args(corpus, run, "trainer.max_steps=8", "trainer.val_check_interval=4",
                           "logger=tensorboard")
    hook = StepHook(monkeypatch)
    hook.actions[2] = poison_weights  # before the first checkpoint (step 4)
    code, _, err = run_main(train_main, args, capsys)
    [line] = [x for x in err.splitlines() if x.startswith("error:")]
    assert code == 2 and "the training loss became nan at step 2" in line
    # Nothing to resume from: the advice is a new start, not ckpt_path. The run clipped at the
    # default 1.0 already: it said "set trainer.gradient_clip_val", as if it were unset.
    assert line.endswith("no checkpoint had been written yet. Lower optimizer.lr or "
                         "trainer.gradient_clip_val (now 1.0), then start the run again")
    assert _scalar_steps(run / "tensorboard", "train/loss") == [1]
    # Started again in the same folder: TensorBoard shows the new run's curve alone, not two
    # overlapping ones (see the resume test above for why it waits for the next second).
    hook.take()
    time.sleep(1.0 - time.time() % 1.0 + 0.01)
    code, _, err = run_main(train_main, [*args, "trainer.max_steps=3"], capsys)
    assert code == 0, err
    train_loss = EventAccumulator(str(run / "tensorboard"))
    train_loss.Reload()
    assert [e.step for e in train_loss.Scalars("train/loss")] == [1, 2, 3]


def test_a_nan_without_clipping_says_to_set_it() -> None:
    unclipped = SimpleNamespace(gradient_clip_val=None, checkpoint_callbacks=[])
    assert _last_checkpoint(unclipped) == ("no checkpoint had been written yet. Lower optimizer.lr or set "
                                           "trainer.gradient_clip_val (e.g. 1.0), then start the run again")


def test_a_nan_in_a_resumed_run_before_its_first_checkpoint_keeps_the_one_it_resumed_from(tmp_path) -> None:
    # The checkpoint the run resumed from is still there: resume from it, not start again.
    resumed_from = tmp_path / "last.ckpt"
    resumed_from.write_bytes(b"checkpoint")
    resumed = SimpleNamespace(gradient_clip_val=1.0, checkpoint_callbacks=[], ckpt_path=str(resumed_from))
    assert _last_checkpoint(resumed) == (
        f"the last checkpoint {resumed_from} is kept. Lower optimizer.lr or trainer.gradient_clip_val "
        "(now 1.0), then resume the run from it")


@pytest.mark.slow  # two runs
def test_the_resume_command_a_nan_gives_resumes_the_run_with_a_lower_rate(tmp_path, monkeypatch, capsys):
    # It said `then resume with ckpt_path=RUN_DIR`: followed, that resume took the defaults for
    # every other setting (3000 steps, the tensorboard logger, another text).
    corpus = write_corpus(tmp_path / "my text, é.txt")
    run = tmp_path / "r 1 é 🚀"
    args = bare_train_args(corpus, run, "trainer.max_steps=8", "trainer.val_check_interval=4")
    hook = StepHook(monkeypatch)
    hook.actions[6] = poison_weights
    code, out, err = run_main(train_main, args, capsys)
    assert_stopped_on_nan(code, out, err, run, step=6)
    [line] = [x for x in err.splitlines() if x.startswith("error:")]
    advice, command = line.split(", e.g. ")
    assert advice.endswith("Lower optimizer.lr or trainer.gradient_clip_val (now 1.0), then resume the run "
                           "from it")
    words = shlex.split(command)
    assert words[0] == "chargpt-train" and words[-1] == f"ckpt_path={run}"
    assert "trainer.max_steps=8" in words and "optimizer.lr=0.0001" in words

    code, out, err = run_main(train_main, words[1:], capsys)
    assert code == 0, err
    said = "resuming with optimizer settings other than the checkpoint's: optimizer lr 0.001 -> 0.0001"
    assert said in out + err
    assert json.loads((run / "metrics.json").read_text())["step"] == 8  # the run's 8 steps, not 3000


def test_a_run_that_trained_then_failed_keeps_its_folder_and_log_without_a_logger(tmp_path, monkeypatch,
                                                                                  capsys):
    # With logger=none and no checkpoint yet it held only what a start writes, and was removed as a
    # failed start: its train.log, which records how it ended, went with it.
    corpus = write_corpus(tmp_path / "corpus.txt")
    run = tmp_path / "run"
    hook = StepHook(monkeypatch)
    hook.actions[2] = poison_weights
    args = bare_train_args(corpus, run, "trainer.max_steps=8", "trainer.val_check_interval=4", "logger=none")
    code, _, _ = run_main(train_main, args, capsys)
    assert code == 2
    assert json.loads((run / "status.json").read_text())["status"] == "failed"
    last = (run / "train.log").read_text().splitlines()[-1]
    assert "run ended: failed: the training loss became nan at step 2" in last


RUN_METRICS_FIRST = "callbacks=[model_checkpoint,last_checkpoint,progress_bar,run_metrics]"


@pytest.mark.parametrize("choice", [[], [RUN_METRICS_FIRST]], ids=["default", "run_metrics before the guard"])
def test_a_nan_validation_loss_after_a_finite_training_loss_stops_the_run(choice, tmp_path, monkeypatch,
                                                                         capsys):
    # One huge step (optimizer.lr=1e9) leaves a finite training loss and weights that score NaN: the
    # run was recorded finished with a NaN best loss and checkpoint, then its sample raised.
    from chargpt.training import CharLM

    original = CharLM.on_validation_epoch_end

    def nan_at_step_8(module: CharLM) -> None:
        if module.trainer.global_step == 8:
            module._val_sums = (module._val_sums[0] * math.nan, module._val_sums[1])
        original(module)

    monkeypatch.setattr(CharLM, "on_validation_epoch_end", nan_at_step_8)
    run = tmp_path / "run"
    args = bare_train_args(write_corpus(tmp_path / "corpus.txt"), run, "trainer.max_steps=12",
                           "trainer.val_check_interval=4", "logger=tensorboard", "sample.max_new_tokens=20",
                           *choice)
    code, _, err = run_main(train_main, args, capsys)
    assert code == 2 and "Traceback" not in err, err
    [line] = [x for x in err.splitlines() if x.startswith("error:")]
    assert line.startswith("error: the validation loss is nan at step 8: ")
    assert f"the last checkpoint {run / 'checkpoints' / 'last.ckpt'} is kept" in line
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 4
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["best-000004.ckpt", "last.ckpt"]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["step"] == 4 and math.isfinite(metrics["best_val_loss"])
    assert json.loads((run / "status.json").read_text())["status"] == "failed"


def test_checkpoint_with_non_finite_weights_is_refused():
    module = torch.nn.Linear(2, 2)
    with torch.no_grad():
        module.weight[0, 0] = float("inf")

    trainer = L.Trainer(logger=False, enable_progress_bar=False, enable_checkpointing=False)
    with pytest.raises(NonFiniteLossError, match=r"not finite at step 0 .*no checkpoint had been"):
        NonFiniteGuard().on_save_checkpoint(trainer, module, {})  # type: ignore[arg-type]


def test_interrupted_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "checkpoints" / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"step": torch.tensor(1)}, path)
    before = path.read_bytes()

    def save_half_then_die(obj, f):  # type: ignore[no-untyped-def]
        Path(f).write_bytes(before[: len(before) // 2])
        raise KeyboardInterrupt  # e.g. a second Ctrl-C in the middle of the write

    monkeypatch.setattr(checkpoints.torch, "save", save_half_then_die)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"step": torch.tensor(2)}, path)
    assert path.read_bytes() == before
    assert os.listdir(path.parent) == ["last.ckpt"]  # no partial file left behind
    assert torch.load(path, weights_only=True)["step"] == 1


def test_failed_write_is_one_clear_error_and_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"step": torch.tensor(1)}, path)

    def disk_full(*args):  # type: ignore[no-untyped-def]
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(files.os, "replace", disk_full)
    with pytest.raises(CheckpointError, match=r"cannot write checkpoint .*No space left on device"):
        AtomicCheckpointIO().save_checkpoint({"step": torch.tensor(2)}, path)
    assert torch.load(path, weights_only=True)["step"] == 1
    assert os.listdir(tmp_path) == ["last.ckpt"]


@pytest.mark.slow  # three runs
def test_a_resume_whose_metrics_write_failed_after_its_checkpoint_goes_on_from_that_checkpoint(
    tmp_path, monkeypatch, capsys
):
    # The disk filled after last.ckpt at step 6 was written, before metrics.json was: one error line,
    # metrics.json left at step 4 (never ahead of a checkpoint), and the next resume goes on from
    # step 6 with the whole run's figures.
    from chargpt.training.callbacks import metrics

    corpus = write_corpus(tmp_path / "corpus.txt")
    run = tmp_path / "run é 🚀"
    args = bare_train_args(corpus, run, "trainer.val_check_interval=2")
    assert run_main(train_main, [*args, "trainer.max_steps=4"], capsys)[0] == 0
    written = metrics.write_json_atomic

    def full_at_step_6(path, figures):  # type: ignore[no-untyped-def]
        if figures["step"] == 6:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        written(path, figures)

    monkeypatch.setattr(metrics, "write_json_atomic", full_at_step_6)
    code, _, err = run_main(train_main, [*args, "trainer.max_steps=8", f"ckpt_path={run}"], capsys)
    assert code == 2 and err.startswith("error: cannot write ") and "No space left on device" in err, err
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 6
    assert json.loads((run / "metrics.json").read_text())["step"] == 4
    # The run's record of its failure is the console's line (what the report shows), not the raw
    # `OSError: [Errno 28] No space left on device: '...'`.
    assert json.loads((run / "status.json").read_text())["error"] == err.strip().removeprefix("error: ")
    report(run)  # its row shows step 4: it says that the checkpoint a resume goes on from is later
    assert "last checkpoint holds more steps than the steps column says" in capsys.readouterr().out
    monkeypatch.setattr(metrics, "write_json_atomic", written)
    hook = StepHook(monkeypatch)
    assert run_main(train_main, [*args, "trainer.max_steps=8", f"ckpt_path={run}"], capsys)[0] == 0
    assert [step for step, _ in hook.take()] == [7, 8]
    assert json.loads((run / "metrics.json").read_text())["tokens"] == 8 * 4 * 16  # steps x batch x context
    capsys.readouterr()
    report(run)
    assert "last checkpoint holds more steps" not in capsys.readouterr().out


def test_every_run_uses_the_atomic_writer_and_the_safety_callbacks(tmp_path):
    with initialize_config_dir(config_dir=CONFIG_PATH, version_base="1.3"):
        cfg = compose("train", overrides=[f"paths.output_dir={tmp_path}", "logger=none"])
    trainer = build_trainer(cfg)
    assert isinstance(trainer.strategy.checkpoint_io, AtomicCheckpointIO)
    kinds = {type(c) for c in trainer.callbacks}
    assert {ResumeState, NonFiniteGuard, GracefulInterrupt} <= kinds


def test_a_write_removes_what_killed_writers_of_its_file_left(tmp_path):
    # kill -9 runs no cleanup: its half-written file stays until the next write of the same file,
    # which removes it (only if its process is gone: a live writer's file is its own).
    target = tmp_path / "[draft] notes?.txt.ids.npy"  # glob characters are names here
    dead = _finished_pid()
    with subprocess.Popen(["sleep", "30"]) as alive:
        try:
            here = socket.gethostname()
            left = tmp_path / f".{target.name}.{here}.{dead}.partial"
            running = tmp_path / f".{target.name}.{here}.{alive.pid}.partial"
            other = tmp_path / f".other.txt.{here}.{dead}.partial"
            elsewhere = tmp_path / f".{target.name}.another-host.{dead}.partial"  # cannot be told dead
            for partial in (left, running, other, elsewhere):
                partial.write_bytes(b"half")
            files.write_text_atomic(target, "whole")
            kept = sorted(p.name for p in tmp_path.iterdir())
            assert kept == sorted([target.name, running.name, other.name, elsewhere.name])
        finally:
            alive.kill()


def _finished_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid
