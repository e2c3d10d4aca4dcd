"""The names a run logs its values under: the loggers' tags and CSV columns, what a checkpoint
callback may monitor, and the loss the best checkpoint is kept and scored by (val/loss); and how
a line on the terminal shows a loss."""

from __future__ import annotations

# Every value is logged at the number of optimizer steps taken (step 150 after 150 steps), as the
# terminal, checkpoint names and metrics.json count: a metric named `step` sets the loggers' x-axis.
STEP = "step"
TRAIN_LOSS = "train/loss"
TRAIN_LR = "train/lr"  # with named parameter groups (Muon's and AdamW's), one rate each: group_rate
TRAIN_GRAD_NORM = "train/grad_norm"
TRAIN_TOKENS_PER_SEC = "train/tokens_per_sec"
TRAIN_STEP_TIME_MS = "train/step_time_ms"
VAL_LOSS = "val/loss"
VAL_BPC = "val/bpc"

# What a checkpoint callback may monitor: what a run logs (the module, and the train monitor), and
# the step (monitor=step mode=max keeps the newest checkpoints); the per-group rates too.
MONITORABLE = (VAL_LOSS, VAL_BPC, TRAIN_LOSS, STEP, TRAIN_LR, TRAIN_GRAD_NORM,
               TRAIN_TOKENS_PER_SEC, TRAIN_STEP_TIME_MS)


def group_rate(group: str) -> str:
    """The name a parameter group's learning rate is logged under ("": the optimizer's one rate)."""
    return f"{TRAIN_LR}/{group}" if group else TRAIN_LR


def is_monitorable(name: object) -> bool:
    return name in MONITORABLE or str(name).startswith(f"{TRAIN_LR}/")


def loss_shown(loss: float | None) -> str:
    """A loss as a line on the terminal gives it: 4 decimals; "n/a" where none was scored."""
    return "n/a" if loss is None else f"{loss:.4f}"
