"""Training-speed and gradient scalars, computed only at the logging interval.

Between two logging steps nothing here touches the device: the gradient norm is computed only on
the step Lightning is about to log, and throughput is wall time over a window of steps, with one
device synchronisation at its end so queued GPU work is counted.
"""

from __future__ import annotations

import time
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from torch.optim import Optimizer

from chargpt.checks import yes_no
from chargpt.metric_names import TRAIN_GRAD_NORM, TRAIN_STEP_TIME_MS, TRAIN_TOKENS_PER_SEC
from chargpt.training.lightning_internals import is_accumulating, logs_this_step
from chargpt.training.steps import is_last_step


def total_grad_norm(module: torch.nn.Module) -> torch.Tensor | None:
    """The 2-norm of all gradients together (what gradient clipping compares with its threshold)."""
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    return torch.nn.utils.get_total_norm(grads) if grads else None


class TrainMonitor(Callback):
    """Logs `train/grad_norm` (before clipping), `train/tokens_per_sec` (all ranks together) and
    `train/step_time_ms` (per optimizer step) every `trainer.log_every_n_steps` steps.

    The throughput window restarts after each validation, so validation time is not counted.
    """

    def __init__(self, grad_norm: bool = True, throughput: bool = True) -> None:
        self.check_settings(grad_norm, throughput)
        self.grad_norm, self.throughput = grad_norm, throughput
        self._t0: float | None = None
        self._step0 = 0
        self._tokens = 0

    @staticmethod
    def check_settings(grad_norm: object, throughput: object) -> None:
        """What the constructor checks, and a run before it reads any data (run_checks)."""
        yes_no("grad_norm", grad_norm)
        yes_no("throughput", throughput)

    def on_before_optimizer_step(
        self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: Optimizer
    ) -> None:
        # Runs before Lightning clips the gradients, so this is the raw norm.
        if self.grad_norm and self._logging_now(trainer, pending=1):
            norm = total_grad_norm(pl_module)
            if norm is not None:
                pl_module.log(TRAIN_GRAD_NORM, norm, on_step=True, on_epoch=False)

    @staticmethod
    def _logging_now(trainer: L.Trainer, pending: int = 0) -> bool:
        # The last step too: the loggers write it whatever log_every_n_steps says, and the values
        # would otherwise be the previous logging step's again.
        return bool(trainer.loggers) and (logs_this_step(trainer) or is_last_step(trainer, pending))

    def on_train_batch_start(self, trainer: L.Trainer, *args: Any) -> None:
        if self._t0 is None:
            self._t0, self._step0, self._tokens = time.perf_counter(), trainer.global_step, 0

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if not self.throughput or self._t0 is None:
            return
        self._tokens += batch[0].numel()  # a shape, not a value: no device sync
        # Lightning's own test (as its LearningRateMonitor uses): is this step's log written?
        # (Checked first: it is false on all but one step in log_every_n_steps.)
        if not self._logging_now(trainer):
            return
        steps = trainer.global_step - self._step0
        if steps <= 0 or is_accumulating(trainer):
            return
        if trainer.strategy.root_device.type == "cuda":
            torch.cuda.synchronize()  # once per logging interval: count the queued GPU work
        seconds = time.perf_counter() - self._t0
        pl_module.log_dict(
            {
                TRAIN_TOKENS_PER_SEC: self._tokens * trainer.world_size / seconds,
                TRAIN_STEP_TIME_MS: 1000.0 * seconds / steps,
            },
            on_step=True,
            on_epoch=False,
        )
        self._t0, self._step0, self._tokens = time.perf_counter(), trainer.global_step, 0

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._t0 = None
