"""Training and validation windows: x = ids[i:i+T], y = ids[i+1:i+T+1].

Each dataset item is a whole batch, gathered from the (memory-mapped) id array with one
vectorised index, so no per-sample Python runs on the hot path. Each dataset reads through a
PageBoundedIds, so the pages a large memory-mapped array maps stay bounded however long it runs.
"""

from __future__ import annotations

import mmap

import numpy as np
import torch
from torch.utils.data import Dataset

from chargpt.data.paging import PageBoundedIds

# Targets the loss skips (the overlap of the last validation window): torch's own convention,
# the default ignore_index of F.cross_entropy, so the model's loss needs no import from here.
IGNORE_INDEX = -100


def gather_windows(
    ids: np.ndarray | PageBoundedIds, starts: np.ndarray, block_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Windows of block_size + 1 ids at `starts`, split into (context, next-token targets)."""
    rows = ids[starts[:, None] + np.arange(block_size + 1)]
    chunk = torch.from_numpy(rows.astype(np.int64))
    return chunk[:, :-1], chunk[:, 1:]


class TrainWindows(Dataset):
    """Item k is training batch k: random offsets drawn from a generator seeded by (seed, k).

    Any batch can be rebuilt from its index alone, so resuming at step k continues the exact
    data stream. With several processes, the offsets of one global batch of
    batch_size * world_size windows are split between ranks, so N processes with batch B see the
    same data as one process with batch N * B.
    """

    def __init__(
        self,
        ids: np.ndarray,
        block_size: int,
        batch_size: int,
        seed: int,
        start: int = 0,
        stop: int = 2**62,
        rank: int = 0,
        world_size: int = 1,
        mapping: mmap.mmap | None = None,
    ) -> None:
        self.block_size, self.batch_size = block_size, batch_size
        self.rows = PageBoundedIds(ids, mapping)
        self.seed, self.start, self.stop = seed, start, stop
        self.rank, self.world_size = rank, world_size
        self.n_starts = len(ids) - block_size  # valid offsets: the window's last target must exist

    def __len__(self) -> int:
        return max(0, self.stop - self.start)

    def offsets(self, k: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, k])
        global_batch = rng.integers(0, self.n_starts, size=self.batch_size * self.world_size)
        return global_batch[self.rank * self.batch_size : (self.rank + 1) * self.batch_size]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return gather_windows(self.rows, self.offsets(self.start + i), self.block_size)


class ValWindows(Dataset):
    """The whole split in windows of block_size, every target scored exactly once, so the loss is
    exact and deterministic.

    By default the windows do not overlap (stride = block_size). With a smaller stride they start
    `stride` apart: the first window scores all its targets, every later one only its last
    `stride`, so each of those has at least block_size - stride + 1 characters before it (the
    full-context evaluation; stride=1 gives every target the whole window). When the split does
    not divide evenly, one last window is aligned to the end. Targets a window does not score are
    masked with IGNORE_INDEX.
    """

    def __init__(
        self,
        ids: np.ndarray,
        block_size: int,
        batch_size: int,
        mapping: mmap.mmap | None = None,
        stride: int | None = None,
    ) -> None:
        self.block_size, self.batch_size = block_size, batch_size
        self.stride = stride = block_size if stride is None else stride
        if not 1 <= stride <= block_size:
            raise ValueError(f"stride={stride} must be from 1 to block_size={block_size}")
        self.rows = PageBoundedIds(ids, mapping)
        self.n_targets = n_targets = len(ids) - 1
        # Window w starts at w * stride; the starts are computed per batch, not stored, so
        # memory does not grow with the split.
        self.n_aligned = max(0, (n_targets - block_size) // stride + 1)
        covered = (self.n_aligned - 1) * stride + block_size if self.n_aligned else 0
        self.tail_overlap = 0
        if self.n_aligned and covered < n_targets:  # one more window, ending at the last target
            self.tail_overlap = covered - (n_targets - block_size)
        self.n_windows = self.n_aligned + int(self.tail_overlap > 0)

    def __len__(self) -> int:
        return -(-self.n_windows // self.batch_size)

    def window_indices(self, b: int) -> np.ndarray:
        return np.arange(b * self.batch_size, min((b + 1) * self.batch_size, self.n_windows), dtype=np.int64)

    def starts(self, b: int) -> np.ndarray:
        """Start offsets of the windows of batch b."""
        w = self.window_indices(b)
        starts = w * self.stride
        if self.tail_overlap:
            starts[w == self.n_aligned] = self.n_targets - self.block_size
        return starts

    def __getitem__(self, b: int) -> tuple[torch.Tensor, torch.Tensor]:
        starts = self.starts(b)
        x, y = gather_windows(self.rows, starts, self.block_size)
        overlap = self.block_size - self.stride  # targets an earlier window scored
        later = self.window_indices(b) >= 1
        tail = bool(self.tail_overlap) and b == len(self) - 1
        if (overlap and later.any()) or tail:
            y = y.clone()  # y is a view of the same rows as x: masking it in place would change x
            if overlap:
                y[torch.from_numpy(later), :overlap] = IGNORE_INDEX
            if tail:
                y[-1, : self.tail_overlap] = IGNORE_INDEX
        return x, y
