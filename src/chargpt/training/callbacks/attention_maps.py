"""Attention maps for TensorBoard: softmax(QK^T/sqrt(d) + causal mask) per layer and head.

The model attends with F.scaled_dot_product_attention, which never materialises the weights.
For the picture, one extra no-grad forward pass on a fixed prompt records the query and key of
every attention call and recomputes the weights from them; training itself is untouched.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import Callback
from torch import nn

from chargpt.training.callbacks.tensorboard import known_prompt, tensorboard_writer

# A few stops of the viridis colour map (low -> high weight), interpolated linearly.
_COLOURS = torch.tensor(
    [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]], dtype=torch.float32
) / 255.0
_MASKED = torch.tensor([0.85, 0.85, 0.85])  # future positions the causal mask hides: light grey
_GAP = 1.0  # white lines between the maps


def attention_weights(
    q: torch.Tensor,
    k: torch.Tensor,
    attn_mask: torch.Tensor | None = None,
    is_causal: bool = False,
    scale: float | None = None,
) -> torch.Tensor:
    """What SDPA computes internally, (B, H, Tq, Tk); masked-out entries are NaN (not 0) so a
    picture can tell "hidden by the mask" from "weight near zero"."""
    q, k = q.float(), k.float()
    if k.shape[-3] != q.shape[-3]:  # grouped-query attention: share each key head
        k = k.repeat_interleave(q.shape[-3] // k.shape[-3], dim=-3)
    scores = q @ k.transpose(-2, -1) * (scale if scale is not None else 1.0 / math.sqrt(q.shape[-1]))
    t_q, t_k = scores.shape[-2:]
    allowed = torch.ones(t_q, t_k, dtype=torch.bool, device=scores.device)
    if is_causal:
        allowed = allowed.tril()  # SDPA's causal mask: query i sees keys 0..i
    if attn_mask is not None:
        if attn_mask.dtype == torch.bool:
            allowed = allowed & attn_mask
        else:
            scores = scores + attn_mask
    weights = scores.masked_fill(~allowed, float("-inf")).softmax(-1)
    return weights.masked_fill(~allowed, float("nan"))


@contextmanager
def capture_attention() -> Iterator[list[torch.Tensor]]:
    """Within the block, each scaled_dot_product_attention call also appends its weights (in call
    order, i.e. layer by layer) to the yielded list. Use for a short, no-grad pass only."""
    maps: list[torch.Tensor] = []
    original = F.scaled_dot_product_attention

    def recording(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, **kwargs):
        maps.append(attention_weights(q, k, attn_mask, is_causal, scale).cpu())
        return original(
            q, k, v, attn_mask=attn_mask, dropout_p=dropout_p, is_causal=is_causal, scale=scale, **kwargs
        )

    with mock.patch.object(F, "scaled_dot_product_attention", recording):
        yield maps


@torch.no_grad()
def attention_maps(model: nn.Module, idx: torch.Tensor) -> torch.Tensor:
    """(layers, heads, T, T) weights of `model` on the (1, T) prompt `idx`; empty when the model has
    no attention (the bigram baseline)."""
    model = getattr(model, "_orig_mod", model)  # a torch.compile'd model: run the eager module
    was_training = model.training
    model.eval()
    try:
        with capture_attention() as maps:
            model(idx)
    finally:
        model.train(was_training)
    return torch.stack([m[0] for m in maps]) if maps else torch.empty(0)


def colourise(weights: torch.Tensor) -> torch.Tensor:
    """(..., T, T) weights in [0, 1] (NaN = masked) -> (..., T, T, 3) RGB in [0, 1]."""
    masked = weights.isnan()
    x = weights.nan_to_num(0.0).clamp(0, 1) * (len(_COLOURS) - 1)
    low = x.floor().long().clamp(max=len(_COLOURS) - 2)
    frac = (x - low).unsqueeze(-1)
    rgb = _COLOURS[low] * (1 - frac) + _COLOURS[low + 1] * frac
    return torch.where(masked.unsqueeze(-1), _MASKED, rgb)


def attention_grid(maps: torch.Tensor, cell: int = 8) -> torch.Tensor:
    """(layers, heads, T, T) -> one (H, W, 3) image: a row per layer, a column per head; in each
    map, row i is query position i and column j key position j (cell x cell pixels each)."""
    layers, heads, t, _ = maps.shape
    tiles = colourise(maps).repeat_interleave(cell, dim=2).repeat_interleave(cell, dim=3)
    size = t * cell
    image = torch.full((layers * (size + 2) - 2, heads * (size + 2) - 2, 3), _GAP)
    for layer in range(layers):
        for head in range(heads):
            y, x = layer * (size + 2), head * (size + 2)
            image[y : y + size, x : x + size] = tiles[layer, head]
    return image


class AttentionMaps(Callback):
    """At each validation, logs `attention/maps`: the attention weights of every layer (rows) and
    head (columns) on a fixed prompt, causal mask in grey. Disable with `callbacks.attention_maps=null`."""

    def __init__(self, prompt: str = "First Citizen:\nBefore we proceed", pixels_per_char: int = 8) -> None:
        self.prompt, self.pixels_per_char = prompt, pixels_per_char
        self._logged_prompt = False

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        writer = tensorboard_writer(trainer)
        if writer is None or trainer.sanity_checking:
            return
        model: Any = pl_module.model
        prompt = known_prompt(self.prompt, pl_module.tokenizer, "AttentionMaps")[-model.block_size :]
        idx = torch.tensor([pl_module.tokenizer.encode(prompt)], device=pl_module.device)
        maps = attention_maps(model, idx)
        if maps.numel() == 0:
            return
        if not self._logged_prompt:
            writer.add_text("attention/prompt", f"Query and key positions are the characters of `{prompt!r}`")
            self._logged_prompt = True
        image = attention_grid(maps, self.pixels_per_char)
        writer.add_image("attention/maps", image, trainer.global_step, dataformats="HWC")
