"""model=auto's rule: what the budget buys with each shape at its measured step time, the climb up
the ladder, the pick (`nearest`) and the recipe settled for it (`settle`): a pure function of the
step times, the budget and the corpus size (`measure` and `used` are given)."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from chargpt.errors import ConfigError
from chargpt.training.auto_size import ladder as shape_ladder
from chargpt.training.auto_size.calibration import TIMED_STEPS
from chargpt.training.auto_size.choice import Choice, Estimate
from chargpt.training.auto_size.ladder import Shape, non_embedding_params, target_tokens_per_param
from chargpt.training.auto_size.recipe import adamw_lr_for, dropout_for, momentum_for, weight_decay_for
from chargpt.training.budget_plan import RESERVE_SECONDS, VALIDATION_MARGIN, budget_to_ask, busy_advice
from chargpt.training.steps import batches_per_epoch, step_limits

log = logging.getLogger(__package__)  # model=auto's lines keep one name, whichever module logs

# ---- The rule's constants (provisional; see the package docstring) -----------------------------
# Too few tokens per parameter costs more than too many: each time a shape at 2.3-3.2 tokens per
# parameter met the next smaller one at 5-7, the smaller won (3x128 over 4x160 at 600 s on an Intel
# Xeon without AMX, by 0.012-0.017; 3x128 over 4x128 at 100 s and 4x192 over 5x224 at 600 s on the
# Intel Xeon with AMX, by 0.009 and by 0.010-0.030), where the plain log distance picked the larger.
# So a shape below the target counts its distance in log scale this many times.
SHORTFALL_WEIGHT = 2.0
# The climb may take at most this fraction of the budget (a dropout's timing of the chosen shape
# comes after).
CALIBRATION_FRACTION = 0.05
# A calibration longer than this says which shape it is timing (a long budget climbs to shapes
# whose steps take a second or more on a CPU: ~30 s in all at budget_seconds=86400).
PROGRESS_AFTER_SECONDS = 5.0
# Timing a shape costs ~7 of its steps (its build, the warm-up step, the timed ones; 6.5-9.7 on the
# 2-core CPU). The first shape of a process can cost far more: 2.5 s on an H200, ~200 of its 12 ms
# steps (the process's first work on the device). Projected from that, the next shape passed the
# cap and the climb stopped at the first shape (docs/BENCHMARKS.md, "GPU check"). So the first
# shape's cost counts as at most this many of its steps.
FIRST_SHAPE_COST_STEPS = 3 * (1 + TIMED_STEPS)
# A validation forward costs about this fraction of a training step (forward + backward + update)
# per token: used to reserve the final full validation (with the budget callback's margin, and its
# reserve for saving, the sample and the exit: VALIDATION_MARGIN, RESERVE_SECONDS).
VAL_FORWARD_FRACTION = 1 / 3
# The training loop's own cost per step beyond the bare step timed here (logging, callbacks,
# data loader): 1.3-2.1 ms on the 2-core CPU (docs/BENCHMARKS.md).
LOOP_OVERHEAD_SECONDS = 0.0015
# The fewest steps a budget must buy the smallest shape, or the run is refused before it starts:
# the budget callback times 35 steps before it plans, and at ~100 steps a character model has only
# begun to learn (the 30 s runs of docs/EXPERIMENTS.md make ~500 steps of the smallest shape).
MIN_STEPS = 100
# ------------------------------------------------------------------------------------------------


def end_seconds(
    shape: Shape, step_seconds: float, val_chars: int, reserve_seconds: float = RESERVE_SECONDS
) -> float:
    """What follows the last step of `shape` at `step_seconds` a step: the final full validation
    (with the budget callback's margin) and the callback's reserve for saving, the sample and the exit."""
    val_batches = math.ceil(val_chars / shape.tokens_per_step())
    return VALIDATION_MARGIN * VAL_FORWARD_FRACTION * step_seconds * val_batches + reserve_seconds


def check_room_to_time(budget_seconds: float, used_seconds: float,
                       reserve_seconds: float = RESERVE_SECONDS) -> None:
    """Refuse, before any shape is timed, a budget that start-up has used up (with the budget
    callback's reserve after the last step): no shape fits in it, and timing one takes seconds on a
    busy CPU. Only start-up is measured yet, so the budget named holds it and the reserve: one short
    of the smallest shape's MIN_STEPS is refused after that shape is timed (check_enough_steps)."""
    needed = used_seconds + reserve_seconds
    if needed < budget_seconds:
        return
    minimum = budget_to_ask(needed)
    raise ConfigError(
        f"budget_seconds={budget_seconds:g} is too small for model=auto on this machine: start-up took "
        f"{used_seconds:.1f} s of it before any shape could be timed, and saving and the exit need "
        f"~{reserve_seconds:g} s after the last step; use budget_seconds={minimum} or more, with room for "
        f"timing the smallest shape and {MIN_STEPS} steps of it (a budget short of those is refused, with "
        f"the one they need, once that shape is timed){busy_advice()}"
    )


def check_enough_steps(smallest: Shape, step_seconds: float, budget_seconds: float, used_seconds: float,
                       val_chars: int, reserve_seconds: float = RESERVE_SECONDS) -> None:
    """Refuse a budget that cannot buy MIN_STEPS of the smallest shape, before a choice is printed,
    naming a budget that can (with a 20% margin: the climb times more shapes in a larger budget)."""
    steps = MIN_STEPS * (step_seconds + LOOP_OVERHEAD_SECONDS)
    end = end_seconds(smallest, step_seconds, val_chars, reserve_seconds)
    if used_seconds + steps + end <= budget_seconds:
        return
    minimum = budget_to_ask(used_seconds + steps + end)
    raise ConfigError(
        f"budget_seconds={budget_seconds:g} is too small for model=auto on this machine: start-up and "
        f"timing its smallest shape ({smallest.name}) took {used_seconds:.0f} s, and {MIN_STEPS} steps of "
        f"it at {1000 * step_seconds:.0f} ms plus the final validation and saving need "
        f"~{steps + end:.0f} s more; use budget_seconds={minimum} or more{busy_advice()}"
    )


@dataclass(frozen=True)
class StepCaps:
    """The command line's trainer.max_steps and trainer.max_epochs (None: not set): the run stops
    at the first reached whatever its budget buys, so a shape is planned for no more steps."""

    max_steps: int | None = None
    max_epochs: int | None = None

    def of(self, shape: Shape, train_chars: int) -> tuple[int, str] | None:
        """The fewest steps the caps allow `shape` on a text of `train_chars`, and the setting."""
        per_epoch = batches_per_epoch(train_chars, shape.batch_size, shape.block_size)
        caps = step_limits(self.max_steps, self.max_epochs, per_epoch)  # the run's own rule
        return min(caps) if caps else None


def estimate(
    shape: Shape, step_seconds: float, budget_seconds: float, used_seconds: float,
    train_chars: int, val_chars: int, reserve_seconds: float = RESERVE_SECONDS, caps: StepCaps = StepCaps(),
) -> Estimate:
    """Steps, tokens per parameter and epochs of `shape` at `step_seconds` a (bare) step, when
    `used_seconds` of the budget are gone before training starts; `caps` (trainer.max_steps and
    max_epochs) cap the steps, as they cap the run's."""
    per_step = step_seconds + LOOP_OVERHEAD_SECONDS
    final = end_seconds(shape, step_seconds, val_chars, reserve_seconds)
    steps = max(0, math.floor((budget_seconds - used_seconds - final) / per_step))
    if (cap := caps.of(shape, train_chars)) is not None:
        steps = min(steps, cap[0])
    tokens = steps * shape.tokens_per_step()
    return Estimate(
        shape, 1000 * step_seconds, steps, tokens / non_embedding_params(shape), tokens / max(1, train_chars)
    )


def nearest(measured: Sequence[Estimate], stopped: str) -> tuple[Estimate, str]:
    """The shape whose tokens per parameter is nearest the target (log scale), and why.
    `measured` is in ladder order; `stopped` says why the climb ended."""
    if not measured:
        shortest = min(s.block_size for s in shape_ladder.LADDER)
        raise ConfigError(
            f"model=auto has no shape for this text: each split needs more than {shortest} characters "
            "(the shortest context model=auto uses); use a longer text, or a fixed model such as model=tiny"
        )
    target = target_tokens_per_param()
    best = min(measured, key=lambda e: distance(e.tokens_per_param, target))
    return best, (
        f"{best.tokens_per_param:.2f} tokens per parameter in the budget is the nearest to the target "
        f"{target:.2f} (the best measured shape at 100 s; a shortfall counts {SHORTFALL_WEIGHT:g}x); "
        f"climb stopped: {stopped}"
    )


def distance(tokens_per_param: float, target: float) -> float:
    """How far a shape's tokens per parameter lie from the target: in log scale, a shortfall
    counting SHORTFALL_WEIGHT times."""
    log_ratio = math.log(max(tokens_per_param, 1e-9) / target)
    return log_ratio if log_ratio >= 0 else -SHORTFALL_WEIGHT * log_ratio


def settle(
    planned: Estimate, measured: Sequence[Estimate], why_shape: str, dropout: float | None = None,
    timing_note: str = "", dropout_label: str = "",
) -> Choice:
    """The recipe for the shape of `planned`: dropout and Muon weight decay from the epochs it
    plans, AdamW lr from its width and steps, Muon momentum from its steps. A `dropout` the caller
    fixes (`dropout_label` says why) replaces the rule's; `timing_note` prefixes the epochs."""
    dropout = dropout_for(planned.epochs) if dropout is None else dropout
    weight_decay = weight_decay_for(planned.epochs)
    adamw_lr, momentum = adamw_lr_for(planned.shape.n_embd, planned.steps), momentum_for(planned.steps)
    reason = (
        f"{why_shape}; {timing_note}{planned.epochs:.1f} epochs over the training text -> "
        f"dropout {dropout:g}{f' ({dropout_label})' if dropout_label else ''}, Muon weight decay "
        f"{weight_decay:g}; {planned.steps:,} steps -> AdamW lr {adamw_lr:g}, Muon momentum {momentum:g}"
    )
    return Choice(
        planned.shape, dropout, adamw_lr, weight_decay, list(measured), target_tokens_per_param(), reason,
        momentum=momentum, planned=planned,
    )


def retime_with_dropout(
    choice: Choice, measure: Callable[..., float], budget_seconds: float, used: Callable[[], float],
    train_chars: int, val_chars: int, why_shape: str, reserve_seconds: float = RESERVE_SECONDS,
    caps: StepCaps = StepCaps(),
) -> Choice:
    """The shapes were timed without dropout, and on a CPU dropout makes each step much slower (see
    DROPOUT_BY_EPOCHS): the run would train fewer steps and epochs than its rates were set for.
    Time the chosen shape again with the rule's dropout and settle on what it then makes. If those
    epochs call for no dropout, the run goes without it, at the speed first measured."""
    first = choice.planned
    assert first is not None
    if first.step_ms / 1000 * (1 + TIMED_STEPS) > PROGRESS_AFTER_SECONDS:
        log.info("model=auto: timing %s again with dropout %g", choice.shape.name, choice.dropout)
    seconds = measure(choice.shape, dropout=choice.dropout)
    slower = estimate(choice.shape, seconds, budget_seconds, used(), train_chars, val_chars, reserve_seconds,
                      caps)
    note = f"with dropout {choice.dropout:g} a step takes {slower.step_ms:.1f} ms"
    note += f" ({first.step_ms:.1f} without)"
    if dropout_for(slower.epochs) == 0.0:
        note += f" and the run would make {slower.epochs:.1f} epochs, too few for dropout: none; "
        # The first speed, over what is left of the budget after this timing.
        again = estimate(choice.shape, first.step_ms / 1000, budget_seconds, used(), train_chars, val_chars,
                         reserve_seconds, caps)
        settled = settle(again, choice.measured, why_shape, 0.0, note)
    else:
        settled = settle(slower, choice.measured, why_shape, None, note + ": ")
    settled.dropout_timing = slower
    return settled


def climb(
    ladder: Sequence[Shape],
    measure: Callable[..., float],
    budget_seconds: float,
    used: Callable[[], float],
    train_chars: int,
    val_chars: int,
    dropout: float | None = None,
    reserve_seconds: float = RESERVE_SECONDS,
    caps: StepCaps = StepCaps(),
) -> Choice:
    """Measure shapes from small to large until one falls below the target ratio or the
    calibration would overrun its share of the budget, pick the `nearest` and `settle` its recipe;
    a dropout the rule sets is timed on the chosen shape after (`retime_with_dropout`).
    `measure(shape, dropout)` returns seconds a step; `used()` the seconds of the budget gone so
    far (calibration included); `dropout` is the command line's, None for the rule's;
    `reserve_seconds` the budget callback's reserve at the end of the run; `caps` the command
    line's trainer.max_steps and max_epochs, which cap the steps of every shape."""
    target = target_tokens_per_param()
    cap = CALIBRATION_FRACTION * budget_seconds
    start, measured, stopped = used(), [], "the largest shape was reached"
    check_room_to_time(budget_seconds, start, reserve_seconds)
    last_cost = 0.0
    log.info("model=auto: timing up to %d shapes, smallest first, in about %g%% of the budget",
             len(ladder), 100 * CALIBRATION_FRACTION)
    for number, shape in enumerate(ladder, 1):
        if measured and used() - start + last_cost * 2.5 > cap:  # larger shapes cost more to time
            stopped = f"the next shape would take the calibration past {cap:.1f} s"
            break
        if used() - start > PROGRESS_AFTER_SECONDS:  # a long budget times the large shapes: say so
            log.info("model=auto: timing %s (%d of %d), %.0f s so far", shape.name, number, len(ladder),
                     used() - start)
        before = used()
        seconds = measure(shape, dropout=0.0 if dropout is None else dropout)
        last_cost = used() - before
        if not measured:  # no larger shape makes more steps: refuse now, before a choice is shown
            check_enough_steps(shape, seconds, budget_seconds, used(), val_chars, reserve_seconds)
            last_cost = min(last_cost, FIRST_SHAPE_COST_STEPS * seconds)
        measured.append(estimate(
            shape, seconds, budget_seconds, used(), train_chars, val_chars, reserve_seconds, caps
        ))
        if measured[-1].tokens_per_param < target:
            stopped = f"{shape.name} is below the target"
            break
    best, why_shape = nearest(measured, stopped)
    cap = caps.of(best.shape, train_chars)
    if cap is not None and best.steps == cap[0]:  # the budget would buy more
        why_shape += f"; {cap[1]} caps the steps"
    choice = settle(best, measured, why_shape, dropout, dropout_label="given" if dropout is not None else "")
    if dropout is None and choice.dropout > 0:
        choice = retime_with_dropout(
            choice, measure, budget_seconds, used, train_chars, val_chars, why_shape, reserve_seconds, caps,
        )
    choice.calibration_seconds = used() - start
    return choice
