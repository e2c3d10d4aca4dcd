"""Optimizer and learning-rate schedule from plain config dicts.

Weight decay applies to matrices and embeddings, not to biases and norm gains.
"""

from __future__ import annotations

from typing import Any

import torch
from hydra.utils import instantiate
from torch import nn
from torch.optim.lr_scheduler import LambdaLR


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    params = [p for p in model.parameters() if p.requires_grad]  # tied weights appear once
    return [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]


def build_optimizer(
    model: nn.Module,
    optimizer: dict[str, Any] | None,
    scheduler: dict[str, Any] | None,
    total_steps: int,
) -> tuple[torch.optim.Optimizer, LambdaLR | None]:
    """The optimizer over `model` and its per-step LR schedule (None without a scheduler config)."""
    opt_cfg = dict(optimizer or {"_target_": "torch.optim.AdamW"})
    weight_decay = opt_cfg.pop("weight_decay", 0.0)
    opt = instantiate(opt_cfg, _partial_=True)(param_groups(model, weight_decay))
    if not scheduler:
        return opt, None
    schedule = instantiate(scheduler)
    return opt, LambdaLR(opt, lambda step: schedule(step, total_steps))

