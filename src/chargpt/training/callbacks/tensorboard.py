"""What a run shows in its trackers besides Lightning's scalars: a text sample at each validation
(TensorBoard), the hyperparameters as flat config keys with the best and last validation loss
(TensorBoard's HParams view; MLflow and W&B get the same keys and scalars). Where a callback's
output goes: tracker_output.py; pictures: attention_maps.py.

Everything is written on rank 0 only.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import TensorBoardLogger
from omegaconf import DictConfig, OmegaConf
from tensorboard.compat.proto.summary_pb2 import Summary, SummaryMetadata
from tensorboard.plugins.hparams import metadata as hparams_metadata
from tensorboard.plugins.hparams.api_pb2 import Status
from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData, SessionEndInfo
from tensorboard.plugins.hparams.summary_v2 import hparams_pb
from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.writer import FileWriter

from chargpt import checks
from chargpt.distributed import is_rank_zero
from chargpt.errors import SettingError
from chargpt.metric_names import VAL_LOSS
from chargpt.model.sampling import check_sampling, iter_tokens
from chargpt.training.budget_plan import sampling_seconds
from chargpt.training.callbacks.callback_prompt import known_prompt
from chargpt.training.callbacks.graceful_interrupt import TrainingInterrupted
from chargpt.training.callbacks.metrics import scores_the_starting_point
from chargpt.training.callbacks.nonfinite_guard import val_loss_not_finite
from chargpt.training.callbacks.tracker_output import tensorboard_writer
from chargpt.training.trackers import flat_params

BEST_VAL_LOSS = "hparams/best_val_loss"
LAST_VAL_LOSS = "hparams/last_val_loss"
# The name's end of the event file that holds how a run ended (HParamsSummary): a resume removes it.
SESSION_END_SUFFIX = ".session_end"


def as_markdown_block(text: str) -> str:
    """TensorBoard renders text as markdown: an indented block keeps line breaks and spacing."""
    return "\n".join("    " + line for line in text.split("\n"))


class SampleText(Callback):
    """At each validation, logs `samples/text`: a sample from a fixed prompt and seed, so the
    same draw can be compared across steps."""

    def __init__(
        self,
        prompt: str = "\n",
        max_new_tokens: int = 200,
        temperature: float = 0.8,
        top_k: int | None = None,
        seed: int = 1337,
    ) -> None:
        self.check_settings(prompt, max_new_tokens, temperature, top_k, seed)
        self.prompt, self.max_new_tokens = prompt, max_new_tokens
        self.temperature, self.top_k, self.seed = temperature, top_k, int(seed)

    @staticmethod
    def check_settings(prompt: object, max_new_tokens: object, temperature: object, top_k: object,
                       seed: object) -> None:
        """What the constructor checks, and a run before it reads any data (run_checks): a bad value
        must not waste the training before the first validation."""
        check_sampling(temperature, top_k, None, max_new_tokens)
        checks.utf8_text("prompt", prompt)  # typed in a Latin-1 terminal: refused, as sample.prompt is
        checks.check_seed("seed", seed)

    def validation_end_seconds(
        self, trainer: L.Trainer, pl_module: L.LightningModule, clock: Callable[[], float]
    ) -> float:
        """For a time budget: what the sample costs at the final validation."""
        if tensorboard_writer(trainer) is None:
            return 0.0
        return sampling_seconds(pl_module.model, self.max_new_tokens, clock)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        writer = tensorboard_writer(trainer)
        if writer is None or trainer.sanity_checking or val_loss_not_finite(trainer):
            return  # (weights that score NaN cannot be sampled: the non-finite guard stops the run)
        tokenizer = pl_module.tokenizer
        prompt = known_prompt(self.prompt, tokenizer, "SampleText")
        idx = torch.tensor([tokenizer.encode(prompt)], device=pl_module.device)  # (1, T)
        generator = torch.Generator(device=pl_module.device)
        generator.manual_seed(self.seed)  # the same draw at every validation
        tokens = iter_tokens(pl_module.model, idx, self.max_new_tokens, self.temperature, self.top_k,
                             generator=generator)
        text = tokenizer.decode(int(token[0, 0]) for token in tokens)
        writer.add_text("samples/text", as_markdown_block(prompt + text), trainer.global_step)


def _hparam_value(value: Any) -> bool | int | float | str:
    # TensorBoard's HParams take a bool, a number or text: None and lists become text.
    return value if isinstance(value, (bool, int, float, str)) else str(value)


def session_end(status: str) -> Summary:
    """TensorBoard's record of how a run ended (`STATUS_SUCCESS`, `STATUS_FAILURE`), which its
    HParams view shows and filters by, built as SummaryWriter.add_hparams builds its own (which
    says success, written at the start)."""
    content = HParamsPluginData(session_end_info=SessionEndInfo(status=Status.Value(status)),
                                version=hparams_metadata.PLUGIN_DATA_VERSION)
    plugin = SummaryMetadata.PluginData(plugin_name=hparams_metadata.PLUGIN_NAME,
                                        content=content.SerializeToString())
    return Summary(value=[Summary.Value(tag=hparams_metadata.SESSION_END_INFO_TAG,
                                        metadata=SummaryMetadata(plugin_data=plugin))])


class HParamsSummary(Callback):
    """The run's hyperparameters (named like their config keys, e.g. `optimizer.lr`) with its best
    and last validation loss, for TensorBoard's HParams view.

    The summary is written when fitting starts and the two metrics are scalars updated at each
    validation, so the view is live during a run and complete for an interrupted one. How the run
    ended is written when it ends: success, or failure; none for a run stopped by a signal, which
    its resume ends (a resume removes an earlier launch's record: it will write its own).
    """

    def __init__(self, extra: dict[str, Any] | None = None) -> None:
        self.check_settings(extra)
        # Hydra hands over a DictConfig: as plain values, a list reaches W&B as a list.
        plain = OmegaConf.to_container(extra, resolve=True) if isinstance(extra, DictConfig) else extra
        self.extra: dict[str, Any] = dict(plain or {})
        self.init_from: str | None = None  # set by the run (starts_from): what a fine-tune started from
        self.best_val_loss: float | None = None

    @staticmethod
    def check_settings(extra: object) -> None:
        """What the constructor checks, and a run before it reads any data (run_checks)."""
        if extra is not None and not isinstance(extra, (dict, DictConfig)):
            raise SettingError(f"extra={checks.shown(extra)} must be settings to show beside the run's own, "
                               "as {name: value} (e.g. {seed: 1}), or null", "extra")

    def starts_from(self, init_from: str | None) -> None:
        """The run's init_from, absolute: a base run and its fine-tunes have the same settings but
        this one, and the part launched by its resume command (which names it absolute) must not log
        another value than the first part. (Handed over, not interpolated into this callback's
        config: instantiating resolves a value once more, and a folder named with `${` failed.)"""
        self.init_from = str(Path(init_from).resolve()) if init_from else None

    def params(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any]:
        hp = pl_module.hparams
        params: dict[str, Any] = {
            **flat_params({  # as the other trackers get them: vocab -> vocab_size
                **{key: dict(hp.get(key) or {}) for key in ("model", "optimizer", "scheduler")},
                "vocab": list(hp.get("vocab") or []),
            }),
            "trainer.max_steps": trainer.max_steps,
            "trainer.precision": trainer.precision,
            "trainer.world_size": trainer.world_size,
            "trainer.accumulate_grad_batches": trainer.accumulate_grad_batches,
            "params": sum(p.numel() for p in pl_module.parameters()),
            "init_from": self.init_from,  # None: a run from scratch
        }
        datamodule = getattr(trainer, "datamodule", None)
        if datamodule is not None and hasattr(datamodule, "batch_size"):
            params["data.batch_size"] = datamodule.batch_size
        if datamodule is not None and hasattr(datamodule, "place"):
            params["data"] = datamodule.place  # the text it trained on
        # The extra entries flat too (`+callbacks.hparams.extra.data={name: x}` is `data.name`): a
        # nested one reached every tracker as the text of a Python dict.
        params.update(flat_params(self.extra))
        return params

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if is_rank_zero():
            for logger in trainer.loggers:
                if not isinstance(logger, TensorBoardLogger):  # the same flat keys elsewhere, as they are:
                    logger.log_hyperparams(self.params(trainer, pl_module))  # W&B keeps a bool, None, a list
        writer = tensorboard_writer(trainer)
        if writer is None:
            return
        params = {key: _hparam_value(value) for key, value in self.params(trainer, pl_module).items()}
        # The values alone, as TensorBoard's own hparams API writes them (a bool as a bool), with no
        # group name (trial_id ''): each run is its own row, named after it. No experiment summary,
        # which SummaryWriter.add_hparams writes with every run: TensorBoard takes the first run's
        # for all of them, so a setting only later runs have (a sweep over optimizer=adamw,muon:
        # muon's momentum) had no column. Without one, TensorBoard makes the columns from every run,
        # and the metrics from the scalars (hparams/best_val_loss, hparams/last_val_loss, ...).
        self._write(writer, hparams_pb(params, trial_id=""))
        # TensorBoard keeps the first end record a run's folder holds: a launch that failed, then
        # resumed to the end (a sweep's failed job, continued), stayed a failure. This launch will
        # write its own.
        for earlier in Path(writer.log_dir).glob(f"*{SESSION_END_SUFFIX}"):
            earlier.unlink(missing_ok=True)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if (writer := tensorboard_writer(trainer)) is not None:
            self._write(writer, session_end("STATUS_SUCCESS"), SESSION_END_SUFFIX)

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, error: BaseException) -> None:
        # A run stopped by a signal is resumable: its resume says how it ended. (add_hparams said
        # success at the start, for every run.)
        writer = tensorboard_writer(trainer)
        if writer is not None and not isinstance(error, TrainingInterrupted):
            self._write(writer, session_end("STATUS_FAILURE"), SESSION_END_SUFFIX)

    @staticmethod
    def _write(writer: SummaryWriter, summary: Summary, suffix: str = "") -> None:
        """Into this run's own folder (add_hparams makes a new run): another event file there,
        which TensorBoard reads with the others (its name ending in `suffix`)."""
        file_writer = FileWriter(writer.log_dir, filename_suffix=suffix)
        file_writer.add_summary(summary)
        file_writer.close()

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        val = trainer.callback_metrics.get(VAL_LOSS)
        if trainer.sanity_checking or val is None:
            return
        val = float(val)
        # The best of the weights this run trained, as metrics.json's: a fine-tune's starting point
        # is its last value at step 0, never its best.
        trained = not scores_the_starting_point(trainer)
        if trained and (self.best_val_loss is None or val < self.best_val_loss):
            self.best_val_loss = val
        figures = {LAST_VAL_LOSS: val}
        if self.best_val_loss is not None:
            figures[BEST_VAL_LOSS] = self.best_val_loss
        step = trainer.global_step
        writer = tensorboard_writer(trainer)
        if writer is not None:
            for name, value in figures.items():
                writer.add_scalar(name, value, step)
        if is_rank_zero():
            for logger in trainer.loggers:
                if not isinstance(logger, TensorBoardLogger):
                    logger.log_metrics(figures, step)

    def state_dict(self) -> dict[str, float | None]:
        return {"best_val_loss": self.best_val_loss}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.best_val_loss = state_dict.get("best_val_loss")
