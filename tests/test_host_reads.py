"""A training step that does not log, check the loss, validate or end reads no value on the host.

On a GPU each such read (`item()`, `float()`, `tolist()`, ...) waits for all the work queued on
the device, so one per step stalls every step. The same reads are visible on the CPU: these tests
count them with the default callbacks, logger and progress bar. (`scripts/gpu_check.py` counts the
synchronisations themselves on a GPU.)
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import torch

from chargpt.cli.train import main as train_main
from chargpt.training.callbacks.progress import _HostValues
from chargpt.training.module import CharLM
from conftest import TINY_MODEL, run_main, write_corpus

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
