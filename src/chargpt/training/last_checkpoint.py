"""ModelCheckpoint whose last.ckpt is refreshed at every validation.

Lightning 2.6 rewrites last.ckpt only when a top-k checkpoint is saved at the same step, so after a
validation that does not improve the monitored loss, last.ckpt stays behind and a resume from
the run directory would silently lose the steps since the best one.
"""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint


class LatestCheckpoint(ModelCheckpoint):
    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        # Lightning saves here only every_n_train_steps or every train_time_interval; with neither
        # set (the default: checkpoints follow validations) skip its per-step bookkeeping.
        if self._every_n_train_steps >= 1 or self._train_time_interval is not None:
            super().on_train_batch_end(trainer, pl_module, *args)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        if self.save_last and not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
