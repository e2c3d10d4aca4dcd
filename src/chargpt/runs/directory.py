"""The run directory guard: a Hydra callback that runs before Hydra creates or writes anything.

A run directory that already holds a run (checkpoints or metrics.json) is only reused to resume
that same run, and an output folder that cannot be written is reported before any work starts.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from chargpt.checkpoints import resolve_checkpoint, run_dir_of
from chargpt.errors import ChargptError, ConfigError, SetupError, exit_on_user_error
from chargpt.training.distributed import is_rank_zero


class RunDirInUse(SetupError):
    """The run directory belongs to another run: nothing may be written there."""


def holds_run(folder: Path) -> bool:
    checkpoints = folder / "checkpoints"
    return (folder / "metrics.json").is_file() or (checkpoints.is_dir() and any(checkpoints.glob("*.ckpt")))


def check_writable(folder: Path, setting: str) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        raise ConfigError(
            f"cannot write to the output directory {folder} ({err.strerror or err}); "
            f"set {setting} (or paths.output_root) to a writable folder"
        ) from None


def check_run_dir(run_dir: Path, ckpt_path: str | None) -> None:
    if holds_run(run_dir):
        if not ckpt_path:
            raise RunDirInUse(
                f"the run directory {run_dir} already holds a run; continue it with ckpt_path={run_dir}, "
                "or pick a new hydra.run.dir"
            )
        try:
            resumed = run_dir_of(resolve_checkpoint(ckpt_path))
        except ChargptError:
            resumed = None  # train() reports the unusable checkpoint
        if resumed is not None and resumed.resolve() != run_dir.resolve():
            raise RunDirInUse(
                f"hydra.run.dir={run_dir} holds another run, and resuming {ckpt_path} there would overwrite "
                "its checkpoints; leave hydra.run.dir out to continue in the checkpoint's own run directory"
            )
    check_writable(run_dir, "hydra.run.dir")


class RunDirGuard(Callback):
    @exit_on_user_error
    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        if not is_rank_zero():
            return  # an extra rank of a multi-process run: it shares rank 0's directory
        check_run_dir(Path(str(config.hydra.run.dir)), config.get("ckpt_path"))

    @exit_on_user_error
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        check_writable(Path(str(config.hydra.sweep.dir)), "hydra.sweep.dir")
