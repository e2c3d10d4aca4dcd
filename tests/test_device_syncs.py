"""The training and validation steps do not wait for the device each step: the NaN guard reads the
losses in batches, validation counts its targets on the device. What they promise is unchanged."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import pytest
import torch

from chargpt import load
from chargpt.cli.train import main as train_main
from chargpt.data.encoding import load_encoded
from chargpt.inference import evaluate
from chargpt.training.callbacks.safety import NonFiniteGuard, NonFiniteLossError
from conftest import StepHook, assert_stopped_on_nan, bare_train_args, poison_weights, run_main, write_corpus


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
    expected = evaluate(trained.model, ids[int(len(ids) * 0.9):], batch_size=5)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["step"] == 3
    assert metrics["val_loss"] == pytest.approx(expected["loss"], rel=1e-6)


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
