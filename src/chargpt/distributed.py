"""The one answer to "does this process write the run's files?": global rank 0.

Lightning's `rank_zero_only.rank` is read from the launcher's environment (RANK, LOCAL_RANK,
SLURM_PROCID) at import, before any Trainer exists, and set to the global rank once the
strategy starts: the same question gets the same answer before, during and after fitting.
"""

from __future__ import annotations

import os
import sys

_RANK_ZERO = "lightning.fabric.utilities.rank_zero"


def is_rank_zero() -> bool:
    # Imported here: Lightning takes seconds to import, which the commands that train nothing
    # (sample, serve, eval, export, report) need not pay. Not imported yet, its answer is the one it
    # reads at import: a sweep's job asks before that import (claim_this_job).
    if _RANK_ZERO not in sys.modules:
        return _launcher_rank() == 0
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    return rank_zero_only.rank == 0


def _launcher_rank() -> int:
    """The rank Lightning takes from the launcher's environment at import (rank_zero._get_rank)."""
    for key in ("RANK", "LOCAL_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK"):
        if (rank := os.environ.get(key)) is not None:
            return int(rank)
    return 0
