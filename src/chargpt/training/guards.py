"""Stop on a non-finite loss before it reaches the weights, and never checkpoint broken weights."""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from chargpt.errors import ChargptError


class NonFiniteLossError(ChargptError):
    """The loss (or the weights) became NaN or infinite."""


def _last_checkpoint(trainer: L.Trainer) -> str:
    callback = trainer.checkpoint_callback
    path = getattr(callback, "last_model_path", "") or getattr(callback, "best_model_path", "")
    return f"the last checkpoint {path} is kept" if path else "no checkpoint had been written yet"


class NonFiniteGuard(Callback):
    """Raises before backward when any rank's loss is NaN/inf: the optimizer never applies it, and
    no checkpoint is written after it. Checkpoints with non-finite weights are refused outright."""

    def on_before_backward(
        self, trainer: L.Trainer, pl_module: L.LightningModule, loss: torch.Tensor
    ) -> None:
        bad = not math.isfinite(loss.item())  # one read of the scalar (as bool(tensor) would sync)
        if trainer.strategy.reduce_boolean_decision(bad, all=False):
            raise NonFiniteLossError(
                f"the training loss became {float(loss.detach()):.4g} at step {trainer.global_step + 1}; "
                f"training stopped before that step changed the weights and {_last_checkpoint(trainer)}. "
                "Lower optimizer.lr or set trainer.gradient_clip_val, then resume with ckpt_path=RUN_DIR"
            )

    def on_save_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        broken = [name for name, p in pl_module.named_parameters() if not bool(torch.isfinite(p).all())]
        if broken:
            raise NonFiniteLossError(
                f"the weights are not finite at step {trainer.global_step} ({', '.join(broken[:3])}); "
                f"no checkpoint was written and {_last_checkpoint(trainer)}. "
                "Lower optimizer.lr or set trainer.gradient_clip_val, then resume with ckpt_path=RUN_DIR"
            )
