"""The time budget's clock and arithmetic: when a run started, what the end of a run costs, how
many steps fit, and when to re-plan. The TimeBudget callback (callbacks/budget.py) applies them to
a run; model=auto (auto_size/rule.py) sizes its model with the same costs.
"""

from __future__ import annotations

import math
import os
import time
import weakref
from collections.abc import Callable
from typing import Any, NamedTuple

import lightning as L
import torch

from chargpt.checks import shown
from chargpt.errors import ConfigError
from chargpt.model.sampling import iter_tokens
from chargpt.plural import counted

_IMPORT_TIME = time.monotonic()


def process_start_time() -> float:
    """time.monotonic() at the moment this process started (Linux /proc); elsewhere, the time this
    module was imported (which misses the interpreter's own start-up)."""
    try:
        with open("/proc/self/stat") as f:
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])  # field 22: starttime
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        age = uptime - start_ticks / os.sysconf("SC_CLK_TCK")
        return time.monotonic() - max(0.0, age)
    except (OSError, ValueError, IndexError):
        return _IMPORT_TIME


_startup_seconds: float | None = None


def run_start_time() -> float:
    """When this run started: the process start for the first run of a process. Later runs of a
    multirun sweep share the process, so each is charged the first run's start-up time instead."""
    global _startup_seconds
    now = time.monotonic()
    if _startup_seconds is None:
        _startup_seconds = now - process_start_time()
    return now - _startup_seconds


# The final validation is priced from forwards of its first batch timed back to back (TIMED_FORWARDS
# of them, their mean: at the machine's load of the moment), times its batches, times
# VALIDATION_MARGIN. Measured on a 2-core CPU under a load average of 6-12 from other work
# (docs/EXPERIMENTS.md, "The end priced at the load of the moment"): model=tiny's validation loop
# took 0.5-2.3x the mean of four forwards (seven tries; 1.9x and 2.3x the largest), and 0.6-4.1x
# the fastest of three, which the margin of 1.5 before covered in four tries of seven; on a quiet
# one the loop took 0.8-1.4x the fastest. x2 covers all but the largest; a host that slows down after
# the plan is followed by scaling the end's estimate with the step time (TimeBudget._final_at), and
# a run that validates during training prices its end from those validations instead.
# RESERVE_SECONDS holds what no estimate covers: the checkpoints (~10 ms
# each for the 100 s preset), the process's exit (0.2 s since its import is frozen out of the
# garbage collector, 0.8 s before) and the pictures' error (up to ~0.4 s), with a margin for a
# host that slows down in the last seconds. At 5 s, the preset's 100 s runs ended at ~96 s.
VALIDATION_MARGIN = 2.0
# Forwards of a validation batch timed back to back: their mean prices each of the validation's batches.
TIMED_FORWARDS = 4
SAMPLING_MARGIN = 1.5  # a sample's characters, timed on a short draw: for a host that slows down later
RESERVE_SECONDS = 2.0
# The process's exit, after the closing sample, priced as this share of the run's own start-up (the
# process's start to training's, timed at launch) and scaled with the steps' slowdown: the exit undoes
# what the start-up built (the imports' objects, the model, the data) at the machine's load, which the
# start-up measured. On a quiet 2-core CPU the exit took 0.2 s after a start-up of 2.7 s
# (docs/EXPERIMENTS.md, "The 100 s target reached on a quiet host"); under a load of 19-30 it took
# 1.4-2.1 s, past the constant 1 s kept for it before ("The end priced at the load of the moment").
# The share is twice the quiet ratio. The closing sample stops this long before the deadline.
EXIT_SHARE_OF_STARTUP = 0.15
# Re-plans use the mean step time over this fraction of the budget (all of it since calibration in
# a younger run). The mean since calibration outlasted a slow spell: a 600 s run re-planned at
# 120 ms a step while its last ~500 steps ran at ~85 ms, and ended 27 s early (docs/EXPERIMENTS.md).
LASTING_FRACTION = 0.25
# A re-plan is a log line (INFO) when it moved the count this much since the last line, or cut
# a run that would overrun; the small ones (a re-check every ~1% of the budget makes many) go to
# DEBUG. budget.json counts them all.
REPLAN_LOG_CHANGE = 0.02
# While the plan may still lengthen, the recent pace (the steps since the last re-check, ~1% of
# the budget) cuts the plan at once only if it would overrun the deadline by more than this
# fraction of the time left, as a burst of other work does (at 1.5-2x slower: 50-100%). A host's
# jitter (recent paces 5-12% either side of the lasting one, on a shared 2-core CPU) did less, yet
# cut the plan, which the next re-check lengthened again: the count swung by ~5% at every re-check
# and, in the decay, the learning rate with it. The lasting pace follows such changes; in the last
# stretch (SHORTEN_ONLY_FRACTION), where plans only shorten, any overrun cuts.
BURST_OVERRUN_FRACTION = 0.2
# The last stretch of the budget, as a fraction of it: there a plan only shortens.
SHORTEN_ONLY_FRACTION = 0.1


class Replan(NamedTuple):
    pace: float  # seconds a step, to plan the remaining steps with
    lengthen: bool  # whether the plan may grow
    overrun: bool  # whether the recent pace cuts it at once


def replan_pace(
    recent: float, lasting: float, steps_left: int, end_seconds: float, left: float, last_stretch: bool,
    spell_seconds: float = math.inf,
) -> Replan:
    """A re-check's plan from the recent pace (steps since the last re-check) and the lasting one:
    the lasting pace, unless the recent one would overrun the deadline (`left` seconds away, with
    `end_seconds` of validation and saving after the steps) by more than BURST_OVERRUN_FRACTION
    of the time left (in the last stretch: at all). The plan lengthens only while the recent steps
    are no slower than the lasting pace, and never in the last stretch.

    A slow spell (the recent steps slower than the lasting pace for `spell_seconds`, this window
    included) is expected to last as long again as it has lasted, then the lasting pace to hold:
    a stall of a few seconds costs a few seconds. Priced at the recent pace for every step left, a
    one-second stall cut a 100 s run to 65 s, which then ended before a re-check saw the host back
    at speed. A spell that goes on is priced longer at each re-check. In the last stretch the
    recent pace is taken for every step left: there is no time to learn that it passed."""
    pace = recent
    if not last_stretch and recent > lasting and steps_left > 0:
        slow_steps = min(float(steps_left), spell_seconds / recent)
        pace = (slow_steps * recent + (steps_left - slow_steps) * lasting) / steps_left
    overshoot = steps_left * pace + end_seconds - left
    overrun = overshoot > (0.0 if last_stretch else BURST_OVERRUN_FRACTION * left)
    return Replan(
        pace=max(lasting, pace) if overrun else lasting,
        lengthen=not last_stretch and recent <= lasting * (1 + 1e-9),  # up to rounding
        overrun=overrun,
    )


def replan_is_shown(planned: int, last_shown: int, overrun: bool) -> bool:
    """Whether a re-plan to `planned` steps is a log line (INFO): it cut an overrun, or moved the
    count by REPLAN_LOG_CHANGE or more since the count last shown (the first plan's, at first)."""
    return overrun or abs(planned - last_shown) >= REPLAN_LOG_CHANGE * last_shown


def plan_steps(
    step: int, now: float, deadline: float, step_seconds: float, final_seconds: float
) -> int:
    """The last step that leaves `final_seconds` before the deadline, at `step_seconds` a step
    (at least one more step, so the run always ends with a step on the planned schedule)."""
    spare = deadline - now - final_seconds
    return step + max(1, math.floor(spare / step_seconds))


def plan_steps_with_validations(
    step: int, now: float, deadline: float, step_seconds: float, final_seconds: float,
    validation_seconds: float, due: Callable[[int], int],
) -> int:
    """The last step N whose steps, the `due(N)` validations before it (each `validation_seconds`)
    and `final_seconds` fit before the deadline: the most steps with their validations (at least
    one more step). Counting the validations due for the plan without them would take a run that
    validates often, where validations cost about as much as the steps between them, for one far
    too short: 87 steps, ending at 12 s of a 40 s budget that holds 540 of them."""
    spare = deadline - now - final_seconds
    low, high = step + 1, plan_steps(step, now, deadline, step_seconds, final_seconds)

    def fits(last: int) -> bool:
        return (last - step) * step_seconds + due(last) * validation_seconds <= spare

    if fits(high):
        return high
    if not fits(low):
        return low
    while high - low > 1:  # fits(low), not fits(high); due() grows with the last step
        middle = (low + high) // 2
        low, high = (middle, high) if fits(middle) else (low, middle)
    return low


@torch.no_grad()
def forward_seconds(forward: Callable[..., Any], *inputs: torch.Tensor, clock: Callable[[], float]) -> float:
    """Seconds of one call of `forward(*inputs)` at the machine's load of the moment: the mean of
    TIMED_FORWARDS calls back to back, after a warm-up call. The fastest of three, the least
    disturbed by other work, priced a validation for a machine that other work leaves alone."""
    forward(*inputs)  # warm-up (allocations; a compiled forward compiles here)
    t0 = clock()
    for _ in range(TIMED_FORWARDS):
        forward(*inputs)
    if inputs[0].is_cuda:
        torch.cuda.synchronize()
    return (clock() - t0) / TIMED_FORWARDS


def edge_batches(loader: Any) -> list[tuple[torch.Tensor, ...]]:
    """The loader's first and last batch, as it yields them, where its dataset holds whole batches
    of 2-D tensors (chargpt's windows); [] for any other loader. A compiled forward specialises on
    its inputs' sizes and strides (and the last batch is smaller), so priming it takes the real
    batches."""
    if getattr(loader, "batch_size", 0) is not None:  # its items are samples, not batches
        return []
    try:
        dataset = loader.dataset
        batches = [loader.collate_fn(dataset[i]) for i in (0, len(dataset) - 1)]
    except (AttributeError, TypeError, IndexError, KeyError, NotImplementedError):
        return []

    def is_batch(b: Any) -> bool:
        return isinstance(b, (tuple, list)) and len(b) > 0 and all(
            isinstance(t, torch.Tensor) and t.dim() == 2 for t in b
        )
    return [tuple(b) for b in batches] if all(is_batch(b) for b in batches) else []


def validation_batches(trainer: L.Trainer, batches: int) -> int:
    """The batches a validation runs of a loader of `batches`: Lightning's own count
    (trainer.limit_val_batches applied), set up before training starts; `batches` without it."""
    counts = getattr(trainer, "num_val_batches", None) or [batches]
    return int(min(counts[0], batches))


def validations_due(trainer: L.Trainer, step: int, last: int) -> int:
    """Validations the trainer's interval makes after optimizer step `step` and before the run's
    last step `last` (the validation after that one is the end's). Lightning validates after every
    trainer.val_check_batch training batches; none where that is not a count."""
    every = getattr(trainer, "val_check_batch", None)
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        return 0
    per_step = trainer.accumulate_grad_batches
    return max(0, (last * per_step - 1) // every - step * per_step // every)


# A draw timed moments ago on the same model prices the next sample too: the closing sample and
# TensorBoard's text sample are priced at one estimate of the run's end, and each draw is taken
# from the budget's training time (about 2 s under a load average of ~9).
DRAW_KEPT_SECONDS = 5.0
# model: (when it was timed, characters drawn, seconds a character)
_last_draws: weakref.WeakKeyDictionary[torch.nn.Module, tuple] = weakref.WeakKeyDictionary()


def sampling_seconds(
    model: torch.nn.Module, tokens: int, clock: Callable[[], float] = time.monotonic
) -> float:
    """Seconds to sample `tokens` characters, from a real draw on this machine at its present load:
    up to two context windows of characters (the key-value cache filled, then restarted past the
    context, as a long sample does), timed and scaled to `tokens`. One character's forward timed
    alone (the fastest of three) missed the cache's restarts, the draw, and most of what other work
    on the machine costs: under a load average of ~10 it priced a closing sample at a quarter of
    what it took (docs/EXPERIMENTS.md, "The closing sample inside the budget")."""
    device = next(model.parameters()).device
    block = int(getattr(model, "block_size", 64))
    drawn = min(tokens, 2 * block)
    if drawn < 1:
        return 0.0
    # A draw as long, or past the context (its cache restarted, as a longer sample's is), stands for this.
    timed_at, drawn_before, per_character = _last_draws.get(model, (-math.inf, 0, 0.0))
    if (drawn_before >= drawn or drawn_before > block) and clock() - timed_at < DRAW_KEPT_SECONDS:
        return SAMPLING_MARGIN * per_character * tokens
    generator = torch.Generator(device=device).manual_seed(0)
    prompt = torch.zeros(1, 1, dtype=torch.long, device=device)
    for _ in iter_tokens(model, prompt, 1, generator=generator):  # warm-up (allocations)
        pass
    t0 = clock()
    for _ in iter_tokens(model, prompt, drawn, generator=generator):
        pass
    if device.type == "cuda":
        torch.cuda.synchronize()
    per_character = (clock() - t0) / drawn
    _last_draws[model] = (clock(), drawn, per_character)
    return SAMPLING_MARGIN * per_character * tokens


def other_work() -> str | None:
    """Other work on this machine, as the one-minute load average shows it beyond this process's
    own threads (a core's worth or more), in words; None on a machine left to this run. A budget
    planned from steps timed alone does not hold beside it."""
    try:
        load = os.getloadavg()[0]
    except OSError:  # not on every system
        return None
    cores = os.cpu_count() or 1
    # The average moves towards the running threads by 1 - e^(-t/60) in t seconds: a run that
    # started seconds ago is only that share of its threads in it (subtracting all of them hid the
    # other work from a 30 s budget's refusal).
    running = time.monotonic() - process_start_time()
    own = min(torch.get_num_threads(), cores) * (1 - math.exp(-running / 60))
    if load - own < 1.0:
        return None
    threads = counted(torch.get_num_threads(), "thread")
    return f"load {load:.1f} on {cores} cores, this run's {threads} included"


def budget_to_ask(needed_seconds: float) -> int:
    """The budget a refusal names for a run that needs `needed_seconds` (as measured so far): a 20%
    margin, in whole 5 s."""
    return 5 * math.ceil(1.2 * needed_seconds / 5)


def busy_advice() -> str:
    """What to add to the advice of a budget refused for its steps' speed: more seconds may not be
    the fix beside other work, whose share of the cores the steps lost."""
    if (busy := other_work()) is None:
        return ""
    if torch.get_num_threads() == 1:  # it already leaves the other cores to the other work
        return f"; other work is running on this machine ({busy}): run alone"
    return f"; other work is running on this machine ({busy}): run alone, or with threads=1 beside another"


def planned_budget(record: dict[str, Any]) -> float | None:
    """The budget a run's step count was planned for: that of its first launch, in a budget.json
    whose resumes each keep the launch before them under "before_resume"."""
    while isinstance(record.get("before_resume"), dict):
        record = record["before_resume"]
    seconds = record.get("budget_seconds")
    return float(seconds) if isinstance(seconds, (int, float)) and not isinstance(seconds, bool) else None


def checked_seconds(value: Any) -> float | None:
    """budget_seconds as seconds (None: no budget), or a one-line error for anything else."""
    if value is None:
        return None
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if number and value == math.inf:  # positive, so "must be a positive number" would not help
        raise ConfigError(
            "budget_seconds=inf is not a time budget: for a run without one, pass budget_seconds=null "
            "(trainer.max_steps and trainer.max_epochs then end it)"
        )
    if not number or not math.isfinite(value) or value <= 0:
        raise ConfigError(  # shown as typed: '300' in quotes is text, true not True
            f"budget_seconds={shown(value)} must be a positive number of seconds (e.g. budget_seconds=300), "
            "or budget_seconds=null for no budget"
        )
    return float(value)
