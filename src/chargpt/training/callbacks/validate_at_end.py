"""The last weights are always scored and saved: a run stops at its last step, where Lightning
validates and checkpoints, even when that step is not a multiple of trainer.val_check_interval."""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback

from chargpt.training.steps import is_last_step


class ValidateAtEnd(Callback):
    """Stop (and so validate and checkpoint) at max_steps even when it is not a multiple of
    val_check_interval."""

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        if is_last_step(trainer):
            trainer.should_stop = True
