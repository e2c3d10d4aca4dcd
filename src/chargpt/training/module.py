"""LightningModule: wraps the language model with its loss, logging and optimizer."""

from __future__ import annotations

import logging
import math
from typing import Any

import lightning as L
import torch

from chargpt.checkpoint_step import WRITER_KEY
from chargpt.checkpoints import TRAINING_RECORD_KEY, training_record
from chargpt.data.tokenizer import CharTokenizer
from chargpt.data.windows import IGNORE_INDEX
from chargpt.distributed import is_rank_zero
from chargpt.metric_names import STEP, TRAIN_LOSS, VAL_BPC, VAL_LOSS, group_rate
from chargpt.model import ModelConfig, build_model
from chargpt.training.lightning_internals import logs_this_step
from chargpt.training.optim import apply_settings, build_optimizer, group_rates, settings_of
from chargpt.training.schedules import build_schedule, build_scheduler, depends_on_total
from chargpt.training.steps import is_last_step, total_steps
from chargpt.training.training_record import TrainingRecord

log = logging.getLogger(__name__)
TOTAL_STEPS_KEY = "chargpt_total_steps"  # the run's total when the checkpoint was written


class CharLM(L.LightningModule):
    """Every argument is a plain container, so checkpoints load with weights-only unpickling and
    carry all a sampler needs (architecture and vocabulary)."""

    def __init__(
        self,
        model: dict[str, Any],
        vocab: list[str],
        optimizer: dict[str, Any] | None = None,
        scheduler: dict[str, Any] | None = None,
        auto: dict[str, Any] | None = None,
        matmul_precision: str | None = None,
        device_type: str | None = None,
        precision: str | None = None,
    ) -> None:
        # `auto`: the model=auto choice and its reasons (budget.json's "auto" section), kept in the
        # checkpoint so that a resumed run rebuilds the same shape without measuring again.
        # `matmul_precision`: the float32 products the run trains with (torch's name, resolved), and
        # `device_type` (cpu, cuda) where, and `precision` (trainer.precision, resolved): kept so that
        # a resumed run continues with the same arithmetic.
        super().__init__()
        self.save_hyperparameters()
        self.schedule = build_schedule(scheduler)
        self._resumed_total: int | None = None  # the total the resumed checkpoint was trained toward
        self._resumed = False
        self._configured: list[dict[str, Any]] = []  # the optimizer's settings as built, before a resume
        # When and how it was trained, for its model card (build_run gives it the command launched).
        self.training_record = TrainingRecord()
        self.run_dir: str | None = None  # the run's folder (build_run), recorded as each checkpoint's writer
        self.config = ModelConfig.from_dict(model)
        self.tokenizer = CharTokenizer(vocab)
        self.model = build_model(self.config, self.tokenizer.vocab_size)
        self._compiled: torch.nn.Module | None = None
        self._val_sums: tuple[torch.Tensor, torch.Tensor] | None = None  # (loss sum, targets) so far
        # Lightning's model summary runs this through the network (in eval mode, no RNG drawn) to
        # count FLOPs: one forward pass of one full-context sequence, its In sizes column says so.
        self.example_input_array = torch.zeros(1, self.config.block_size, dtype=torch.long)

    def setup(self, stage: str) -> None:
        # Here, not only at the start of the command: a process a *_spawn strategy starts (one per
        # device) begins with torch's default precision.
        if self.hparams.get("matmul_precision"):
            torch.set_float32_matmul_precision(self.hparams["matmul_precision"])

    def configure_model(self) -> None:
        if self.config.compile and self._compiled is None:
            # Set past Module.__setattr__: the compiled wrapper shares self.model's weights and must not
            # become a second submodule (checkpoint keys stay model.*). Sampling keeps the eager model.
            object.__setattr__(self, "_compiled", torch.compile(self.model))

    def step_forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The training/validation forward: compiled when model.compile is set (the time budget
        times validation with it, so that its compiles fall before the plan, not at the end)."""
        return (self.model if self._compiled is None else self._compiled)(x, y)

    def forward(
        self, idx: torch.Tensor, targets: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self.model(idx, targets)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        _, loss = self.step_forward(x, y)
        if self._logs_this_step():
            # `step` is the x-axis Lightning's loggers use: the optimizer steps taken once this one is.
            self.log(STEP, float(self.trainer.global_step + 1))
            # Not prog_bar=True: Lightning would read such a value on the host after every batch.
            self.log(TRAIN_LOSS, loss.detach())
            for name, lr in group_rates(self.optimizers()).items():
                # One rate per named group: with Muon, the Muon group's and the AdamW group's.
                self.log(group_rate(name), lr)
        return loss

    def _logs_this_step(self) -> bool:
        """Whether the loggers write this step's values (Lightning's rule, or the last step).

        Step values reach the loggers only every trainer.log_every_n_steps steps, so logging just then
        writes the same values while sparing every other step self.log's bookkeeping (a few percent
        of a small model's step on CPU).
        """
        return is_last_step(self.trainer, pending=1) or logs_this_step(self.trainer)

    def on_validation_epoch_start(self) -> None:
        self._val_sums = None

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        _, loss = self.step_forward(x, y)
        # The loss is the mean over this batch's scored targets: weighted by their count, the
        # epoch's sum over count is the exact per-character loss of the split. Both stay on the
        # device (reading the count per batch would wait for the device each batch); they are read
        # once, when the epoch's value is logged.
        n = (y != IGNORE_INDEX).sum()
        total = loss.detach().float() * n
        sums = self._val_sums
        self._val_sums = (total, n) if sums is None else (sums[0] + total, sums[1] + n)

    def on_validation_epoch_end(self) -> None:
        sums = self._val_sums
        if sums is not None:  # (no batch: nothing to score)
            loss = sums[0] / sums[1]
            self.log(VAL_LOSS, loss)
            self.log(VAL_BPC, loss / math.log(2))
        self._val_sums = None
        self.log(STEP, float(self.trainer.global_step))  # validation follows the step it scores

    def configure_gradient_clipping(
        self, optimizer: torch.optim.Optimizer, gradient_clip_val: float | None = None,
        gradient_clip_algorithm: str | None = None,
    ) -> None:
        # Lightning refuses to clip for a fused optimizer under any mixed precision, because with a
        # loss scaler (16-mixed) the gradients are still scaled here. bf16-mixed has no scaler, so
        # its gradients are the true ones: clip them as in fp32.
        scaler = getattr(self.trainer.precision_plugin, "scaler", None)
        if gradient_clip_val and scaler is None and gradient_clip_algorithm in (None, "norm"):
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), gradient_clip_val)
            return
        super().configure_gradient_clipping(optimizer, gradient_clip_val, gradient_clip_algorithm)

    def configure_optimizers(self) -> dict[str, Any]:
        optimizer = build_optimizer(self.model, self.hparams.optimizer)
        trainer = self.trainer
        scheduler = build_scheduler(optimizer, self.schedule, lambda: total_steps(trainer))
        self._configured = settings_of(optimizer)
        if scheduler is None:
            return {"optimizer": optimizer}
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[TOTAL_STEPS_KEY] = total_steps(self.trainer)
        checkpoint[TRAINING_RECORD_KEY] = self.training_record.saved()
        if self.run_dir is not None:
            checkpoint[WRITER_KEY] = self.run_dir

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._resumed_total = checkpoint.get(TOTAL_STEPS_KEY)
        self._resumed = True
        self.training_record = self.training_record.resumed_from(training_record(checkpoint))

    def on_train_start(self) -> None:
        self.training_record.begin(resumed=self._resumed)
        if self._resumed:
            self._keep_configured_settings()
        self._note_another_total()

    def _keep_configured_settings(self) -> None:
        """A resumed run trains with the optimizer settings it was given (e.g. a lower
        optimizer.lr after a NaN), not those its checkpoint's optimizer state carries."""
        [optimizer] = self.trainer.optimizers
        configs = self.trainer.lr_scheduler_configs
        changed = apply_settings(optimizer, configs[0].scheduler if configs else None, self._configured)
        if changed and is_rank_zero():
            log.warning("resuming with optimizer settings other than the checkpoint's: %s",
                        "; ".join(changed))

    def _note_another_total(self) -> None:
        """Continuing a run toward another total: say so when the schedule's rates for the steps
        already taken depended on the old total (they were not those of the new run)."""
        old, new, taken = self._resumed_total, total_steps(self.trainer), self.trainer.global_step
        if old is None or self.schedule is None or not is_rank_zero():
            return
        if depends_on_total(self.schedule, taken, old, new):
            log.warning(
                "continuing toward %d steps a run planned for %d: %s's rates for its %d steps taken "
                "depended on that total, so this run differs from a straight %d-step run (a constant, "
                "warmup or WSD schedule before its decay continues exactly)",
                new, old, type(self.schedule).__name__, taken, new,
            )
