"""The run's figures: metrics.json after each validation and with each checkpoint."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.trainer.states import TrainerFn

from chargpt.distributed import is_rank_zero
from chargpt.files import write_json_atomic
from chargpt.metric_names import VAL_LOSS
from chargpt.run_layout import METRICS_FILE, VAL_STEP
from chargpt.training.callbacks.checkpointing import last_checkpoint_callback
from chargpt.training.callbacks.nonfinite_guard import val_loss_not_finite

log = logging.getLogger(__name__)


def scores_the_starting_point(trainer: L.Trainer) -> bool:
    """Whether this validation is the one before training: a fine-tune's starting point on the new
    text, the weights of the run it started from. It is no result of this run's own training, which
    its best validation loss is the best of (what its best checkpoint holds and a sweep ranks by)."""
    return trainer.state.fn != TrainerFn.FITTING


class RunMetrics(Callback):
    """Writes metrics.json in the run directory after each validation and with each checkpoint
    (rank 0 only), so it always describes the newest checkpoint (an interrupted run's too). Where a
    checkpoint follows, the figures are written once its file is on disk, never before: a run
    killed while it wrote one (kill -9, a lost machine) has a metrics.json and a report at the step
    it goes on from, not at a validation whose weights were lost.

    Wall time and tokens trained are carried in the checkpoint, so a resumed run reports the whole
    run, with the steps before a change of data.batch_size (or of accumulation or processes)
    counted at the size they were trained with. A validation before training (fine-tuning's
    starting point on the new text) is printed and kept as `initial_val_loss`.
    """

    def __init__(self, output_dir: str) -> None:
        self.path = Path(output_dir) / METRICS_FILE
        self.previous_seconds = 0.0
        self.best_val_loss: float | None = None
        self.initial_val_loss: float | None = None
        self.val_step: int | None = None  # the step of the last validation
        self.val_loss: float | None = None  # its loss (a resume that trains no step reports it)
        self._start = time.perf_counter()
        self._trainer: L.Trainer | None = None
        self._resumed: dict[str, Any] = {}  # tokens, step and tokens_per_step of the checkpoint
        self._base: tuple[int, int] | None = None  # (step, tokens) this process started training from
        self.written: dict[str, Any] | None = None  # the figures last written to metrics.json
        self._owed = False  # a validation's figures, left for the checkpoint that follows it to write

    def train_seconds(self) -> float:
        return self.previous_seconds + time.perf_counter() - self._start

    @staticmethod
    def tokens_per_step(trainer: L.Trainer) -> int:
        dm = trainer.datamodule
        return dm.batch_size * dm.block_size * trainer.world_size * trainer.accumulate_grad_batches

    def trained_here(self, trainer: L.Trainer) -> bool:
        """Whether this process trained a step (a resume of a finished run trains none)."""
        return self._base is not None and trainer.global_step > self._base[0]

    def tokens(self, trainer: L.Trainer) -> int:
        if self._base is None:  # no training started in this process (yet)
            return int(self._resumed.get("tokens", trainer.global_step * self.tokens_per_step(trainer)))
        step, tokens = self._base
        return tokens + (trainer.global_step - step) * self.tokens_per_step(trainer)

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._trainer = trainer

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start = time.perf_counter()

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        now = self.tokens_per_step(trainer)
        step = trainer.global_step
        before = self._resumed.get("tokens_per_step")
        # Checkpoints without a token count were written before it was kept: counted at today's size.
        self._base = (step, int(self._resumed.get("tokens", step * now)))
        if before is not None and before != now and is_rank_zero():
            dm = trainer.datamodule
            log.warning(
                "resuming at step %d with %d tokens per step (data.batch_size=%d) where the run had %d: "
                "metrics.json counts each step's tokens at the size it was trained with",
                step, now, dm.batch_size, before,
            )

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "train_seconds": self.train_seconds(), "best_val_loss": self.best_val_loss,
            "initial_val_loss": self.initial_val_loss, VAL_STEP: self.val_step, "val_loss": self.val_loss,
        }
        trainer = self._trainer
        if trainer is not None and getattr(trainer, "datamodule", None) is not None:
            state |= {"tokens": self.tokens(trainer), "tokens_per_step": self.tokens_per_step(trainer)}
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.previous_seconds = float(state_dict.get("train_seconds", 0.0))
        self.best_val_loss = state_dict.get("best_val_loss")
        self.initial_val_loss = state_dict.get("initial_val_loss")
        self.val_step = state_dict.get(VAL_STEP)
        self.val_loss = state_dict.get("val_loss")
        self._resumed = {k: state_dict[k] for k in ("tokens", "tokens_per_step") if k in state_dict}

    def metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any]:
        tokens = self.tokens(trainer)
        seconds = self.train_seconds()
        figures = {
            "best_val_loss": self.best_val_loss,
            "val_loss": self.val_loss,
            VAL_STEP: self.val_step,  # the step val_loss was measured at
            "step": trainer.global_step,
            "max_steps": trainer.max_steps,  # the run's total (a time budget's count, when one is set)
            "tokens": tokens,
            "train_seconds": round(seconds, 3),
            "tokens_per_second": round(tokens / seconds, 1) if seconds > 0 and tokens else None,
            "params": sum(p.numel() for p in pl_module.parameters()),
            # {"chars", "split_chars", "capped"}: the whole validation split, or a fixed prefix of it
            "validation": getattr(trainer.datamodule, "val_scope", None),
        }
        if self.initial_val_loss is not None:
            figures["initial_val_loss"] = self.initial_val_loss  # before training (fine-tuning)
        return figures

    def _write(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if is_rank_zero():
            self._write_figures(self.metrics(trainer, pl_module))

    def _write_figures(self, figures: dict[str, Any]) -> None:
        self.written, self._owed = figures, False
        write_json_atomic(self.path, figures)

    def final(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any]:
        """The run's closing figures: those metrics.json holds (written with the last checkpoint,
        so the time after it is not counted twice), or now's when this process wrote none."""
        return self.written if self.written is not None else self.metrics(trainer, pl_module)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        if val_loss_not_finite(trainer):
            return  # the non-finite guard stops the run: no figures of those weights are recorded
        val = trainer.callback_metrics.get(VAL_LOSS)
        if val is not None and scores_the_starting_point(trainer):
            self.initial_val_loss = self.val_loss = float(val)
            self.val_step = trainer.global_step
            if is_rank_zero():
                log.info("step 0 (before training): val loss %.4f", self.initial_val_loss)
        elif val is not None:
            self.val_step, self.val_loss = trainer.global_step, float(val)
            if self.best_val_loss is None or float(val) < self.best_val_loss:
                self.best_val_loss = float(val)
        if self._checkpoint_follows(trainer):
            self._owed = True  # written with last.ckpt, once that is on disk (on_save_checkpoint)
        else:
            self._write(trainer, pl_module)

    @staticmethod
    def _checkpoint_follows(trainer: L.Trainer) -> bool:
        """Whether last.ckpt is written at the end of this validation (the checkpoint callbacks come
        after this one), carrying these figures."""
        return (trainer.state.fn == TrainerFn.FITTING and not trainer.sanity_checking
                and last_checkpoint_callback(trainer) is not None)

    def on_save_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        # Also the checkpoint of an interruption (Ctrl-C, SIGTERM), written between validations.
        if not is_rank_zero():
            return
        figures = self.metrics(trainer, pl_module)  # as the checkpoint holds them (its time included)
        after_save = getattr(trainer.strategy.checkpoint_io, "after_next_save", None)
        if after_save is None:
            self._write_figures(figures)
        else:
            after_save(lambda: self._write_figures(figures))

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        self._write_owed(trainer, pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._write_owed(trainer, pl_module)

    def _write_owed(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """A validation whose checkpoint did not come after all (Lightning's checkpoint callback
        skips a step it has already saved) still gets its figures written."""
        if self._owed:
            self._write(trainer, pl_module)
