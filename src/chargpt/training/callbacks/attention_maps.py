"""Attention maps as pictures: softmax(QK^T/sqrt(d) + causal mask) per layer and head, drawn with
matplotlib (the prompt's characters on both axes) for TensorBoard, MLflow, W&B or PNG files.

The model attends with F.scaled_dot_product_attention, which never materialises the weights.
For the picture, one extra no-grad forward pass on a fixed prompt records the query and key of
every attention call and recomputes the weights from them; training itself is untouched.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from unittest import mock

import lightning as L
import matplotlib
import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import Callback
from torch import nn

from chargpt.checks import utf8_text, yes_no
from chargpt.distributed import is_rank_zero
from chargpt.files import atomic_path
from chargpt.glyphs import code_point, families, has_glyph
from chargpt.training.callbacks.callback_prompt import known_prompt
from chargpt.training.callbacks.tracker_output import log_image, takes_images

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from matplotlib.image import AxesImage


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

    def recording(
        q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, attn_mask: torch.Tensor | None = None,
        dropout_p: float = 0.0, is_causal: bool = False, scale: float | None = None, **kwargs: object,
    ) -> torch.Tensor:
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


def visible(char: str) -> str:
    """A character as an axis label: newline, tab and space shown by a symbol, not as blank; one the
    labels' font and no installed font after it draws (an emoji, often) by its code, not as a box."""
    if char in VISIBLE:
        return VISIBLE[char]
    return char if char.isprintable() and has_glyph(char, "monospace") else code_point(char)


VISIBLE = {"\n": "\u21b5", " ": "\u2423", "\t": "\u2192", "\r": "\u240d"}  # ↵ ␣ → ␍


def render_attention(maps: torch.Tensor, prompt: str, title: str | None = None) -> np.ndarray:
    """(layers, heads, T, T) weights -> an RGB picture (H, W, 3, uint8): one map per layer and head,
    query characters down, key characters across, the causal mask in grey, one colour bar."""
    layers, heads, t, _ = maps.shape
    return AttentionPicture(layers, heads, prompt[-t:], titled=bool(title)).draw(maps, title)


class AttentionPicture:
    """The picture of `layers` x `heads` maps on one prompt. Its frame (the characters along every
    map, the titles, the colour bar) does not change with the weights: it is drawn once, here, and
    each draw() puts the maps (and the picture's title) on a copy of it.

    The layout is fixed in inches and the characters are plain text, not axis ticks: matplotlib's
    constrained layout and tick machinery took 5.2 s for 3 x 4 maps on a 2-core CPU, inside every
    validation (scripts/bench_attention_maps.py). The characters still took most of a picture's
    ~1-4 s, under a load that shifted from one moment to the next, so a time budget could not price
    it (0.17-1.36 times its price); the maps alone take milliseconds."""

    def __init__(self, layers: int, heads: int, prompt: str, titled: bool) -> None:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        self.shape = (layers, heads, len(prompt))
        labels = [visible(c) for c in prompt]
        layout = _Layout.of(layers, heads, labels, titled=titled)
        self.figure = fig = Figure(figsize=(layout.width, layout.height), dpi=100)
        self.canvas = FigureCanvasAgg(fig)
        # A square-root colour scale: most weights are small, and a linear one shows them all as dark.
        colours = {"cmap": matplotlib.colormaps["viridis"].with_extremes(bad=(0.88, 0.88, 0.88)),
                   "norm": matplotlib.colors.PowerNorm(gamma=0.5, vmin=0.0, vmax=1.0)}
        # A character the monospace font lacks (CJK) is drawn in an installed font that has it.
        text = {"fontsize": layout.font, "family": families("".join(labels), "monospace"), "clip_on": False}
        empty = torch.zeros(len(labels), len(labels))
        self.images = [_draw_map(fig, layout, empty, labels, (layer, head), colours, text)
                       for layer in range(layers) for head in range(heads)]
        bar = fig.colorbar(self.images[-1], cax=fig.add_axes(layout.bar_box()))
        # Two short lines: one long line ran off a picture of one layer (2.6 inches high).
        bar.set_label("attention weight (square-root scale)\ngrey: hidden by the causal mask", fontsize=9)
        bar.set_ticks([0.0, 0.05, 0.2, 0.5, 1.0])
        self.title = fig.suptitle("", fontsize=11, y=1 - 0.12 / layout.height, va="top") if titled else None
        # What draw() puts on the frame is left out of it: a map's edges go over its weights.
        self._on_top = [*self.images, *(spine for im in self.images for spine in im.axes.spines.values())]
        for artist in self._on_top:
            artist.set_visible(False)
        self._drawn(self.canvas.draw)
        self._frame = self.canvas.copy_from_bbox(fig.bbox)

    @staticmethod
    def _drawn(draw: Callable[[], object]) -> None:
        with warnings.catch_warnings():  # a glyph the font lacks is drawn as a box
            warnings.simplefilter("ignore", UserWarning)
            draw()

    def draw(self, maps: torch.Tensor, title: str | None = None) -> np.ndarray:
        """The picture of `maps` ((layers, heads, T, T), this picture's shape), with `title`."""
        assert tuple(maps.shape[:3]) == self.shape, (maps.shape, self.shape)
        self.canvas.restore_region(self._frame)
        for image, weights in zip(self.images, maps.flatten(0, 1), strict=True):
            image.set_data(weights.float().numpy())
        for artist in self._on_top:
            artist.set_visible(True)
            artist.axes.draw_artist(artist)
        if self.title is not None:
            self.title.set_text(title or "")
            self._drawn(lambda: self.figure.draw_artist(self.title))
        for artist in self._on_top:  # (a later frame-wide draw would put them in the frame)
            artist.set_visible(False)
        return np.asarray(self.canvas.buffer_rgba())[..., :3].copy()


@dataclass(frozen=True)
class _Layout:
    """Where the maps, their labels and the colour bar go, in inches."""

    layers: int
    heads: int
    font: int  # the labels' size, in points
    side: float  # of one map
    label_width: float  # the widest query label, and its gap to the map
    upright: bool  # key labels across (single characters), not down
    key_height: float  # the key labels and their gap to the map's edge
    left: float
    gap_x: float
    gap_y: float
    top: float
    map_title: float
    bottom: float
    bar_width: float
    bar_label: float
    width: float
    height: float

    @classmethod
    def of(cls, layers: int, heads: int, labels: list[str], titled: bool) -> _Layout:
        t = len(labels)
        font = 8 if t > 24 else 9
        side = min(max(t * 0.16, 2.6), 6.0)  # inches per map: readable labels, bounded pictures
        # Margins in inches: the widest query label (monospace: ~0.6 em a character) and "query" at
        # the left of each map, key labels and "key (attended to)" below the last row, titles above.
        label_width = max(len(label) for label in labels) * 0.6 * font / 72 + 0.08
        upright = label_width < 0.2  # single characters; longer labels (U+0007) run down, not across
        key_height = 0.27 if upright else label_width  # the labels and their gap to the map's edge
        left, gap_x, gap_y = label_width + 0.3, label_width + 0.2, key_height + 0.05
        top, map_title, bottom = (0.45 if titled else 0.1), 0.3, key_height + 0.3
        bar_gap, bar_width, bar_label = 0.15, 0.15, 0.95  # the bar's label: two lines
        width = left + heads * side + (heads - 1) * gap_x + bar_gap + bar_width + bar_label
        height = top + layers * (map_title + side) + (layers - 1) * gap_y + bottom
        return cls(layers, heads, font, side, label_width, upright, key_height, left, gap_x, gap_y, top,
                   map_title, bottom, bar_width, bar_label, width, height)

    def map_box(self, layer: int, head: int) -> tuple[float, float, float, float]:
        """One map's axes (left, bottom, width, height), as fractions of the picture."""
        y0 = self.height - self.top - (layer + 1) * (self.map_title + self.side) - layer * self.gap_y
        x0 = self.left + head * (self.side + self.gap_x)
        return x0 / self.width, y0 / self.height, self.side / self.width, self.side / self.height

    def bar_box(self) -> tuple[float, float, float, float]:
        """The colour bar's axes, as tall as the rows of maps, as fractions of the picture."""
        rows = self.layers * (self.map_title + self.side) + (self.layers - 1) * self.gap_y - self.map_title
        return ((self.width - self.bar_label - self.bar_width) / self.width, self.bottom / self.height,
                self.bar_width / self.width, rows / self.height)


def _draw_map(
    fig: Figure, layout: _Layout, weights: torch.Tensor, labels: list[str], at: tuple[int, int],
    colours: dict[str, Any], text: dict[str, Any],
) -> AxesImage:
    """One head's map (`at`: its layer and head) with its title, its characters along both edges
    (up to ~48 an axis), and the axis names on the edges of the grid."""
    layer, head = at
    t = len(labels)
    every = max(1, -(-t // 48))  # at most ~48 labels an axis
    ax = fig.add_axes(layout.map_box(layer, head))
    image = ax.imshow(weights.float().numpy(), interpolation="nearest", aspect="auto", **colours)
    ax.set_title(f"layer {layer}, head {head}", fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
    for i in range(0, t, every):
        ax.text(i, t - 0.3, labels[i], ha="center", va="top", rotation=0 if layout.upright else 90, **text)
        ax.text(-0.7, i, labels[i], ha="right", va="center", **text)
    if layer == layout.layers - 1:
        ax.set_xlabel("key (attended to)", fontsize=9, labelpad=layout.key_height * 72)
    if head == 0:
        ax.set_ylabel("query", fontsize=9, labelpad=layout.label_width * 72 + 2)
    return image


class AttentionMaps(Callback):
    """At each validation, logs `attention/maps`: the attention weights of every layer and head on
    a fixed prompt, labelled with its characters, to every logger that takes pictures
    (TensorBoard, MLflow, W&B); with `save_png`, also as attention_maps/step-N.png in the run
    directory. Disable with `callbacks.attention_maps=null`."""

    def __init__(
        self,
        prompt: str = "First Citizen:\nBefore we proceed",
        save_png: bool = False,
        output_dir: str | None = None,
    ) -> None:
        self.check_settings(prompt, save_png)
        self.prompt, self.save_png = prompt, save_png
        self.output_dir = Path(output_dir) if output_dir else None
        self._kept: AttentionPicture | None = None  # the picture, its frame drawn once

    @staticmethod
    def check_settings(prompt: object, save_png: object) -> None:
        """What the constructor checks, and a run before it reads any data (run_checks)."""
        utf8_text("prompt", prompt)  # typed in a Latin-1 terminal: refused, as sample.prompt is
        yes_no("save_png", save_png)

    def _draws(self, trainer: L.Trainer, pl_module: L.LightningModule) -> bool:
        # The bigram table has no attention: nothing to draw, nor a prompt to note the characters of.
        has_attention = pl_module.model.config.arch != "bigram"
        return is_rank_zero() and has_attention and (
            (self.save_png and self.output_dir is not None) or takes_images(trainer))

    def _prompt(self, pl_module: L.LightningModule) -> tuple[str, torch.Tensor]:
        """The prompt (its last block_size characters) and its (1, T) token ids."""
        model: Any = pl_module.model
        prompt = known_prompt(self.prompt, pl_module.tokenizer, "AttentionMaps")[-model.block_size :]
        return prompt, torch.tensor([pl_module.tokenizer.encode(prompt)], device=pl_module.device)

    def _picture(self, maps: torch.Tensor, prompt: str) -> AttentionPicture:
        """The picture for these maps, its frame drawn at the first validation (or a budget's
        estimate) and kept: the prompt and the model's shape do not change during a run."""
        layers, heads, t, _ = maps.shape
        if self._kept is None or self._kept.shape != (layers, heads, t):
            self._kept = AttentionPicture(layers, heads, prompt[-t:], titled=True)
        return self._kept

    def validation_end_seconds(
        self, trainer: L.Trainer, pl_module: L.LightningModule, clock: Callable[[], float]
    ) -> float:
        """For a time budget: what the picture costs at the final validation, timed now as it will
        be done then: the maps computed and drawn on the picture's frame, which is drawn here (before
        the plan, once) for every validation after to use."""
        if not self._draws(trainer, pl_module):
            return 0.0
        prompt, idx = self._prompt(pl_module)
        t0 = clock()
        maps = attention_maps(pl_module.model, idx)
        if maps.numel() == 0:
            return 0.0
        t1 = clock()
        picture = self._picture(maps, prompt)
        t2 = clock()
        picture.draw(maps, "timing")
        return (t1 - t0) + (clock() - t2)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not self._draws(trainer, pl_module):
            return
        prompt, idx = self._prompt(pl_module)
        maps = attention_maps(pl_module.model, idx)
        if maps.numel() == 0:
            return
        step = trainer.global_step
        picture = self._picture(maps, prompt).draw(maps, f"attention at step {step}")
        log_image(trainer, "attention/maps", picture, step)
        if self.save_png and self.output_dir is not None:
            folder = self.output_dir / "attention_maps"
            folder.mkdir(parents=True, exist_ok=True)
            with atomic_path(folder / f"step-{step:06d}.png") as tmp:
                imsave_png(tmp, picture)


def imsave_png(path: Path, picture: np.ndarray) -> None:
    from matplotlib.image import imsave

    imsave(path, picture, format="png")
