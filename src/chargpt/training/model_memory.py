"""What a model's parameters need of this machine's memory to train."""

from __future__ import annotations

import os

from omegaconf import DictConfig

from chargpt.training.precision import lightning_precision_name


def physical_memory() -> int:
    """This machine's RAM in bytes (OSError where the system does not say)."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


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
