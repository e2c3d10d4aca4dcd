"""The data directory a run reads (`paths.data_dir`), named absolute in its saved config, and the
one a resume reads: the run's own, wherever the resume is launched from.

The setting defaults to `$CHARGPT_DATA_DIR`, else `data` under the folder a command runs in, so a
run started in one folder and resumed from another would look for (and download) its corpus
again there. The saved config records the folder it read; a resume that names none itself (no
paths.data_dir, no CHARGPT_DATA_DIR) reads that one, and so does a new job of a sweep whose other
jobs recorded one (a sweep continued from another folder).

A preset's download (`data.url`, Tiny Shakespeare's) is for the preset's own path: a `data.path`
given on the command line names the user's own file, which is never downloaded.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from chargpt.data.corpus import DATA_DIR_ENV, DATA_DIR_SETTING, check_data_dir, data_dir_typed
from chargpt.data.sources.paths import expand_path
from chargpt.hydra_run import sweep_dir, task_overrides
from chargpt.overrides import override_key
from chargpt.run_layout import SAVED_CONFIG, launch_files, run_of
from chargpt.training.run_checks import resumable

log = logging.getLogger(__name__)


def recorded_data_dir(run_dir: Path) -> str | None:
    """The absolute data directory the latest launch into `run_dir` recorded in its saved config;
    None for a run from before this record (its config holds the setting's interpolation)."""
    for config in reversed(launch_files(run_dir, SAVED_CONFIG)):
        try:  # as written: an interpolation is no record (resolved here, it would be this process's)
            saved = OmegaConf.to_container(OmegaConf.load(config), resolve=False)
        except Exception:  # missing, unreadable: an older launch may still say
            continue
        value = (saved.get("paths") or {}).get("data_dir") if isinstance(saved, dict) else None
        if isinstance(value, str) and "${" not in value and os.path.isabs(value):
            return value
    return None


def _sweeps_data_dir() -> str | None:
    """The data directory the jobs of this process's sweep recorded (a sweep continued from another
    folder: its jobs that had not started would read `data` there), or None."""
    folder = sweep_dir()
    if folder is None or not folder.is_dir():
        return None
    for job in sorted(p for p in folder.iterdir() if p.is_dir()):
        if recorded := recorded_data_dir(job):
            return recorded
    return None


def settle_data_dir(cfg: DictConfig) -> str | None:
    """Name cfg's paths.data_dir absolute (a resume's: its run's, unless this launch names one);
    returns the note for the saved config, None when there is nothing to note."""
    paths: Any = cfg.get("paths")
    try:
        value = paths.get("data_dir") if paths is not None else None
    except OmegaConfBaseException:  # e.g. an unset ${oc.env:...}: left for what reads it to report
        return None
    if not isinstance(value, str):
        return None
    named_here = data_dir_typed() or os.environ.get(DATA_DIR_ENV)
    checkpoint = None if named_here else resumable(cfg.get("ckpt_path"))
    recorded, whose = None, ""
    if checkpoint is not None:
        recorded, whose = recorded_data_dir(run_of(Path(checkpoint))), "the resumed run's"
    if recorded is None and not named_here:  # a sweep's new job reads what its other jobs read
        recorded, whose = _sweeps_data_dir(), "its sweep's"
    # A folder no longer there (the run was copied to another machine, the data moved) is no guide.
    if not (recorded and os.path.isdir(recorded)):
        check_data_dir(cfg)  # an empty one (CHARGPT_DATA_DIR=) is refused where it is read, not here
        whose = ""
    elif recorded != os.path.abspath(expand_path(value)):
        log.info("data directory: %s, %s (set %s or %s=DIR to read another)", recorded, whose, DATA_DIR_ENV,
                 DATA_DIR_SETTING)
        value = recorded
    else:
        whose = ""
    absolute = os.path.abspath(expand_path(value))
    if absolute == OmegaConf.to_container(paths, resolve=False).get("data_dir"):
        return None  # the saved config names it so already
    with open_dict(cfg):
        cfg.paths.data_dir = absolute
    return f"{DATA_DIR_SETTING} resolved to {absolute}" + (f", {whose}" if whose else "")


def keep_download_to_its_path(cfg: DictConfig) -> None:
    """Drop the preset's data.url when this launch names data.path and not data.url: a mistyped
    path of one's own was filled with Tiny Shakespeare under that name and trained on it."""
    data: Any = cfg.get("data")
    if data is None or not data.get("url"):
        return
    given = {override_key(o) for o in task_overrides()}
    if "data.path" in given and "data.url" not in given:
        with open_dict(cfg):
            cfg.data.url = None
            cfg.data.sha256 = None
