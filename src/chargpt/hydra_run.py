"""What a command asks of the Hydra run it is in: whether it is a sweep's job, the overrides it
was given, where this launch's config went, its config as plain containers. Hydra and OmegaConf
only (no torch, no Lightning), so that what reads runs (a run's status record, the report) can ask
without loading the training stack.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import OmegaConf

from chargpt.overrides import absolute_override, override_key
from chargpt.run_layout import is_resume_config
from chargpt.stop_request import LAUNCHER


def plain(value: Any) -> Any:
    """A config resolved, as plain dicts and lists (safe inside checkpoints, which load weights-only);
    any other value as it is."""
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


def is_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def parallel_sweep_dir() -> Path | None:
    """The sweep's folder, for a job that runs beside others in its own process (the launcher of
    runs/parallel_launcher.py: a stop of the sweep reaches it through that folder)."""
    if not is_multirun() or not HydraConfig.initialized():
        return None
    if HydraConfig.get().launcher.get("_target_") != LAUNCHER:
        return None
    return Path(HydraConfig.get().sweep.dir)


def sweep_dir() -> Path | None:
    """The folder of the sweep this process runs a job of (None outside a sweep)."""
    return Path(HydraConfig.get().sweep.dir) if is_multirun() else None


def as_written(node: Any) -> list[str]:
    """A recorded list of overrides as written: an override's `${...}` is not resolved, and an
    escaped `\\${...}` keeps its escape (list() would resolve or unescape them)."""
    return [str(o) for o in OmegaConf.to_container(node, resolve=False)]


def config_folders_given(hydra: Any) -> list[str]:
    """The words that give a launch's own config folders again (of its config's `hydra` node): its
    `--config-dir` and its command line's `hydra.searchpath`, each folder named absolute from where
    it was launched, so that a resume or a continuation composes the same options from anywhere."""
    cwd = OmegaConf.select(hydra, "runtime.cwd", default=None)
    words: list[str] = []
    for source in OmegaConf.select(hydra, "runtime.config_sources", default=None) or []:
        if source.get("provider") == "command-line" and source.get("schema") == "file":
            words += ["--config-dir", os.path.normpath(os.path.join(cwd or "", str(source.path)))]
    return words + [absolute_override(o, cwd) for o in searchpath_overrides(hydra)]


def searchpath_overrides(hydra: Any) -> list[str]:
    """A launch's command-line `hydra.searchpath=[...]` overrides, as written (of its `hydra` node)."""
    given = as_written(hydra.overrides.hydra) if OmegaConf.select(hydra, "overrides.hydra") else []
    return [o for o in given if override_key(o) == "hydra.searchpath"]


def task_overrides() -> list[str]:
    """The overrides this run was given on the command line, as written (none outside Hydra)."""
    return as_written(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


def this_launch_resume_config(run_dir: str | Path) -> Path | None:
    """The folder this launch's config went to in `run_dir` when it is a later launch into it (a
    resume, a continued sweep's job: `.hydra/resume-*`); None for a first launch, or outside Hydra."""
    subdir = HydraConfig.get().output_subdir if HydraConfig.initialized() else None
    return Path(run_dir) / subdir if subdir and is_resume_config(subdir) else None


def chosen(group: str) -> str | None:
    """The option of a config group (optimizer=NAME) this launch composed; None outside Hydra."""
    choice = HydraConfig.get().runtime.choices.get(group) if HydraConfig.initialized() else None
    return str(choice) if choice else None

