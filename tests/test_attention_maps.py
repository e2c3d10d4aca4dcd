"""Attention maps recomputed beside SDPA: the same weights the model uses, the mask visible."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from chargpt.model import ModelConfig, build_model
from chargpt.training.callbacks.attention_maps import (
    attention_maps,
    attention_weights,
    capture_attention,
    render_attention,
    visible,
)


def tiny_model(**overrides: object) -> torch.nn.Module:
    settings = {"n_layer": 2, "n_head": 2, "n_embd": 16, "block_size": 12, **overrides}
    torch.manual_seed(0)
    return build_model(ModelConfig.from_dict(settings), vocab_size=11)


def test_weights_reproduce_sdpa_output() -> None:
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 3, 7, 5) for _ in range(3))
    weights = attention_weights(q, k, is_causal=True)
    expected = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    torch.testing.assert_close(weights.nan_to_num(0.0) @ v, expected, atol=1e-5, rtol=1e-5)
    # The causal mask shows as NaN strictly above the diagonal; each row sums to one.
    upper = torch.ones(7, 7, dtype=torch.bool).triu(1)
    assert weights[..., upper].isnan().all()
    assert not weights[..., ~upper].isnan().any()
    torch.testing.assert_close(weights.nan_to_num(0.0).sum(-1), torch.ones(2, 3, 7))


def test_weights_with_scale_and_float_mask() -> None:
    torch.manual_seed(1)
    q, k, v = (torch.randn(1, 2, 4, 8) for _ in range(3))
    mask = torch.randn(4, 4)
    weights = attention_weights(q, k, attn_mask=mask, scale=0.3)
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=0.3)
    torch.testing.assert_close(weights @ v, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("pos_encoding", ["learned", "rope"])
def test_maps_of_a_model_per_layer_and_head(pos_encoding: str) -> None:
    model = tiny_model(pos_encoding=pos_encoding, qk_norm=pos_encoding == "rope").train()
    idx = torch.randint(0, 11, (1, 9))
    with torch.no_grad():
        plain_logits, _ = model.eval()(idx)
    model.train()
    maps = attention_maps(model, idx)
    assert maps.shape == (2, 2, 9, 9)
    assert model.training, "the model's mode is restored"
    with torch.no_grad(), capture_attention() as captured:
        logits, _ = model.eval()(idx)
    torch.testing.assert_close(logits, plain_logits)  # recording does not change the forward pass
    assert len(captured) == 2
    assert F.scaled_dot_product_attention.__name__ == "scaled_dot_product_attention"  # patch undone


def test_bigram_has_no_maps() -> None:
    model = tiny_model(arch="bigram")
    assert attention_maps(model, torch.zeros(1, 4, dtype=torch.long)).numel() == 0


def test_picture_has_a_map_per_layer_and_head_with_visible_labels() -> None:
    maps = torch.rand(2, 3, 6, 6).softmax(-1)
    maps[..., torch.ones(6, 6, dtype=torch.bool).triu(1)] = math.nan
    picture = render_attention(maps, "a b\ncd")
    assert picture.dtype == np.uint8 and picture.ndim == 3 and picture.shape[2] == 3
    assert picture.shape[1] > picture.shape[0]  # 3 heads across, 2 layers down
    assert [visible(c) for c in " \n\tx\x00"] == ["\u2423", "\u21b5", "\u2192", "x", "U+0000"]
    # Characters the labels' font lacks were drawn as boxes: one no installed font has is named by
    # its code point; 😀, which DejaVu Sans Mono lacks, is drawn in DejaVu Sans.
    assert [visible(c) for c in "é人😀"] == ["é", "U+4EBA", "😀"]
    grey = (np.abs(picture.astype(int) - 224) <= 1).all(-1)  # the masked cells' colour
    assert grey.sum() > 1000


def test_the_maps_are_laid_out_in_a_grid_each_labelled_with_the_bar_beside_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    drawn = []
    draw = FigureCanvasAgg.draw

    def recorded(canvas: FigureCanvasAgg) -> None:
        drawn.append(canvas.figure)
        draw(canvas)

    monkeypatch.setattr(FigureCanvasAgg, "draw", recorded)
    render_attention(torch.rand(2, 3, 5, 5).softmax(-1), "ab, é", title="step 40")
    [fig] = drawn
    *maps, bar = fig.axes
    boxes = [ax.get_position() for ax in maps]
    assert [ax.get_title() for ax in maps] == [f"layer {y}, head {x}" for y in range(2) for x in range(3)]
    assert all(0 <= b.x0 < b.x1 <= 1 and 0 <= b.y0 < b.y1 <= 1 for b in [*boxes, bar.get_position()])
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
    assert [round(b.x0, 6) for b in boxes[:3]] == [round(b.x0, 6) for b in boxes[3:]]  # columns
    assert boxes[0].y0 > boxes[3].y1  # layer 0 above layer 1
    assert bar.get_position().x0 > max(b.x1 for b in boxes)
    assert (bar.get_position().y0, bar.get_position().y1) == pytest.approx((boxes[3].y0, boxes[0].y1))
    for i, ax in enumerate(maps):  # each character along both edges
        assert [t.get_text() for t in ax.texts] == [c for c in ["a", "b", ",", "\u2423", "é"] for _ in "xy"]
        assert ax.get_xlabel() == ("key (attended to)" if i >= 3 else "")  # below the last row
        assert ax.get_ylabel() == ("query" if i % 3 == 0 else "")  # left of the first column
    assert fig._suptitle.get_text() == "step 40"


def test_a_label_the_monospace_font_lacks_is_drawn_in_an_installed_font_that_has_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Drawn in DejaVu Sans Mono alone, 😀 was an empty box (render_attention silences matplotlib's
    # warning of a missing glyph: here each one is recorded where matplotlib finds it).
    from matplotlib import _text_helpers

    missing: list[int] = []
    monkeypatch.setattr(_text_helpers, "warn_on_missing_glyph", lambda code, *fonts: missing.append(code))
    render_attention(torch.rand(1, 1, 3, 3).softmax(-1), "a😀b")
    assert missing == []


def test_budget_estimate_times_the_maps_drawn_as_the_end_draws_them(tmp_path) -> None:
    # Priced from pictures of one map and of two, extrapolated to every map, the picture took
    # 0.17-1.36 times its price under a shifting load. The frame (the characters, the titles, the
    # bar) is now drawn at the estimate and kept; the end draws only the maps, as the estimate times.
    from types import SimpleNamespace

    from chargpt.data.tokenizer import CharTokenizer
    from chargpt.training.callbacks.attention_maps import AttentionMaps

    module = SimpleNamespace(model=tiny_model(n_layer=3), tokenizer=CharTokenizer(list("abcdefghij ")),
                             device=torch.device("cpu"))
    no_images = SimpleNamespace(loggers=[])
    drawn = AttentionMaps(prompt="a bad cafe", save_png=True, output_dir=str(tmp_path))
    # Clock readings: start, maps computed (0.1 s), frame drawn (2.5 s: not the end's), maps drawn.
    assert drawn.validation_end_seconds(no_images, module, iter([0, 0.1, 2.6, 2.65]).__next__) == (
        pytest.approx(0.1 + 0.05))
    maps = attention_maps(module.model, torch.zeros(1, 10, dtype=torch.long))
    frame = drawn._picture(maps, "a bad cafe")  # drawn at the estimate, and kept for the end
    assert drawn.validation_end_seconds(no_images, module, iter([0, 0.1, 0.2, 0.21]).__next__) == (
        pytest.approx(0.1 + 0.01))
    assert drawn._picture(maps, "a bad cafe") is frame

    # Nothing to draw into (no picture logger, no PNG): nothing to reserve, no clock read.
    undrawn = AttentionMaps(prompt="a bad cafe")
    assert undrawn.validation_end_seconds(no_images, module, iter([]).__next__) == 0.0
    assert not list(tmp_path.iterdir())  # the timing draws nothing to disk


def test_a_picture_drawn_on_its_kept_frame_is_the_picture_drawn_whole() -> None:
    from chargpt.training.callbacks.attention_maps import AttentionPicture

    torch.manual_seed(0)
    first, second = (torch.rand(2, 3, 6, 6).softmax(-1) for _ in range(2))
    second[..., torch.ones(6, 6, dtype=torch.bool).triu(1)] = math.nan
    picture = AttentionPicture(2, 3, "a b\ncd", titled=True)
    before = picture.draw(first, "attention at step 10")
    again = picture.draw(second, "attention at step 20")
    assert not np.array_equal(before, again)
    # Nothing of the first maps or title is left, and the frame is the one a whole draw makes.
    whole = AttentionPicture(2, 3, "a b\ncd", titled=True)
    for artist in whole._on_top:
        artist.set_visible(True)
    for image, weights in zip(whole.images, second.flatten(0, 1), strict=True):
        image.set_data(weights.numpy())
    whole.title.set_text("attention at step 20")
    whole.canvas.draw()
    drawn_whole = np.asarray(whole.canvas.buffer_rgba())[..., :3]
    assert np.array_equal(again, drawn_whole)
