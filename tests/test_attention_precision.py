"""Attention on a CPU under matmul_precision=medium (float32 products inside attention, forward and
backward, the global setting left as it was) and under bf16 autocast (float32 from the projection on)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
import torch.nn.functional as F

from chargpt.model import ModelConfig, build_model
from chargpt.model.attention import (
    attention,
    float32_attention_available,
    float32_products,
)
from chargpt.model.sampling import generate

pytestmark = pytest.mark.skipif(not float32_attention_available(), reason="torch before 2.9")
MKLDNN = getattr(torch.backends.mkldnn, "matmul", None)
# Where the CPU has no bf16 units oneDNN ignores the setting, and plain SDPA matches too.
needs_bf16_units = pytest.mark.skipif(
    not torch.backends.mkldnn.is_available() or not torch.ops.mkldnn._is_mkldnn_bf16_supported(),
    reason="this CPU computes no products in bf16",
)


@pytest.fixture
def bf16_products() -> Iterator[None]:
    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("medium")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(before)


def qkv(seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    # Head size 32: oneDNN computes smaller products in float32 whatever the setting.
    return tuple(torch.randn(1, 2, 32, 32, generator=g, requires_grad=True) for _ in range(3))


def reference(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, grad: torch.Tensor
) -> tuple[torch.Tensor, ...]:
    """SDPA's output and input gradients with float32 products throughout."""
    with float32_products():
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return (out.detach(), *torch.autograd.grad(out, (q, k, v), grad))


def test_medium_sets_the_products_attention_turns_back() -> None:
    """The wrapper keys on oneDNN's setting: torch's `medium` must still set it to bf16."""
    before = torch.get_float32_matmul_precision()
    try:
        torch.set_float32_matmul_precision("medium")
        assert MKLDNN.fp32_precision == "bf16"
        with float32_products():
            assert MKLDNN.fp32_precision == "ieee"
        assert MKLDNN.fp32_precision == "bf16"
    finally:
        torch.set_float32_matmul_precision(before)


@needs_bf16_units
def test_attention_under_medium_matches_float32_forward_and_backward(bf16_products: None) -> None:
    q, k, v = qkv()
    grad = torch.randn(1, 2, 32, 32, generator=torch.Generator().manual_seed(1))
    want = reference(q, k, v, grad)
    out = attention(q, k, v)
    got = (out.detach(), *torch.autograd.grad(out, (q, k, v), grad))
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert MKLDNN.fp32_precision == "bf16"  # restored after forward and backward


def test_attention_backward_reaches_earlier_layers(bf16_products: None) -> None:
    """The nested graph hands its gradients on: a product before attention gets one."""
    w = torch.randn(32, 32, requires_grad=True)
    q, k, v = (z.detach() @ w for z in qkv())
    attention(q, k, v).square().sum().backward()
    assert w.grad is not None and torch.isfinite(w.grad).all() and w.grad.abs().sum() > 0


@needs_bf16_units
def test_inference_and_cached_attention_under_medium(bf16_products: None) -> None:
    q, k, v = (z.detach() for z in qkv())
    with float32_products():
        want = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    with torch.no_grad():
        torch.testing.assert_close(attention(q, k, v), want, rtol=0, atol=0)
        mask = torch.ones(32, 32, dtype=torch.bool).tril()
        torch.testing.assert_close(attention(q, k, v, mask), want, rtol=0, atol=0)
    assert MKLDNN.fp32_precision == "bf16"


def test_a_failing_attention_still_restores_the_setting(bf16_products: None) -> None:
    q, k, v = qkv()
    with pytest.raises(RuntimeError):
        attention(q, k[..., :4], v)  # mismatched head sizes
    assert MKLDNN.fp32_precision == "bf16"


@pytest.mark.parametrize("masked", [False, True])
def test_attention_under_cpu_autocast_runs_in_float32(masked: bool) -> None:
    """Under bf16 autocast the linear layers hand attention bf16 queries, keys and values; it
    computes in float32 (torch's bf16 attention for CPU is slower) and its gradients reach them."""
    q, k, v = qkv()
    mask = torch.ones(32, 32, dtype=torch.bool).tril() if masked else None
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = tuple(z.bfloat16() for z in (q, k, v))  # what a linear layer gives under autocast
        out = attention(*low, mask)
        assert torch.is_autocast_enabled("cpu")  # left as it was
    assert out.dtype == torch.float32
    want = F.scaled_dot_product_attention(*(z.float() for z in low), attn_mask=mask, is_causal=not masked)
    torch.testing.assert_close(out, want, rtol=0, atol=0)
    out.square().sum().backward()
    assert all(z.grad is not None and z.grad.abs().sum() > 0 for z in (q, k, v))


def tiny_rope_model() -> torch.nn.Module:
    torch.manual_seed(0)
    config = ModelConfig(n_layer=2, n_embd=32, n_head=2, block_size=16, pos_encoding="rope")
    return build_model(config, vocab_size=11).eval()


def test_rotary_positions_take_float32_under_cpu_autocast() -> None:
    """The projection's bf16 output is cast once, so rotary positions take the complex form (no
    complex bf16; the bf16 real form was the slower) and attention gets float32 inputs."""
    model = tiny_rope_model()
    seen: list[torch.dtype] = []
    rotate = model.rotary.forward
    model.rotary.forward = lambda x, pos=None: seen.append(x.dtype) or rotate(x, pos)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits, _ = model(torch.randint(0, 11, (2, 16)))
    assert seen and set(seen) == {torch.float32}
    assert logits.dtype == torch.bfloat16  # the linear layers kept their bf16 products


def test_cached_sampling_under_cpu_autocast_matches_uncached() -> None:
    """The float32 KV cache takes the keys and values a bf16 projection made under autocast."""
    model = tiny_rope_model()
    prompt = torch.randint(0, 11, (2, 3))
    with torch.autocast("cpu", dtype=torch.bfloat16), torch.no_grad():
        texts = [generate(model, prompt, 20, temperature=1.0, top_k=1, use_cache=c) for c in (True, False)]
    assert texts[0].shape == (2, 23)
    assert torch.equal(texts[0], texts[1])
