"""Positional information: learned or sinusoidal vectors added to the input, or rotary (RoPE)."""

from __future__ import annotations

import math

import torch
from torch import nn


def sinusoidal_table(length: int, dim: int) -> torch.Tensor:
    """The fixed encodings of "Attention Is All You Need": sin on even, cos on odd channels."""
    pos = torch.arange(length, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq[: dim // 2])
    return table


class AbsolutePositions(nn.Module):
    """Adds a position vector (learned or sinusoidal) to each token embedding."""

    def __init__(self, kind: str, block_size: int, n_embd: int, init_std: float = 0.02) -> None:
        super().__init__()
        if kind == "learned":
            self.table = nn.Parameter(torch.zeros(block_size, n_embd))  # (block_size, C)
            nn.init.normal_(self.table, std=init_std)
        else:
            self.register_buffer("table", sinusoidal_table(block_size, n_embd), persistent=False)

    def forward(self, x: torch.Tensor, pos: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, T, C); pos: the positions of the T tokens, 0..T-1 when None."""
        return x + (self.table[: x.shape[1]] if pos is None else self.table[pos])


class Rotary(nn.Module):
    """Rotates query/key channel pairs by position-dependent angles (Su et al., RoFormer)."""

    def __init__(self, block_size: int, head_dim: int, base: float = 10000.0) -> None:
        super().__init__()
        inv_freq = 1.0 / base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
        angles = torch.outer(torch.arange(block_size, dtype=torch.float32), inv_freq)
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("sin", angles.sin(), persistent=False)

    def forward(self, x: torch.Tensor, pos: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, heads, T, head_dim); pos: the positions of the T tokens, (T,) or per sequence (B, T);
        0..T-1 when None."""
        t = x.shape[2]
        cos = (self.cos[:t] if pos is None else self.cos[pos]).to(x.dtype)
        sin = (self.sin[:t] if pos is None else self.sin[pos]).to(x.dtype)
        if cos.dim() == 3:  # one row of positions per sequence, (B, T): broadcast over the heads
            cos, sin = cos[:, None], sin[:, None]
        x1, x2 = x[..., 0::2], x[..., 1::2]
        return torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1).flatten(-2)
