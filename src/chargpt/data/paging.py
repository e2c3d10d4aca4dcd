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


def mapping_of(ids: np.ndarray) -> mmap.mmap | None:
    """The mmap behind a memory-mapped array (np.load(mmap_mode=...) or a view of one), else None."""
    mapped = getattr(ids, "_mmap", None)  # where np.memmap keeps it; views share their base's
    if isinstance(mapped, mmap.mmap) and hasattr(mapped, "madvise") and hasattr(mmap, "MADV_DONTNEED"):
        return mapped
    return None


class PageBoundedIds:
    """`ids[index]` for an index of shape (windows, window length), reading at most
    WINDOWS_PER_DROP windows of a large memory-mapped `ids` between two drops of its pages.

    An in-memory or small array is indexed directly. The mmap is looked up on each read rather
    than kept, so the object pickles (e.g. into DataLoader workers) like the array does.
    """

    def __init__(self, ids: np.ndarray) -> None:
        self.ids = ids
        self.windows_per_drop = WINDOWS_PER_DROP
        self.min_dropped_bytes = MIN_DROPPED_BYTES
        self.drops = 0
        self._since_drop = 0  # windows read since the last drop

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: np.ndarray) -> np.ndarray:
        mapped = mapping_of(self.ids)
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
