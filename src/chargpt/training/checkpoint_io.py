"""Lightning's checkpoint I/O for training runs: atomic local writes, each checkpoint read once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lightning.fabric.utilities.cloud_io import get_filesystem
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

    def preload(self, path: str | Path, checkpoint: dict[str, Any]) -> None:
        self._preloaded[str(path)] = checkpoint

    def load_checkpoint(self, path: Any, map_location: Any = None, weights_only: bool | None = None) -> dict:
        preloaded = self._preloaded.pop(str(path), None)
        if preloaded is not None:
            return preloaded
        return super().load_checkpoint(path, map_location=map_location, weights_only=weights_only)

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        protocol = get_filesystem(path).protocol
        local = "file" in (protocol if isinstance(protocol, tuple) else (protocol,))
        if storage_options is not None or not local:  # remote URLs keep Lightning's behaviour
            return super().save_checkpoint(checkpoint, path, storage_options)
        save_atomic(checkpoint, path)
        return None
