"""Checkpoint writes that never leave a half-written file where a good one was.

Lightning's TorchCheckpointIO writes through an fsspec transaction whose temporary file lives in
the system temp dir; when that is another filesystem the final move is a copy onto the target,
so a kill during it leaves a truncated last.ckpt. Here the temporary file sits beside the
target, is fsynced, and os.replace swaps it in: readers see the old file or the new one.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.utilities.cloud_io import get_filesystem
from lightning.pytorch.plugins.io import TorchCheckpointIO

from chargpt.errors import CheckpointError


def save_atomic(checkpoint: dict[str, Any], path: str | os.PathLike) -> None:
    """torch.save to `path` atomically (same-directory temporary file, fsync, os.replace)."""
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.partial")
        try:
            with tmp.open("wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        with contextlib.suppress(OSError):  # make the rename itself durable (not possible everywhere)
            fd = os.open(target.parent, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    except OSError as err:
        raise CheckpointError(
            f"cannot write checkpoint {target} ({err.strerror or err}); free disk space or point "
            "hydra.run.dir at a writable folder, then resume from the last checkpoint"
        ) from None


class AtomicCheckpointIO(TorchCheckpointIO):
    """TorchCheckpointIO whose local writes are atomic (remote URLs keep Lightning's behaviour)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        protocol = get_filesystem(path).protocol
        local = "file" in (protocol if isinstance(protocol, tuple) else (protocol,))
        if storage_options is not None or not local:
            return super().save_checkpoint(checkpoint, path, storage_options)
        save_atomic(checkpoint, path)
        return None
