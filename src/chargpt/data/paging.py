"""Keep the resident pages of a memory-mapped id array bounded, whatever the corpus size.

Linux caches a file in large folios (up to 2 MB on x86-64; ext4 does since 6.16), and a page
fault on a file mapping can map the whole folio: on Linux 6.18, reading one byte of the cached
ids adds 2 MB of RSS, MADV_RANDOM or not (it only turns readahead off). So each randomly placed
window of a few hundred bytes maps up to 2 MB, and a long run ends up with the whole file mapped.

Dropping the mapping's pages with MADV_DONTNEED every few windows bounds that. It is simpler
than reading each window with its own pread (a Python call per window): the gather stays one
vectorised index, the pages stay in the page cache (the next access is a minor fault), and a
read-only shared mapping has no private data to lose, so the ids read are the same.
"""

from __future__ import annotations

import mmap

import numpy as np

# Between two drops at most this many windows are read. Each can map 2 folios of <= 2 MB, so at
# most ~64 MB of the file is mapped. The price is the refault of each window's folio after a drop
# (~6 µs: 512 page-table entries), whatever the interval, so a longer one would buy little.
WINDOWS_PER_DROP = 16
_MAX_FOLIO_BYTES = 2 << 20
# A mapping no larger than what those windows could map anyway is never dropped.
MIN_DROPPED_BYTES = WINDOWS_PER_DROP * 2 * _MAX_FOLIO_BYTES


def can_drop_pages(mapping: mmap.mmap | None) -> bool:
    return mapping is not None and hasattr(mapping, "madvise") and hasattr(mmap, "MADV_DONTNEED")


class PageBoundedIds:
    """`ids[index]` for an index of shape (windows, window length), reading at most
    WINDOWS_PER_DROP windows of a large memory-mapped `ids` between two drops of its pages.

    `mapping` is the file mapping `ids` is a view of (encoding.open_ids); without one, or for a
    small one, `ids` is indexed directly. A pickled copy (e.g. for a DataLoader worker started
    with "spawn") drops the mapping: the array travels as a copy and is indexed directly.
    """

    def __init__(self, ids: np.ndarray, mapping: mmap.mmap | None = None) -> None:
        self.ids = ids
        self.mapping = mapping if can_drop_pages(mapping) else None
        self.windows_per_drop = WINDOWS_PER_DROP
        self.min_dropped_bytes = MIN_DROPPED_BYTES
        self.drops = 0
        self._since_drop = 0  # windows read since the last drop

    def __len__(self) -> int:
        return len(self.ids)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "mapping": None}  # an mmap does not pickle

    def __getitem__(self, index: np.ndarray) -> np.ndarray:
        mapped = self.mapping
        if mapped is None or len(mapped) <= self.min_dropped_bytes:
            return self.ids[index]
        rows = np.empty(index.shape, dtype=self.ids.dtype)
        step = self.windows_per_drop
        for lo in range(0, len(index), step):  # one gather per chunk of windows: 1 for usual batches
            part = index[lo : lo + step]
            if self._since_drop + len(part) > step:
                mapped.madvise(mmap.MADV_DONTNEED)
                self.drops += 1
                self._since_drop = 0
            rows[lo : lo + step] = self.ids[part]
            self._since_drop += len(part)
        return rows
