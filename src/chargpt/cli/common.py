"""What the entry points share: where the configs live, quiet warnings, the device to run on."""

from __future__ import annotations

import logging
import re
import warnings
from pathlib import Path

import torch

from chargpt.errors import ConfigError

_PACKAGED = Path(__file__).parents[1] / "configs"  # wheel installs
_SOURCE_TREE = Path(__file__).resolve().parents[3] / "configs"  # editable installs and checkouts
CONFIG_PATH = str(_PACKAGED if _PACKAGED.is_dir() else _SOURCE_TREE)


def quiet_known_warnings() -> None:
    """Silence warnings that say nothing actionable for this project's runs."""
    for message in (
        r".*LeafSpec.*",  # torch.utils._pytree deprecation inside Lightning, printed every run
        r".*does not have many workers.*",  # batches are gathered in one vectorised index
        r".*resuming from a checkpoint that ended before the epoch ended.*",  # batches are indexed by step
        r".*Checkpoint directory .* exists and is not empty.*",  # expected when a run resumes
        r".*smaller than the logging interval.*",  # short runs log less often: nothing to fix
        # Lightning's text is "use `self.log('val/loss', ..., sync_dist=True)`": every rank scores
        # the whole validation split, so the values agree without a reduction.
        r".*sync_dist=True.*",
    ):
        warnings.filterwarnings("ignore", message=message)
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logger = logging.getLogger(name)
        if _says_nothing not in logger.filters:
            logger.addFilter(_says_nothing)


# Lightning's info lines that tell a chargpt user nothing: a litlogger advertisement, the TPUs a
# CPU or GPU machine does not have, and "`max_steps=N` reached" (chargpt's own last line says the
# step, the loss and the run directory).
_NOTHING_TO_SAY = re.compile(
    r"litlogger|^TPU available: False|^`Trainer.fit` stopped: `max_steps=\d+` reached"
)


def _says_nothing(record: logging.LogRecord) -> bool:
    return not _NOTHING_TO_SAY.search(record.getMessage())


def pick_device(name: str) -> str:
    """`auto` is the GPU when there is one; a CUDA device without a GPU is a clear error."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device={name} but no CUDA GPU is available; use device=cpu")
    return name
