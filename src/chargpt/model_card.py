"""What a served or exported model says about itself: a name, its size, its validation loss."""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from chargpt.checkpoints import read_checkpoint, resolve_checkpoint
from chargpt.checks import as_utf8
from chargpt.errors import CheckpointError
from chargpt.export_layout import CONFIG_FILE, export_folder_of, read_export_config
from chargpt.inference import TrainedModel
from chargpt.metric_names import VAL_LOSS
from chargpt.run_layout import CHECKPOINT_DIR, LAST, SWEEP_CONFIG, VAL_STEP, run_dir_of

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
    """A run's folder name, with its parent's where that alone says little: a dated run's time
    (2026-12-05_14-03-22) and a sweep's job number (lr-sweep_0, not "0")."""
    run_dir = run_dir.resolve()
    if (run_dir.parent / SWEEP_CONFIG).is_file() and run_dir.parent.name:
        name = f"{default_name(run_dir.parent)}_{run_dir.name}"
    elif _TIME_NAME.fullmatch(run_dir.name) and run_dir.parent.name:
        name = f"{run_dir.parent.name}_{run_dir.name}"
    else:
        name = run_dir.name or "chargpt"
    return as_utf8(name)  # a folder named in another encoding: text the card's JSON can hold


def name_of_checkpoint(file: Path) -> str:
    """The run directory's name for a run's checkpoint, else the file's own name (my_model.ckpt)."""
    if file.parent.name == CHECKPOINT_DIR or file.name == LAST:
        return default_name(run_dir_of(file))
    return as_utf8(file.stem)


def _float(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def checkpoint_score(ckpt: dict[str, Any]) -> tuple[float | None, int | None]:
    """(validation loss, step) of a checkpoint's weights: the run's latest validation as its
    metrics keep it in the checkpoint (RunMetrics' val_loss at val_step), and no loss when that
    validation was at another step than these weights (a checkpoint written on an interruption,
    steps after it). A checkpoint from before those were kept: the best checkpoint callback's
    score, which is the loss of the validation that saved the file."""
    step = ckpt.get("global_step")
    step = step if isinstance(step, int) else None
    states = [s for s in (ckpt.get("callbacks") or {}).values() if isinstance(s, dict)]
    for state in states:
        if VAL_STEP in state:
            return (_float(state.get("val_loss")) if state[VAL_STEP] == step else None), step
    scores = [_float(s.get("current_score")) for s in states if s.get("monitor") == VAL_LOSS]
    return (scores[-1] if scores else None), step


def weights_step(ckpt: dict[str, Any] | None, file: str | Path) -> int | None:
    """The training steps behind the weights `load_with_checkpoint` read from `file`: the
    checkpoint's (`ckpt`), or an export's card's (`ckpt` None); None where neither records it."""
    return checkpoint_score(ckpt)[1] if ckpt is not None else card_for_export(file).step


def card_for_checkpoint(file: Path, ckpt: dict[str, Any], params: int, name: str | None = None) -> ModelCard:
    """The card of checkpoint `file`, read as `ckpt`."""
    val_loss, step = checkpoint_score(ckpt)
    model = ckpt["hyper_parameters"]["model"]
    return ModelCard(
        name=name or name_of_checkpoint(file), params=params,
        vocab_size=len(ckpt["hyper_parameters"]["vocab"]), block_size=int(model.get("block_size", 0)),
        arch=str(model.get("arch", "gpt")), val_loss=val_loss, step=step,
    )


def card_for_export(folder: str | Path, name: str | None = None) -> ModelCard:
    folder = Path(folder).expanduser()
    if folder.is_file():
        folder = folder.parent
    card = dict(read_export_config(folder).get("card") or {})
    try:
        return ModelCard(**{**card, "name": name or card.get("name") or as_utf8(folder.resolve().name)})
    except TypeError:
        raise CheckpointError(f"{folder / CONFIG_FILE} has an unreadable model card; export again") from None


def card_for(
    path: str | Path, trained: TrainedModel, name: str | None = None, ckpt: dict[str, Any] | None = None
) -> ModelCard:
    """The model card of what `chargpt.load(path)` loaded: from an export's config.json, or from
    the checkpoint (its run directory's name, its validation loss). `ckpt`: the checkpoint already
    read from `path` (`load_with_checkpoint`), so that it is not read again."""
    folder = export_folder_of(path)
    if folder is not None:
        return card_for_export(folder, name)
    file = resolve_checkpoint(path)
    ckpt = read_checkpoint(file) if ckpt is None else ckpt
    return card_for_checkpoint(file, ckpt, trained.model.num_params(), name)
