"""Causal attention, kept in float32 products on a CPU whose other float32 products run in bf16.

`matmul_precision=medium` lets oneDNN compute a CPU's float32 matrix products in bf16 where the CPU
has bf16 units (AMX, AVX-512 BF16): the linear layers' products get faster. torch's flash-attention
kernel for CPU reads the same setting and gets several times slower under it (docs/BENCHMARKS.md,
"bf16 products inside float32"), so attention runs with it set back to float32, forward and
backward. Under bf16 autocast on a CPU (`trainer.precision=bf16-mixed`) attention leaves autocast
and computes in float32 too: torch's bf16 attention for CPU is the slower one there. Elsewhere
(CUDA, float32 products, a compiled graph) this is plain `F.scaled_dot_product_attention`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F

# oneDNN's own float32 setting, which torch's `medium` sets to bf16 (torch 2.9 on; None before).
_MKLDNN_MATMUL = getattr(torch.backends.mkldnn, "matmul", None)
_AVAILABLE = _MKLDNN_MATMUL is not None and hasattr(_MKLDNN_MATMUL, "fp32_precision")


def float32_attention_available() -> bool:
    """Whether attention can keep float32 products under `medium` (torch 2.9 on): without it,
    `medium` would make attention several times slower, so matmul_precision=auto does not pick it."""
    return _AVAILABLE


@contextlib.contextmanager
def float32_products() -> Iterator[None]:
    """oneDNN's float32 products in float32 for the block, whatever the global setting."""
    before = _MKLDNN_MATMUL.fp32_precision
    _MKLDNN_MATMUL.fp32_precision = "ieee"
    try:
        yield
    finally:
        _MKLDNN_MATMUL.fp32_precision = before


def _bf16_products_on_cpu(q: torch.Tensor) -> bool:
    return (_AVAILABLE and q.device.type == "cpu" and q.dtype == torch.float32
            and not torch.compiler.is_compiling() and _MKLDNN_MATMUL.fp32_precision == "bf16")


def _under_cpu_autocast(x: torch.Tensor) -> bool:
    return x.device.type == "cpu" and torch.is_autocast_enabled("cpu") and not torch.compiler.is_compiling()


def float32_under_cpu_autocast(qkv: torch.Tensor) -> torch.Tensor:
    """The attention's inputs in float32 where bf16 autocast on a CPU made them bf16: attention
    computes in float32 there anyway, and so do rotary positions then, as a complex product (no
    complex bf16): the rotation ~2x, the preset's step ~1.05x as fast as with the bf16 real form's
    broadcast products (docs/BENCHMARKS.md, "Rotary positions"). It also lets a float32 KV cache
    take them."""
    return qkv.float() if _under_cpu_autocast(qkv) else qkv


class _Float32ProductsAttention(torch.autograd.Function):
    """SDPA whose forward and backward both run under float32_products. The backward runs in a
    hook-free nested graph, since the setting must hold while autograd runs SDPA's own backward."""

    @staticmethod
    def forward(ctx: Any, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None,
                dropout_p: float) -> torch.Tensor:
        inputs = tuple(z.detach().requires_grad_() for z in (q, k, v))
        with torch.enable_grad(), float32_products():
            out = _sdpa(*inputs, mask, dropout_p)
        ctx.inputs, ctx.out = inputs, out
        return out.detach()

    @staticmethod
    @torch.autograd.function.once_differentiable  # the nested graph is freed by its first backward
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        with float32_products():
            grads = torch.autograd.grad(ctx.out, ctx.inputs, grad_out)
        del ctx.inputs, ctx.out
        return (*grads, None, None)


def _sdpa(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None, dropout_p: float
) -> torch.Tensor:
    causal = mask is None
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal, dropout_p=dropout_p)


def attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
) -> torch.Tensor:
    """Self-attention over (B, nh, T, hs) queries, keys and values: (B, nh, T, hs). Causal, or under
    a boolean `mask` (a KV cache's)."""
    if _under_cpu_autocast(q):
        # The linear layers around it keep their bf16 products (docs/BENCHMARKS.md, "bf16
        # autocast, attention in float32"); .float() is free on inputs already in float32.
        with torch.autocast("cpu", enabled=False):
            return attention(q.float(), k.float(), v.float(), mask, dropout_p)
    if not _bf16_products_on_cpu(q):
        return _sdpa(q, k, v, mask, dropout_p)
    if torch.is_grad_enabled() and any(z.requires_grad for z in (q, k, v)):
        return _Float32ProductsAttention.apply(q, k, v, mask, dropout_p)
    with float32_products():
        return _sdpa(q, k, v, mask, dropout_p)
