"""Attention maps recomputed beside SDPA: the same weights the model uses, the mask visible."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from chargpt.model import ModelConfig, build_model
from chargpt.training.callbacks.attention_maps import (
    _MASKED,
    attention_grid,
    attention_maps,
    attention_weights,
    capture_attention,
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


def test_grid_layout_and_mask_colour() -> None:
    maps = torch.rand(2, 3, 4, 4)
    maps[..., torch.ones(4, 4, dtype=torch.bool).triu(1)] = math.nan
    image = attention_grid(maps, cell=5)
    size = 4 * 5
    assert image.shape == (2 * (size + 2) - 2, 3 * (size + 2) - 2, 3)
    assert image.min() >= 0.0 and image.max() <= 1.0
    # Layer 1, head 2: the cell (query 0, key 3) is masked -> grey; (3, 0) is a weight -> not grey.
    y, x = 1 * (size + 2), 2 * (size + 2)
    torch.testing.assert_close(image[y + 2, x + 3 * 5 + 2], _MASKED)
    assert not torch.allclose(image[y + 3 * 5 + 2, x + 2], _MASKED)
    assert (image[size : size + 2] == 1.0).all()  # white gap between the layer rows
