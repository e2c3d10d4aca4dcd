"""Continuing one run: the command that resumes it from its last checkpoint.

Torch-free, so that chargpt-report can tell a stopped run's resume command without loading torch.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

from chargpt.overrides import as_typed, is_path_key, override_key

CKPT_PATH = ("ckpt_path=", "+ckpt_path=", "++ckpt_path=")
# Overrides that launch a search: a trial continues as one run, with the values it was given.
SEARCH_GROUPS = ("hparams_search",)


def resume_command(run_dir: str | Path, overrides: list[str] | None = None, cwd: str | None = None) -> str:
    """The command that continues this run (`overrides`: this job's, by default): the same
    overrides, with ckpt_path at its directory. Files named relative to `cwd`, where the run was
    launched (this job's, by default), are named absolute: the command works from anywhere."""
    if overrides is None and HydraConfig.initialized():
        overrides, cwd = list(HydraConfig.get().overrides.task), HydraConfig.get().runtime.cwd
    kept = [_absolute(as_typed(o), cwd) for o in overrides or []
            if not o.startswith(CKPT_PATH) and override_key(o) not in SEARCH_GROUPS]
    return shlex.join(["chargpt-train", *kept, f"ckpt_path={run_dir}"])


def _absolute(typed: str, cwd: str | None) -> str:
    setting, _, value = typed.partition("=")
    key = override_key(typed)
    if cwd is None or key == "data.name" or not is_path_key(key) or not value or value.lower() == "null":
        return typed
    return f"{setting}={os.path.join(cwd, value)}"  # an absolute value stays as it is


def launch_cwd(config_dir: Path) -> str | None:
    """Where a launch was made from, as the Hydra record in `config_dir` (a run's `.hydra`, or a
    resume's `.hydra/resume-*`) says."""
    try:
        return str(OmegaConf.load(config_dir / "hydra.yaml").hydra.runtime.cwd)
    except Exception:
        return None
