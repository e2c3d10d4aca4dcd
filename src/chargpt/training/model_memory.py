"""What a model's parameters need of this machine's memory to train (to be built at all: model/size.py)."""

from __future__ import annotations

import torch
from omegaconf import DictConfig

from chargpt.errors import ChargptError, ConfigError
from chargpt.hydra_run import plain
from chargpt.model import ModelConfig, count_parameters
from chargpt.model import size as model_size
from chargpt.training.precision import lightning_precision_name, run_device


def bytes_per_parameter(cfg: DictConfig) -> tuple[int, str]:
    """What training holds of each parameter whatever the batch, and what that is: its weight and
    gradient, and AdamW's two moments or (at least) Muon's one momentum, each in the width the
    precision keeps weights in (float32 for autocast: bf16-mixed and 16-mixed keep it)."""
    name = lightning_precision_name(cfg.trainer.get("precision"))
    # (auto is bf16-mixed or 32-true; transformer-engine's weights are bf16 or float16)
    width = 8 if name == "64-true" else 4 if name in ("auto", "32-true") or name.endswith("-mixed") else 2
    if str(cfg.optimizer.get("_target_", "")).endswith("muon_adamw"):
        return 3 * width, "weights, gradients, Muon's momentum"
    return 4 * width, "weights, gradients, AdamW's moments"


def check_model_fits(config: ModelConfig, vocab_size: int) -> None:
    """Refuse a model whose float32 weights alone are more than this machine's memory, swap included,
    before building it (model_size.too_large_to_build). Any model refused here could not have been built."""
    if (too_large := model_size.too_large_to_build(config, vocab_size)) is not None:
        said, size = too_large
        raise ConfigError(f"{said}; use {size.smaller()}")


def model_too_large(cfg: DictConfig) -> tuple[str, str] | None:
    """What the model alone needs to train (its size, and the memory that takes), said where that
    is more than this machine has (its RAM, or its GPU's where the run trains on one: the model is
    built in one and trained in the other), and the settings to make smaller. None where it fits,
    or where the config cannot say."""
    try:
        fields = plain(cfg.model)
        fields.pop("auto", None)  # model=auto: the shape chosen is written over its own
        config = ModelConfig.from_dict(fields)
        parameters = count_parameters(config, vocab_size=256)  # the vocabulary adds little
        per_parameter, held = bytes_per_parameter(cfg)
        memory = model_size.physical_memory()
    except (ChargptError, ValueError, OSError):
        return None
    if (device := run_device(cfg.trainer)).type == "cuda":  # (a run on the CPU has the RAM alone)
        memory = min(memory, torch.cuda.get_device_properties(device).total_memory)
    needed = parameters * per_parameter
    if needed <= memory:
        return None
    size = model_size.ModelSize.of(config, vocab_size=256)
    return (f"{size.said()}, {needed / 2**30:,.0f} GiB to train ({per_parameter} bytes each: {held}) "
            f"where it has {memory / 2**30:,.0f} GiB",
            size.smaller())
