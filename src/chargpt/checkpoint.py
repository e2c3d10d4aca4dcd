"""Find and read checkpoints safely (weights-only unpickling: a checkpoint cannot run code)."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from chargpt.errors import CheckpointError

LAST = "last.ckpt"


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint file, or a run directory (its checkpoints/last.ckpt)."""
    p = Path(path).expanduser()
    if p.is_dir():
        for candidate in (p / "checkpoints" / LAST, p / LAST):
            if candidate.is_file():
                return candidate
        raise CheckpointError(
            f"no {LAST} in run directory {p}; pass a .ckpt file or a run directory that has one"
        )
    if not p.exists():
        raise CheckpointError(f"checkpoint not found: {p}; pass an existing .ckpt file or run directory")
    return p


def run_dir_of(checkpoint: Path) -> Path:
    """The run directory a checkpoint belongs to (the parent of its checkpoints/ folder)."""
    return checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" else checkpoint.parent


def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    file = resolve_checkpoint(path)
    if file.is_file() and not zipfile.is_zipfile(file):  # torch.save writes zip archives
        raise CheckpointError(
            f"{file} is not a readable checkpoint (not a torch zip archive); it may be truncated or "
            "not a checkpoint at all: pass another .ckpt file"
        )
    try:
        ckpt = torch.load(file, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(
            f"refused to load {file}: it holds objects that weights-only loading does not allow "
            f"({first_line[:160]}); only load checkpoints written by chargpt"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as err:
        raise CheckpointError(
            f"{file} is not a readable checkpoint ({type(err).__name__}); it may be truncated or "
            "not a checkpoint at all: pass another .ckpt file"
        ) from None
    hparams = ckpt.get("hyper_parameters") if isinstance(ckpt, dict) else None
    if not isinstance(hparams, dict) or "model" not in hparams or "vocab" not in hparams:
        raise CheckpointError(f"{file} is not a chargpt checkpoint (no model settings and vocabulary in it)")
    return ckpt
