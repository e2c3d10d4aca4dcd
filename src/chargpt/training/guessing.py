"""The warning a run gets when it ends no better than a uniform guess over its vocabulary, after
going over its whole text: what it learnt does not carry over to the validation text."""

from __future__ import annotations

import logging
import math
from typing import Any

import lightning as L

from chargpt.metric_names import TRAIN_LOSS
from chargpt.training.callbacks.checkpointing import best_checkpoint_written

log = logging.getLogger(__name__)


def warn_if_no_better_than_guessing(
    m: dict[str, Any], trainer: L.Trainer, train_chars: int, vocab_size: int
) -> None:
    """A run that went over its whole text and ends worse than a uniform guess learnt what does not
    carry over: a short text memorised (docs/training.md's example: 244 epochs over 1,260
    characters, validation 5.10 against ln 47 = 3.85; validated every 20 steps, its best was 2.40).
    The figures alone do not say it, so say it (a log line: train.log keeps it)."""
    last, best, tokens = m.get("val_loss"), m.get("best_val_loss"), m.get("tokens") or 0
    guess = math.log(vocab_size)
    if last is None or last <= guess or not train_chars or tokens < train_chars:
        return
    train_loss = trainer.callback_metrics.get(TRAIN_LOSS)
    fitted = f" (train loss {float(train_loss):.2f})" if train_loss is not None else ""
    best_file = best_checkpoint_written(trainer)
    every = getattr(trainer, "val_check_batch", None)  # in batches, not steps
    accumulate = getattr(trainer, "accumulate_grad_batches", 1)
    validated_often = isinstance(every, int) and trainer.global_step * accumulate >= 4 * every
    # An interval that validates at least 4 times in this many steps (20 for a long run): only
    # offered where it is shorter than the run's own (a 10-step run validating every 5 was told 20).
    often = max(1, min(20, trainer.global_step // 4))
    if best_file and best is not None and best < guess:
        what = (f"its last weights have memorised them; this run's best checkpoint, {best:.2f}, beats "
                f"guessing: {best_file}. A longer text helps most")
    else:
        what = ("the model has learnt nothing that carries over to the validation text. A longer text "
                "helps most")
        if not validated_often and not (isinstance(every, int) and every <= often * accumulate):
            what += (f"; or validate often (e.g. trainer.val_check_interval={often}) and use the best "
                     "checkpoint")
    epochs = f"{tokens / train_chars:,.0f}"
    log.warning(
        "warning: validation loss %.2f is worse than guessing uniformly among the %d characters of its "
        "vocabulary (%.2f): after %s %s over its %s training characters%s, %s",
        last, vocab_size, guess, epochs, "epoch" if epochs == "1" else "epochs", f"{train_chars:,}",
        fitted, what,
    )
