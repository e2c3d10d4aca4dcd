"""LightningModule: wraps the language model with its loss, logging and optimizer."""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from torch.optim.lr_scheduler import LambdaLR

from chargpt.data.tokenizer import CharTokenizer
from chargpt.data.windows import IGNORE_INDEX
from chargpt.model import ModelConfig, build_model
from chargpt.training.optim import build_optimizer


class CharLM(L.LightningModule):
    """Every argument is a plain container, so checkpoints load with weights-only unpickling and
    carry all a sampler needs (architecture and vocabulary)."""

    def __init__(
        self,
        model: dict[str, Any],
        vocab: list[str],
        optimizer: dict[str, Any] | None = None,
        scheduler: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.config = ModelConfig.from_dict(model)
        self.tokenizer = CharTokenizer(vocab)
        self.model = build_model(self.config, self.tokenizer.vocab_size)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        return self.model(idx, targets)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        _, loss = self.model(x, y)
        self.log("train/loss", loss, prog_bar=True)
        self.log("train/lr", self.optimizers().param_groups[0]["lr"])
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        _, loss = self.model(x, y)
        # Weighted by scored targets, so the epoch mean is the exact per-character loss of the split.
        n = int((y != IGNORE_INDEX).sum())
        self.log("val/loss", loss, batch_size=n, prog_bar=True)
        self.log("val/bpc", loss / math.log(2), batch_size=n)

    def configure_optimizers(self) -> dict[str, Any]:
        optimizer = build_optimizer(self.model, self.hparams.optimizer)
        if not self.hparams.scheduler:
            return {"optimizer": optimizer}
        schedule = instantiate(self.hparams.scheduler)
        trainer = self.trainer
        # Read max_steps at every step: a time budget may fix it after a few calibration steps.
        scheduler = LambdaLR(optimizer, lambda step: schedule(step, trainer.max_steps))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
