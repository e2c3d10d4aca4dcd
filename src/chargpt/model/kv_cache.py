"""Key/value cache for incremental decoding, preallocated to the context length.

The next free position is a tensor, not a Python int, and attention reads the whole buffer
through a mask: every decoding step then has the same shapes and no host-side state, so one
compiled step serves all positions (see sampling.compile_decode_step).
"""

from __future__ import annotations

import torch


class KVCache:
    def __init__(
        self, n_layer: int, batch: int, n_head: int, max_len: int, head_dim: int,
        device: torch.device, dtype: torch.dtype,
    ) -> None:
        # One tensor per layer, written in place by index: compiled code then updates the slots
        # it writes instead of copying a whole (functionalised) cache every step.
        shape = (batch, n_head, max_len, head_dim)
        self.k = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(n_layer)]
        self.v = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(n_layer)]
        self.slots = torch.arange(max_len, device=device)
        self.next = torch.zeros(1, dtype=torch.long, device=device)  # first free position

    def positions(self, t: int) -> torch.Tensor:
        """Positions of the next t tokens, (t,)."""
        return self.next + self.slots[:t]

    def update(
        self, layer: int, pos: torch.Tensor, k: torch.Tensor, v: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Store `layer`'s new keys/values at `pos`; return all slots and the (t, max_len) mask
        of the slots each new position may attend to: itself and those before it."""
        self.k[layer][:, :, pos] = k
        self.v[layer][:, :, pos] = v
        return self.k[layer], self.v[layer], self.slots <= pos[:, None]

    def advance(self, t: int) -> None:
        self.next += t

    def reset(self) -> None:
        self.next.zero_()
