"""The operating system's advisory locks (flock) on files and folders: which process writes in a run
folder or a sweep's, and whether the process that made one still lives.

Windows has none (no fcntl): there `LOCKING` is false, nothing is locked, and each caller does
without, saying what that leaves unguarded."""

from __future__ import annotations

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

LOCKING = fcntl is not None


def lock(fd: int, shared: bool = False, wait: bool = True) -> None:
    """Lock the open file or folder `fd` (released as it is closed): exclusively, or `shared`; where
    another process holds it, wait for it, or (not `wait`) raise BlockingIOError. Another OSError
    where the file system takes no lock (some network ones). Only where LOCKING."""
    assert fcntl is not None, "no locks on this system: callers check LOCKING"
    fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | (0 if wait else fcntl.LOCK_NB))
