"""The training and validation steps do not wait for the device each step: the NaN guard reads the
losses in batches, validation counts its targets on the device, nothing is logged for Lightning's
bar (which reads its values after every batch) and chargpt's bar reads a CUDA value without waiting.
What they promise is unchanged.

On a GPU each read of a value on the host (`item()`, `float()`, `tolist()`, ...) waits for all the
work queued on the device; the same reads are visible on the CPU, where these tests count them.
(`scripts/gpu_check.py` counts the synchronisations themselves on a GPU.)"""

from __future__ import annotations

import json
import logging
import math
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from chargpt import load
from chargpt.cli.train import main as train_main
from chargpt.data.encoding import load_encoded
from chargpt.evaluation import evaluate_text
from chargpt.training.callbacks.nonfinite_guard import NonFiniteGuard, NonFiniteLossError
from chargpt.training.callbacks.progress import StepProgressBar, _HostValues
from chargpt.training.module import CharLM
from conftest import (
    TINY_MODEL,
    StepHook,
    assert_stopped_on_nan,
    bare_train_args,
    poison_weights,
    run_main,
    write_corpus,
)


def test_a_nan_between_checks_is_caught_before_the_next_validation_and_checkpoint(
    tmp_path, monkeypatch, capsys
) -> None:
    corpus = write_corpus(tmp_path / "corpus.txt")
    run = tmp_path / "run"
    # Logged every 50 steps and read every 10: the NaN of step 6 is read when validation 8 starts.
    args = bare_train_args(
        corpus, run, "trainer.max_steps=12", "trainer.val_check_interval=4", "trainer.log_every_n_steps=50",
        "callbacks.nonfinite_guard.check_every=10",
    )
    hook = StepHook(monkeypatch)
    hook.actions[6] = poison_weights
    code, out, err = run_main(train_main, args, capsys)
    last = assert_stopped_on_nan(code, out, err, run, step=6)
    assert "the training loss became nan at step 6; training stopped at step 8" in err
    assert last["global_step"] == 4
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["step"] == 4 and math.isfinite(metrics["val_loss"])  # step 8 was never scored
    assert [s for s, _ in hook.take()][-1] == 8  # it stopped at the check, not at the end


def test_the_guard_reads_no_loss_between_checks_then_all_of_them_at_once(monkeypatch) -> None:
    guard = NonFiniteGuard(check_every=5)
    strategy = SimpleNamespace(reduce_boolean_decision=lambda decision, all: decision)  # one process
    trainer = SimpleNamespace(global_step=0, checkpoint_callbacks=[], strategy=strategy)
    losses = [torch.tensor(v) for v in [2.0, 1.9, float("inf"), float("nan")]]
    with monkeypatch.context() as m:
        def read(*args):  # type: ignore[no-untyped-def]
            raise AssertionError("a loss was read on the host during a step")

        for name in ["item", "tolist", "__float__", "__bool__"]:  # every way to read a value
            m.setattr(torch.Tensor, name, read)
        for step, loss in enumerate(losses):
            trainer.global_step = step
            guard.on_before_backward(trainer, None, loss)  # type: ignore[arg-type]
    with pytest.raises(NonFiniteLossError, match=r"became inf at step 3; training stopped at step 3"):
        guard.check(trainer)  # type: ignore[arg-type]
    guard.check(trainer)  # type: ignore[arg-type]  # read once: nothing left to report


@pytest.mark.slow  # a training run (2-3 s); the fast test below checks the sums themselves
def test_validation_loss_is_the_exact_loss_of_the_whole_split(tmp_path, capsys) -> None:
    corpus = write_corpus(tmp_path / "corpus.txt", n_chars=3000)
    run = tmp_path / "run"
    # val_batch_size=7: several batches, the last one short, so the per-batch weights matter.
    args = bare_train_args(corpus, run, "trainer.max_steps=3", "trainer.val_check_interval=3",
                           "data.val_batch_size=7")
    code, _, err = run_main(train_main, args, capsys)
    assert code == 0, err
    trained = load(run)
    ids = load_encoded(corpus, trained.tokenizer).ids
    expected = evaluate_text(trained.model, ids[int(len(ids) * 0.9):], batch_size=5)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["step"] == 3
    assert metrics["val_loss"] == pytest.approx(expected.loss, rel=1e-6)


def test_validation_steps_read_nothing_on_the_host(monkeypatch) -> None:
    from chargpt.data.windows import IGNORE_INDEX
    from chargpt.training import CharLM

    module = CharLM({"n_layer": 1, "n_head": 2, "n_embd": 32, "block_size": 8}, list("abcdefgh")).eval()
    x = torch.randint(0, 8, (3, 8), generator=torch.Generator().manual_seed(0))
    y = torch.randint(0, 8, (3, 8), generator=torch.Generator().manual_seed(1))
    y[2, 5:] = IGNORE_INDEX  # a short last window: 5 of its 8 targets scored
    module.on_validation_epoch_start()
    with monkeypatch.context() as m, torch.no_grad():
        def read(*args):  # type: ignore[no-untyped-def]
            raise AssertionError("a value was read on the host during a validation step")

        for name in ["item", "tolist", "__int__", "__float__", "__bool__"]:
            m.setattr(torch.Tensor, name, read)
        module.validation_step((x[:2], y[:2]), 0)
        module.validation_step((x[2:], y[2:]), 1)
    total, count = module._val_sums  # type: ignore[misc]
    with torch.no_grad():
        logits, _ = module(x)
        expected = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.size(-1)), y.reshape(-1), ignore_index=IGNORE_INDEX, reduction="sum"
        )
    assert int(count) == 16 + 5
    assert float(total) == pytest.approx(float(expected), rel=1e-6)


# Tensor methods that copy a value to the host (and so wait for the device on a GPU).
READS = ["item", "tolist", "__bool__", "__float__", "__int__", "__index__", "cpu", "numpy", "__format__"]
LOG_EVERY = 10


@pytest.fixture
def reads_by_step(monkeypatch: pytest.MonkeyPatch) -> Counter[int]:
    """Reads of floating-point tensors (the losses, rates and norms a step computes; the data's
    indices are integers on the host), by the step whose batch started last."""
    counts: Counter[int] = Counter()
    step = {"now": -1, "bar_reading": False}
    for name in READS:
        original = getattr(torch.Tensor, name)

        def counting(self, *args, __original=original, **kwargs):  # type: ignore[no-untyped-def]
            if self.is_floating_point() and not step["bar_reading"]:
                counts[step["now"]] += 1
            return __original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counting)

    # The bar's reads that do not wait: on the CPU they read the value itself, on a GPU a copy that
    # has arrived (test_bar_reads_a_cuda_value_without_waiting_for_the_device), so they are not counted.
    read = _HostValues.read

    def bar_read(self, name, value, wait=False):  # type: ignore[no-untyped-def]
        step["bar_reading"] = not wait
        try:
            return read(self, name, value, wait)
        finally:
            step["bar_reading"] = False

    monkeypatch.setattr(_HostValues, "read", bar_read)

    def on_train_batch_start(self, batch, batch_idx):  # type: ignore[no-untyped-def]
        step["now"] = self.trainer.global_step

    monkeypatch.setattr(CharLM, "on_train_batch_start", on_train_batch_start)
    return counts


@pytest.mark.slow
def test_steps_between_logs_read_nothing_on_the_host(tmp_path: Path, capsys, reads_by_step) -> None:
    corpus = write_corpus(tmp_path / "corpus.txt")
    steps = 30
    args = [
        "data=text", f"data.path={corpus}", "data.batch_size=4", *TINY_MODEL, f"trainer.max_steps={steps}",
        f"trainer.log_every_n_steps={LOG_EVERY}", "sample.max_new_tokens=0",
        f"hydra.run.dir={tmp_path / 'run'}",
        "+callbacks.progress_bar.min_interval=0",  # the bar refreshes at every step
    ]
    code, _, err = run_main(train_main, args, capsys)
    assert code == 0, err
    assert "train/loss" in err  # the bar shows the loss (read at the last step)
    # Steps 9, 19 and 29 log (the loggers and the loss check read then); the last one also
    # validates and saves. Every other step reads nothing. With Lightning's prog_bar=True every
    # step read the loss; a bar that read its value at each refresh would too.
    quiet = [s for s in range(1, steps - 1) if (s + 1) % LOG_EVERY]
    assert {s: reads_by_step[s] for s in quiet if reads_by_step[s]} == {}
    assert reads_by_step[LOG_EVERY - 1] > 0  # (the count sees the reads a logging step makes)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_bar_reads_a_cuda_value_without_waiting_for_the_device() -> None:
    values = _HostValues()
    loss = torch.tensor(2.5, device="cuda")
    torch.cuda.set_sync_debug_mode("error")  # any synchronising call raises
    try:
        first = values.read("train/loss", loss)
        torch.cuda._sleep(10_000_000)  # keep the device busy: a read that waited would stall
        for _ in range(3):
            values.read("train/loss", loss * 2)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert first is None  # nothing has arrived at the first read
    torch.cuda.synchronize()
    assert values.read("train/loss", loss * 2) in (2.5, 5.0)  # an arrived copy: one refresh late
    assert values.read("train/loss", loss * 3, wait=True) == 7.5  # waiting reads the value itself


def test_bar_shows_the_named_values_and_warns_of_a_name_never_logged(caplog) -> None:
    bar = StepProgressBar(metrics=["train/loss", "val/loss", "val/los"])
    trainer = SimpleNamespace(callback_metrics={"train/loss": torch.tensor(2.0)})
    assert bar._metrics(trainer, wait=False) == "train/loss 2.0000"  # type: ignore[arg-type]
    trainer.callback_metrics["val/loss"] = torch.tensor(1.5)  # after a validation
    trainer.callback_metrics["val/bpc"] = torch.tensor(2.2)  # logged, not asked for
    assert bar._metrics(trainer, wait=True) == "train/loss 2.0000  val/loss 1.5000"  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING):
        bar.on_train_end(trainer, None)  # type: ignore[arg-type]
    [record] = caplog.records
    assert "no logged value named 'val/los'" in record.getMessage() and "val/bpc" in record.getMessage()
    assert StepProgressBar(metrics="val/loss").metrics == ["val/loss"]  # one name, not its characters
