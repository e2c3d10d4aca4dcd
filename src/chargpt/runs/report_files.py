"""The files chargpt-report writes: the runs' CSV, the settings' CSV beside it and the curves'
picture; where they go, and the check, before any is written, that a report replaces only its own
earlier output."""

from __future__ import annotations

import csv
import os
import tempfile
from pathlib import Path
from typing import Any

from chargpt import shell_words
from chargpt.errors import ChargptError
from chargpt.files import atomic_path
from chargpt.run_layout import CONFIG_DIR, OVERRIDES_FILE, SWEEP_CONFIG
from chargpt.runs.curves import PNG_SOFTWARE

# The columns every runs' CSV has had since the first report: what marks a file as one. Not today's
# METRIC_COLUMNS: a figure column added later would make every report written before it foreign.
RUNS_CSV_MARK = frozenset({"run", "status", "best_val_loss", "last_val_loss", "steps", "tokens_per_sec",
                           "wall_s"})
GROUPS_CSV_MARK = frozenset({"seeds", "runs", "n"})


def output_paths(csv_path: Path) -> tuple[Path, Path, Path]:
    """The runs' CSV, the settings' CSV and the curves' picture written for `csv_path`, a file's path
    (a folder is refused: the other two are named from the file's)."""
    if csv_path.name in ("", "..") or csv_path.is_dir():
        raise ChargptError(f"--csv {csv_path} is a folder; name the CSV file, such as "
                           f"{csv_path / 'report.csv'}")
    named = (csv_path, csv_path.with_name(f"{csv_path.stem}_groups.csv"),
             csv_path.with_name(f"{csv_path.stem}_curves.png"))
    return tuple(_through_link(path) for path in named)  # type: ignore[return-value]


def _through_link(path: Path) -> Path:
    """A file that is a link (`report.csv` pointed into a shared folder) is written at its target,
    whole there: the rename that makes a report whole replaced the link itself with a plain file."""
    return Path(os.path.realpath(path)) if path.is_symlink() else path


def _written_by_a_report(path: Path, role: str) -> bool:
    """Whether `path` holds what a report writes in that role: the runs' CSV, the settings' CSV or
    the curves' picture."""
    with path.open("rb") as f:
        if role == "curves":  # its Software text, in the first chunks (any other PNG is a user's)
            head = f.read(4096)
            return head.startswith(b"\x89PNG") and f"Software\0{PNG_SOFTWARE}".encode() in head
        head = f.readline(1 << 20)  # a header row, however many settings a sweep varied
    columns = head.decode("utf-8", "replace").strip().split(",")
    if role == "runs":
        return columns[0] == "run" and set(columns) >= RUNS_CSV_MARK
    return set(columns) >= GROUPS_CSV_MARK


def check_outputs(paths: tuple[Path, Path, Path], reported: Path) -> None:
    """Refuse, before anything is written, a folder that is not there, a file a report did not
    write, or the report of another folder of runs (`reported`: the folder this report reads): a
    report replaces only its own earlier output."""
    for path, role in zip(paths, ("runs", "groups", "curves"), strict=True):
        if not path.parent.is_dir():
            raise ChargptError(f"cannot write {path}: the folder {path.parent} does not exist; create it "
                               f"({missing_folder(path.parent)}) or pass another --csv path")
        _check_writable(path.parent)
        try:
            ours = not path.exists() or (path.is_file() and _written_by_a_report(path, role))
        except OSError as err:
            raise ChargptError(
                f"cannot read {path} ({err.strerror or err}); pass another --csv path"
            ) from None
        if not ours and role == "curves" and _drawn_by_matplotlib(path):
            # A report's picture from before it carried its mark looks like the user's own plot.
            raise ChargptError(f"{path} exists and is not marked as a report's output (a report before "
                               "2026-12-03 drew it without its mark, or it is a plot of yours); nothing was "
                               "written: delete or move it if it is an old report's, or pass another --csv "
                               "path")
        if not ours:
            raise ChargptError(f"{path} exists and is not a report's output; nothing was written: pass "
                               "another --csv path, or move it")
        if path.exists() and _holds_runs(path.parent) and path.parent.resolve() != reported.resolve():
            raise ChargptError(f"{path} is the report of the runs in {path.parent}, not of {reported}; "
                               "nothing was written: pass another --csv path")


def missing_folder(folder: Path) -> str:
    """The command that creates `folder`, as typed in a shell: a report makes no folder itself (a
    mistyped name would hide the report in a new one), as pandas' to_csv does not."""
    return f"mkdir -p {shell_words.quote(str(folder))}"


def _check_writable(folder: Path) -> None:
    """Refuse a folder no file can be created in (another user's sweep, a read-only disk): the
    report's first file failed there with a traceback."""
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        raise ChargptError(f"cannot write in {folder} ({err.strerror or err}); pass --csv with a file in "
                           "a folder you can write") from None


def _holds_runs(folder: Path) -> bool:
    """A sweep's folder (Hydra's multirun.yaml) or a run's (its .hydra/)."""
    return (folder / SWEEP_CONFIG).is_file() or (folder / CONFIG_DIR / OVERRIDES_FILE).is_file()


def _drawn_by_matplotlib(path: Path) -> bool:
    with path.open("rb") as f:
        return b"Software\0Matplotlib" in f.read(4096)


def write_csv(path: Path, columns: list[str], rows: list[dict[str, Any]]) -> None:
    # Whole or not at all: a report stopped mid-write (Ctrl-C, a kill) keeps the earlier table.
    with atomic_path(path, durable=False) as tmp, tmp.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows({c: "" if row[c] is None else row[c] for c in columns} for row in rows)
