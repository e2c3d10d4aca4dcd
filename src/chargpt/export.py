"""Export folders: a model without pickles (safetensors) or without PyTorch (ONNX).

An export is a folder holding config.json (the model settings, the vocabulary and the model
card, plain JSON), the weights: model.safetensors, or model.onnx (token ids of shape
(batch, length), 1 <= length <= block_size, in; logits of shape (batch, length, vocab) out), and
README.md, the model card for people (model_card.export_readme).
Writing them is here; `chargpt.load(folder)` reads safetensors exports back (inference.py). The
libraries are the `export` extra, imported only when used.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import os
import re
import secrets
import shutil
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from chargpt import file_locks
from chargpt.errors import NO_ROOM, ConfigError, cause_of, needs_extra
from chargpt.export_layout import (
    CONFIG_FILE,
    EXPORT_FILES,
    FORMAT_MARKER,
    FORMAT_VERSION,
    README_FILE,
    WEIGHTS,
    is_export,
    is_export_readme,
)
from chargpt.files import own_name, remove_dead_writers_leftovers
from chargpt.inference import TrainedModel
from chargpt.model import ModelConfig
from chargpt.model_card import ModelCard, export_readme

# An export is written into a folder of this name first (in the destination when it exists, beside
# it when not: on the destination's file system), then moved in; a killed export's is left out of
# the checks, and removed by the next export there once its process has ended.
STAGING_PREFIX = ".export.partial-"
# What follows the process id in a staging folder's name (files.own_name): a random part, so that a
# new process with a dead one's id never meets that one's folder.
_STAGING_REST = r"-[0-9a-f]{16}"

# The architecture settings each format is known to express (tests/test_export.py exports and
# checks every one). A value missing here, e.g. one added to the model later, is refused by name
# instead of being exported untested.
SUPPORTED: dict[str, dict[str, tuple[str, ...]]] = {
    fmt: {"arch": ("gpt", "bigram"), "pos_encoding": ("learned", "sinusoidal", "rope"),
          "activation": ("relu", "gelu", "relu2", "swiglu"), "norm": ("layernorm", "rmsnorm")}
    for fmt in WEIGHTS
}


class ExportError(ConfigError):
    """A model or destination that cannot be exported as asked."""


def check_format(fmt: str) -> None:
    if fmt not in WEIGHTS:
        raise ExportError(f"format={fmt!r} is not one of {', '.join(WEIGHTS)}")


def check_exportable(config: ModelConfig, fmt: str) -> None:
    check_format(fmt)
    unsupported = [
        f"model.{name}={getattr(config, name)!r}"
        for name, values in SUPPORTED[fmt].items() if getattr(config, name) not in values
    ]
    if unsupported:
        raise ExportError(
            f"the {fmt} export cannot express {', '.join(unsupported)}; export this model in another format "
            "or keep using its checkpoint"
        )


def check_destination(out: Path, overwrite: bool, shown: Path | None = None) -> None:
    """The rule that keeps an export from overwriting anything but an earlier export.

    `out` must not exist, or be an empty folder, or (with overwrite=true) hold a chargpt export
    and nothing else, whole or cut short (its weights without config.json): then it is replaced.
    A config.json or README.md that chargpt did not write is the user's: never replaced.
    `shown`: `out` as the user named it, for the messages (`out` may be the folder it leads to).
    """
    named = shown if shown is not None else out
    if out.exists() and not out.is_dir():
        raise ExportError(f"out={named} is a file; pass a folder for the export (it is created if missing)")
    if file := next((p for p in out.parents if p.exists() and not p.is_dir()), None):
        raise ExportError(f"out={named} cannot be created: {file} is a file, not a folder; pick another out")
    names = [] if not out.is_dir() else sorted(
        p.name for p in out.iterdir() if not p.name.startswith(STAGING_PREFIX))
    if not names:
        return
    others = [n for n in names if not _is_export_file(out, n)]
    if others:
        listed = f" ({', '.join(others[:3])}{', ...' if len(others) > 3 else ''})"
        raise ExportError(
            f"out={named} is a folder that holds other files{listed}; nothing was written: "
            "pass a new or empty folder"
        )
    if not overwrite:
        what = "an export"
        if CONFIG_FILE not in names:
            what = f"an export cut short ({', '.join(names)}, no {CONFIG_FILE})"
        raise ExportError(
            f"out={named} already holds {what}; nothing was written: pass overwrite=true to replace it, "
            "or pick another folder"
        )


def _is_export_file(folder: Path, name: str) -> bool:
    """Whether `folder`'s file `name` is one an export writes: a config.json or README.md of
    another kind is the user's own file, never an export's."""
    if name == CONFIG_FILE:
        return is_export(folder)
    if name == README_FILE:
        return is_export_readme(folder / name)
    return name in EXPORT_FILES


def export_config(trained: TrainedModel, card: ModelCard, fmt: str) -> dict[str, Any]:
    config: dict[str, Any] = {
        "format": FORMAT_MARKER,
        "format_version": FORMAT_VERSION,
        "weights": WEIGHTS[fmt],
        "card": card.to_dict(),
        "model": trained.model.config.applicable(),
        "vocab": trained.tokenizer.to_list(),
    }
    if fmt == "onnx":
        config["onnx"] = {"input": "input_ids", "output": "logits", "max_length": trained.model.block_size}
    return config


class _Logits(nn.Module):
    """The model's forward with logits as the only output (what ONNX graphs return)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids)[0]


def write_onnx(model: nn.Module, path: Path, metadata: dict[str, Any]) -> None:
    try:
        import onnxscript  # noqa: F401  (torch's ONNX exporter needs it)
    except ImportError:
        raise ExportError(needs_extra("format=onnx", "onnx and onnxscript", "export")) from None
    block = model.block_size
    # torch.export fixes dimensions of size 1 as constants: trace with 2 rows and >= 2 tokens.
    example = torch.zeros(2, min(block, 3), dtype=torch.long)
    length = torch.export.Dim("length", min=1, max=block) if block > 1 else None
    shapes = {"input_ids": {0: torch.export.Dim("batch"), **({1: length} if length is not None else {})}}
    registration_log = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = registration_log.level
    registration_log.setLevel(logging.ERROR)  # "torchvision is not installed": not ours to fix
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                _Logits(model).eval(), (example,), dynamo=True, input_names=["input_ids"],
                output_names=["logits"], dynamic_shapes=shapes, verbose=False,
            )
    except Exception as err:
        # A Ctrl-C (or a `kill`, raised as one) while torch imports its exporter comes out as an
        # export failure: it is the stop it was.
        if (stop := cause_of(err, KeyboardInterrupt)) is not None:
            raise stop from None
        raise
    finally:
        registration_log.setLevel(level)
    program.model.metadata_props["chargpt"] = json.dumps(metadata, ensure_ascii=False)
    size = sum(p.numel() * p.element_size() for p in model.parameters())
    program.save(str(path), external_data=size > 1_500_000_000)  # protobuf files stop at 2 GB


def write_safetensors(model: nn.Module, path: Path, metadata: dict[str, Any]) -> None:
    try:
        from safetensors import SafetensorError
        from safetensors.torch import save_model
    except ImportError:
        raise ExportError(needs_extra("format=safetensors", "safetensors", "export")) from None
    # save_model stores a tied tensor once (the head shares the embedding); load_model restores it.
    try:
        save_model(model, str(path), metadata={"format": FORMAT_MARKER, "card": json.dumps(metadata["card"])})
    except SafetensorError as err:  # its writer's I/O errors (a full disk) come as this
        reason = re.search(r'(?:I/O error: |message: ")([^"(]+)', str(err))  # "No space left on device"
        raise OSError(reason[1].strip() if reason else str(err)) from None
    _sort_safetensors_metadata(path)


def _sort_safetensors_metadata(path: Path) -> None:
    """Write the header's metadata in sorted order, so one checkpoint always exports to the same bytes.

    The writer keeps metadata in a Rust HashMap, whose order changes from one process to the
    next. Reordering keys keeps the header's length, so it is rewritten in place.
    """
    with path.open("r+b") as file:
        length = int.from_bytes(file.read(8), "little")
        raw = file.read(length)
        header = json.loads(raw)
        header["__metadata__"] = dict(sorted(header.get("__metadata__", {}).items()))
        text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
        if len(text) > length:  # cannot happen for the writer's own compact JSON; never corrupt
            return
        file.seek(8)
        file.write(text.ljust(length))  # the format pads its header with spaces


def export_model(
    trained: TrainedModel, card: ModelCard, fmt: str, out: str | Path, overwrite: bool = False
) -> Path:
    """Write the export folder `out`; returns it. Nothing in `out` changes unless all was written."""
    out = Path(os.path.expanduser(out))
    check_exportable(trained.model.config, fmt)
    check_destination(out, overwrite)
    # The folder itself, wherever `out` leads (`.`, a link to a folder): the files are staged on
    # its file system (a mount point's own), then go into it as they are.
    folder = Path(os.path.realpath(out))
    home = folder if folder.is_dir() else folder.parent
    # Named before it is made, inside the block that removes it: a stop (Ctrl-C, SIGTERM) at any
    # moment leaves no staging folder behind, where one between mkdtemp and the block did.
    staging = home / own_name(STAGING_PREFIX, f"-{secrets.token_hex(8)}")
    try:
        try:
            home.mkdir(parents=True, exist_ok=True)
            # What an export killed outright here (`kill -9`) left: no cleanup of its own ran.
            remove_dead_writers_leftovers(home, STAGING_PREFIX, _STAGING_REST)
            staging.mkdir(mode=0o700)
        except OSError as err:
            raise ExportError(
                f"cannot write next to out={out} ({err.strerror or err}); pick a writable folder"
            ) from None
        model = trained.model if trained.device.type == "cpu" else copy.deepcopy(trained.model).cpu()
        model.eval()
        config = export_config(trained, card, fmt)
        writer = write_onnx if fmt == "onnx" else write_safetensors
        try:
            writer(model, staging / WEIGHTS[fmt], config)
            text = json.dumps(config, indent=2, ensure_ascii=False) + "\n"
            (staging / CONFIG_FILE).write_text(text, encoding="utf-8")
            (staging / README_FILE).write_text(export_readme(config), encoding="utf-8")
        except OSError as err:  # a full disk, a quota: nothing of the export is left behind
            room = "free some space there, or " if err.errno in NO_ROOM or "space" in str(err) else ""
            raise ExportError(
                f"cannot write the export to out={out} ({err.strerror or err}); {room}pick another folder"
            ) from None
        # mkdtemp (and the safetensors writer) make private files: give them the usual permissions.
        umask = os.umask(0)
        os.umask(umask)
        staging.chmod(0o777 & ~umask)
        for file in staging.iterdir():
            file.chmod(0o666 & ~umask)
        _move_in(staging, folder, overwrite, shown=out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out


def _move_in(staging: Path, out: Path, overwrite: bool, shown: Path) -> None:
    """Put the staged files in the folder `out` (`shown`: as the user named it), holding a lock on
    the folder: two exports to one new folder at once must not both succeed, one silently lost."""
    created = not out.exists()
    try:
        out.mkdir(exist_ok=True)
        lock = os.open(out, os.O_RDONLY) if file_locks.LOCKING else None  # (Windows opens no folder)
    except OSError as err:
        raise ExportError(
            f"cannot write out={shown} ({err.strerror or err}); pick a writable folder"
        ) from None
    try:
        with contextlib.suppress(OSError):  # a file system without locks (some network ones): export unlocked
            if lock is not None:
                file_locks.lock(lock)
        check_destination(out, overwrite, shown)  # again: another export may have finished meanwhile
        if created and not any(out.iterdir()):
            os.replace(staging, out)  # the whole export appears at once (over the folder just made)
            return
        # A folder the user made keeps its permissions and identity (it may be a shell's current
        # folder): the files go into it, each over its earlier version (README.md too), config.json
        # (which marks an export) last; then what the earlier export had and this one has not goes.
        # The earlier config.json goes first: a stop between two files leaves an export cut short
        # (refused where it is read), never its card and vocabulary beside the new weights.
        (out / CONFIG_FILE).unlink(missing_ok=True)
        new = sorted(staging.iterdir(), key=lambda f: f.name == CONFIG_FILE)
        for file in new:
            os.replace(file, out / file.name)
        for name in EXPORT_FILES - {f.name for f in new}:
            (out / name).unlink(missing_ok=True)
    except BaseException:
        if created:
            with contextlib.suppress(OSError):
                out.rmdir()  # only while still empty: never another export's files
        raise
    finally:
        if lock is not None:
            os.close(lock)
