"""Checkpoints on disk: find, read safely, write atomically, read what their run recorded.

Reading uses torch's weights-only unpickling, so a checkpoint cannot run code. Writing goes
through `chargpt.files.atomic_path`: a kill mid-write leaves the previous file intact.
"""

from __future__ import annotations

import copy
import os
import pickle
import zipfile
import zlib
from pathlib import Path
from typing import Any, NoReturn

import torch

from chargpt import shell_words
from chargpt.errors import CheckpointError, cannot_read, exists, first_line, spaces_around, visible
from chargpt.export_layout import (
    CONFIG_FILE,
    EXPORT_FILES,
    README_FILE,
    WEIGHTS,
    is_export,
    read_export_config,
)
from chargpt.files import atomic_path, read_json_object
from chargpt.hydra_run import sweep_dir
from chargpt.model import ModelConfig
from chargpt.overrides import sweep_item
from chargpt.run_layout import (
    CHECKPOINT_DIR,
    CONFIG_DIR,
    LAST,
    METRICS_FILE,
    SWEEP_CONFIG,
    best_checkpoints,
    checkpoints_elsewhere,
    is_run_folder,
    last_checkpoint,
    newest_best,
    others_elsewhere,
)
from chargpt.run_state import how_it_stopped, read_status, starting_process, state_of

# Where the corpus fingerprint sits in a checkpoint: the ResumeState callback's state key.
RESUME_STATE_KEY = "ResumeState"
# Where a checkpoint keeps what its training was (when, the command, what it was fine-tuned from):
# the LightningModule writes it (training/training_record.py), the model card reads it.
TRAINING_RECORD_KEY = "chargpt_training"


def resolve_checkpoint(path: str | Path, or_export: bool = False) -> Path:
    """A checkpoint file, or a run directory (its checkpoints/last.ckpt, or the best checkpoint that
    stands in for it: run_layout.last_checkpoint). `or_export`: the caller
    also takes an export folder, and the messages name it."""
    p = Path(os.path.expanduser(path))
    export = ", or an export folder" if or_export else ""
    if p.is_dir():
        if (last := last_checkpoint(p)) is not None:
            return last
        _refuse_folder_without_checkpoint(p, export)
    _refuse_no_checkpoint_file(p, export)
    return p


def _refuse_folder_without_checkpoint(folder: Path, export: str) -> NoReturn:
    """Why a folder gives no checkpoint (a run starting, stopped early or still training; a sweep's
    folder; an export; another folder), with what to pass instead."""
    shown = visible(folder)
    if (starting := starting_process(folder)) is not None:
        raise CheckpointError(
            f"run directory {shown} holds no checkpoint yet: its run is starting (pid {starting}); try "
            "again once it has written one"
        )
    if (best := newest_best(folder)) is not None:  # (one at the run's step would have stood in)
        raise CheckpointError(_older_best(folder, best))
    if (elsewhere := checkpoints_elsewhere(folder)) is not None:
        raise CheckpointError(
            f"run directory {shown} holds no checkpoint: its checkpoint callback "
            f"callbacks.{elsewhere.callback} wrote its checkpoints in {elsewhere.file.parent} (dirpath: "
            f"{elsewhere.dirpath}), not in its {CHECKPOINT_DIR}/; name that file: "
            f"{shell_words.quote(f'ckpt_path={elsewhere.file}')} (and, to train it on in its own folder, "
            f"{shell_words.quote(f'hydra.run.dir={os.path.abspath(folder)}')})"
        )
    if why := stopped_before_checkpoint(folder) or _never_trained(folder):
        raise CheckpointError(
            f"run directory {shown} holds no checkpoint: {why}; train it again (its chargpt-train "
            "command without ckpt_path starts it over in that folder)"
        )
    if state_of(read_status(folder), folder) == "running":
        raise CheckpointError(
            f"run directory {shown} holds no checkpoint yet: it is still training; try again once it "
            "has written one"
        )
    if (others := others_elsewhere(folder)) is not None:
        (key, dirpath, file), writer = others
        raise CheckpointError(
            f"run directory {shown} holds no checkpoint: its checkpoint callback callbacks.{key} writes in "
            f"{file.parent} (dirpath: {dirpath}), where none is its own ({file.name} there was written by "
            f"the run in {writer}, whose checkpoint callback writes there too); go "
            "on from that file in a new run folder with "
            f"{shell_words.quote(f'ckpt_path={file}')}, or train this run again in a new one"
        )
    if (folder / METRICS_FILE).is_file():  # a run that trained but kept no checkpoint
        raise CheckpointError(
            f"run directory {shown} holds no checkpoint: it was trained without a checkpoint callback "
            "(e.g. callbacks=none); train it again with callbacks=[none,last_checkpoint] or the "
            "default callbacks, or pass a .ckpt file"
        )
    if (folder / SWEEP_CONFIG).is_file():
        jobs = sorted(c.name for c in folder.iterdir() if last_checkpoint(c) is not None)
        example = f" (e.g. {folder / jobs[0]})" if jobs else ""
        raise CheckpointError(
            f"{shown} is a sweep's folder, not a run directory; pass the folder of one of its "
            f"jobs{example}"
        )
    if is_export(folder):
        raise CheckpointError(_not_a_run(folder))
    if not is_run_folder(folder):
        raise CheckpointError(
            f"{shown} is a folder but not a run directory (no checkpoints/{LAST} in it); pass a .ckpt "
            f"file or a run directory that has one{export}"
        )
    raise CheckpointError(
        f"no {LAST} in run directory {shown}; pass a .ckpt file or a run directory that has one"
    )


def _older_best(folder: Path, best: Path) -> str:
    """Why a run's folder whose newest checkpoint is a best older than the run's last step (trained
    without callbacks.last_checkpoint, its later validations not improving on that best) gives none:
    going on from it would train the later steps again. What it holds, and the file to name."""
    return (f"run directory {visible(folder)} has no {CHECKPOINT_DIR}/{LAST}, and its newest checkpoint, "
            f"{older_best_held(folder, best)}; to use that one, name it: "
            f"{shell_words.quote(f'ckpt_path={best}')}")


def older_best_held(folder: Path, best: Path) -> str:
    """What a run's newest checkpoint, a best older than the run's last step, holds, against the step
    the run reached: "checkpoints/best-000010.ckpt, holds step 10 where the run reached step 20 (a
    resume from it trains steps 11 to 20 again)"."""
    step = best_checkpoints(folder)[best]
    reached = read_json_object(folder / METRICS_FILE).get("step")
    if isinstance(reached, int) and reached > step:
        where = (f"where the run reached step {reached} (a resume from it trains steps {step + 1} to "
                 f"{reached} again)")
    elif reached is None:
        where = f"and no {METRICS_FILE} records the step the run reached"
    else:
        where = f"where its {METRICS_FILE} records step {reached}"
    return f"{CHECKPOINT_DIR}/{best.name}, holds step {step} {where}"


def _listed(path: Path) -> str | None:
    """`ckpt_path=choice(A,B)`, quoted to paste, for a path that is checkpoints listed with commas
    (`-m ckpt_path=A,B`, as other settings are swept), every one there; else None. A checkpoint's
    own name may hold commas (a folder named by its settings: `seed=1,lr=0.1`)."""
    paths = _paths_listed(str(path).split(","))
    if paths is None or len(paths) < 2:
        return None
    return shell_words.quote(f"ckpt_path=choice({','.join(sweep_item(piece) for piece in paths)})")


def _paths_listed(pieces: list[str]) -> list[str] | None:
    """`pieces` (a text split at its commas) joined back into paths that are there, each of one or
    more consecutive pieces; None where they cannot all be."""
    for end in range(1, len(pieces) + 1):
        first = ",".join(pieces[:end])
        if not first or not exists(Path(first)):
            continue
        if end == len(pieces):
            return [first]
        if (rest := _paths_listed(pieces[end:])) is not None:
            return [first, *rest]
    return None


def _refuse_no_checkpoint_file(path: Path, export: str) -> None:
    """Refuse a path that is no file to read: not there (spaces around the name?), unsearchable,
    or a FIFO, device or socket."""
    shown = visible(path)
    try:
        found = exists(path)  # a symbolic link loop is said as such, not as "not found"
    except PermissionError as err:
        raise CheckpointError(cannot_read(path.parent, err)) from None
    if not found:
        if (spaces := spaces_around(path)) is not None:
            raise CheckpointError(f"checkpoint not found: {shown}{spaces}")
        if (sweep := _listed(path)) is not None:
            raise CheckpointError(f"checkpoint not found: {shown}; a path's commas are part of it, not a "
                                  f"list: give one checkpoint, or, to sample, evaluate or export each, sweep "
                                  f"over them: -m {sweep}")
        raise CheckpointError(f"checkpoint not found: {shown}; pass an existing .ckpt file or run "
                              f"directory{export}")
    if not path.is_file():  # reading a FIFO would wait for a writer, for ever
        raise CheckpointError(f"{shown} is not a file (a FIFO, a device or a socket); pass a .ckpt file or "
                              f"run directory{export}")


def stopped_before_checkpoint(run_dir: Path) -> str | None:
    """Why a run that stopped (failed, interrupted, killed) left nothing to continue: None when it
    has a checkpoint (an older best too: trained without callbacks.last_checkpoint, it can go on from
    that best, which starting it over would leave beside the new run's; one its checkpoint callback
    wrote in a folder of its own, which starting it over would overwrite), or did not stop that way."""
    if last_checkpoint(run_dir) is not None or newest_best(run_dir) is not None \
            or checkpoints_elsewhere(run_dir) is not None:
        return None
    if (how := how_it_stopped(run_dir)) is None:
        return None
    return f"it {how} before it wrote its first checkpoint, so there is nothing to continue or load"


def _never_trained(run_dir: Path) -> str | None:
    """Why a run's folder that has no status.json (written at the first step) holds nothing: the
    run was killed while it started, or is starting now. (Not for check_run_dir: a new run's own
    launch has just written such a folder.)"""
    if read_status(run_dir) or not (run_dir / CONFIG_DIR).is_dir() or (run_dir / METRICS_FILE).is_file():
        return None
    return ("it never began training (stopped or killed while it started, or starting right now), "
            "so there is nothing to continue or load")


# Reads of a checkpoint that a run replaces meanwhile, before the reader gives up
READ_TRIES = 3


def read_checkpoint(path: str | Path, mapped: bool = False) -> dict[str, Any]:
    """A chargpt checkpoint's contents, read weights-only onto the CPU. `mapped`: memory-map the
    file (torch.load's mmap) rather than read it whole, so that only the tensors used are read:
    using a model reads its weights, never the optimizer's state (AdamW's twice the weights).

    A run replaces its checkpoints as it trains (save_atomic renames a new file over the old one,
    and prunes older best-*.ckpt). torch.load opens the file by its name twice when it maps it
    (once for the archive's index, once for the data), so a file replaced in between gave the
    index of one and the bytes of the other: garbage weights, silently. A file found replaced
    while it was read is read again, from `path` again (a run directory's newest checkpoint)."""
    for _ in range(READ_TRIES):
        file = resolve_checkpoint(path)
        was = _identity(file)
        try:
            ckpt = _read(file, mapped)
        except CheckpointError:
            if _identity(file) == was:
                raise
            continue  # the error was the replacement's: the file is read again
        if _identity(file) == was:
            return ckpt
    raise CheckpointError(
        f"{file} was replaced while it was read, {READ_TRIES} times (its run is writing checkpoints); "
        "try again, or pass a checkpoint that is not being rewritten (e.g. copy it first)"
    )


def _identity(file: Path) -> tuple[int, ...] | None:
    """What changes when `file` is replaced or rewritten; None when it is gone."""
    try:
        st = os.stat(file)
    except OSError:
        return None
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def _read(file: Path, mapped: bool) -> dict[str, Any]:
    if file.is_file():
        _check_archive(file)
    try:
        ckpt = torch.load(file, map_location="cpu", weights_only=True, mmap=mapped)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"refused to load {file}: it holds objects that weights-only loading does not allow "
            f"({first_line(err, 160)}); only load checkpoints written by chargpt"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as err:
        raise CheckpointError(_unreadable(file, type(err).__name__)) from None
    hparams = ckpt.get("hyper_parameters") if isinstance(ckpt, dict) else None
    if not isinstance(hparams, dict) or "model" not in hparams or "vocab" not in hparams:
        raise CheckpointError(f"{file} is not a chargpt checkpoint (no model settings and vocabulary in it); "
                              "pass a .ckpt file that chargpt-train wrote")
    return ckpt


def _unreadable(file: Path, why: str) -> str:
    return (f"{file} is not a readable checkpoint ({why}); it may be truncated or not a checkpoint at all: "
            "pass another .ckpt file")


def _check_archive(file: Path) -> None:
    """torch.save writes a zip archive; torch.load does not check its CRC-32s, so flipped bytes
    would load as weights. Read once here: not an archive, or an entry that fails its checksum, is
    a CheckpointError."""
    try:
        archive = zipfile.ZipFile(file)
    except PermissionError as err:  # not a damaged file: one this user may not read
        raise CheckpointError(cannot_read(file, err)) from None
    except (zipfile.BadZipFile, OSError):
        if is_export(file.parent) or _is_safetensors(file):
            raise CheckpointError(_not_a_run(file)) from None
        raise CheckpointError(_unreadable(file, "not a torch zip archive")) from None
    try:
        with archive:
            damaged = archive.testzip()
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError):
        damaged = "the archive"
    if damaged:
        raise CheckpointError(
            f"{file} is damaged ({damaged} fails its checksum; changed on disk or in a copy): pass another "
            ".ckpt file, e.g. an earlier checkpoint of its run in checkpoints/"
        )


def _is_safetensors(file: Path) -> bool:
    """Whether `file` starts as a safetensors file does: a little-endian header length, then JSON."""
    try:
        with file.open("rb") as f:
            head = f.read(9)
    except OSError:
        return False
    return len(head) == 9 and head[8:9] == b"{" and 0 < int.from_bytes(head[:8], "little") < 100_000_000


def _not_a_run(path: Path) -> str:
    """Why an export (its folder or its weights), or safetensors weights, cannot go where a run's
    checkpoint is needed, and what to do instead."""
    folder = path if path.is_dir() else path.parent
    if not is_export(folder):
        return (
            f"{path} holds safetensors weights outside an export folder: chargpt reads such weights from "
            f"the folder chargpt-export wrote ({WEIGHTS['safetensors']} beside its {CONFIG_FILE}); pass that "
            "folder"
        )
    if path != folder and path.name == README_FILE:
        return f"{path} is the model card of the export it lies in ({folder}), not a model; pass that folder"
    if path != folder and path.name not in EXPORT_FILES:
        return f"{path} is not a file of the export it lies in ({folder}); pass that folder"
    if read_export_config(folder).get("weights") != WEIGHTS["safetensors"]:
        return (
            f"{path} is an ONNX export: it runs with ONNX Runtime (docs/serving-and-export.md), not in "
            "chargpt; to train on, resume the run it was exported from (ckpt_path=RUN_DIR)"
        )
    init_from = shell_words.quote(f"init_from={folder}")
    return (
        f"{path} is a chargpt export: a model's weights, not a run (no optimizer state, no step) to "
        f"resume or read a checkpoint from; fine-tune it with experiment=finetune {init_from}, "
        "or load it in chargpt-sample, chargpt-eval, chargpt-serve and chargpt-export"
    )


def model_weights(ckpt: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The network's own state dict (the LightningModule stores it under `model.`)."""
    return {k.removeprefix("model."): v for k, v in ckpt["state_dict"].items() if k.startswith("model.")}


def without_weights(ckpt: dict[str, Any]) -> dict[str, Any]:
    """`ckpt` less its weights and optimizer state, its other tensors (a callback's scores, its random
    states) copied out of the file: all of a memory-mapped checkpoint (read_checkpoint's `mapped`)
    that its reader keeps once the model holds the weights. A tensor kept from the file kept the
    whole file mapped, so a checkpoint its run replaced stayed on disk, hidden, and one rewritten in
    place (`cp` over it) could end the reader with a bus error where it read that tensor."""
    return copy.deepcopy({key: value for key, value in ckpt.items()
                          if key not in ("state_dict", "optimizer_states")})


def model_config(ckpt: dict[str, Any]) -> ModelConfig:
    return ModelConfig.from_dict(ckpt["hyper_parameters"]["model"])


def save_atomic(checkpoint: dict[str, Any], path: str | Path) -> None:
    """torch.save to `path` atomically; a failed write (e.g. disk full) is one clear error."""
    target = Path(path)
    try:
        with atomic_path(target) as tmp:
            torch.save(checkpoint, tmp)
        return
    except (OSError, RuntimeError) as err:
        reason = _why_write_failed(err)
        if reason is None:
            raise
    # Raised here, past the `except`, with only the reason's text kept, so that nothing holds the
    # failure's frames: they hold torch's writer, whose file, removed but still open, kept the disk
    # full for what the run writes next (its status.json).
    if (sweep := sweep_dir()) is not None:  # a sweep's job: its folder is the sweep's (hydra.sweep.dir)
        fix = (f"free disk space, then continue the sweep, which trains this job again (chargpt-report "
               f"{shell_words.quote(str(sweep))} prints its command)")
    else:
        run_dir = target.parent.parent if target.parent.name == CHECKPOINT_DIR else target.parent
        then = ("resume from the last checkpoint" if last_checkpoint(run_dir) is not None
                else "run it again (it wrote no checkpoint to resume from)")
        fix = f"free disk space or point hydra.run.dir at a writable folder, then {then}"
    raise CheckpointError(f"cannot write checkpoint {target} ({reason}); {fix}")


def _why_write_failed(err: BaseException | None) -> str | None:
    """Why torch.save failed where it could not write (an OSError): its own, or, where torch's zip
    writer then failed to close the file (a RuntimeError, "unexpected pos"), the one it met first
    (a full disk); None for any other failure."""
    while err is not None and not isinstance(err, OSError):
        err = err.__cause__ or err.__context__
    return None if err is None else err.strerror or str(err)


def resume_state(ckpt: dict[str, Any]) -> dict[str, Any]:
    """What the ResumeState callback stored in `ckpt` (empty when nothing was)."""
    state = (ckpt.get("callbacks") or {}).get(RESUME_STATE_KEY)
    return state if isinstance(state, dict) else {}


def training_record(ckpt: dict[str, Any]) -> dict[str, Any]:
    """What the run that wrote `ckpt` recorded of its training (empty for a checkpoint written before
    runs recorded it)."""
    record = ckpt.get(TRAINING_RECORD_KEY)
    return record if isinstance(record, dict) else {}


def stored_corpus(ckpt: dict[str, Any]) -> dict[str, Any] | None:
    """The corpus fingerprint ({path, sha256, ...}) of the run that wrote `ckpt`, if recorded."""
    corpus = resume_state(ckpt).get("corpus")
    return corpus if isinstance(corpus, dict) else None


def stored_split(ckpt: dict[str, Any]) -> dict[str, Any]:
    """How that run split its corpus (e.g. train_fraction); empty when not recorded."""
    split = resume_state(ckpt).get("split")
    return split if isinstance(split, dict) else {}


def cut_at_a_fraction(split: dict[str, Any]) -> bool:
    """Whether a run (its stored_split) cut its text at data.train_fraction: not when a held-out
    text (data.val_path) or whole files (data.split=files) made its validation text."""
    return not split.get("val_path") and split.get("split") != "files"


def recorded_files(corpus: dict[str, Any]) -> list[list[str]]:
    """The [file, sha256] pairs of a corpus of several files, each file named absolute (runs before
    2026-12-03 named the files of a relative data.path relative to where they ran)."""
    return [[os.path.abspath(name), sha] for name, sha in corpus.get("files") or []]


def _is_empty_file(name: str) -> bool:
    try:
        return Path(name).is_file() and Path(name).stat().st_size == 0
    except OSError:
        return False


def corpus_changes(old: dict[str, Any], new: dict[str, Any], limit: int = 3) -> str:
    """Which files differ between two corpus fingerprints (those of several files list them)."""
    before = {name: sha for name, sha in old.get("files") or []}
    after = {name: sha for name, sha in new.get("files") or []}
    if not before and not after:
        return ""
    gone = [n for n in before if n not in after]
    emptied = [n for n in gone if _is_empty_file(n)]  # still there, but an empty file is not read
    changes = [
        ("changed", [n for n in after if n in before and after[n] != before[n]]),
        ("added", [n for n in after if n not in before]),
        ("removed", [n for n in gone if n not in emptied]),
        ("emptied, so not read", emptied),
    ]
    said = [
        f"{what}: {', '.join(names[:limit])}{f' and {len(names) - limit} more' if len(names) > limit else ''}"
        for what, names in changes if names
    ]
    return f" ({'; '.join(said)})" if said else " (the same files, joined or split differently)"
