"""Atomic file writes: a reader sees the old file or the new one, never half of either.

The files a run is resumed or reported from (checkpoints, the id cache, metrics.json,
status.json, budget.json) and a report's tables and picture go through `atomic_path`; an export is
moved into place as a folder. `atomic_path`
writes to a temporary name beside the target (same filesystem, so the final rename is atomic),
flushes it to disk, then `os.replace`s it over the target.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import re
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from chargpt.processes import process_alive


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # makes the rename itself durable; not possible everywhere
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def own_name(prefix: str, rest: str = "") -> str:
    """A name for this process's temporary file or folder: `prefix`HOST.PID`rest`. The host in the
    name: on a folder shared by several machines, only this one's processes can be told dead or
    alive (remove_dead_writers_leftovers)."""
    return f"{prefix}{socket.gethostname()}.{os.getpid()}{rest}"


def remove_dead_writers_leftovers(folder: Path, prefix: str, rest: str = "") -> None:
    """Remove what writers on this machine that were killed outright (no cleanup ran) left in
    `folder` under names own_name(prefix, ...) gave them (`rest`: a regular expression for what
    follows the process id), never a live writer's: a half-written id cache beside a user's text,
    a checkpoint's or an export's worth of disk."""
    mine = f"{prefix}{socket.gethostname()}."
    for left in folder.glob(f"{glob.escape(mine)}*"):
        found = re.fullmatch(rf"(\d+){rest}", left.name[len(mine):])
        if found is None or process_alive(int(found.group(1))):
            continue
        if left.is_dir() and not left.is_symlink():
            shutil.rmtree(left, ignore_errors=True)
        else:
            left.unlink(missing_ok=True)


def _partial_prefix(target: Path) -> str:
    return f".{target.name}."


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, durable: bool = True) -> Iterator[Path]:
    """Yields a temporary path to write; on success it replaces `target`, on error it is removed.

    `durable` fsyncs the file and its folder (checkpoints, the id cache); small status files that
    are rewritten often can skip it.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_dead_writers_leftovers(target.parent, _partial_prefix(target), r"\.partial")
    tmp = target.with_name(own_name(_partial_prefix(target), ".partial"))
    try:
        yield tmp
        if durable:
            with tmp.open("rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        if isinstance(err, OSError) and (err.filename is None or str(err.filename) == str(tmp)):
            # A write that fails (a full disk) names no file, or the temporary one: the error
            # names the file meant, so its line says which file and folder ("a write failed").
            err.filename = str(target)
        raise
    if durable:
        _fsync_dir(target.parent)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """A small file (status.json, metrics.json, a saved config): atomic, but not fsynced
    (atomic_path's `durable`, which checkpoints and the id cache take)."""
    with atomic_path(path, durable=False) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(path: str | os.PathLike, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def read_json_object(path: str | os.PathLike) -> dict[str, Any]:
    """A JSON object written by write_json_atomic; empty when the file is missing, unreadable or
    holds something else."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
