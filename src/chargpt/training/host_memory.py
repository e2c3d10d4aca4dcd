"""Host memory for training: keep the memory one step frees for the next step.

A CPU training step allocates its activations and gradients (blocks of up to a few MB: 1.5 MB for
one feed-forward activation of model=tiny at batch 12) and frees them in backward. glibc's malloc
starts with adaptive thresholds: blocks from 128 KB up are mapped and unmapped one by one, and free
memory at the top of the heap beyond a small margin is handed back to the system. It raises both
thresholds only when a larger block is freed, which chargpt-train first does at its first
validation (batches of 64). Until then every step returns its memory and page-faults it back in:
~600 faults a step for model=tiny, ~1 ms of a ~29 ms step (docs/BENCHMARKS.md). Fixed thresholds
at the top of glibc's range keep that memory in the process from the first step.
"""

from __future__ import annotations

import ctypes
import os

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # <malloc.h>
MMAP_THRESHOLD = 32 << 20  # glibc's largest (the ceiling of its adaptive threshold on 64-bit)
TRIM_THRESHOLD = 2 * MMAP_THRESHOLD  # glibc's own ratio between the two

_set = False


def keep_freed_memory() -> bool:
    """Set glibc's mmap and trim thresholds (once per process). False where the C library is not
    glibc (macOS, Windows, musl): those allocators are left as they are."""
    global _set
    if _set:
        return True
    try:
        version = os.confstr("CS_GNU_LIBC_VERSION")
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (AttributeError, OSError, ValueError):
        return False
    if not version or not version.startswith("glibc"):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    _set = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD))
    _set = _set and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return _set
