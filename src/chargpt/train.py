"""chargpt-train: compose the config, build data, model and trainer, fit, print a sample."""

from __future__ import annotations

import logging
import os
import shlex
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import hydra
import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.types import RunMode
from hydra.utils import instantiate
from lightning.fabric.plugins import TorchCheckpointIO
from omegaconf import DictConfig, ListConfig

from chargpt.api import TrainedModel
from chargpt.checkpoint import read_checkpoint, resolve_checkpoint, run_dir_of
from chargpt.errors import ChargptError, ConfigError, exit_on_user_error
from chargpt.hydra_app import CONFIG_PATH, instantiate_checked, plain, quiet_known_warnings
from chargpt.model import ModelConfig
from chargpt.run_status import record_status
from chargpt.training import CharLM
from chargpt.training.budget import TimeBudget
from chargpt.training.callbacks import RunMetrics, ValidateAtEnd
from chargpt.training.checkpoint_io import AtomicCheckpointIO
from chargpt.training.finetune import apply_pretrained, freeze, prepare_finetune
from chargpt.training.guards import NonFiniteGuard
from chargpt.training.interrupt import GracefulInterrupt, TrainingInterrupted
from chargpt.training.resume import ResumeState, check_resumable, corpus_fingerprint

log = logging.getLogger(__name__)


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
        raise ConfigError(
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


def resume_command(run_dir: str | Path) -> str:
    """The command that continues this run: the same overrides, with ckpt_path at its directory."""
    overrides = list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []
    kept = [o for o in overrides if not o.startswith(("ckpt_path=", "+ckpt_path=", "++ckpt_path="))]
    return shlex.join(["chargpt-train", *kept, f"ckpt_path={run_dir}"])


def train(cfg: DictConfig) -> float | None:
    """Train as configured; returns the best validation loss (the metric sweeps optimise)."""
    quiet_known_warnings()
    check_launch(cfg)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    output_dir = cfg.paths.output_dir
    model_config = ModelConfig.from_dict(plain(cfg.model))  # validated before any data work
    pretrained = None
    if cfg.init_from:
        pretrained = prepare_finetune(cfg, model_config, list(HydraConfig.get().overrides.task))
        model_config = pretrained.config

    datamodule = instantiate_checked(
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
        warnings.filterwarnings("ignore", message=r".*Checkpoint directory .* exists and is not empty.*")
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
    if pretrained is not None:  # the starting point on the new text, logged at step 0
        trainer.validate(module, datamodule=datamodule, verbose=False)
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    except TrainingInterrupted as stop:
        if trainer.is_global_zero:
            print(
                f"stopped by {stop.signal_name} after step {stop.step}: "
                f"checkpoint written to {stop.checkpoint}\n"
                f"resume with: {resume_command(run_dir_of(stop.checkpoint))}",
                file=sys.stderr, flush=True,
            )
        sys.exit(stop.exit_code)

    metrics = next((c for c in trainer.callbacks if isinstance(c, RunMetrics)), None)
    # trainer.datamodule is None after a *_spawn strategy: training ran in child processes, and
    # rank 0's metrics.json holds the figures.
    if trainer.is_global_zero and metrics is not None and trainer.datamodule is not None:
        m = metrics.metrics(trainer, module)
        log.info(
            "step %d: val loss %s (best %s), %.0f s, %.0f tokens/s; run dir %s",
            m["step"], _fmt(m["val_loss"]), _fmt(m["best_val_loss"]), m["train_seconds"],
            m["tokens_per_second"] or 0, output_dir,
        )
        if cfg.sample.max_new_tokens > 0:
            print_sample(TrainedModel(module.model, datamodule.tokenizer), cfg.sample)
    return metrics.best_val_loss if metrics is not None else None


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4f}"


def print_sample(trained: TrainedModel, options: DictConfig) -> None:
    print(f"\n--- sample (temperature {options.temperature}, seed {options.seed}) ---")
    print(options.prompt, end="", flush=True)
    for ch in trained.stream(**plain(options)):
        print(ch, end="", flush=True)
    print()


def resume_overrides(argv: list[str]) -> list[str]:
    """`ckpt_path=RUN` resumes into RUN itself: point Hydra's run dir there (keeping the first
    config: the resumed config goes to a new .hydra/resume-* folder)."""
    if any(a in ("-m", "--multirun") or a.startswith(("hydra.run.dir=", "hydra.mode=")) for a in argv):
        return argv
    value = next((a.split("=", 1)[1] for a in argv if a.startswith("ckpt_path=")), None)
    if not value or value.lower() == "null":
        return argv
    try:
        run_dir = run_dir_of(resolve_checkpoint(value.strip("'\"")))
    except ChargptError:
        return argv  # train() reports the problem
    stamp = time.strftime("%Y%m%d-%H%M%S")
    quoted = str(run_dir.resolve()).replace("\\", "\\\\").replace("'", "\\'")
    return [*argv, f"hydra.run.dir='{quoted}'", f"hydra.output_subdir=.hydra/resume-{stamp}"]


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="train")
@exit_on_user_error
@record_status  # status.json per run; in a sweep a failing job does not stop the others
def _hydra_main(cfg: DictConfig) -> float | None:
    return train(cfg)


def main() -> None:
    sys.argv = resume_overrides(sys.argv)
    try:
        _hydra_main()
    except KeyboardInterrupt:  # before or after the training loop: nothing to save
        print("interrupted", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
