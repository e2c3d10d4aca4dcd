"""The progress bar: optimizer steps toward the run's total, and the time that is left.

Built on Lightning's public ProgressBar interface with rich. It counts optimizer steps (not
batches: gradient accumulation does not inflate it) from the step a resumed run starts at, toward
the run's total (trainer.max_steps, max_epochs or a time budget's count: steps.total_steps). A
budgeted run shows the time left in its budget (and "?" as its total until calibration picks it);
others, a resumed budgeted run included (it has no deadline of its own), show the estimated time to
the end.

It shows the metrics it is given by name (the training and validation loss), read from the
trainer's callback metrics; on a CUDA device it reads them without waiting for it. The module logs
nothing with `prog_bar=True`: Lightning converts such values to Python numbers after every batch,
a host synchronisation per step even when the value was logged steps ago.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ProgressBar
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Column
from rich.text import Text

from chargpt.metric_names import TRAIN_LOSS, VAL_LOSS
from chargpt.training.callbacks.budget import TimeBudget
from chargpt.training.steps import is_last_step, total_steps

log = logging.getLogger(__name__)

FILE_WIDTH = 160  # columns of the bar written to a file (stderr redirected)


def _clock(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class _TimeLeftColumn(ProgressColumn):
    """The budget's time left for a run its budget ends; rich's estimate to the end otherwise (a run
    that a step limit ends first, and a resumed budgeted run: it trains to its planned count with no
    deadline; a countdown would mislead)."""

    def __init__(self, bar: StepProgressBar) -> None:
        super().__init__(table_column=Column(no_wrap=True))  # "budget 0:00:07 left" on one line
        self.bar, self.estimate = bar, TimeRemainingColumn()

    def render(self, task: Task) -> Text:
        budget = self.bar.budget
        if budget is not None and budget.counts_down and task.fields.get("kind") == "train":
            return Text(f"budget {_clock(budget.deadline - budget.clock())} left", style="progress.remaining")
        return self.estimate.render(task)


class _HostValues:
    """Scalars on an accelerator, read on the host without waiting for it.

    A read of a CUDA value starts an asynchronous copy to the host and returns the latest copy that
    has arrived (None before the first has): the display lags by one refresh, and the queue of
    device work never drains for it. `wait=True` reads the value itself (at the last step, after a
    validation); values on the CPU are always read as they are.
    """

    def __init__(self) -> None:
        self._arriving: dict[str, tuple[torch.Tensor, torch.cuda.Event]] = {}
        self._arrived: dict[str, float] = {}

    def read(self, name: str, value: torch.Tensor, wait: bool = False) -> float | None:
        if not value.is_cuda or wait:
            self._arriving.pop(name, None)
            self._arrived[name] = value.item()
            return self._arrived[name]
        arriving = self._arriving.get(name)
        if arriving is not None and arriving[1].query():
            self._arrived[name] = arriving[0].item()  # a host tensor now: no device wait
            arriving = None
        if arriving is None:
            copy = value.detach().to("cpu", non_blocking=True)  # into pinned memory, queued
            event = torch.cuda.Event()
            event.record(torch.cuda.current_stream(value.device))  # the stream the copy is queued on
            self._arriving[name] = (copy, event)
        return self._arrived.get(name)


class StepProgressBar(ProgressBar):
    """A rich bar of optimizer steps (and one of validation batches while validating).

    It takes in a training step's progress at most every `min_interval` seconds (and at the last
    step), with the values of `metrics` that the run has logged so far.
    """

    def __init__(
        self, min_interval: float = 0.2, refresh_per_second: float = 4.0,
        metrics: Sequence[str] = (TRAIN_LOSS, VAL_LOSS),
    ) -> None:
        super().__init__()
        self.min_interval, self.refresh_per_second = min_interval, refresh_per_second
        self.metrics = [metrics] if isinstance(metrics, str) else list(metrics)
        self._values = _HostValues()
        self._shown: set[str] = set()  # the names a value was found for, to warn of the others
        self.progress: Progress | None = None
        self.train_task: TaskID | None = None
        self.val_task: TaskID | None = None
        self.budget: TimeBudget | None = None
        self._enabled = True
        self._last_update = -math.inf

    # --- ProgressBar's interface --------------------------------------------------------------
    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    @property
    def is_enabled(self) -> bool:
        return self._enabled

    def print(self, *args: Any, **kwargs: Any) -> None:
        if self.progress is not None:
            self.progress.console.print(*args, **kwargs)
        else:
            print(*args, **kwargs)

    # --- display --------------------------------------------------------------------------------
    def _start(self) -> Progress | None:
        if self.progress is None and self.is_enabled:
            console = Console(file=sys.stderr)
            if not console.is_terminal and "COLUMNS" not in os.environ:
                # A log file gets the bar once, as the run ends: rich's default 80 columns for a
                # file would wrap it over two lines.
                console.width = FILE_WIDTH
            metrics = TextColumn("{task.fields[metrics]}", table_column=Column(no_wrap=True))
            self.progress = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                _TimeLeftColumn(self), metrics,
                console=console, refresh_per_second=self.refresh_per_second,
            )
            self.progress.start()
        return self.progress

    def _stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()
        self.progress, self.train_task, self.val_task = None, None, None

    def _metrics(self, trainer: L.Trainer, wait: bool) -> str:
        logged = trainer.callback_metrics  # tensors as logged: nothing is read from the device here
        shown = []
        for name in self.metrics:
            value = logged.get(name)
            if value is not None:
                self._shown.add(name)
            if isinstance(value, torch.Tensor):
                value = self._values.read(name, value, wait)
            if value is not None:
                shown.append(f"{name} {value:.4f}")
        return "  ".join(shown)

    def _total(self, trainer: L.Trainer) -> int | None:
        """The run's total steps; unknown (None) while a time budget is still calibrating, unless
        the run's step limit ends it before the budget plans."""
        if self.budget is not None and self.budget.planned_steps is None and not self.budget.ends_before_plan:
            return None
        total = total_steps(trainer)
        return total if total > 0 else None

    def _update_train(self, trainer: L.Trainer, wait: bool = False) -> None:
        if self.progress is not None and self.train_task is not None:
            self.progress.update(
                self.train_task, completed=trainer.global_step, total=self._total(trainer),
                metrics=self._metrics(trainer, wait),
            )

    # --- hooks ------------------------------------------------------------------------------------
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.budget = next((c for c in trainer.callbacks if isinstance(c, TimeBudget) and c.active), None)
        if self.budget is not None and self.budget.planned_steps is None:
            self.budget.note_launch(trainer)  # whether its step limit ends the run before it plans
        progress = self._start()
        if progress is not None:
            self.train_task = progress.add_task(
                "train", total=self._total(trainer), completed=trainer.global_step, kind="train", metrics=""
            )

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        now, last = time.monotonic(), is_last_step(trainer)
        if now - self._last_update >= self.min_interval or last:
            self._last_update = now
            self._update_train(trainer, wait=last)  # the last step shows its own values

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        progress = None if trainer.sanity_checking else self._start()
        if progress is not None:
            total = self.total_val_batches
            self.val_task = progress.add_task(
                "val", total=int(total) if math.isfinite(total) else None, kind="val", metrics=""
            )

    def on_validation_batch_end(self, trainer: L.Trainer, *args: Any, **kwargs: Any) -> None:
        if self.progress is not None and self.val_task is not None:
            self.progress.advance(self.val_task)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.progress is not None and self.val_task is not None:
            self.progress.remove_task(self.val_task)
            self.val_task = None
            self._update_train(trainer, wait=True)  # the new val/loss (validation has waited already)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        never = [name for name in self.metrics if name not in self._shown]
        if never and self.is_enabled:
            logged = ", ".join(sorted(trainer.callback_metrics)) or "none"
            log.warning(
                "the progress bar found no logged value named %s (logged: %s); "
                "callbacks.progress_bar.metrics names the values it shows",
                ", ".join(repr(n) for n in never), logged,
            )

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._stop()

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        self._stop()
