"""What a training run records in its folder as it trains: status.json says running from its
first step, and a signal's stop is recorded as the signal stops it (on rank 0, which writes them)."""

from __future__ import annotations

import functools
from pathlib import Path

import lightning as L

from chargpt.runs.status import record_signalled, record_started
from chargpt.training.callbacks.graceful_interrupt import GracefulInterrupt


class RecordStart(L.Callback):
    """status.json says running from the first step trained: a resume refused before it (a
    budget added to a run that had none, ...) leaves the run's status as it was."""

    def __init__(self, run_dir: str) -> None:
        self.run_dir, self.done = run_dir, False

    def on_train_batch_start(self, *args: object) -> None:
        if not self.done:
            record_started(self.run_dir)
            self.done = True


def record_while_training(
    trainer: L.Trainer, run_dir: str, sweep_dir: Path | None, after_quitting: str | None
) -> None:
    """Records the run's start and a signal's stop in `run_dir`. `sweep_dir`: the sweep's folder, for
    a job run beside others in its own process (a signal stops every job); `after_quitting`: what the
    interruption's line says to do next (continue the sweep), if anything."""
    trainer.callbacks.append(RecordStart(run_dir))
    for callback in trainer.callbacks:
        if isinstance(callback, GracefulInterrupt):
            callback.on_signal = functools.partial(record_signalled, run_dir)
            callback.sweep_dir = sweep_dir
            callback.after_quitting = after_quitting
