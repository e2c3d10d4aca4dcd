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
        # In eager mode the complex product is over 2x faster forward and backward on a CPU
        # (docs/BENCHMARKS.md, "Rotary positions"). There is no complex bfloat16. Compiled and
        # exported graphs trace the real form: inductor fuses its elementwise ops anyway, and an
        # exported (ONNX) graph stays plain real arithmetic that any runtime runs.
        if x.dtype == torch.float32 and not torch.compiler.is_compiling():
            return self.rotate_complex(x, pos)
        return self.rotate_real(x, pos)

    def rotate_real(self, x: torch.Tensor, pos: torch.Tensor | None = None) -> torch.Tensor:
        cos, sin = self._cos_sin(x, pos)
        x1, x2 = x[..., 0::2], x[..., 1::2]
        return torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1).flatten(-2)

    def rotate_complex(self, x: torch.Tensor, pos: torch.Tensor | None = None) -> torch.Tensor:
        """The same rotation as one complex product: each channel pair is a complex number, turned
        by its angle (float32 or float64 only)."""
        # The turns are built at each call, not kept as a complex buffer: Module.to(dtype) would
        # drop a complex buffer's imaginary part.
        turns = torch.complex(*self._cos_sin(x, pos))
        pairs = torch.view_as_complex(x.unflatten(-1, (-1, 2)))  # (B, heads, T, hd/2)
        return torch.view_as_real(pairs * turns).flatten(-2)

    def _cos_sin(self, x: torch.Tensor, pos: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """The angles' cos and sin for x's positions, in x's dtype: (T, hd/2), or (B, 1, T, hd/2)
        for positions per sequence (broadcast over the heads)."""
        t = x.shape[2]
        cos = (self.cos[:t] if pos is None else self.cos[pos]).to(x.dtype)
        sin = (self.sin[:t] if pos is None else self.sin[pos]).to(x.dtype)
        return (cos[:, None], sin[:, None]) if cos.dim() == 3 else (cos, sin)
