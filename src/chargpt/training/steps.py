"""Where a run is in its optimizer steps: the run's total, and "this is the last step".

Training is counted in optimizer steps. `trainer.max_steps`, `trainer.max_epochs` or both say how
many; `fix_total_steps` turns them into one count before fitting, and the trainer's max_steps holds
it from then on (a time budget may lower it during the run), so it is read each time, never cached.
The schedule, the data loader and the progress bar all read that total.

An epoch is one pass over the training split's characters: ceil(train_chars / (batch_size *
block_size * world_size)) batches, which gradient accumulation groups into optimizer steps.
"""

from __future__ import annotations

import math

import lightning as L

from chargpt.errors import ConfigError


def batches_per_epoch(train_chars: int, batch_size: int, block_size: int, world_size: int = 1) -> int:
    """Batches (per process) that draw as many characters as the training split holds."""
    return max(1, math.ceil(train_chars / (batch_size * block_size * world_size)))


def steps_per_epoch(batches: int, accumulation: int = 1) -> int:
    return max(1, math.ceil(batches / accumulation))


def planned_total_steps(max_steps: int, max_epochs: int | None, per_epoch: int) -> int:
    """The run's total optimizer steps: max_steps, max_epochs epochs, or the first reached of both
    (Lightning's rule). -1 (or null epochs) leaves that limit unset; one of them must be set."""
    # 0 is allowed: no training, e.g. to score a fine-tuning's starting point.
    if max_steps < -1:
        raise ConfigError(
            f"trainer.max_steps={max_steps} must be a number of steps (or -1 to count epochs)"
        )
    if max_epochs is not None and max_epochs < -1:
        raise ConfigError(
            f"trainer.max_epochs={max_epochs} must be a number of epochs (or -1 to count steps)"
        )
    limits = step_limits(max_steps, max_epochs, per_epoch)
    if not limits:
        raise ConfigError(
            f"trainer.max_steps=-1 and trainer.max_epochs={'null' if max_epochs is None else max_epochs} "
            "leave the run without an end (and the "
            "learning-rate schedule without a length); set trainer.max_steps=N or trainer.max_epochs=N "
            f"(one epoch here is {per_epoch} steps)"
        )
    return min(limits)[0]


def step_limits(max_steps: int | None, max_epochs: int | None, per_epoch: int) -> list[tuple[int, str]]:
    """The limits that end a run, as (steps, the setting that sets them): trainer.max_steps, and
    trainer.max_epochs epochs of `per_epoch` steps; -1 or None sets none. The first reached ends it."""
    limits = []
    if max_steps is not None and max_steps >= 0:
        limits.append((max_steps, f"trainer.max_steps={max_steps}"))
    if max_epochs is not None and max_epochs >= 0:
        limits.append((max_epochs * per_epoch, f"trainer.max_epochs={max_epochs}"))
    return limits


def set_total_steps(trainer: L.Trainer, steps: int) -> None:
    """Make `steps` the run's total (the trainer stops there; everything else reads it)."""
    trainer.fit_loop.epoch_loop.max_steps = steps  # see lightning_internals.py


def epoch_steps(trainer: L.Trainer, train_chars: int, batch_size: int, block_size: int) -> int:
    """The optimizer steps of one epoch of this trainer's run."""
    batches = batches_per_epoch(train_chars, batch_size, block_size, trainer.world_size)
    return steps_per_epoch(batches, trainer.accumulate_grad_batches)


def fix_total_steps(trainer: L.Trainer, train_chars: int, batch_size: int, block_size: int) -> int:
    """Turn the trainer's max_steps / max_epochs into the run's total optimizer steps."""
    per_epoch = epoch_steps(trainer, train_chars, batch_size, block_size)
    total = planned_total_steps(trainer.max_steps, trainer.max_epochs, per_epoch)
    set_total_steps(trainer, total)
    return total


def total_steps(trainer: L.Trainer) -> int:
    """The run's total optimizer steps (as fixed before fitting, or lowered by a time budget)."""
    return trainer.max_steps


def step_limit(trainer: L.Trainer, per_epoch: int) -> str:
    """The setting the run's total (as fix_total_steps fixed it) comes from, to name what to raise:
    `trainer.max_epochs=N` where that many epochs of `per_epoch` steps end the run, else
    `trainer.max_steps=N`."""
    epochs = trainer.max_epochs
    if epochs is not None and epochs >= 0 and epochs * per_epoch == total_steps(trainer):
        return f"trainer.max_epochs={epochs}"
    return f"trainer.max_steps={total_steps(trainer)}"


def is_last_step(trainer: L.Trainer, pending: int = 0) -> bool:
    """True once the run has taken its last optimizer step. `pending=1` asks it from inside a
    training step, before Lightning counts the step being taken."""
    return 0 < total_steps(trainer) <= trainer.global_step + pending
