"""The run's figures: a final validation at the last step, and metrics.json after each validation."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback

from chargpt.files import write_json_atomic
from chargpt.training.steps import is_last_step


class ValidateAtEnd(Callback):
    """Stop (and so validate and checkpoint) at max_steps even when it is not a multiple of
    val_check_interval: the last weights are always scored and saved."""

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        if is_last_step(trainer):
            trainer.should_stop = True


class RunMetrics(Callback):
    """Writes metrics.json in the run directory after each validation (rank 0 only).

    Wall time spent in fit is carried in the checkpoint, so a resumed run reports the whole run.
    """

    def __init__(self, output_dir: str) -> None:
        self.path = Path(output_dir) / "metrics.json"
        self.previous_seconds = 0.0
        self.best_val_loss: float | None = None
        self._start = time.perf_counter()

    def train_seconds(self) -> float:
        return self.previous_seconds + time.perf_counter() - self._start

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start = time.perf_counter()

    def state_dict(self) -> dict[str, float | None]:
        return {"train_seconds": self.train_seconds(), "best_val_loss": self.best_val_loss}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.previous_seconds = float(state_dict.get("train_seconds", 0.0))
        self.best_val_loss = state_dict.get("best_val_loss")

    def metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any]:
        dm = trainer.datamodule
        tokens_per_step = dm.batch_size * dm.block_size * trainer.world_size * trainer.accumulate_grad_batches
        tokens = trainer.global_step * tokens_per_step
        seconds = self.train_seconds()
        val = trainer.callback_metrics.get("val/loss")
        return {
            "best_val_loss": self.best_val_loss,
            "val_loss": float(val) if val is not None else None,
            "step": trainer.global_step,
            "max_steps": trainer.max_steps,  # the count a time budget picked, when one is set
            "tokens": tokens,
            "train_seconds": round(seconds, 3),
            "tokens_per_second": round(tokens / seconds, 1) if seconds > 0 else None,
            "params": sum(p.numel() for p in pl_module.parameters()),
            # {"chars", "split_chars", "capped"}: the whole validation split, or a fixed prefix of it
            "validation": getattr(dm, "val_scope", None),
        }

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        val = trainer.callback_metrics.get("val/loss")
        if val is not None and (self.best_val_loss is None or float(val) < self.best_val_loss):
            self.best_val_loss = float(val)
        if trainer.is_global_zero:
            write_json_atomic(self.path, self.metrics(trainer, pl_module))
