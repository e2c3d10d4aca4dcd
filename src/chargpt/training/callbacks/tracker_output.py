"""Where a callback's output goes: the run's TensorBoard writer, and pictures to every tracker that
keeps them. Written on rank 0 only."""

from __future__ import annotations

import lightning as L
import numpy as np
from lightning.pytorch.loggers import MLFlowLogger, TensorBoardLogger, WandbLogger
from torch.utils.tensorboard import SummaryWriter

from chargpt.distributed import is_rank_zero


def tensorboard_writer(trainer: L.Trainer) -> SummaryWriter | None:
    """The SummaryWriter of the run's TensorBoard logger, on rank 0 only."""
    if not is_rank_zero():
        return None
    logger = next((lg for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)), None)
    return logger.experiment if logger is not None else None


def takes_images(trainer: L.Trainer) -> bool:
    """Whether a configured logger keeps pictures (TensorBoard, MLflow, W&B; not CSV)."""
    return any(isinstance(lg, (TensorBoardLogger, MLFlowLogger, WandbLogger)) for lg in trainer.loggers)


def log_image(trainer: L.Trainer, key: str, picture: np.ndarray, step: int) -> None:
    """An RGB picture (H, W, 3, uint8) to every logger that keeps pictures, at `step`."""
    if not is_rank_zero():
        return
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.experiment.add_image(key, picture, step, dataformats="HWC")
        elif isinstance(logger, MLFlowLogger):
            logger.experiment.log_image(logger.run_id, picture, key=key.replace("/", "_"), step=step)
        elif isinstance(logger, WandbLogger):
            logger.log_image(key, [picture], step=step)
