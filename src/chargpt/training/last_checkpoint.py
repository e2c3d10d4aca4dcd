"""ModelCheckpoint whose last.ckpt is refreshed at every validation.

Lightning 2.6 rewrites last.ckpt only when a top-k checkpoint is saved at the same step, so after a
validation that does not improve the monitored loss, last.ckpt stays behind and a resume from
the run directory would silently lose the steps since the best one.
"""

from __future__ import annotations

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint


class LatestCheckpoint(ModelCheckpoint):
    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        if self.save_last and not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
