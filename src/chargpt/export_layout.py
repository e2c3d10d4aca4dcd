"""What an export folder holds, by name, and how to tell one: config.json (the model settings, the
vocabulary and the model card, marked as chargpt's) beside the weights, model.safetensors or
model.onnx, and README.md (the model card for people). Torch-free, below everything that reads or
writes exports.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from chargpt.errors import CheckpointError, cannot_read
from chargpt.files import read_json_object
from chargpt.run_layout import last_checkpoint

FORMAT_MARKER = "chargpt-export"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS = {"safetensors": "model.safetensors", "onnx": "model.onnx"}
# Everything an export may hold (ONNX puts weights over 2 GB in a side file).
EXPORT_FILES = {CONFIG_FILE, *WEIGHTS.values(), "model.onnx.data"}
# The model card for people, beside them. Loading never reads it; a README.md without the marker
# line is someone's own file, which an export never replaces.
README_FILE = "README.md"
README_MARKER = "<!-- chargpt-export wrote this model card from config.json"


def is_export(folder: Path) -> bool:
    """Whether `folder` holds a chargpt export (its config.json carries the marker)."""
    return read_json_object(folder / CONFIG_FILE).get("format") == FORMAT_MARKER


def is_export_readme(file: Path) -> bool:
    """Whether `file` is a README.md chargpt-export wrote (the marker in its first lines)."""
    try:
        with file.open("rb") as f:
            head = f.read(4096)
    except OSError:
        return False
    return README_MARKER.encode() in head


def export_folder_of(path: str | Path) -> Path | None:
    """The export folder `path` names (the folder, or a file in it), or None for checkpoints."""
    p = Path(os.path.expanduser(path))
    folder = p.parent if p.is_file() and p.name in EXPORT_FILES else p
    if not (folder.is_dir() and (folder / CONFIG_FILE).is_file()):
        return None
    # A run directory with a config.json of its own is still a run directory.
    return None if last_checkpoint(folder) is not None and not is_export(folder) else folder


def read_export_config(folder: Path) -> dict[str, Any]:
    file = folder / CONFIG_FILE
    try:
        config = json.loads(file.read_text(encoding="utf-8"))
    except PermissionError as err:  # not damaged: exporting again would not help
        raise CheckpointError(cannot_read(file, err)) from None
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise CheckpointError(
            f"{file} is not a readable export config ({type(err).__name__}); export the model again"
        ) from None
    if not isinstance(config, dict) or config.get("format") != FORMAT_MARKER:
        raise CheckpointError(f"{file} is not a chargpt export config (no \"format\": \"{FORMAT_MARKER}\")")
    if config.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{file} has export format version {config.get('format_version')!r}; this chargpt reads version "
            f"{FORMAT_VERSION}: export the model again with this version"
        )
    if not isinstance(config.get("model"), dict) or not isinstance(config.get("vocab"), list):
        raise CheckpointError(f"{file} lacks the model settings or the vocabulary; export again")
    return config
