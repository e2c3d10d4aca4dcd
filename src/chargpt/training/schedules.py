"""Learning-rate schedules as multipliers of the base rate, and the LambdaLR that applies one.

Each takes the total step count at fit time (the trainer's max_steps), read again at every step,
so a run whose step count is decided late (e.g. from a time budget) still anneals properly.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from hydra.utils import instantiate
from torch.optim.lr_scheduler import LambdaLR

from chargpt.checks import real_number, whole_number
from chargpt.errors import SettingError

Schedule = Callable[[int, int], float]  # (step, total steps) -> multiplier of the base rate


def _check_warmup(warmup_steps: object) -> None:
    whole_number("scheduler.warmup_steps", warmup_steps, low=0)


def _warmup(step: int, warmup_steps: int) -> float | None:
    """The linear warmup's multiplier, 1/warmup_steps at step 0 up to 1 at its last step; None once
    it is over (each schedule goes on its own way from there)."""
    return (step + 1) / warmup_steps if step < warmup_steps else None


def _check_floor(min_lr_ratio: object) -> None:
    # A floor above 1 would raise the rate as it "decays"; below 0 the rate turns negative.
    if not 0.0 <= real_number("scheduler.min_lr_ratio", min_lr_ratio) <= 1.0:
        raise SettingError(f"scheduler.min_lr_ratio={min_lr_ratio} must be between 0 and 1 (e.g. 0.1)",
                           "scheduler.min_lr_ratio")


# Each schedule's check_settings is what its constructor checks, and what a run checks of the
# scheduler.* settings before it reads any data (run_checks.check_constructor_settings).


@dataclass
class Constant:
    warmup_steps: int = 0

    def __post_init__(self) -> None:
        self.check_settings(self.warmup_steps)

    @staticmethod
    def check_settings(warmup_steps: object) -> None:
        _check_warmup(warmup_steps)

    def __call__(self, step: int, total_steps: int) -> float:
        warming = _warmup(step, self.warmup_steps)
        return 1.0 if warming is None else warming


@dataclass
class WarmupCosine:
    """Linear warmup, then cosine decay to min_lr_ratio * lr at step total_steps, as the last step ends."""

    warmup_steps: int = 100
    min_lr_ratio: float = 0.1

    def __post_init__(self) -> None:
        self.check_settings(self.warmup_steps, self.min_lr_ratio)

    @staticmethod
    def check_settings(warmup_steps: object, min_lr_ratio: object) -> None:
        _check_warmup(warmup_steps)
        _check_floor(min_lr_ratio)

    def __call__(self, step: int, total_steps: int) -> float:
        if (warming := _warmup(step, self.warmup_steps)) is not None:
            return warming
        span = max(1, total_steps - self.warmup_steps)
        progress = min(1.0, (step - self.warmup_steps) / span)
        return self.min_lr_ratio + (1 - self.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


@dataclass
class WarmupStableDecay:
    """Warmup-stable-decay (WSD): linear warmup, a constant rate, then a decay over the last
    decay_fraction of the run to min_lr_ratio * lr as the last step ends ("linear" or "sqrt":
    1 - sqrt(progress), which spends longer near the floor).

    Only the decay depends on total_steps, so a step count fixed or shortened during the stable
    phase still ends annealed.
    """

    warmup_steps: int = 100
    decay_fraction: float = 0.3
    min_lr_ratio: float = 0.0
    decay_shape: str = "linear"

    def __post_init__(self) -> None:
        self.check_settings(self.warmup_steps, self.decay_fraction, self.min_lr_ratio, self.decay_shape)

    @staticmethod
    def check_settings(warmup_steps: object, decay_fraction: object, min_lr_ratio: object,
                       decay_shape: object) -> None:
        _check_warmup(warmup_steps)
        _check_floor(min_lr_ratio)
        if not 0.0 <= real_number("scheduler.decay_fraction", decay_fraction) <= 1.0:
            raise SettingError(f"scheduler.decay_fraction={decay_fraction} must be in [0, 1]",
                               "scheduler.decay_fraction")
        if decay_shape not in ("linear", "sqrt"):
            raise SettingError(f"scheduler.decay_shape={decay_shape!r} is not one of linear, sqrt",
                               "scheduler.decay_shape")

    def __call__(self, step: int, total_steps: int) -> float:
        if (warming := _warmup(step, self.warmup_steps)) is not None:
            return warming
        decay_steps = max(1, round(self.decay_fraction * total_steps))
        decay_start = max(self.warmup_steps, total_steps - decay_steps)
        if step < decay_start:
            return 1.0
        progress = min(1.0, (step - decay_start) / max(1, total_steps - decay_start))
        remaining = 1.0 - progress if self.decay_shape == "linear" else 1.0 - math.sqrt(progress)
        return self.min_lr_ratio + (1.0 - self.min_lr_ratio) * remaining


def build_schedule(config: dict[str, Any] | None) -> Schedule | None:
    """The configured schedule (configs/scheduler/), None without a config."""
    return instantiate(config) if config else None


def build_scheduler(
    optimizer: torch.optim.Optimizer,
    schedule: Schedule | dict[str, Any] | None,
    total_steps: Callable[[], int],
) -> LambdaLR | None:
    """The per-step LR schedule (a schedule or its config), None without one; `total_steps` is
    called at every step."""
    if isinstance(schedule, dict):
        schedule = build_schedule(schedule)
    if schedule is None:
        return None
    return LambdaLR(optimizer, lambda step: schedule(step, total_steps()))


def depends_on_total(schedule: Schedule, steps_taken: int, old_total: int, new_total: int) -> bool:
    """Whether the rates of the steps already taken would differ under the new total (cosine:
    yes past its warmup; constant, warmup and WSD before its decay: no)."""
    return old_total != new_total and any(
        schedule(step, old_total) != schedule(step, new_total) for step in range(steps_taken)
    )
