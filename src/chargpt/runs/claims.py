"""Claims on run directories: which process may write in a folder, and what a failed start leaves.

Each run (and each sweep) claims its directory before anything is written there:
- a time-stamped default name (`${now:...}`) is created with an exclusive mkdir; when another
  launch took it in the same second, the next free name gets a suffix (`23-10-05-2`), so two
  launches never share a directory;
- a named directory (hydra.run.dir / hydra.sweep.dir, or the run a checkpoint resumes) may be
  another run's: it is refused while that run lives.
Either is then locked with a lock file holding the owner's pid, and so is each sweep job's folder
while its job runs (claim_job). The lock is an OS lock that ends with its process, so a live run's
directory is refused, a dead run's is taken over, and a reader tells a run still training from one
killed outright whose pid another process now has (run_state.still_running).
What a failed or interrupted start created is removed again, unless the run wrote something of its
own there (release_claims).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from chargpt import file_locks, shell_words
from chargpt.errors import NO_ROOM, ConfigError, SetupError
from chargpt.processes import process_alive
from chargpt.run_layout import CONFIG_DIR, LOCK_FILE, LOG_FILE, STATUS_FILE, holds_run, log_handlers_in
from chargpt.runs.status import has_started


class RunDirInUse(SetupError):
    """The run directory belongs to another run: nothing may be written there."""


class FolderLocked(RunDirInUse):
    """Another live process holds the folder's lock (`owner`: its pid, as its lock file says)."""

    def __init__(self, message: str, owner: str) -> None:
        super().__init__(message)
        self.owner = owner


@dataclass
class Claim:
    folder: Path
    created: list[Path] = field(default_factory=list)  # folders this process made, outermost first
    lock_fd: int | None = None
    sweep: bool = False  # a sweep directory: its failed jobs stay for the report
    # A run's folder that existed before it: the names it already held (a failed start removes
    # only the start files it wrote). None: not tidied (created here, a sweep's, a job's).
    held_before: frozenset[str] | None = None


claims: list[Claim] = []


# More than a start writes before training (the lock's pid, Hydra's .hydra/*.yaml and log): a
# folder without this much room is refused before Hydra's write meets the full disk, which is its
# traceback (exit 1) naming no file.
ROOM_NEEDED = 64 * 1024


def check_writable(folder: Path, setting: str) -> None:
    """Refuse (ConfigError) a folder that cannot be made, written in, or has no room left."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder) as probe:  # gone once closed: nothing left there
            left = bytes(ROOM_NEEDED)
            while left:  # a disk with less room takes part of it, then refuses the rest
                left = left[os.write(probe.fileno(), left):]
    except OSError as err:
        elsewhere = f"set {setting} (or paths.output_root) to a"
        fix = (f"free some space there, or {elsewhere} folder on a disk with room" if err.errno in NO_ROOM
               else f"{elsewhere} writable folder")
        raise ConfigError(
            f"cannot write to the output directory {folder} ({err.strerror or err}); {fix}"
        ) from None


def _make_parents(folder: Path, setting: str) -> list[Path]:
    """mkdir -p, returning the folders it created (outermost first)."""
    missing = [p for p in [folder, *folder.parents] if not p.exists()][::-1]
    made = []
    for p in missing:
        try:
            p.mkdir()
            made.append(p)
        except FileExistsError:
            pass  # another launch made it meanwhile
        except OSError:
            check_writable(folder, setting)  # the one-line error
            raise
    return made


def _lock(claim: Claim, setting: str) -> None:
    if not file_locks.LOCKING:  # named directories are not locked (default names still never collide)
        return
    # An earlier command of this same process (e.g. in-process tests) still holding it.
    for held in [c for c in claims if c.folder == claim.folder and c is not claim]:
        _release(held, failed=False)
    path = claim.folder / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        check_writable(claim.folder, setting)
        raise
    try:
        file_locks.lock(fd, wait=False)
    except BlockingIOError:
        if (owner := _lock_owner(fd)) is not None:
            os.close(fd)
            holder = "sweep" if setting == "hydra.sweep.dir" else "run"  # a job folder's lock says so itself
            raise FolderLocked(
                f"{shell_words.quote(f'{setting}={claim.folder}')} is in use by another {holder} that is "
                f"still running (pid {owner}); wait for it to end, or pick another {setting}", owner,
            ) from None
    except OSError:  # a file system without locks (some network ones): run unlocked
        os.close(fd)
        return
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
    except OSError:  # a full disk: raised in a Hydra callback, it was only Hydra's warning
        os.close(fd)
        check_writable(claim.folder, setting)
        raise
    claim.lock_fd = fd


def _lock_owner(fd: int) -> str | None:
    """The pid of the live process holding the lock, as its lock file says; None where the lock is
    taken after all. The owner writes its pid just after it takes the lock: read in between, the
    file is empty or holds the pid of the run before, which has ended (a launch at the same moment
    as another named a dead process, or none). And a command reading the folder holds the lock for
    a moment to ask whether a run holds it (run_state.starting_process): a launch meeting that
    called the folder in use by the pid the file still held. So the lock is tried again, and the
    file read again, for a moment, until the lock is taken or the file names a live process."""
    text = ""
    for _ in range(LOCK_OWNER_READS):
        time.sleep(0.05)
        try:
            file_locks.lock(fd, wait=False)
            return None
        except BlockingIOError:
            pass
        text = os.pread(fd, 32, 0).decode(errors="replace").strip()
        if text.isdigit() and process_alive(int(text)):
            return text
    return text or "unknown"


LOCK_OWNER_READS = 40  # 2 s: the owner's next step after its lock is the write


def claim_new(folder: Path, setting: str) -> Claim:
    """A directory no other launch has: `folder`, else `folder-2`, `folder-3`, ... (exclusive mkdir)."""
    claim = Claim(folder, _make_parents(folder.parent, setting))
    for n in itertools.count(1):
        candidate = folder if n == 1 else folder.with_name(f"{folder.name}-{n}")
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        except OSError:
            check_writable(folder.parent, setting)
            raise
        claim.folder = candidate
        claim.created.append(candidate)
        break
    claims.append(claim)
    _lock(claim, setting)
    return claim


def claim_named(folder: Path, setting: str, tidy: bool = False) -> Claim:
    """A directory named by the user (or resumed): locked, refused while another live run has it.
    `tidy`: a failed start in a folder that existed removes the start files it wrote there."""
    existed = folder.is_dir()
    claim = Claim(folder, _make_parents(folder, setting))
    claims.append(claim)
    _lock(claim, setting)
    if existed and tidy:  # once locked: what another live run writes there is never taken for ours
        claim.held_before = frozenset(p.name for p in folder.iterdir())
    return claim


def claim_job(folder: Path) -> None:
    """A sweep job's folder, locked while the job trains (the sweep's lock covers only the sweep's
    folder): the same job resumed from another command at once (its printed resume command, or a
    second continue of the sweep) is refused instead of training it twice into one folder."""
    try:
        claim_named(folder, "hydra.sweep.dir")
    except FolderLocked as err:
        raise RunDirInUse(f"the sweep's job folder {folder} is in use by another run that is still running "
                          f"(pid {err.owner}); wait for it to end, then continue the sweep again") from None


def release_job(folder: Path) -> None:
    """The job's lock, at its end: the sweep's other jobs do not keep one file open each."""
    for claim in [c for c in claims if c.folder.resolve() == folder.resolve()]:
        _release(claim, failed=False)


def _release(claim: Claim, failed: bool) -> None:
    if claim in claims:
        claims.remove(claim)
    if failed and claim.created and not _in_use(claim):
        for folder in reversed(claim.created):  # the run directory first, then empty parents
            if folder == claim.folder:
                _close_logs_in(folder)
                shutil.rmtree(folder, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    folder.rmdir()  # only if empty: another run may be in it
    elif failed and claim.held_before is not None and not _in_use(claim, besides=claim.held_before):
        _remove_start_files(claim.folder, keep=claim.held_before)
    if claim.lock_fd is not None:
        # The lock file stays: deleting it could let two launches lock two different files.
        os.close(claim.lock_fd)
        claim.lock_fd = None


def _remove_start_files(folder: Path, keep: frozenset[str]) -> None:
    """A failed start in a folder of the user's: what it wrote there goes, what was there stays
    (the lock file too: see _release)."""
    _close_logs_in(folder)
    for name in START_FILES - keep - {LOCK_FILE}:
        path = folder / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def _close_logs_in(folder: Path) -> None:
    """Close and detach the root logger's file handlers that write into `folder` (Hydra's
    train.log): once the folder is removed, the rest of this process's log lines would go to a
    deleted file, or fail to reopen it."""
    for handler in log_handlers_in(folder):
        logging.getLogger().removeHandler(handler)
        handler.close()


# What a start writes before the run writes anything of its own: Hydra's config and log, the
# status line, the lock. A directory with nothing else in it is a failed start's leftover.
START_FILES = {CONFIG_DIR, LOG_FILE, STATUS_FILE, LOCK_FILE}


def _in_use(claim: Claim, besides: frozenset[str] = frozenset()) -> bool:
    """Whether a failed start's folder holds more than the start wrote (`besides`: what it held
    before, the user's own files)."""
    if not claim.folder.is_dir():
        return False
    if claim.sweep:  # any job folder (a failed job's status.json too) is kept for the report
        return any(p.is_dir() for p in claim.folder.iterdir())
    # A run that trained and then failed (its log says how, even with logger=none and no checkpoint
    # yet), or its checkpoints, metrics and TensorBoard events: kept for diagnosis.
    return (has_started(claim.folder) or holds_run(claim.folder)
            or any(p.name not in START_FILES | besides for p in claim.folder.iterdir()))


def release_claims(failed: bool) -> None:
    """At the end of a command: unlock its directories; after a failed or interrupted start, remove
    the folders it created unless they hold a run."""
    for claim in list(claims):
        _release(claim, failed)
