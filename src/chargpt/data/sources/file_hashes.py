"""The sha256 of files read at every start (text files, a saved dataset's Arrow files), hashed
once: kept in the cache folder, keyed by what changes whenever the file's bytes do."""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

from chargpt.data.corpus import sha256_of
from chargpt.files import read_json_object, write_json_atomic

HASHES_FILE = "file-sha256.json"
_SETTLED_NS = 2_000_000_000


def _stamp(path: Path) -> list[int]:
    """What a write to the file changes: its size, modification and change times (the change
    time follows any write or rename into place, and no tool sets it back), inode and device."""
    st = os.stat(path)
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev]


def file_stamps(files: list[Path]) -> list[list[int] | None]:
    """Each file's stamp (None: gone, or unreadable): taken before the files are hashed, the same
    after they are read says no write came between (their reader's bytes are those hashed)."""
    stamps: list[list[int] | None] = []
    for file in files:
        try:
            stamps.append(_stamp(file))
        except OSError:
            stamps.append(None)
    return stamps


def _still_matches(path: str, entry: object) -> bool:
    """Whether a recorded `entry` could still be used: its file is there with the stamp recorded."""
    try:
        return isinstance(entry, dict) and entry.get("stamp") == _stamp(Path(path))
    except OSError:  # gone (or unreadable): hashed afresh should it come back
        return False


def cached_sha256s(files: list[Path], cache_dir: Path | None) -> list[str]:
    """Each file's sha256: the one recorded in `cache_dir` while the file's stamp is unchanged,
    else hashed (and recorded, when the folder is writable). None: hashed every time."""
    record = cache_dir / HASHES_FILE if cache_dir is not None else None
    known = read_json_object(record) if record is not None else {}
    digests, changed = [], False
    for file in files:
        key, stamp = os.path.realpath(file), _stamp(file)
        entry = known.get(key)
        if isinstance(entry, dict) and entry.get("stamp") == stamp and isinstance(entry.get("sha256"), str):
            digests.append(entry["sha256"])
            continue
        digest = sha256_of(file)
        # Recorded when the file was not written to while it was read, nor just before: a write in
        # the same clock tick as the one recorded could leave the stamp as it was (git's "racy" case).
        if _stamp(file) == stamp and time.time_ns() - stamp[2] > _SETTLED_NS:
            known[key], changed = {"stamp": stamp, "sha256": digest}, True
        digests.append(digest)
    if changed and record is not None:
        # Only when writing (a file was just hashed, which costs more than these stats): entries of
        # files deleted, moved or rewritten since would never match again, and the record grew
        # with every folder ever read.
        current = {os.path.realpath(f) for f in files}
        known = {k: v for k, v in known.items() if k in current or _still_matches(k, v)}
        try:
            record.parent.mkdir(parents=True, exist_ok=True)
            write_json_atomic(record, known)  # a lost race with another run only costs a hash again
        except OSError:
            pass  # an unwritable cache: the files are hashed again next time
    return digests


def forget_sha256(file: Path, sha256: str, cache_dir: Path | None) -> None:
    """Drop `file`'s entry from the record in `cache_dir` while it still says `sha256`, the digest its
    text, as read, was not (a write the stamp did not show, on a file system whose times cannot be
    trusted, or a damaged record): every later start would find the entry again and refuse the text
    for ever. The next start hashes the file afresh. An entry since recorded by another run, of the
    file as it is now, is kept."""
    if cache_dir is None:
        return
    record = cache_dir / HASHES_FILE
    known = read_json_object(record)
    key = os.path.realpath(file)
    entry = known.get(key)
    if not (isinstance(entry, dict) and entry.get("sha256") == sha256):
        return
    del known[key]
    with contextlib.suppress(OSError):  # an unwritable cache: nothing was recorded in it either
        write_json_atomic(record, known)
