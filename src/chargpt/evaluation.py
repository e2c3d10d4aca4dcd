"""Full-split loss of a model: every target of the split scored exactly once."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from chargpt.data.windows import IGNORE_INDEX, ValWindows


@torch.inference_mode()
def evaluate(model: nn.Module, ids: np.ndarray, batch_size: int = 64) -> dict[str, float | int]:
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    windows = ValWindows(ids, model.block_size, batch_size)
    total, count = 0.0, 0
    for b in range(len(windows)):
        x, y = (t.to(device) for t in windows[b])
        logits, _ = model(x)
        total += float(nn.functional.cross_entropy(
            logits.reshape(-1, logits.size(-1)).float(), y.reshape(-1),
            ignore_index=IGNORE_INDEX, reduction="sum",
        ))
        count += int((y != IGNORE_INDEX).sum())
    model.train(was_training)
    loss = total / count
    return {"loss": loss, "bpc": loss / math.log(2), "tokens": count}
