"""Build a run from its config: data, model, trainer, the checkpoint to resume, once the checks of
run_checks.py (the settings) and resume_checks.py (the checkpoint) have passed.

`build_run` is shared by `chargpt-train` and the training benchmark, so the benchmark measures
exactly the path users run. The callbacks and loggers are all in the config (configs/callbacks/,
configs/logger/): what is listed there is what runs.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from lightning.fabric.plugins import TorchCheckpointIO
from lightning.pytorch.callbacks import ModelCheckpoint, ProgressBar
from lightning.pytorch.loggers import Logger
from omegaconf import DictConfig, OmegaConf

from chargpt.checkpoints import read_checkpoint, resolve_checkpoint, stored_corpus
from chargpt.checks import check_seed, training_seed, yes_no
from chargpt.data import CharDataModule
from chargpt.data.datamodule import check_data_settings
from chargpt.data.text import as_its_run_read
from chargpt.distributed import is_rank_zero
from chargpt.errors import ChargptError, ConfigError, first_line
from chargpt.files import read_json_object, write_text_atomic
from chargpt.hydra_run import plain, task_overrides
from chargpt.model import ModelConfig
from chargpt.model.sampling import check_sampling
from chargpt.overrides import override_key
from chargpt.run_layout import BUDGET_FILE, SAVED_CONFIG, run_of, written_by
from chargpt.training import budget_plan, precision
from chargpt.training.auto_size import calibration, rule
from chargpt.training.auto_size.choice import Choice, from_record
from chargpt.training.auto_size.ladder import usable_ladder
from chargpt.training.auto_size.report import report
from chargpt.training.auto_size.run_config import apply_choice, check_auto
from chargpt.training.callbacks import budget
from chargpt.training.callbacks.checkpointing import warn_if_not_resumable
from chargpt.training.callbacks.tensorboard import HParamsSummary
from chargpt.training.checkpoint_io import AtomicCheckpointIO, follow_moved_run
from chargpt.training.data_dir import keep_download_to_its_path, settle_data_dir
from chargpt.training.finetune import (
    Pretrained,
    apply_pretrained,
    fit_vocab,
    freeze,
    freeze_fix,
    prepare_finetune,
    resume_settings,
)
from chargpt.training.host_memory import keep_freed_memory
from chargpt.training.lightning_internals import keep_ignored_signals_ignored
from chargpt.training.model_memory import check_model_fits
from chargpt.training.module import CharLM
from chargpt.training.optim import build_optimizer, check_optimizer
from chargpt.training.optimizer_state import check_optimizer_state
from chargpt.training.resume_checks import check_resumable
from chargpt.training.run_checks import (
    check_accelerator,
    check_checkpoint_callbacks_apart,
    check_constructor_settings,
    check_devices,
    check_finetune_settings,
    check_launch,
    check_model_settings,
    check_model_target,
    check_not_its_own_start,
    check_setting_values,
    check_trainer_numbers,
    check_window_length,
    resumable,
)
from chargpt.training.steps import fix_total_steps
from chargpt.training.trackers import TrackerRuns, kept_in_checkpoint
from chargpt.training.training_record import TrainingRecord

log = logging.getLogger(__name__)


def budget_reserve(cfg: DictConfig) -> float:
    """The seconds the budget callback keeps back at the end of the run (model=auto sizes its model
    with them), once check_settings has checked them (the callback's own check_settings, by
    check_constructor_settings): a bad value is refused before any timing."""
    key = "callbacks.time_budget.reserve_seconds"
    return float(OmegaConf.select(cfg, key, default=budget_plan.RESERVE_SECONDS))


def size_automatically(
    cfg: DictConfig, datamodule: CharDataModule, base: ModelConfig, ckpt: dict[str, Any] | None,
    file: Path | None, start: float, reserve_seconds: float,
) -> Choice:
    """model=auto: measure candidate shapes here (a resumed run keeps the choice of its checkpoint,
    `ckpt`, read from `file`), write the choice into cfg and print it with its reasons."""
    overrides, planned = task_overrides(), None
    if ckpt is not None and file is not None:
        record = ckpt["hyper_parameters"].get("auto")
        if not isinstance(record, dict):
            raise ConfigError(
                f"cannot resume from {cfg.ckpt_path} with model=auto: that run was not sized by model=auto; "
                "resume with the model settings it was trained with"
            )
        choice = from_record(record)
        # A resume trains to the first launch's plan, whatever budget it is given: shown and
        # reproduced with the budget the plan was made for.
        planned = budget_plan.planned_budget(read_json_object(run_of(file) / BUDGET_FILE))
        if planned is not None:
            overrides = [o for o in overrides if override_key(o) != "budget_seconds"]
            overrides.append(f"budget_seconds={planned:g}")
    else:
        assert datamodule.train_ids is not None and datamodule.val_scored_ids is not None
        train_chars, val_chars = len(datamodule.train_ids), len(datamodule.val_scored_ids)
        measure = calibration.step_timer(
            base, plain(cfg.optimizer), datamodule.tokenizer.vocab_size, datamodule.train_ids,
            precision.run_device(cfg.trainer), cfg.trainer.get("gradient_clip_val"), int(cfg.seed),
            str(cfg.trainer.precision),
        )
        given = {override_key(o) for o in overrides}
        choice = rule.climb(
            usable_ladder(train_chars, val_chars), measure, float(cfg.budget_seconds),
            lambda: time.monotonic() - start, train_chars, val_chars,
            dropout=base.dropout if "model.dropout" in given else None,
            reserve_seconds=reserve_seconds,
            caps=rule.StepCaps(*(_step_cap(cfg.trainer.get(key)) for key in ("max_steps", "max_epochs"))),
        )
    choices = dict(HydraConfig.get().runtime.choices) if HydraConfig.initialized() else {}
    apply_choice(cfg, choice, overrides, choices)
    if is_rank_zero():
        train_chars = len(datamodule.train_ids) if datamodule.train_ids is not None else 0
        budget_seconds = planned if planned is not None else float(cfg.budget_seconds)
        log.info("%s", report(choice, budget_seconds, train_chars))
    return choice


def _step_cap(count: Any) -> int | None:
    """trainer.max_steps or max_epochs as a cap on what model=auto plans with (None: none, -1 or
    null): the run stops there whatever its budget buys, and the shape and rates are chosen for
    the steps it will make."""
    whole = isinstance(count, int) and not isinstance(count, bool)
    return count if whole and count > 0 else None


def record_resolved_config(cfg: DictConfig, notes: list[str]) -> None:
    """Rewrite the config Hydra saved at the start (`.hydra/config.yaml`) with what was decided on
    this machine (`notes`: one comment line each): that file is where people look for what a run
    trained, and it held the placeholders (model=auto's shape, trainer.precision=auto)."""
    if not notes or not is_rank_zero():
        return
    if not HydraConfig.initialized() or HydraConfig.get().output_subdir is None:
        return  # no config saved (hydra.output_subdir=null, or outside Hydra)
    saved = os.path.join(HydraConfig.get().runtime.output_dir, HydraConfig.get().output_subdir, SAVED_CONFIG)
    if not os.path.isfile(saved):
        return
    header = "".join(f"# {note}\n" for note in notes)
    write_text_atomic(saved, header + OmegaConf.to_yaml(cfg))  # a crash leaves Hydra's file whole


def _logger_kwargs(
    logger_cfg: DictConfig, resume_step: int | None, tracker_runs: dict[str, str]
) -> dict[str, Any]:
    target = str(logger_cfg.get("_target_", ""))
    # SummaryWriter's purge_step hides events at or after it in the earlier event files, so the
    # steps an interrupted run logged after its last checkpoint are not shown twice (values are
    # logged at the steps taken: those of the checkpoint's own step stay). A new run in a folder
    # hides all: a run stopped before its first checkpoint (nothing to resume) left curves there.
    # The CSV logger keeps its earlier rows the same way (trackers.CSVTracker).
    if target.endswith(("TensorBoardLogger", "CSVTracker")):
        return {"purge_step": 0 if resume_step is None else resume_step + 1}
    # A resumed run's MLflow or W&B run goes on: its id is in the checkpoint already read.
    if target.endswith(("MLFlowTracker", "WandbTracker")):
        return {"tracker_runs": tracker_runs}
    return {}


def _unwritable(folder: Path) -> str | None:
    """Why files cannot be made in `folder` or under it once it is made (None: they can), without
    making it: a logger makes its folder only when it is used (MLflow's may not be, on a resume)."""
    existing = next((p for p in (folder, *folder.absolute().parents) if os.path.lexists(p)), None)
    if existing is None:
        return None
    if not existing.is_dir():
        return "Not a directory" if existing != folder else "it is a file"
    return None if os.access(existing, os.W_OK | os.X_OK) else "Permission denied"


def _logger(key: str, config: DictConfig, resume_step: int | None, tracker_runs: dict[str, str]) -> Logger:
    """The logger a config names; a folder it cannot write to is one error naming
    `logger.KEY.save_dir` (a file in the way was a traceback at the first step, and W&B wrote to
    /tmp instead, silently)."""
    if (save_dir := config.get("save_dir")) and (why := _unwritable(Path(save_dir))):
        raise ConfigError(
            f"logger.{key}.save_dir={save_dir}: cannot write there ({why}); pick a writable folder"
        )
    try:
        return instantiate(config, **_logger_kwargs(config, resume_step, tracker_runs))
    except InstantiationException as err:
        cause = err.__cause__ or err
        if isinstance(cause, ChargptError):
            raise cause from None
        raise ConfigError(f"logger.{key}: {first_line(cause)}") from None


def _callback(key: str, config: DictConfig) -> L.Callback:
    """The callback a config names, its bad settings one error naming `callbacks.KEY.SETTING`
    (before any step: Lightning would find some only at the first validation)."""
    check_setting_values(f"callbacks.{key}", config)  # (what Lightning's own classes would refuse unclearly)
    try:
        return instantiate(config)
    except InstantiationException as err:
        cause = err.__cause__ or err
        if isinstance(cause, ConfigError):  # our checks name the bare setting: "seed='abc' must ..."
            raise ConfigError(f"callbacks.{key}.{cause}") from None
        raise ConfigError(f"callbacks.{key}: {first_line(cause)}") from None


def build_trainer(
    cfg: DictConfig, resumed: dict[str, Any] | None = None, resumed_file: Path | None = None
) -> L.Trainer:
    """The Trainer with exactly the callbacks and loggers the config lists; `resumed`: the
    checkpoint the run resumes from, as read, from `resumed_file`."""
    callbacks = [_callback(key, c) for key, c in (cfg.callbacks or {}).items() if c is not None]
    resume_step = int(resumed.get("global_step", 0)) if resumed is not None else None
    # A resume into another folder (hydra.run.dir=NEW: back to an earlier step, or a branch) is a
    # run of its own there, as its TensorBoard log is: it starts its own MLflow and W&B runs, and
    # the run it came from keeps its curves.
    in_its_folder = resumed_file is not None and written_by(Path(cfg.paths.output_dir), resumed_file)
    tracker_runs = kept_in_checkpoint(resumed) if in_its_folder else {}
    for callback in callbacks:
        if isinstance(callback, TrackerRuns):
            callback.continues = in_its_folder
        if isinstance(callback, HParamsSummary):
            callback.starts_from(cfg.get("init_from"))
    loggers = [_logger(key, c, resume_step, tracker_runs)
               for key, c in (cfg.get("logger") or {}).items() if c is not None]
    # Lightning adds its own checkpointing and progress bar unless told not to: a config that
    # lists none gets none.
    defaults = {
        "enable_checkpointing": any(isinstance(c, ModelCheckpoint) for c in callbacks),
        "enable_progress_bar": any(isinstance(c, ProgressBar) for c in callbacks),
    }
    if not defaults["enable_checkpointing"] and is_rank_zero():
        log.warning(
            "no checkpoint callback is configured: this run keeps no weights for chargpt-sample, "
            "chargpt-eval or a resume (only Ctrl-C/SIGTERM writes one); keep last.ckpt with "
            "callbacks=[none,last_checkpoint]"
        )
    if is_rank_zero():
        warn_if_not_resumable(cfg, loggers)
    try:
        trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False, **defaults,
                              **_validation_in_batches(cfg.trainer))
    except InstantiationException as err:
        cause = err.__cause__ or err
        raise ConfigError(f"invalid trainer settings: {first_line(cause)}") from None
    if type(trainer.strategy.checkpoint_io) is TorchCheckpointIO:  # keep a user-configured one
        trainer.strategy.checkpoint_io = AtomicCheckpointIO()
    keep_ignored_signals_ignored(trainer)
    return trainer


def _validation_in_batches(trainer_cfg: DictConfig) -> dict[str, int]:
    """trainer.val_check_interval counts steps, as every count of a run does; Lightning counts it in
    batches: with several batches a step, it would validate (and checkpoint) inside a step, more
    often than asked and with that step's first batches missing from the checkpoint."""
    every, per_step = trainer_cfg.get("val_check_interval"), trainer_cfg.get("accumulate_grad_batches") or 1
    if isinstance(every, int) and not isinstance(every, bool) and per_step > 1:
        return {"val_check_interval": every * per_step}
    return {}


class Run(NamedTuple):
    datamodule: CharDataModule
    module: CharLM
    trainer: L.Trainer
    ckpt_path: str | None  # the checkpoint to resume from
    finetuning: bool  # a fine-tune's start (not its resume): validated at step 0 first
    started_from: Path | None = None  # the checkpoint file a fine-tune's start read (not an export's)


def precision_decisions(cfg: DictConfig, precision_line: str | None, matmul_line: str | None,
                        ckpt: dict[str, Any] | None, file: Path | None, decided: list[str]) -> list[str]:
    """For each precision setting given as `auto`: the line the run logs (what it resolved to, or on
    a resume the arithmetic the run keeps), returned; the decision itself appended to `decided`."""
    said_lines = []
    for setting, line, keep in (("trainer.precision", precision_line, precision.keep_precision),
                                ("matmul_precision", matmul_line, precision.keep_matmul_precision)):
        if not line:
            continue
        kept, said = keep(cfg, ckpt, file) if ckpt is not None and file is not None else (False, None)
        said_lines.append(said or line)
        value = OmegaConf.select(cfg, setting)
        decided.append(f"{setting}=auto kept {value}, the checkpoint's" if kept
                       else f"{setting}=auto resolved to {value} on this machine")
    return said_lines


DATA_TARGET = "chargpt.data.CharDataModule"  # configs/data/*.yaml's


class _Checked(NamedTuple):
    """What the checks before any data is read settled: the model asked for and how the run starts."""

    model_config: ModelConfig  # model=auto's: the base its shapes are sized from
    auto: bool  # model=auto
    start: float  # model=auto's clock start (0 without it)
    reserve_seconds: float
    precision_line: str | None  # trainer.precision=auto's line for the log, said once all checks pass
    precision_warning: str | None  # a precision this device cannot train in, replaced
    matmul_line: str | None  # matmul_precision=auto's
    data_dir_note: str | None  # for the saved config
    pretrained: Pretrained | None  # a fine-tune's start (init_from)


def check_seed_and_sample(cfg: DictConfig) -> None:
    """The run's seed and its closing sample's settings: a run checks them before its folder is made
    (a bad sample setting must not waste the run), and a sweep on each job before it starts."""
    training_seed("seed", cfg.seed)
    check_sampling(cfg.sample.temperature, cfg.sample.top_k, cfg.sample.top_p, cfg.sample.max_new_tokens,
                   "sample.")
    check_seed("sample.seed", cfg.sample.seed, optional=True)


def check_settings(cfg: DictConfig, overrides: Sequence[str], in_sweep: bool | None = None) -> ModelConfig:
    """The checks of a run's settings that read no data and change nothing, in the order a user meets
    them: a run runs them first, and a sweep runs them on its jobs before it starts, so that a bad
    setting of any job is refused before the sweep's folder is made. Returns the model asked for
    (model=auto's: the base its shapes are sized from). `overrides`: the run's, as typed; `in_sweep`
    as check_launch takes it."""
    check_launch(cfg, in_sweep)
    loggers = (cfg.get("logger") or {}).values()
    check_trainer_numbers(cfg.trainer, finetuning=bool(cfg.get("init_from")),
                          logged=any(logger is not None for logger in loggers))
    check_devices(cfg.trainer, overrides)
    check_accelerator(cfg.trainer, overrides)
    budget_plan.checked_seconds(cfg.get("budget_seconds"))  # before model=auto times anything
    precision.lightning_precision_name(cfg.trainer.get("precision"))
    precision.matmul_precision_name(cfg.get("matmul_precision"))
    yes_no("keep_freed_memory", cfg.get("keep_freed_memory", False))
    check_model_target(cfg)
    check_model_settings(cfg)
    model_fields = plain(cfg.model)
    auto = bool(model_fields.pop("auto", False))
    model_config = ModelConfig.from_dict(model_fields)  # validated before any data work
    check_model_fits(model_config, vocab_size=1)  # (fewer characters than any text's: a lower bound)
    check_window_length(cfg)
    check_constructor_settings(cfg)
    check_checkpoint_callbacks_apart(cfg)
    # (A data module of one's own checks its own settings; a fine-tune's context is its start's.)
    if cfg.data.get("_target_") == DATA_TARGET and not cfg.get("init_from"):
        check_data_settings(cfg.data, model_config.block_size)
    check_optimizer(plain(cfg.optimizer))
    if auto:
        check_auto(cfg, overrides)
    check_finetune_settings(cfg)
    if cfg.get("init_from"):
        check_not_its_own_start(cfg.init_from, cfg.get("ckpt_path"))
    return model_config


def _checked_settings(cfg: DictConfig) -> _Checked:
    """check_settings, then what settles the run's settings before any data is read:
    trainer.precision and matmul_precision resolved, and a fine-tune's start read."""
    auto = bool(cfg.model.get("auto", False))
    # model=auto's timing is charged to the budget: its clock starts here (at the process start
    # for the first run of a process), before the data is read and the shapes are timed.
    start = budget_plan.run_start_time() if auto else 0.0
    model_config = check_settings(cfg, task_overrides())
    data_dir_note = settle_data_dir(cfg)  # before anything reads the data
    keep_download_to_its_path(cfg)
    reserve_seconds = budget_reserve(cfg)
    device = precision.run_device(cfg.trainer)
    precision_warning = precision.replaced_precision(cfg.trainer.get("precision"), device)
    precision_line = precision.decide_precision(cfg)  # before model=auto times its shapes in it
    if yes_no("keep_freed_memory", cfg.get("keep_freed_memory", False)):
        keep_freed_memory()
    matmul_line = precision.decide_matmul_precision(cfg)
    pretrained = None
    if cfg.get("init_from"):
        pretrained = prepare_finetune(cfg, model_config, task_overrides(),
                                      resumed=resumable(cfg.ckpt_path))
        model_config = pretrained.config
    return _Checked(model_config, auto, start, reserve_seconds, precision_line, precision_warning,
                    matmul_line, data_dir_note, pretrained)


def _checkpoint_to_resume(cfg: DictConfig) -> tuple[Path, dict[str, Any]] | tuple[None, None]:
    """The file ckpt_path names and the checkpoint in it, read (weights-only) before the text (a run
    that read its folder's empty files reads them again) and compared with the run before Lightning
    touches it (check_resumable): a checkpoint of another corpus or model is refused with the
    reason, not a shape-mismatch traceback. (None, None): a run that does not resume."""
    if not cfg.ckpt_path:
        return None, None
    file = resolve_checkpoint(cfg.ckpt_path)
    ckpt = read_checkpoint(file)
    return file, ckpt


def _read_text(
    cfg: DictConfig, checked: _Checked, ckpt: dict[str, Any] | None
) -> tuple[CharDataModule, Pretrained | None]:
    """The run's text read, encoded and split (a resumed run's folder's empty files, and its files'
    second names, read again if its run read them; its dataset named as its run named it), and a
    fine-tune's start given its vocabulary (the new text's characters make it)."""
    as_it_read = as_its_run_read(stored_corpus(ckpt)) if ckpt is not None else {}
    datamodule = instantiate(cfg.data, block_size=checked.model_config.block_size, **as_it_read)
    pretrained = checked.pretrained
    if pretrained is not None:
        pretrained = fit_vocab(pretrained, datamodule, cfg.finetune)
    if checked.auto:  # it reads the text at its longest context, and refuses a model.block_size
        datamodule.context_fix = "a fixed model with a short context (model=tiny model.block_size={most})"
    datamodule.prepare_data()
    datamodule.setup("fit")
    return datamodule, pretrained


_AUTO_NOTE = (
    "model=auto chose the shape, batch size, dropout, AdamW lr and weight decay below at the",
    'start of the run (the choice and its reasons: budget.json, "auto"); Hydra composed',
    "placeholders there.",
)


def _sized(
    cfg: DictConfig, datamodule: CharDataModule, checked: _Checked, ckpt: dict[str, Any] | None,
    file: Path | None,
) -> tuple[Choice, ModelConfig]:
    """model=auto's choice (size_automatically, which writes it into cfg) and the model it sizes, the
    text's windows cut to its context."""
    choice = size_automatically(cfg, datamodule, checked.model_config, ckpt, file, checked.start,
                                checked.reserve_seconds)
    model_fields = plain(cfg.model)
    model_fields.pop("auto", None)
    model_config = ModelConfig.from_dict(model_fields)
    datamodule.set_windows(model_config.block_size, int(cfg.data.batch_size))
    return choice, model_config


def _module(
    cfg: DictConfig, model_config: ModelConfig, vocab: list[str], choice: Choice | None,
    pretrained: Pretrained | None, ckpt: dict[str, Any] | None, file: Path | None,
) -> CharLM:
    """The LightningModule: a fine-tune's start given its weights and its freezing, and a resume's
    optimizer state checked to fit the optimizer it builds."""
    module = CharLM(
        model=model_config.to_dict(),
        vocab=vocab,
        optimizer=plain(cfg.optimizer),
        scheduler=plain(cfg.scheduler),
        auto=choice.summary() if choice is not None else None,
        matmul_precision=str(cfg.matmul_precision),
        device_type=precision.run_device(cfg.trainer).type,
        precision=str(cfg.trainer.precision),
    )
    # (A resume's record is the checkpoint's, this launch added: build_run cannot tell what a
    # resumed fine-tune started from, its init_from is its own checkpoint.)
    module.training_record = TrainingRecord.for_this_launch(
        fine_tuned_from=pretrained.card or None if pretrained is not None and ckpt is None else None)
    # (a checkpoint callback with a dirpath outside the run writes where another run's may: its files
    # are told apart by it)
    module.run_dir = os.path.realpath(cfg.paths.output_dir)
    if pretrained is not None:
        if ckpt is None:  # a resumed fine-tune takes its weights from its own checkpoint
            apply_pretrained(module.model, pretrained)
        freeze(module.model, cfg.finetune.freeze_embeddings, cfg.finetune.freeze_blocks)
    if ckpt is not None and file is not None:
        optimizer_config = plain(cfg.optimizer)
        check_optimizer_state(ckpt, file, build_optimizer(module.model, optimizer_config), optimizer_config,
                              lambda: resume_settings(cfg.get("init_from"), file) or freeze_fix(cfg, file))
    return module


def _run_trainer(
    cfg: DictConfig, datamodule: CharDataModule, ckpt: dict[str, Any] | None, file: Path | None,
    choice: Choice | None, start: float,
) -> L.Trainer:
    """build_trainer's Trainer made ready for this run: model=auto's budget counted from its start,
    the total of optimizer steps fixed, and the checkpoint it resumes from handed over as read."""
    trainer = build_trainer(cfg, ckpt, file)
    if choice is not None:
        for callback in trainer.callbacks:
            if isinstance(callback, budget.TimeBudget):
                callback.count_from(start)  # (a later job of a sweep would start counting after it)
                callback.auto = choice.summary()
    # max_steps / max_epochs -> the run's total optimizer steps, which the schedule, the data loader
    # and the progress bar read from the trainer.
    fix_total_steps(trainer, len(datamodule.train_ids), datamodule.batch_size, datamodule.block_size)
    if ckpt is not None and file is not None:
        follow_moved_run(ckpt, str(file), trainer.callbacks)
        if isinstance(trainer.strategy.checkpoint_io, AtomicCheckpointIO):
            trainer.strategy.checkpoint_io.preload(str(file), ckpt)  # fit() reads it from memory
    return trainer


def build_run(cfg: DictConfig) -> Run:
    """Data, model and trainer as configured, after every check that can fail before training."""
    checked = _checked_settings(cfg)
    file, ckpt = _checkpoint_to_resume(cfg)
    datamodule, pretrained = _read_text(cfg, checked, ckpt)
    vocab = datamodule.tokenizer.to_list()
    decided: list[str] = []  # what this machine decided, noted in the saved config
    said_lines = precision_decisions(cfg, checked.precision_line, checked.matmul_line, ckpt, file, decided)
    choice, model_config = None, checked.model_config
    if checked.auto:
        choice, model_config = _sized(cfg, datamodule, checked, ckpt, file)
        decided += _AUTO_NOTE
    record_resolved_config(cfg, [*decided, *filter(None, [checked.data_dir_note])])
    if ckpt is not None:
        check_resumable(ckpt, str(file), model_config, vocab, datamodule.fingerprint,
                        fix=resume_settings(cfg.get("init_from"), file),
                        train_fraction=getattr(datamodule, "train_fraction", None),
                        data_seed=getattr(datamodule, "seed", None),
                        earlier_sha256=datamodule.earlier_sha256)
    module = _module(cfg, model_config, vocab, choice, pretrained, ckpt, file)
    trainer = _run_trainer(cfg, datamodule, ckpt, file, choice, checked.start)
    for line in said_lines:  # said once every check has passed, not before an error
        log.info(line)
    if checked.precision_warning:
        log.warning(checked.precision_warning)
    finetuning = pretrained is not None and ckpt is None
    return Run(datamodule, module, trainer, str(file) if file is not None else None, finetuning=finetuning,
               started_from=pretrained.checkpoint if finetuning and pretrained is not None else None)
