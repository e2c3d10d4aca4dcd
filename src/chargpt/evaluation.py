"""The exact loss of a model on a text, and where it comes from: by position in the context
window and by class of character (chargpt-eval).

Every target character is scored exactly once (see ValWindows). Non-overlapping windows (the
default, and what validation during training reports) give the first characters of each window
almost no context; `stride` < the context length scores each character after the first window
with at least block_size - stride + 1 characters behind it, the model's loss with (nearly) full
context.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from chargpt.checks import shown
from chargpt.data.char_classes import CHAR_CLASSES, class_table
from chargpt.data.windows import IGNORE_INDEX, ValWindows
from chargpt.errors import ConfigError, DataError


@dataclass
class Evaluation:
    """What evaluate_text measured; losses are in nats per character."""

    loss: float  # every target once, in windows `stride` apart
    tokens: int  # targets scored
    stride: int  # as used: at most `window`
    window: int  # characters per window: the model's context, or less for a shorter text
    loss_non_overlapping: float  # the same targets in non-overlapping windows (stride = window)
    # Mean loss of the targets at position 0 .. window-1 of non-overlapping windows: position p
    # has p + 1 characters of context. Empty when not asked for.
    loss_by_position: list[float] = field(default_factory=list)
    position_counts: list[int] = field(default_factory=list)
    # Per class of the target character (CHAR_CLASSES), at `stride`: mean loss (None when the
    # class never occurs) and count. Empty when no vocabulary was given.
    class_losses: dict[str, float | None] = field(default_factory=dict)
    class_counts: dict[str, int] = field(default_factory=dict)
    windows: int = 0  # windows scored at `stride` (1 for a text no longer than the context)

    @property
    def bpc(self) -> float:
        return self.loss / math.log(2)

    @property
    def bpc_non_overlapping(self) -> float:
        return self.loss_non_overlapping / math.log(2)

    def position_buckets(self) -> dict[str, float]:
        """loss_by_position averaged over positions 0, 1, 2-3, 4-7, 8-15, ... (weighted by count)."""
        buckets: dict[str, float] = {}
        lo = 0
        while lo < len(self.loss_by_position):
            hi = min(max(1, 2 * lo), len(self.loss_by_position)) - 1  # 0, 1, 2-3, 4-7, ...
            counts = self.position_counts[lo : hi + 1]
            sums = sum(loss * n for loss, n in zip(self.loss_by_position[lo : hi + 1], counts, strict=True))
            buckets[str(lo) if lo == hi else f"{lo}-{hi}"] = sums / sum(counts)
            lo = hi + 1
        return buckets


def min_context(stride: int, block_size: int) -> int:
    """The fewest characters before a character that a window after the first scores: it scores
    the window's last `stride` targets, and the target at position p has p + 1 before it. The first
    window's characters have only those of the text before them."""
    return block_size - stride + 1


def check_stride(stride: object, block_size: int) -> int:
    """`stride` as an int from 1 to block_size, else a ConfigError that says what to pass."""
    if isinstance(stride, bool) or not isinstance(stride, int) or not 1 <= stride <= block_size:
        example = max(1, block_size // 2)
        raise ConfigError(  # (shown: '64' was typed in quotes, so text; true as it was typed)
            f"stride={shown(stride)} must be a whole number from 1 to the model's context length "
            f"{block_size}: e.g. stride={example} gives every character after the first {block_size} "
            f"at least {min_context(example, block_size)} characters before it; leave stride unset for "
            "non-overlapping windows"
        )
    return stride


@dataclass
class _Sums:
    total: float = 0.0
    count: int = 0
    by_position: tuple[torch.Tensor, torch.Tensor] | None = None  # loss sums, counts
    by_class: tuple[torch.Tensor, torch.Tensor] | None = None


@torch.inference_mode()
def _score(
    model: nn.Module, windows: ValWindows, classes: torch.Tensor | None, by_position: bool
) -> _Sums:
    """Sum the losses of the targets `windows` scores, and per position and class if asked."""
    device = next(model.parameters()).device
    window = windows.block_size
    sums = _Sums()
    if by_position:
        sums.by_position = (torch.zeros(window, dtype=torch.float64, device=device),
                            torch.zeros(window, dtype=torch.long, device=device))
    if classes is not None:
        classes = classes.to(device)
        sums.by_class = (torch.zeros(len(CHAR_CLASSES), dtype=torch.float64, device=device),
                         torch.zeros(len(CHAR_CLASSES), dtype=torch.long, device=device))
    for b in range(len(windows)):
        x, y = (t.to(device) for t in windows[b])  # (B, T) each
        logits, _ = model(x)  # (B, T, V)
        targets = y.reshape(-1)
        # F.cross_entropy is log_softmax then nll_loss: the same two calls give the same sum to
        # the last bit, and the per-target losses come from the same log-probabilities.
        logp = F.log_softmax(logits.reshape(-1, logits.size(-1)).float(), dim=1)
        sums.total += float(F.nll_loss(logp, targets, ignore_index=IGNORE_INDEX, reduction="sum"))
        scored = targets != IGNORE_INDEX
        sums.count += int(scored.sum())
        if sums.by_position is None and sums.by_class is None:
            continue
        losses = F.nll_loss(logp, targets, ignore_index=IGNORE_INDEX, reduction="none")[scored].double()
        if sums.by_position is not None:
            _add(sums.by_position, torch.arange(window, device=device).repeat(y.size(0))[scored], losses)
        if sums.by_class is not None and classes is not None:
            _add(sums.by_class, classes[targets[scored]], losses)
    return sums


def _add(bins: tuple[torch.Tensor, torch.Tensor], keys: torch.Tensor, losses: torch.Tensor) -> None:
    """Add each loss to its key's sum and count: whole batches at once, no loop per character."""
    bins[0].index_add_(0, keys, losses)
    bins[1].add_(torch.bincount(keys, minlength=len(bins[1])))


def evaluate_text(
    model: nn.Module,
    ids: np.ndarray,
    batch_size: int = 64,
    stride: int | None = None,
    chars: Sequence[str] | None = None,
    by_position: bool = True,
) -> Evaluation:
    """Exact loss of `model` on `ids`, every target scored once, in windows `stride` apart
    (default: the model's context, non-overlapping). `chars` (the vocabulary, id -> character)
    adds the loss per class of character; by_position the loss per position in the window, which
    with a stride takes one more pass, in non-overlapping windows.

    A text shorter than the model's context is scored as one shorter window, where no stride
    applies: its `stride` is that window's length, whatever was asked.
    """
    if len(ids) < 2:
        raise DataError(f"{len(ids)} character(s) hold no target to score; evaluate at least 2 characters")
    block_size = model.block_size
    stride = block_size if stride is None else check_stride(stride, block_size)
    window = min(block_size, len(ids) - 1)
    if window < block_size:  # one window holds every target: a stride below it would only claim
        stride = window  # context its first characters do not have
    classes = None if chars is None else class_table(chars)
    was_training = model.training
    model.eval()
    try:
        windows = ValWindows(ids, window, batch_size, stride=stride)
        main = _score(model, windows, classes, by_position and stride == window)
        plain = main
        if by_position and stride < window:
            plain = _score(model, ValWindows(ids, window, batch_size), None, by_position=True)
    finally:
        model.train(was_training)
    result = Evaluation(main.total / main.count, main.count, stride, window, plain.total / plain.count,
                        windows=windows.n_windows)
    if plain.by_position is not None:
        loss_sums, counts = (t.cpu() for t in plain.by_position)
        result.loss_by_position = (loss_sums / counts).tolist()
        result.position_counts = counts.tolist()
    if main.by_class is not None:
        loss_sums, counts = (t.cpu() for t in main.by_class)
        for name, total, n in zip(CHAR_CLASSES, loss_sums.tolist(), counts.tolist(), strict=True):
            result.class_losses[name] = total / n if n else None
            result.class_counts[name] = n
    return result
