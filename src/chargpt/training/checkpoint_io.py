"""Lightning's checkpoint I/O for training runs: atomic local writes, each checkpoint read once, and
a moved run's checkpoint paths followed."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lightning.fabric.utilities.cloud_io import get_filesystem
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO

from chargpt.checkpoints import save_atomic


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint I/O with atomic local writes, reading a checkpoint only once.

    Lightning's own writes go through an fsspec transaction whose temporary file lives in the
    system temp dir; across filesystems the final move is a copy, and a kill during it leaves a
    truncated last.ckpt. `preload` hands over a checkpoint chargpt has already read (to check it
    before training), so `trainer.fit(ckpt_path=...)` does not read the same file again.
    """

    def __init__(self) -> None:
        super().__init__()
        self._preloaded: dict[str, dict[str, Any]] = {}
        self._after_next_save: list[Callable[[], None]] = []

    def after_next_save(self, then: Callable[[], None]) -> None:
        """Call `then` once the checkpoint being saved is on disk (not if its write fails): a record
        of the run written then never describes a checkpoint that a kill during the write lost."""
        self._after_next_save.append(then)

    def preload(self, path: str | Path, checkpoint: dict[str, Any]) -> None:
        self._preloaded[str(path)] = checkpoint

    def load_checkpoint(self, path: Any, map_location: Any = None, weights_only: bool | None = None) -> dict:
        preloaded = self._preloaded.pop(str(path), None)
        if preloaded is not None:
            return preloaded
        return super().load_checkpoint(path, map_location=map_location, weights_only=weights_only)

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        then, self._after_next_save = self._after_next_save, []
        protocol = get_filesystem(path).protocol
        local = "file" in (protocol if isinstance(protocol, tuple) else (protocol,))
        if storage_options is not None or not local:  # remote URLs keep Lightning's behaviour
            super().save_checkpoint(checkpoint, path, storage_options)
        else:
            save_atomic(checkpoint, path)
        for call in then:
            call()


def follow_moved_run(ckpt: dict[str, Any], ckpt_file: str | Path, callbacks: list[Any]) -> None:
    """A run folder copied or moved elsewhere, resumed from its own checkpoint, goes on as it would
    in place: the checkpoint callbacks' saved paths under their old folder are rewritten to the
    folder they write now (Lightning drops its record of the best checkpoints when the folder
    changed, so the copied best-*.ckpt would never be replaced, and it warns). A resume into
    another folder keeps Lightning's way: a fresh record there."""
    states = ckpt.get("callbacks") or {}
    here = os.path.realpath(os.path.dirname(ckpt_file))
    for callback in callbacks:
        if not isinstance(callback, ModelCheckpoint) or callback.dirpath != here:
            continue
        state = states.get(callback.state_key)
        old = state.get("dirpath") if isinstance(state, dict) else None
        if not isinstance(old, str) or old == here or "://" in old:
            continue
        prefix = old.rstrip(os.sep) + os.sep

        def moved(path: Any, prefix: str = prefix) -> Any:
            inside = isinstance(path, str) and path.startswith(prefix)
            return os.path.join(here, path[len(prefix):]) if inside else path

        state["dirpath"] = here
        for key in ("best_model_path", "kth_best_model_path", "last_model_path"):
            if key in state:
                state[key] = moved(state[key])
        if isinstance(state.get("best_k_models"), dict):
            state["best_k_models"] = {moved(path): score for path, score in state["best_k_models"].items()}
