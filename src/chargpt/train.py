"""chargpt-train: compose the config, build data, model and trainer, fit, print a sample."""

from __future__ import annotations

import logging
import sys
import time

import hydra
import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from chargpt.api import TrainedModel
from chargpt.checkpoint import resolve_checkpoint, run_dir_of
from chargpt.data import CharDataModule
from chargpt.errors import ChargptError, exit_on_user_error
from chargpt.hydra_app import CONFIG_PATH, plain, quiet_known_warnings
from chargpt.model import ModelConfig
from chargpt.training import CharLM
from chargpt.training.callbacks import RunMetrics, ValidateAtEnd

log = logging.getLogger(__name__)


def build_trainer(cfg: DictConfig, output_dir: str) -> L.Trainer:
    callbacks = [instantiate(c) for c in (cfg.callbacks or {}).values()]
    callbacks += [ValidateAtEnd(), RunMetrics(output_dir)]
    loggers = [instantiate(c) for c in (cfg.logger or {}).values()]
    return instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)


def build_run(cfg: DictConfig) -> tuple[CharDataModule, CharLM, L.Trainer]:
    """Data, model and trainer as chargpt-train builds them (the training benchmark reuses this)."""
    model_config = ModelConfig.from_dict(plain(cfg.model))  # validated before any data work
    torch.set_float32_matmul_precision(cfg.get("matmul_precision", "highest"))
    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("fit")
    module = CharLM(
        model=model_config.to_dict(),
        vocab=datamodule.tokenizer.to_list(),
        optimizer=plain(cfg.optimizer),
        scheduler=plain(cfg.scheduler),
    )
    return datamodule, module, build_trainer(cfg, cfg.paths.output_dir)


def train(cfg: DictConfig) -> float | None:
    """Train as configured; returns the best validation loss (the metric sweeps optimise)."""
    quiet_known_warnings()
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    output_dir = cfg.paths.output_dir
    datamodule, module, trainer = build_run(cfg)
    ckpt_path = str(resolve_checkpoint(cfg.ckpt_path)) if cfg.ckpt_path else None
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)

    metrics = next((c for c in trainer.callbacks if isinstance(c, RunMetrics)), None)
    if trainer.is_global_zero and metrics is not None:
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
def _hydra_main(cfg: DictConfig) -> float | None:
    return train(cfg)


def main() -> None:
    sys.argv = resume_overrides(sys.argv)
    _hydra_main()


if __name__ == "__main__":
    main()
