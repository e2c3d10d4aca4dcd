"""model=auto's calibration: the time of a shape's training steps on this machine, in the run's
precision, on real windows of its training text."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from chargpt.data.windows import gather_windows
from chargpt.model import ModelConfig, build_model
from chargpt.training.auto_size.ladder import Shape, shape_fields
from chargpt.training.optim import build_optimizer, plain_training_step
from chargpt.training.precision import precision_plugin

# One untimed warm-up step, then this many timed steps per shape (rule.py counts their cost).
TIMED_STEPS = 5


def step_timer(
    base: ModelConfig, optimizer: dict[str, Any], vocab_size: int, train_ids: np.ndarray,
    device: torch.device, clip: float | None, seed: int, precision: str = "32-true",
) -> Callable[..., float]:
    """measure(shape, dropout=None): seconds of the fastest of TIMED_STEPS training steps (forward,
    backward, gradient clipping, optimizer step) on real random windows, after one warm-up step,
    with `dropout` (None: `base`'s), in the run's
    resolved trainer.precision (its model conversion and forward context, as the Trainer applies
    them). The fastest, not the median: on a shared machine steps are easily slowed for a while
    (another job; on the 2-core CPU also the first seconds of a process), which would make a shape
    look slow and pick too small a model. The budget callback plans the real step count from the
    run's real pace anyway."""
    rng = np.random.default_rng(seed)
    run_precision = precision_plugin(precision, device)

    def batch(shape: Shape) -> tuple[torch.Tensor, torch.Tensor]:
        # Gathered from the (memory-mapped) ids as training gathers them: no copy of the whole split.
        starts = rng.integers(0, len(train_ids) - shape.block_size - 1, size=shape.batch_size)
        x, y = gather_windows(train_ids, starts, shape.block_size)
        return x.to(device), y.to(device)

    def measure(shape: Shape, dropout: float | None = None) -> float:
        fields = shape_fields(shape) | {"compile": False} | ({} if dropout is None else {"dropout": dropout})
        config = ModelConfig.from_dict(base.to_dict() | fields)
        # Model init draws from torch's RNG: keep the run's own stream as if nothing ran here.
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            model = run_precision.convert_module(build_model(config, vocab_size).to(device)).train()
            opt = build_optimizer(model, optimizer)
            times = []
            for i in range(1 + TIMED_STEPS):
                x, y = batch(shape)
                sync(device)
                t0 = time.perf_counter()
                plain_training_step(model, opt, x, y, run_precision, clip)
                sync(device)
                if i:  # the first step allocates: not timed
                    times.append(time.perf_counter() - t0)
        return min(times)

    return measure


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
