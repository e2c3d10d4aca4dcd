"""Continuing one run: where its last checkpoint is, and the command that resumes from it.

Torch-free, so that chargpt-report can tell a stopped run's resume command without loading torch.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from hydra.core.hydra_config import HydraConfig

from chargpt.overrides import as_typed, override_key

LAST = "last.ckpt"
CKPT_PATH = ("ckpt_path=", "+ckpt_path=", "++ckpt_path=")
# Overrides that launch a search: a trial continues as one run, with the values it was given.
SEARCH_GROUPS = ("hparams_search",)


def last_checkpoint(run_dir: Path) -> Path | None:
    """A run directory's last.ckpt (in its checkpoints/ folder, or beside it), if it has one."""
    return next((c for c in (run_dir / "checkpoints" / LAST, run_dir / LAST) if c.is_file()), None)


def resume_command(run_dir: str | Path, overrides: list[str] | None = None) -> str:
    """The command that continues this run (`overrides`: this job's, by default): the same
    overrides, with ckpt_path at its directory."""
    if overrides is None:
        overrides = list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []
    kept = [as_typed(o) for o in overrides
            if not o.startswith(CKPT_PATH) and override_key(o) not in SEARCH_GROUPS]
    return shlex.join(["chargpt-train", *kept, f"ckpt_path={run_dir}"])
