"""Stop on a non-finite loss before its weights are validated or saved.

The training loss is read every `check_every` steps (and on logged and last steps), not each
step: reading it waits for the device. A validation loss that is not finite (weights too large to
score after a finite training loss) stops the run too, before it is recorded or saved as the best.
"""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from chargpt.checks import whole_number
from chargpt.errors import ChargptError
from chargpt.metric_names import VAL_LOSS
from chargpt.training.callbacks.checkpointing import latest_checkpoint_kept
from chargpt.training.lightning_internals import is_accumulating, logs_this_step
from chargpt.training.steps import is_last_step


class NonFiniteLossError(ChargptError):
    """The loss (or the weights) became NaN or infinite. `resumable`: a checkpoint is kept to resume
    from; the command line finishes the advice with the run's own resume command (training/ cannot
    tell it: a resume by ckpt_path alone would take the defaults for every other setting)."""

    def __init__(self, message: str, resumable: bool = False) -> None:
        super().__init__(message)
        self.resumable = resumable

    def __reduce__(self) -> tuple[type, tuple[str, bool]]:  # pickled whole (a parallel sweep's job)
        return type(self), (str(self), self.resumable)


RESUME_ADVICE = "then resume the run from it"


def _settings_to_change(trainer: L.Trainer) -> str:
    """The learning rate, and the clipping: lowered where the run clips already (the default 1.0),
    set where it does not ("set trainer.gradient_clip_val" read as unset where it was 1.0)."""
    clip = getattr(trainer, "gradient_clip_val", None)
    if clip:
        return f"Lower optimizer.lr or trainer.gradient_clip_val (now {clip})"
    return "Lower optimizer.lr or set trainer.gradient_clip_val (e.g. 1.0)"


def _last_checkpoint(trainer: L.Trainer) -> str:
    """What is kept, and what to do next: resume from the last checkpoint (RESUME_ADVICE), or, with
    none written yet, start again."""
    path = latest_checkpoint_kept(trainer)
    if path:
        return f"the last checkpoint {path} is kept. {_settings_to_change(trainer)}, {RESUME_ADVICE}"
    return f"no checkpoint had been written yet. {_settings_to_change(trainer)}, then start the run again"


def _stopped(message: str, trainer: L.Trainer) -> NonFiniteLossError:
    return NonFiniteLossError(message, resumable=bool(latest_checkpoint_kept(trainer)))


def val_loss_not_finite(trainer: L.Trainer) -> bool:
    """Whether the validation just run scored NaN or infinity (weights too large to score): the
    guard stops the run then, and no other callback records or samples those weights."""
    val = trainer.callback_metrics.get(VAL_LOSS)
    return not trainer.sanity_checking and val is not None and not math.isfinite(float(val))


class NonFiniteGuard(Callback):
    """Stops the run when any rank's loss is NaN/inf, before the weights that loss changed are
    validated, logged or saved; checkpoints with non-finite weights are refused outright.

    Why not check each step as it happens: reading the loss on the host (`loss.item()`) waits for
    the accelerator to finish the step, one stall per step. Skipping the update on the device
    instead would need every optimizer to honour a device-side flag (only fused AdamW has one), so
    the guard keeps each step's detached loss (a reference, no device work) and reads them all at
    once, one read per check: at the steps whose values the loggers write, every `check_every`
    steps, at the last step, before every validation and checkpoint, and when training ends. A bad
    step is thus found within `check_every` steps, and the weights it produced never reach a
    checkpoint, a validation score or a logged value.
    """

    def __init__(self, check_every: int = 100) -> None:
        self.check_every = self.check_settings(check_every)
        self._pending: list[tuple[int, torch.Tensor]] = []  # (step, its loss) not yet read

    @staticmethod
    def check_settings(check_every: object) -> int:
        """What the constructor checks, and a run before it reads any data (run_checks)."""
        return whole_number("check_every", check_every, low=1)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._pending = []

    def on_before_backward(
        self, trainer: L.Trainer, pl_module: L.LightningModule, loss: torch.Tensor
    ) -> None:
        self._pending.append((trainer.global_step + 1, loss.detach()))

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        if is_accumulating(trainer):
            return  # not a step boundary: the loggers, checkpoints and validation wait for one
        if len(self._pending) >= self.check_every or logs_this_step(trainer) or is_last_step(trainer):
            self.check(trainer)

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.check(trainer)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """A finite training loss can still leave weights too large to score (one huge step): a
        NaN validation loss would be recorded as the run's best and saved as its best checkpoint.
        Runs before the checkpoints take the value (Lightning runs them last); RunMetrics leaves a
        non-finite value out of the run's figures whatever the order."""
        bad = val_loss_not_finite(trainer)
        if not trainer.strategy.reduce_boolean_decision(bad, all=False):  # every rank stops, or none
            return
        if not bad:
            raise _stopped(f"the validation loss was not finite on another rank at step "
                           f"{trainer.global_step}: {_last_checkpoint(trainer)}", trainer)
        raise _stopped(
            f"the validation loss is {float(trainer.callback_metrics[VAL_LOSS]):.4g} at step "
            f"{trainer.global_step}: the weights give "
            f"non-finite outputs though the training loss was finite, and were not saved: "
            f"{_last_checkpoint(trainer)}", trainer
        )

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.check(trainer)

    def check(self, trainer: L.Trainer) -> None:
        """Read the losses kept since the last check (one device-to-host copy) and stop on the
        first non-finite one. Every rank calls this at the same points (it agrees with the others)."""
        pending, self._pending = self._pending, []
        values = torch.stack([loss.float() for _, loss in pending]).tolist() if pending else []
        steps = [step for step, _ in pending]
        first = next(((s, v) for s, v in zip(steps, values, strict=True) if not math.isfinite(v)), None)
        if trainer.strategy.reduce_boolean_decision(first is not None, all=False):
            what = f"became {first[1]:.4g} at step {first[0]}" if first else "was not finite on another rank"
            raise _stopped(
                f"the training loss {what}; training stopped at step {trainer.global_step} and no "
                f"weights from that step on were validated or saved: {_last_checkpoint(trainer)}", trainer
            )

    def on_save_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        self.check(trainer)  # a loss not read yet: its weights must not be saved either
        broken = [name for name, p in pl_module.named_parameters() if not bool(torch.isfinite(p).all())]
        if broken:
            raise _stopped(
                f"the weights are not finite at step {trainer.global_step} ({', '.join(broken[:3])}); "
                f"no checkpoint was written and {_last_checkpoint(trainer)}", trainer
            )
