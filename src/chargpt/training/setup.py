"""Everything chargpt-train builds before fitting: checks, data, model, trainer, resume state.

`build_run` is shared by `chargpt-train` and the training benchmark, so the benchmark measures
exactly the path users run.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, NamedTuple

import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.types import RunMode
from hydra.utils import instantiate
from lightning.fabric.plugins import TorchCheckpointIO
from omegaconf import DictConfig, ListConfig

from chargpt.checkpoint import read_checkpoint, resolve_checkpoint
from chargpt.data import CharDataModule
from chargpt.errors import ConfigError, SetupError
from chargpt.hydra_app import plain
from chargpt.model import ModelConfig
from chargpt.run_dir import check_run_dir
from chargpt.training.budget import TimeBudget
from chargpt.training.callbacks import RunMetrics, ValidateAtEnd
from chargpt.training.checkpoint_io import AtomicCheckpointIO
from chargpt.training.finetune import apply_pretrained, freeze, prepare_finetune
from chargpt.training.guards import NonFiniteGuard
from chargpt.training.host_memory import keep_freed_memory
from chargpt.training.interrupt import GracefulInterrupt
from chargpt.training.module import CharLM
from chargpt.training.resume import ResumeState, check_resumable, corpus_fingerprint


def check_devices(trainer_cfg: DictConfig) -> None:
    """More devices than the machine has is a one-line error, not a Lightning traceback."""
    accelerator = str(trainer_cfg.get("accelerator", "auto"))
    devices = trainer_cfg.get("devices", "auto")
    if isinstance(devices, (list, ListConfig)):
        wanted = len(devices)
    elif str(devices).isdigit():
        wanted = int(devices)
    else:
        return  # "auto" or -1: Lightning takes what exists
    gpus = torch.cuda.device_count()
    if accelerator in ("gpu", "cuda") or (accelerator == "auto" and gpus):
        if gpus == 0:
            raise ConfigError(
                f"trainer.accelerator={accelerator} but no CUDA GPU is visible; use trainer=cpu"
            )
        if wanted > gpus:
            raise ConfigError(
                f"trainer.devices={devices} but {gpus} CUDA GPU(s) are visible; "
                f"use trainer.devices={gpus} or fewer"
            )
    elif accelerator in ("cpu", "auto") and wanted > (cores := os.cpu_count() or 1):
        raise ConfigError(
            f"trainer.devices={devices} asks for {wanted} CPU processes but this machine has {cores} CPU "
            f"cores; use trainer.devices={cores} or fewer"
        )


def check_launch(cfg: DictConfig) -> None:
    """Lightning's `ddp` starts each extra rank by re-running the command line: inside a Hydra
    multirun that re-runs the sweep, and the ranks silently train different configs."""
    strategy = str(cfg.trainer.get("strategy", "auto"))
    relaunches = strategy.startswith("ddp") and not any(k in strategy for k in ("spawn", "fork", "notebook"))
    if relaunches and HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        raise SetupError(
            f"trainer.strategy={strategy} cannot run inside a Hydra multirun (-m): each extra process "
            "would re-run the whole sweep with other settings; start each configuration as its own "
            "chargpt-train command"
        )


def _logger_kwargs(logger_cfg: DictConfig, resume_step: int | None) -> dict[str, Any]:
    # SummaryWriter's purge_step drops events at or after it from the earlier event files, so the
    # steps an interrupted run logged after its last checkpoint are not shown twice.
    if resume_step is not None and str(logger_cfg.get("_target_", "")).endswith("TensorBoardLogger"):
        return {"purge_step": resume_step}
    return {}


def build_trainer(
    cfg: DictConfig, output_dir: str, corpus: dict[str, Any] | None = None, resume_step: int | None = None
) -> L.Trainer:
    check_devices(cfg.trainer)
    callbacks = [instantiate(c) for c in (cfg.callbacks or {}).values() if c is not None]
    callbacks += [
        ValidateAtEnd(), RunMetrics(output_dir), ResumeState(corpus), NonFiniteGuard(),
        GracefulInterrupt(output_dir),
    ]
    if cfg.get("budget_seconds"):
        callbacks.append(TimeBudget(cfg.budget_seconds, output_dir))
    loggers = [
        instantiate(c, **_logger_kwargs(c, resume_step)) for c in (cfg.logger or {}).values() if c is not None
    ]
    try:
        trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    except InstantiationException as err:
        cause = err.__cause__ or err
        raise ConfigError(f"invalid trainer settings: {str(cause).strip().splitlines()[0]}") from None
    if type(trainer.strategy.checkpoint_io) is TorchCheckpointIO:  # keep a user-configured one
        trainer.strategy.checkpoint_io = AtomicCheckpointIO()
    return trainer


class Run(NamedTuple):
    datamodule: CharDataModule
    module: CharLM
    trainer: L.Trainer
    ckpt_path: str | None  # the checkpoint to resume from
    finetuning: bool


def build_run(cfg: DictConfig) -> Run:
    """Data, model and trainer as configured, after every check that can fail before training."""
    check_launch(cfg)
    keep_freed_memory()  # glibc: no page faults for the memory each step frees and reallocates
    output_dir = cfg.paths.output_dir
    if os.environ.get("LOCAL_RANK", "0") == "0":
        # Sweep jobs (and callers without the Hydra callback) get the run-directory check here.
        check_run_dir(Path(output_dir), cfg.ckpt_path)
    torch.set_float32_matmul_precision(cfg.get("matmul_precision", "highest"))
    model_config = ModelConfig.from_dict(plain(cfg.model))  # validated before any data work
    pretrained = None
    if cfg.get("init_from"):
        pretrained = prepare_finetune(cfg, model_config, list(HydraConfig.get().overrides.task))
        model_config = pretrained.config

    datamodule = instantiate(
        cfg.data, block_size=model_config.block_size, vocab=pretrained.vocab if pretrained else None
    )
    datamodule.prepare_data()
    datamodule.setup("fit")
    vocab = datamodule.tokenizer.to_list()
    corpus = corpus_fingerprint(datamodule.path)
    ckpt_path, resume_step = None, None
    if cfg.ckpt_path:
        # Read (weights-only) and compared before Lightning touches it: a checkpoint of another
        # corpus or model is refused with the reason, not a shape-mismatch traceback.
        file = resolve_checkpoint(cfg.ckpt_path)
        ckpt = read_checkpoint(file)
        check_resumable(ckpt, str(file), model_config.to_dict(), vocab, corpus)
        ckpt_path, resume_step = str(file), int(ckpt.get("global_step", 0))
        del ckpt
    module = CharLM(
        model=model_config.to_dict(),
        vocab=vocab,
        optimizer=plain(cfg.optimizer),
        scheduler=plain(cfg.scheduler),
    )
    if pretrained is not None:
        apply_pretrained(module.model, pretrained)
        freeze(module.model, cfg.finetune.freeze_embeddings, cfg.finetune.freeze_blocks)
    trainer = build_trainer(cfg, output_dir, corpus, resume_step)
    return Run(datamodule, module, trainer, ckpt_path, pretrained is not None)
