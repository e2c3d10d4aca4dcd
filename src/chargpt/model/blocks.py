"""Transformer block: pre-norm causal self-attention and feed-forward, each on a residual path."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from chargpt.model.attention import attention, float32_under_cpu_autocast
from chargpt.model.config import ModelConfig
from chargpt.model.kv_cache import KVCache
from chargpt.model.positional import Rotary


def make_norm(config: ModelConfig, dim: int | None = None) -> nn.Module:
    dim = dim or config.n_embd
    if config.norm == "rmsnorm":
        return nn.RMSNorm(dim)
    return nn.LayerNorm(dim, bias=config.bias)


class CausalSelfAttention(nn.Module):
    def __init__(self, config: ModelConfig, layer: int) -> None:
        super().__init__()
        self.layer, self.n_head, self.head_dim = layer, config.n_head, config.head_dim
        self.qkv = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.proj.is_residual_out = True  # scaled init, see GPT._init_weights
        self.dropout = config.dropout
        self.resid_dropout = nn.Dropout(config.dropout)
        self.q_norm = make_norm(config, self.head_dim) if config.qk_norm else nn.Identity()
        self.k_norm = make_norm(config, self.head_dim) if config.qk_norm else nn.Identity()

    def forward(
        self, x: torch.Tensor, rotary: Rotary | None = None, cache: KVCache | None = None,
        pos: torch.Tensor | None = None,
    ) -> torch.Tensor:
        b, t, c = x.shape  # batch, time, channels (n_embd)
        qkv = float32_under_cpu_autocast(self.qkv(x))  # (B, T, 3C)
        q, k, v = (  # each (B, nh, T, hs)
            z.view(b, t, self.n_head, self.head_dim).transpose(1, 2) for z in qkv.split(c, dim=2)
        )
        q, k = self.q_norm(q), self.k_norm(k)
        if rotary is not None:
            q, k = rotary(q, pos), rotary(k, pos)
        if cache is None:
            y = attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)  # (B, nh, T, hs)
        else:
            k, v, mask = cache.update(self.layer, pos, k, v)  # k, v: (B, nh, max_len, hs)
            y = attention(q, k, v, mask)  # (B, nh, T, hs)
        y = y.transpose(1, 2).reshape(b, t, c)  # heads side by side again: (B, T, C)
        return self.resid_dropout(self.proj(y))


def relu_squared(h: torch.Tensor) -> torch.Tensor:
    return F.relu(h).square()


# The elementwise activations; swiglu is gated instead (see FeedForward).
ACTIVATION_FNS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "relu": F.relu, "gelu": F.gelu, "relu2": relu_squared,
}


class FeedForward(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        hidden = int(config.mlp_ratio * config.n_embd)
        self.gate: nn.Linear | None = None
        if config.activation == "swiglu":
            hidden = int(2 * hidden / 3)  # keeps the parameter count of a plain MLP
            self.gate = nn.Linear(config.n_embd, hidden, bias=config.bias)
        else:
            self.act = ACTIVATION_FNS[config.activation]  # chosen once, not per forward
        self.up = nn.Linear(config.n_embd, hidden, bias=config.bias)
        self.down = nn.Linear(hidden, config.n_embd, bias=config.bias)
        self.down.is_residual_out = True
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.up(x)  # (B, T, hidden)
        h = self.act(h) if self.gate is None else F.silu(self.gate(x)) * h
        return self.dropout(self.down(h))  # (B, T, C)


class Block(nn.Module):
    def __init__(self, config: ModelConfig, layer: int) -> None:
        super().__init__()
        self.norm1 = make_norm(config)
        self.attn = CausalSelfAttention(config, layer)
        self.norm2 = make_norm(config)
        self.mlp = FeedForward(config)

    def forward(
        self, x: torch.Tensor, rotary: Rotary | None = None, cache: KVCache | None = None,
        pos: torch.Tensor | None = None,
    ) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), rotary, cache, pos)
        return x + self.mlp(self.norm2(x))
