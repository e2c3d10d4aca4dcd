"""Learning-rate schedules as multipliers of the base rate, for torch's LambdaLR.

Each takes the total step count at fit time (the trainer's max_steps), so a run whose step
count is decided late (e.g. from a time budget) still anneals properly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass
class Constant:
    warmup_steps: int = 0

    def __call__(self, step: int, total_steps: int) -> float:
        return min(1.0, (step + 1) / self.warmup_steps) if self.warmup_steps else 1.0


@dataclass
class WarmupCosine:
    """Linear warmup, then cosine decay to min_lr_ratio * lr at the last step."""

    warmup_steps: int = 100
    min_lr_ratio: float = 0.1

    def __call__(self, step: int, total_steps: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        span = max(1, total_steps - self.warmup_steps)
        progress = min(1.0, (step - self.warmup_steps) / span)
        return self.min_lr_ratio + (1 - self.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
