"""The step a checkpoint holds, the folder of the run that wrote it and the path of the text that
run read, read from its pickle without torch: chargpt-report tells a run whose last checkpoint is
later than its figures by the step, and a run's last.ckpt is told from a best checkpoint of a later
step by it (file times change when a run folder is copied), where importing torch to load the
checkpoint took seconds (a report starts without torch)."""

from __future__ import annotations

import pickletools
import zipfile
from pathlib import Path

STEP_KEY = "global_step"  # Lightning's, among the first keys of every checkpoint it writes
# The folder of the run that wrote a checkpoint (training/module.py), among its last keys: two runs
# whose checkpoint callbacks share a folder (dirpath: cc1) write files of the same names there.
WRITER_KEY = "chargpt_run_dir"
_INTEGERS = {"BININT", "BININT1", "BININT2", "LONG1", "LONG4", "INT", "LONG"}
_TEXTS = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE"}
_MEMO = {"BINPUT", "LONG_BINPUT", "PUT", "MEMOIZE"}  # between a key and its value: no value
_FETCH = {"BINGET", "LONG_BINGET", "GET"}  # a value pickled before, by its memo's number
CORPUS_KEYS = ("corpus", "path")  # the ResumeState callback's record of the text the run read


def checkpoint_step(path: Path) -> int | None:
    """The `global_step` a checkpoint (torch's zip format) holds: the first whole number that
    follows that key in its pickle, read op by op and not run, up to there only (the tensors come
    later, in files of their own); None for a file that is none, or holds no step."""
    value = _value_after(path, (STEP_KEY,), "integer")
    return int(value) if isinstance(value, int) else None


def checkpoint_writer(path: Path) -> Path | None:
    """The folder of the run that wrote a checkpoint, as it recorded it; None for a file that
    records none (not chargpt's, or written before runs recorded it)."""
    value = _value_after(path, (WRITER_KEY,), "text")
    return Path(value) if isinstance(value, str) and value else None


def checkpoint_corpus_path(path: Path) -> str | None:
    """The path (absolute) or dataset of the text the run that wrote the checkpoint read, as its
    corpus record holds it (checkpoints.stored_corpus); None where it holds none."""
    value = _value_after(path, CORPUS_KEYS, "text")
    return value if isinstance(value, str) else None


def _value_after(path: Path, keys: tuple[str, ...], kind: str) -> object:
    """The value that follows the last of `keys` in a checkpoint's pickle, each key found after the
    one before it (a key in the dict of the previous one's value), read op by op and not run, up to
    there only: a whole number or a text (`kind`), else None."""
    try:
        with zipfile.ZipFile(path) as archive:
            pickled = next((n for n in archive.namelist() if n.endswith("/data.pkl")), None)
            if pickled is None:
                return None
            with archive.open(pickled) as stream:
                previous, puts, texts, found = None, 0, {}, 0
                for op, arg, _ in pickletools.genops(stream):
                    if op.name in _MEMO:  # a text pickled again is fetched by its memo's number
                        index = puts if arg is None else arg
                        puts += 1
                        if isinstance(previous, str):
                            texts[index] = previous
                        continue
                    value, this = (texts.get(arg), "text") if op.name in _FETCH \
                        else (arg, "text") if op.name in _TEXTS \
                        else (arg, "integer") if op.name in _INTEGERS else (None, None)
                    if previous == keys[found]:
                        found += 1
                        if found == len(keys):
                            return value if this == kind else None
                        if op.name != "EMPTY_DICT":  # (a record of None: a later key is another's)
                            return None
                    previous = value
    except (OSError, ValueError, zipfile.BadZipFile):  # (genops: an op it does not know)
        return None
    return None
