"""The progress bar: training counted in optimizer steps."""

from __future__ import annotations

import math
import time
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import RichProgressBar

from chargpt.training.steps import is_last_step


class StepProgressBar(RichProgressBar):
    """Rich progress bar that labels the run by steps (runs are step-based: no epoch count).

    It takes in a training step's progress at most every `min_interval` seconds (and at the last
    step): rich's bookkeeping and reading the displayed metrics (a host sync on GPU) would otherwise
    cost every step of a small model a few percent.
    """

    def __init__(self, min_interval: float = 0.2, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.min_interval = min_interval
        self._last_update = -math.inf

    def _get_train_description(self, current_epoch: int) -> str:  # private hook: lightning_internals.py
        return "train"

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        now = time.monotonic()
        due = now - self._last_update >= self.min_interval or self.train_progress_bar_id is None
        if due or is_last_step(trainer):
            self._last_update = now
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
