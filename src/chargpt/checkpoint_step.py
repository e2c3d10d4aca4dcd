"""The step a checkpoint holds, read from its opening bytes without torch: chargpt-report tells a
run whose last checkpoint is later than its figures by it, and a run's last.ckpt is told from a
best checkpoint of a later step by it (file times change when a run folder is copied), where
importing torch to load the checkpoint took seconds (a report starts without torch)."""

from __future__ import annotations

import pickletools
import zipfile
from pathlib import Path

STEP_KEY = "global_step"  # Lightning's, among the first keys of every checkpoint it writes
_INTEGERS = {"BININT", "BININT1", "BININT2", "LONG1", "LONG4", "INT", "LONG"}
_MEMO = {"BINPUT", "LONG_BINPUT", "PUT", "MEMOIZE"}  # between a key and its value: no value


def checkpoint_step(path: Path) -> int | None:
    """The `global_step` a checkpoint (torch's zip format) holds: the first whole number that
    follows that key in its pickle, read op by op and not run, up to there only (the tensors come
    later, in files of their own); None for a file that is none, or holds no step."""
    try:
        with zipfile.ZipFile(path) as archive:
            pickled = next((n for n in archive.namelist() if n.endswith("/data.pkl")), None)
            if pickled is None:
                return None
            with archive.open(pickled) as stream:
                key = None
                for op, arg, _ in pickletools.genops(stream):
                    if op.name in _MEMO:
                        continue
                    if key == STEP_KEY:
                        return int(arg) if op.name in _INTEGERS else None
                    key = arg if isinstance(arg, str) else None
    except (OSError, ValueError, zipfile.BadZipFile):  # (genops: an op it does not know)
        return None
    return None
