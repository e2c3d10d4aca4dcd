"""The one answer to "does this process write the run's files?": global rank 0.

Lightning's `rank_zero_only.rank` is read from the launcher's environment (RANK, LOCAL_RANK,
SLURM_PROCID) at import, before any Trainer exists, and set to the global rank once the
strategy starts: the same question gets the same answer before, during and after fitting.
"""

from __future__ import annotations


def is_rank_zero() -> bool:
    # Imported here: Lightning takes seconds to import, which the commands that train nothing
    # (sample, serve, eval, export, report) need not pay.
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    return rank_zero_only.rank == 0
