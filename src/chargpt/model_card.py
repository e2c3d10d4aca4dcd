"""What a served or exported model says about itself: a name, its size, its validation loss."""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from chargpt.run_layout import CHECKPOINT_DIR, LAST, run_dir_of

# Hydra's default run directories are outputs/DATE/TIME: the time alone would be a poor name.
_TIME_NAME = re.compile(r"\d\d-\d\d-\d\d")


@dataclass(frozen=True)
class ModelCard:
    name: str
    params: int
    vocab_size: int
    block_size: int
    arch: str
    val_loss: float | None = None  # of these weights, at the validation that saved them
    step: int | None = None  # training steps behind these weights

    def __post_init__(self) -> None:
        # An API's model id is a string: an export written with name=2024 before names were taken
        # as typed holds the number.
        object.__setattr__(self, "name", str(self.name))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def default_name(run_dir: Path) -> str:
    run_dir = run_dir.resolve()
    if _TIME_NAME.fullmatch(run_dir.name) and run_dir.parent.name:
        return f"{run_dir.parent.name}_{run_dir.name}"
    return run_dir.name or "chargpt"


def name_of_checkpoint(file: Path) -> str:
    """The run directory's name for a run's checkpoint, else the file's own name (my_model.ckpt)."""
    if file.parent.name == CHECKPOINT_DIR or file.name == LAST:
        return default_name(run_dir_of(file))
    return file.stem


def _float(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def checkpoint_score(ckpt: dict[str, Any]) -> tuple[float | None, int | None]:
    """(validation loss, step) of a checkpoint's weights, from the checkpoint callback's state:
    its current_score is the val/loss of the validation that saved this file."""
    val_loss = None
    for state in (ckpt.get("callbacks") or {}).values():
        if isinstance(state, dict) and state.get("monitor") == "val/loss":
            val_loss = _float(state.get("current_score"))
    step = ckpt.get("global_step")
    return val_loss, step if isinstance(step, int) else None


def card_for_checkpoint(file: Path, ckpt: dict[str, Any], params: int, name: str | None = None) -> ModelCard:
    """The card of checkpoint `file`, read as `ckpt`."""
    val_loss, step = checkpoint_score(ckpt)
    model = ckpt["hyper_parameters"]["model"]
    return ModelCard(
        name=name or name_of_checkpoint(file), params=params,
        vocab_size=len(ckpt["hyper_parameters"]["vocab"]), block_size=int(model.get("block_size", 0)),
        arch=str(model.get("arch", "gpt")), val_loss=val_loss, step=step,
    )
