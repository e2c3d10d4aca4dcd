"""model=auto: size the model for a time budget, this machine's speed and the corpus.

The rule (`climb`, with `nearest` for the shape and `settle` for its recipe) is a pure function of
measured step times, the budget and the corpus size; `step_timer` measures the step times (real
batches, a warm-up step, then timed steps of each candidate) and `apply_choice` writes the result
into the run's config. Every constant of the rule is defined in one block below, so that
measurements can set them. They are anchored on one measured optimum (the cpu_100s shape at 100 s
on a 2-core CPU) and were set by the measurement grid of scripts/budget_curve.py
(docs/EXPERIMENTS.md).

The rule, in short: climb a ladder of shapes from small to large. For each, the calibrated step
time gives the steps the budget holds, hence the tokens the run will see, and the ratio of those
tokens to the shape's non-embedding parameters. A short budget or a slow machine wants a small
model (more tokens per parameter), a long one a larger model: the pick is the shape whose ratio is
nearest (in log scale, a shortfall counting twice) to the ratio measured best at 100 s. Climbing
stops at the first shape below that ratio (larger ones are only farther from it), or when the
calibration would take more than a small fraction of the budget. Dropout and Muon's weight decay
follow the epochs the run will make over its training text (a dropout is timed, since it slows the
step); AdamW's rate and Muon's momentum follow its steps.
"""

from __future__ import annotations

import itertools
import logging
import math
import shlex
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, ListConfig, open_dict

from chargpt.data.windows import gather_windows
from chargpt.errors import ConfigError
from chargpt.model import ModelConfig, build_model
from chargpt.overrides import as_typed, override_key
from chargpt.training.budget_plan import RESERVE_SECONDS, VALIDATION_MARGIN, busy_advice
from chargpt.training.optim import build_optimizer
from chargpt.training.precision import precision_plugin

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Shape:
    """One rung of the ladder: what model=auto chooses (the rest of the recipe is fixed)."""

    n_layer: int
    n_embd: int
    n_head: int
    block_size: int
    batch_size: int

    @property
    def name(self) -> str:
        return f"{self.n_layer}x{self.n_embd} h{self.n_head} ctx{self.block_size} b{self.batch_size}"

    def tokens_per_step(self) -> int:
        return self.block_size * self.batch_size


# ---- The rule's constants (provisional; see the module docstring) --------------------------------
# Shapes from small to large, heads 32 wide. Nothing here is specific to one text: the first four
# are CPU-sized (3x128 is the cpu_100s shape), the last ones for long budgets or fast machines.
LADDER: tuple[Shape, ...] = (
    Shape(2, 96, 3, 128, 8),
    Shape(3, 128, 4, 128, 8),
    Shape(4, 160, 5, 128, 8),
    Shape(4, 192, 6, 128, 8),
    Shape(5, 224, 7, 256, 8),
    Shape(6, 256, 8, 256, 8),
    Shape(6, 320, 10, 256, 12),
    Shape(8, 384, 12, 256, 16),
)
# The anchor: the best measured shape at 100 s on the 2-core CPU (docs/EXPERIMENTS.md, preset P),
# 3 layers x 128 wide, ~2,200 steps of 8 x 128 tokens. Its tokens per non-embedding parameter
# (~3.8) is the target ratio for every budget and machine.
ANCHOR_SHAPE = LADDER[1]
ANCHOR_STEPS = 2200
# Too few tokens per parameter costs more than too many: each time a shape at 2.3-3.2 tokens per
# parameter met the next smaller one at 5-7, the smaller won (3x128 over 4x160 at 600 s on an Intel
# Xeon without AMX, by 0.012-0.017; 3x128 over 4x128 at 100 s and 4x192 over 5x224 at 600 s on the
# Intel Xeon with AMX, by 0.009 and by 0.010-0.030), where the plain log distance picked the larger.
# So a shape below the target counts its distance in log scale this many times.
SHORTFALL_WEIGHT = 2.0
# Calibration: one untimed warm-up step, then TIMED_STEPS timed steps per shape; the climb may take
# at most CALIBRATION_FRACTION of the budget (a dropout's timing of the chosen shape comes after).
TIMED_STEPS = 5
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
# Dropout by epochs over the training text (linear in between, flat outside). Dropout is not free
# on a CPU: at 600 s on Tiny Shakespeare (~4 epochs of the 3x128 shape), dropout 0.03 made steps
# 38% slower (204 vs 148 ms) and scored 1.552 against 1.500 without it (docs/EXPERIMENTS.md). So
# none up to 8 epochs, then up to 0.2 (nanoGPT's choice for Tiny Shakespeare) from 32 epochs. Any
# dropout moves CPU attention off its flash kernel (1.44-1.65x the 4x192 step for dropout 0.01), so
# the chosen shape is timed again with it and the epochs it then makes decide (`retime_with_dropout`).
DROPOUT_BY_EPOCHS: tuple[tuple[float, float], ...] = ((8.0, 0.0), (16.0, 0.1), (32.0, 0.2))
# Muon's decoupled weight decay (each step shrinks the hidden matrices by lr x decay) by epochs,
# the same way: free on a CPU, unlike dropout. On the AMD EPYC, 4x192 at 600 s (~5.5 epochs, train
# loss 0.31 below validation) scored 1.474 without it, 1.470 / 1.460 / 1.489 with 0.03 / 0.1 / 0.3;
# the cpu_100s shape at 100 s (~2 epochs) lost 0.009 with 0.1 (docs/EXPERIMENTS.md).
WEIGHT_DECAY_BY_EPOCHS: tuple[tuple[float, float], ...] = ((2.0, 0.0), (6.0, 0.1))
# AdamW (embeddings, head, norms, biases) lr at the anchor's width, and Muon's momentum, by the
# steps the run will take (linear in between, flat outside). At equal steps on a 2-core CPU,
# momentum 0.9 with AdamW 2e-2 beat 0.95 with 3e-3 by 0.052 at 800 steps, 0.017 at 1,700 and 0.008
# at 2,400 (3x128; 4x192 and Python source alike at 800), 0.011 at 2,900 on 4x160 (where the values
# of a ramp starting at 2,400 gained only 0.003), and lost by 0.013 at 600 s on 4x192 (~5,000 steps,
# budgeted runs with ~7% fewer steps than the old rates' runs) (docs/EXPERIMENTS.md, "Optimizer
# rates at a fixed step count"). At 4,000 steps (4x160) the interpolated values beat the old ones by
# 0.013 and 0.005 and the short-run ones by 0.000 and 0.007.
ADAMW_LR_BY_STEPS: tuple[tuple[float, float], ...] = ((2900.0, 2e-2), (5200.0, 3e-3))
MOMENTUM_BY_STEPS: tuple[tuple[float, float], ...] = ((2900.0, 0.9), (5200.0, 0.95))
# Above the anchor's width the AdamW lr is scaled by (ANCHOR width / width) **
# ADAMW_LR_WIDTH_POWER. Under Adam each output-head coordinate moves by about the lr, so the logits
# move more per step as width grows; a half power is a cautious step towards the 1/width that
# theory suggests. Muon's lr (configs/model/auto.yaml) needs no scaling: its update is
# orthogonalised and scaled by the matrix shape.
ADAMW_LR_WIDTH_POWER = 0.5
# The fewest steps a budget must buy the smallest shape, or the run is refused before it starts:
# the budget callback times 35 steps before it plans, and at ~100 steps a character model has only
# begun to learn (the 30 s runs of docs/EXPERIMENTS.md make ~500 steps of the smallest shape).
MIN_STEPS = 100
# ------------------------------------------------------------------------------------------------


def non_embedding_params(shape: Shape, mlp_ratio: float = 4.0, bias: bool = True) -> int:
    """Weights of the transformer blocks and the final norm (what the compute and the data must
    feed; embeddings are lookups). Per block: attention 4 d^2, feed-forward 2 r d^2, plus biases
    and two norms."""
    d, hidden = shape.n_embd, int(mlp_ratio * shape.n_embd)
    per_block = 4 * d * d + 2 * d * hidden + (4 * d + hidden + d if bias else 0) + 2 * d * (2 if bias else 1)
    return shape.n_layer * per_block + d * (2 if bias else 1)


def target_tokens_per_param() -> float:
    return ANCHOR_STEPS * ANCHOR_SHAPE.tokens_per_step() / non_embedding_params(ANCHOR_SHAPE)


def interpolate(points: Sequence[tuple[float, float]], x: float) -> float:
    """An (x, value) table, interpolated linearly, flat outside."""
    if x <= points[0][0]:
        return points[0][1]
    for (x0, p0), (x1, p1) in itertools.pairwise(points):
        if x <= x1:
            return p0 + (p1 - p0) * (x - x0) / (x1 - x0)
    return points[-1][1]


def by_epochs(points: Sequence[tuple[float, float]], epochs: float) -> float:
    """An (epochs, value) table, interpolated linearly (rounded to 0.01), flat outside."""
    return round(interpolate(points, epochs), 2)


def dropout_for(epochs: float) -> float:
    return by_epochs(DROPOUT_BY_EPOCHS, epochs)


def weight_decay_for(epochs: float) -> float:
    return by_epochs(WEIGHT_DECAY_BY_EPOCHS, epochs)


def adamw_lr_for(width: int, steps: int) -> float:
    lr = interpolate(ADAMW_LR_BY_STEPS, steps) * min(1.0, ANCHOR_SHAPE.n_embd / width) ** ADAMW_LR_WIDTH_POWER
    return float(f"{lr:.2g}")  # two digits: the printed override reproduces it exactly


def momentum_for(steps: int) -> float:
    return round(interpolate(MOMENTUM_BY_STEPS, steps), 3)


@dataclass
class Estimate:
    """What the budget buys with one shape at its measured speed."""

    shape: Shape
    step_ms: float
    steps: int
    tokens_per_param: float
    epochs: float

    def row(self) -> dict[str, Any]:
        return {
            "shape": self.shape.name, **asdict(self.shape),
            "non_embedding_params": non_embedding_params(self.shape),
            "step_ms": round(self.step_ms, 2), "steps": self.steps,
            "tokens_per_param": round(self.tokens_per_param, 3), "epochs": round(self.epochs, 2),
        }


def end_seconds(
    shape: Shape, step_seconds: float, val_chars: int, reserve_seconds: float = RESERVE_SECONDS
) -> float:
    """What follows the last step of `shape` at `step_seconds` a step: the final full validation
    (with the budget callback's margin) and the callback's reserve for saving, the sample and the exit."""
    val_batches = math.ceil(val_chars / shape.tokens_per_step())
    return VALIDATION_MARGIN * VAL_FORWARD_FRACTION * step_seconds * val_batches + reserve_seconds


def check_enough_steps(smallest: Shape, step_seconds: float, budget_seconds: float, used_seconds: float,
                       val_chars: int, reserve_seconds: float = RESERVE_SECONDS) -> None:
    """Refuse a budget that cannot buy MIN_STEPS of the smallest shape, before a choice is printed,
    naming a budget that can (with a 20% margin: the climb times more shapes in a larger budget)."""
    steps = MIN_STEPS * (step_seconds + LOOP_OVERHEAD_SECONDS)
    end = end_seconds(smallest, step_seconds, val_chars, reserve_seconds)
    if used_seconds + steps + end <= budget_seconds:
        return
    minimum = 5 * math.ceil(1.2 * (used_seconds + steps + end) / 5)  # whole 5 s
    raise ConfigError(
        f"budget_seconds={budget_seconds:g} is too small for model=auto on this machine: start-up and "
        f"timing its smallest shape ({smallest.name}) took {used_seconds:.0f} s, and {MIN_STEPS} steps of "
        f"it at {1000 * step_seconds:.0f} ms plus the final validation and saving need "
        f"~{steps + end:.0f} s more; use budget_seconds={minimum} or more{busy_advice()}"
    )


def estimate(
    shape: Shape, step_seconds: float, budget_seconds: float, used_seconds: float,
    train_chars: int, val_chars: int, reserve_seconds: float = RESERVE_SECONDS,
) -> Estimate:
    """Steps, tokens per parameter and epochs of `shape` at `step_seconds` a (bare) step, when
    `used_seconds` of the budget are gone before training starts."""
    per_step = step_seconds + LOOP_OVERHEAD_SECONDS
    final = end_seconds(shape, step_seconds, val_chars, reserve_seconds)
    steps = max(0, math.floor((budget_seconds - used_seconds - final) / per_step))
    tokens = steps * shape.tokens_per_step()
    return Estimate(
        shape, 1000 * step_seconds, steps, tokens / non_embedding_params(shape), tokens / max(1, train_chars)
    )


@dataclass
class Choice:
    """The rule's result and why."""

    shape: Shape
    dropout: float
    adamw_lr: float
    weight_decay: float
    measured: list[Estimate]
    target: float
    reason: str
    calibration_seconds: float = 0.0
    overrides: list[str] = field(default_factory=list)  # filled in by apply_choice
    momentum: float | None = None  # Muon's; None: the config's (an older record, or no Muon)
    planned: Estimate | None = None  # what the rates were set for (set by `settle` and `from_record`)
    dropout_timing: Estimate | None = None  # the chosen shape timed again with the rule's dropout

    def summary(self) -> dict[str, Any]:
        chosen = self.planned
        assert chosen is not None
        return {
            "chosen": {**chosen.row(), "dropout": self.dropout, "adamw_lr": self.adamw_lr,
                       "weight_decay": self.weight_decay, "momentum": self.momentum},
            "timed_with_dropout": self.dropout_timing.row() if self.dropout_timing else None,
            "reason": self.reason,
            "target_tokens_per_param": round(self.target, 3),
            "candidates": [e.row() for e in self.measured],
            "calibration_seconds": round(self.calibration_seconds, 2),
            "rerun_with": shlex.join(self.overrides) if self.overrides else None,
        }


def nearest(measured: Sequence[Estimate], stopped: str) -> tuple[Estimate, str]:
    """The shape whose tokens per parameter is nearest the target (log scale), and why.
    `measured` is in ladder order; `stopped` says why the climb ended."""
    if not measured:
        shortest = min(s.block_size for s in LADDER)
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
    slower = estimate(choice.shape, seconds, budget_seconds, used(), train_chars, val_chars, reserve_seconds)
    note = f"with dropout {choice.dropout:g} a step takes {slower.step_ms:.1f} ms"
    note += f" ({first.step_ms:.1f} without)"
    if dropout_for(slower.epochs) == 0.0:
        note += f" and the run would make {slower.epochs:.1f} epochs, too few for dropout: none; "
        # The first speed, over what is left of the budget after this timing.
        again = estimate(choice.shape, first.step_ms / 1000, budget_seconds, used(), train_chars, val_chars,
                         reserve_seconds)
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
) -> Choice:
    """Measure shapes from small to large until one falls below the target ratio or the
    calibration would overrun its share of the budget, pick the `nearest` and `settle` its recipe;
    a dropout the rule sets is timed on the chosen shape after (`retime_with_dropout`).
    `measure(shape, dropout)` returns seconds a step; `used()` the seconds of the budget gone so
    far (calibration included); `dropout` is the command line's, None for the rule's;
    `reserve_seconds` the budget callback's reserve at the end of the run."""
    target = target_tokens_per_param()
    cap = CALIBRATION_FRACTION * budget_seconds
    start, measured, stopped = used(), [], "the largest shape was reached"
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
        measured.append(
            estimate(shape, seconds, budget_seconds, used(), train_chars, val_chars, reserve_seconds)
        )
        if measured[-1].tokens_per_param < target:
            stopped = f"{shape.name} is below the target"
            break
    best, why_shape = nearest(measured, stopped)
    choice = settle(best, measured, why_shape, dropout, dropout_label="given" if dropout is not None else "")
    if dropout is None and choice.dropout > 0:
        choice = retime_with_dropout(
            choice, measure, budget_seconds, used, train_chars, val_chars, why_shape, reserve_seconds
        )
    choice.calibration_seconds = used() - start
    return choice


# ---- Calibration on the machine -----------------------------------------------------------------

def usable_ladder(train_chars: int, val_chars: int) -> list[Shape]:
    """Shapes whose context fits in both splits (a short text rules out the long contexts)."""
    return [s for s in LADDER if s.block_size < min(train_chars, val_chars)]


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
                with run_precision.forward_context():
                    _, loss = model(x, y)
                loss.backward()
                if clip:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
                opt.step()
                opt.zero_grad(set_to_none=True)
                sync(device)
                if i:  # the first step allocates: not timed
                    times.append(time.perf_counter() - t0)
        return min(times)

    return measure


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def shape_fields(shape: Shape) -> dict[str, int]:
    return {k: getattr(shape, k) for k in ("n_layer", "n_embd", "n_head", "block_size")}


# ---- The run's config ---------------------------------------------------------------------------

# What model=auto sets: given on the command line, these are refused (they are the choice).
CHOSEN_KEYS = ("model.n_layer", "model.n_embd", "model.n_head", "model.block_size", "data.batch_size")


def check_auto(cfg: DictConfig, overrides: Sequence[str]) -> None:
    """Refuse, before any data work, what model=auto cannot do."""
    if cfg.get("budget_seconds") is None:
        raise ConfigError(
            "model=auto sizes the model for a time budget, but budget_seconds is not set; pass "
            "budget_seconds=SECONDS (e.g. budget_seconds=300), or pick a fixed model such as model=tiny"
        )
    if cfg.get("init_from"):
        raise ConfigError(
            "model=auto cannot fine-tune: init_from keeps the pretrained model's shape; drop model=auto"
        )
    given = [k for k in map(override_key, overrides) if k in CHOSEN_KEYS]
    if given:
        raise ConfigError(
            f"model=auto chooses {', '.join(given)} itself; drop {'it' if len(given) == 1 else 'them'}, "
            "or pass the shape without model=auto (each model=auto run prints the override that "
            "reproduces it)"
        )
    devices, nodes = cfg.trainer.get("devices", 1), cfg.trainer.get("num_nodes", 1)
    if isinstance(devices, (list, ListConfig)):
        devices = len(devices)
    if (str(devices).isdigit() and int(devices) > 1) or int(nodes or 1) > 1:
        raise ConfigError(
            "model=auto measures one process's speed, but this run has several (trainer.devices / "
            "trainer.num_nodes); size it on one device first and pass its printed override"
        )


def apply_choice(
    cfg: DictConfig, choice: Choice, overrides: Sequence[str], choices: Mapping[str, Any]
) -> None:
    """Write the choice into the run's config (what the command line gave stays) and fill in the
    override that reproduces the run without model=auto."""
    given = {override_key(o) for o in overrides}
    with open_dict(cfg):
        for key, value in shape_fields(choice.shape).items():
            cfg.model[key] = value
        cfg.data.batch_size = choice.shape.batch_size
        if "model.dropout" not in given:
            cfg.model.dropout = choice.dropout
        choice.dropout = float(cfg.model.dropout)
        adamw = cfg.optimizer.get("adamw")
        if adamw is not None:  # Muon + AdamW, the optimizer the rule was measured with
            if "optimizer.adamw.lr" not in given:
                adamw.lr = choice.adamw_lr
            choice.adamw_lr = float(adamw.lr)
            if "optimizer.weight_decay" not in given:
                cfg.optimizer.weight_decay = choice.weight_decay
            if "optimizer.momentum" not in given and choice.momentum is not None:
                cfg.optimizer.momentum = choice.momentum
            momentum = cfg.optimizer.get("momentum")
            choice.momentum = None if momentum is None else float(momentum)
        else:  # no Muon: the optimizer keeps its own rate and decay; the record says what ran
            choice.momentum = None
            choice.adamw_lr = float(cfg.optimizer.get("lr", choice.adamw_lr))
        choice.weight_decay = float(cfg.optimizer.get("weight_decay", 0.0))
        if adamw is None and not choice.reason.startswith(KEPT):  # a resumed run keeps the first reason
            choice.reason += (
                f"; this optimizer has no Muon part: its own lr {choice.adamw_lr:g} and weight decay "
                f"{choice.weight_decay:g} apply"
            )
        cfg.model.auto = False
    choice.overrides = reproducing_overrides(cfg, overrides, choices)


def reproducing_overrides(cfg: DictConfig, overrides: Sequence[str], choices: Mapping[str, Any]) -> list[str]:
    """The command line without model=auto: the user's own overrides, the config groups model=auto
    picked (`choices`: Hydra's runtime choices), every model setting that differs from the default
    model's, and the values model=auto set in other groups."""
    chosen = {k: v for k, v in cfg.model.items() if k not in ("_target_", "auto")}
    defaults = ModelConfig().to_dict()
    shape_keys = shape_fields(LADDER[0])
    model = [f"model.{k}={_value(v)}" for k, v in chosen.items() if k in shape_keys or defaults.get(k) != v]
    groups = [f"{g}={choices[g]}" for g in ("optimizer", "scheduler") if g in choices]
    values = [f"optimizer.lr={_value(cfg.optimizer.lr)}"] if "lr" in cfg.optimizer else []
    if "weight_decay" in cfg.optimizer:
        values.append(f"optimizer.weight_decay={_value(cfg.optimizer.weight_decay)}")
    if "momentum" in cfg.optimizer:
        values.append(f"optimizer.momentum={_value(cfg.optimizer.momentum)}")
    if cfg.optimizer.get("adamw") is not None:
        values.append(f"optimizer.adamw.lr={_value(cfg.optimizer.adamw.lr)}")
    values += [
        f"data.batch_size={cfg.data.batch_size}",
        f"trainer.max_steps={cfg.trainer.max_steps}",
        f"trainer.val_check_interval={cfg.trainer.val_check_interval}",
        f"trainer.precision={_value(cfg.trainer.precision)}",  # as resolved from auto on this machine
        f"matmul_precision={cfg.get('matmul_precision') or 'highest'}",  # the same
    ]
    # Not kept: what is set here, the resume (a new run) and the run directory (a new one).
    dropped = {override_key(o) for o in [*model, *groups, *values]} | {"model", "ckpt_path"}
    kept = [o for o in overrides if (key := override_key(o)) not in dropped and not key.startswith("hydra.")]
    return ["chargpt-train", *map(as_typed, kept), *groups, *model, *values]


def _value(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, float):  # short where that is exact (3e-3 as 0.003), else every digit
        return f"{v:g}" if float(f"{v:g}") == v else repr(v)
    return str(v)


def report(choice: Choice, budget_seconds: float, train_chars: int) -> str:
    """The one block model=auto prints: candidates, the choice, why, and how to re-run it."""
    header = ("shape", "non-emb params", "ms/step", "steps", "tok/param", "epochs")
    rows = [
        (e.shape.name, f"{non_embedding_params(e.shape):,}", f"{e.step_ms:.1f}", f"{e.steps:,}",
         f"{e.tokens_per_param:.2f}", f"{e.epochs:.2f}")
        for e in choice.measured
    ]
    # Each column as wide as its widest cell: a long budget's steps and epochs run to many digits.
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]

    def line(mark: str, cells: Sequence[str]) -> str:
        return f"{mark} {cells[0]:<{widths[0]}}" + "".join(
            f" {cell:>{width}}" for cell, width in zip(cells[1:], widths[1:], strict=True)
        )

    lines = [
        f"model=auto: {budget_seconds:g} s budget, {train_chars:,} training characters; "
        f"{len(choice.measured)} shape(s) timed in {choice.calibration_seconds:.1f} s "
        + ("by the first run " if choice.reason.startswith(KEPT) else "")
        + f"(target {choice.target:.2f} tokens per non-embedding parameter)",
        line(" ", header),
        *(line("*" if e.shape == choice.shape else " ", row)
          for e, row in zip(choice.measured, rows, strict=True)),
    ]
    if (timed := choice.dropout_timing) is not None:
        lines.append(
            f"  the chosen shape with dropout: {timed.step_ms:.1f} ms/step, {timed.steps:,} steps, "
            f"{timed.epochs:.2f} epochs"
        )
    lines.append(
        f"chosen: {choice.shape.name}, dropout {choice.dropout:g}, AdamW lr {choice.adamw_lr:g}, "
        f"weight decay {choice.weight_decay:g}"
        + (f", momentum {choice.momentum:g}" if choice.momentum is not None else "")
    )
    lines.append(f"why: {choice.reason}")
    if choice.overrides:
        lines.append(f"same run without model=auto: {shlex.join(choice.overrides)}")
    return "\n".join(lines)


KEPT = "kept from the checkpoint"


def from_record(record: dict[str, Any]) -> Choice:
    """The choice a checkpoint recorded (a resumed run keeps it: no new calibration)."""
    chosen, reason = record["chosen"], str(record.get("reason", "n/a"))
    planned = _estimate_from_row(chosen)
    measured = [_estimate_from_row(r) for r in record.get("candidates", [])] or [planned]
    timed = record.get("timed_with_dropout")
    return Choice(
        planned.shape, float(chosen["dropout"]), float(chosen["adamw_lr"]),
        float(chosen.get("weight_decay", 0.0)),  # recorded since the weight decay rule
        measured,
        float(record.get("target_tokens_per_param", target_tokens_per_param())),
        reason if reason.startswith(KEPT) else f"{KEPT} (first run: {reason})",
        float(record.get("calibration_seconds", 0.0)),
        momentum=None if chosen.get("momentum") is None else float(chosen["momentum"]),  # since the rule
        planned=planned,
        dropout_timing=_estimate_from_row(timed) if isinstance(timed, dict) else None,
    )


def _estimate_from_row(row: Mapping[str, Any]) -> Estimate:
    shape = Shape(*(int(row[k]) for k in ("n_layer", "n_embd", "n_head", "block_size", "batch_size")))
    return Estimate(
        shape, float(row["step_ms"]), int(row["steps"]), float(row["tokens_per_param"]), float(row["epochs"])
    )
