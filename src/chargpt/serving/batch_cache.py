"""A KV cache with one row per request, so requests at different positions share one forward.

It has the interface the model uses from chargpt.model.kv_cache.KVCache (positions, update,
advance, reset), with positions per row: (B, 1) instead of (T,). The model code needs no other
change: absolute positions index their table with any shape, and RoPE broadcasts per-row angles.
"""

from __future__ import annotations

import torch

from chargpt.model.kv_cache import KVCache


class BatchedKVCache:
    """Rows 0..rows-1 of preallocated buffers; `active` rows take part in the next step.

    A batched step feeds one token per row. A prompt (or a window restart) is fed to one row
    alone through `row(i)`, a plain KVCache whose tensors are views of that row: it writes into
    the shared buffers with exactly the code single-request sampling uses.
    """

    def __init__(
        self, n_layer: int, rows: int, n_head: int, max_len: int, head_dim: int,
        device: torch.device, dtype: torch.dtype,
    ) -> None:
        shape = (rows, n_head, max_len, head_dim)
        self.k = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(n_layer)]
        self.v = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(n_layer)]
        self.slots = torch.arange(max_len, device=device)
        self.row_ids = torch.arange(rows, device=device)
        self.next = torch.zeros(rows, 1, dtype=torch.long, device=device)  # first free position per row
        self.active = rows

    def row(self, i: int) -> KVCache:
        view = KVCache.__new__(KVCache)
        view.k = [k[i : i + 1] for k in self.k]
        view.v = [v[i : i + 1] for v in self.v]
        view.slots = self.slots
        view.next = self.next[i]  # a (1,) view: the row's position advances in place
        return view

    def positions(self, t: int) -> torch.Tensor:
        """Positions of the next token of each active row, (active, 1)."""
        if t != 1:
            raise ValueError("a batched step feeds one token per row; feed longer inputs through row(i)")
        return self.next[: self.active]

    def update(
        self, layer: int, pos: torch.Tensor, k: torch.Tensor, v: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Store each row's new key/value at its own position; return the active rows' buffers and
        the (active, 1, 1, max_len) mask of the slots each row may attend to."""
        b = self.active
        rows, at = self.row_ids[:b], pos[:, 0]
        keys, values = self.k[layer][:b], self.v[layer][:b]
        keys[rows, :, at] = k[:, :, 0]
        values[rows, :, at] = v[:, :, 0]
        return keys, values, (self.slots <= pos[:, None, :, None])

    def advance(self, t: int) -> None:
        self.next[: self.active] += t

    def move_row(self, src: int, dst: int) -> None:
        """Copy row `src` (cache and position) into row `dst`: keeps the live rows contiguous."""
        for buffers in (self.k, self.v):
            for layer in buffers:
                layer[dst] = layer[src]
        self.next[dst] = self.next[src]
