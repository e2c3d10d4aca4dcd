"""How a run stands, by its status.json: running, finished, failed, interrupted, or killed (it says
running, but its process is gone); and a run still starting, before it has a status.

Torch-free and below everything that asks (checkpoints, the commands that read a run, the report),
so each of them tells a live run from a dead one the same way. The status is written by
runs/status.py.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

from chargpt import file_locks
from chargpt.files import read_json_object
from chargpt.processes import process_alive
from chargpt.run_layout import CONFIG_DIR, LOCK_FILE, METRICS_FILE, STATUS_FILE


def read_status(run_dir: str | Path) -> dict[str, Any]:
    """A run's status.json. Without one (it stopped before it could record one, it predates the
    record, or the file was deleted) or when it cannot be read: what its metrics.json shows, a run
    that reached its last step finished (with its best val loss as the value), as a resume of it
    would find nothing left to train; else empty."""
    status = read_json_object(Path(run_dir) / STATUS_FILE)
    return status or _status_from_metrics(Path(run_dir))


def _status_from_metrics(run_dir: Path) -> dict[str, Any]:
    metrics = read_json_object(run_dir / METRICS_FILE)  # written with each checkpoint and validation
    step, last = metrics.get("step"), metrics.get("max_steps")
    if not (isinstance(step, int) and isinstance(last, int)) or last <= 0 or step < last:
        return {}
    best = metrics.get("best_val_loss")
    return {"status": "finished", "value": best if isinstance(best, (int, float)) else None}


def still_running(status: dict[str, Any], run_dir: str | Path) -> bool:
    """Whether the run in `run_dir` whose status.json (`status`) says "running" still trains: the
    process it names is alive and holds the folder's lock, as a run does for as long as it runs
    (runs/claims.py). A pid alone outlives a run killed outright: by now it may be another
    process's, which made the run look running for ever. One on another machine (a cluster's node)
    cannot be checked from here, and counts as running."""
    if status.get("host", socket.gethostname()) != socket.gethostname():
        return True
    pid = status.get("pid")
    if not (isinstance(pid, int) and pid > 0 and process_alive(pid)):
        return False
    return _lock_held(Path(run_dir) / LOCK_FILE) is not False


def starting_process(run_dir: str | Path) -> int | None:
    """The pid of another live process that claimed `run_dir` and has not yet recorded a step: a
    run starting there (reading its text, building its model). None for anything else: a run that
    recorded a status.json says how it stands there, and a sweep's folder, locked too, holds no
    launch record (CONFIG_DIR) of its own."""
    folder = Path(run_dir)
    if read_status(folder) or not (folder / CONFIG_DIR).is_dir():
        return None
    pid = lock_owner(folder)
    if pid is None or pid == os.getpid() or not process_alive(pid):
        return None
    return pid if _lock_held(folder / LOCK_FILE) is not False else None


def lock_owner(folder: str | Path) -> int | None:
    """The pid that the process claiming `folder` wrote in its lock file (runs/claims.py); None
    where there is none to read."""
    try:
        text = (Path(folder) / LOCK_FILE).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() else None


def held_now(folder: str | Path) -> bool:
    """Whether a process holds `folder`'s lock now, as a run or a sweep there does (runs/claims.py);
    false where the system has no locks."""
    lock_file = Path(folder) / LOCK_FILE
    return file_locks.LOCKING and lock_file.is_file() and _lock_held(lock_file) is True


def _lock_held(lock_file: Path) -> bool | None:
    """Whether a process holds `lock_file`'s OS lock, as a run holds its folder's for as long as it
    runs (runs/claims.py); None where that cannot be told, and a live pid is taken for its run: no
    locks on this system (Windows) or its file system (the run ran unlocked), or no lock file to read
    (a run from before runs locked their folders)."""
    if not file_locks.LOCKING:
        return None
    try:
        fd = os.open(lock_file, os.O_RDONLY)
    except OSError:  # (none there, or not ours to read)
        return None
    try:
        file_locks.lock(fd, shared=True, wait=False)  # (released at once, as the file is closed)
    except BlockingIOError:
        return True
    except OSError:
        return None
    finally:
        os.close(fd)
    return False


def state_of(status: dict[str, Any], run_dir: str | Path) -> str | None:
    """How the run in `run_dir` stands by its status.json (`status`): what it recorded, but `killed`
    for a "running" whose process is gone (kill -9, out of memory, a lost machine: it ended without
    recording how)."""
    state = status.get("status")
    return "killed" if state == "running" and not still_running(status, run_dir) else state


# How a run that did not finish ended, worded to follow the run ("it", its folder) in a sentence.
_UNFINISHED = {"failed": "failed", "interrupted": "was stopped (Ctrl-C or a signal)", "killed": "was killed"}


def how_it_stopped(run_dir: str | Path) -> str | None:
    """How a run stopped before it finished (failed, interrupted, killed) as a sentence says it
    ("was killed"); None for a run that finished, still runs or recorded nothing."""
    return _UNFINISHED.get(state_of(read_status(run_dir), run_dir) or "")
