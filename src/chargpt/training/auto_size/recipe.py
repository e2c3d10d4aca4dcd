"""model=auto's recipe for the chosen shape: dropout and Muon's weight decay by the epochs the run
will make over its training text, AdamW's rate and Muon's momentum by the steps it will take (and
AdamW's rate by the width)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from chargpt.training.auto_size.ladder import ANCHOR_SHAPE

# ---- The recipe's constants (provisional; see the package docstring) ---------------------------
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
# ------------------------------------------------------------------------------------------------


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
