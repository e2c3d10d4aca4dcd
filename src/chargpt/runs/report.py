"""One table of every run of a sweep, best first, printed and as CSV (chargpt-report SWEEP_DIR).

A run is any directory under SWEEP_DIR with a `.hydra/overrides.yaml` (what Hydra writes for each
job). Its figures come from the run's metrics.json (written at each validation) and status.json
(written when the run ends): a run with neither an end nor a failure recorded is `incomplete`
(still running, or killed before it could write one).
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf
from rich.console import Console
from rich.table import Table

from chargpt.errors import ChargptError
from chargpt.runs.curves import write_curves
from chargpt.runs.overrides import literal_value
from chargpt.runs.status import STATUS_FILE

METRIC_COLUMNS = ["best_val_loss", "last_val_loss", "steps", "tokens_per_sec", "wall_s"]
SORT_CHOICES = ["best_val_loss", "last_val_loss", "tokens_per_sec", "wall_s", "run"]


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def find_runs(sweep_dir: Path) -> list[Path]:
    # Only `.hydra/overrides.yaml` itself: a resumed run keeps its resume configs in sub-folders.
    return sorted(p.parent.parent for p in sweep_dir.rglob("overrides.yaml") if p.parent.name == ".hydra")


def parse_overrides(run_dir: Path) -> dict[str, str]:
    overrides: dict[str, str] = {}
    for item in OmegaConf.to_container(OmegaConf.load(run_dir / ".hydra" / "overrides.yaml")) or []:
        key = str(item).partition("=")[0]
        overrides[key.lstrip("+~")] = literal_value(str(item))  # free text was quoted for Hydra
    return overrides


def run_name(run_dir: Path, sweep_dir: Path) -> str:
    """Its path in the sweep; a single run directory given itself is named by its directory, not "."."""
    relative = run_dir.relative_to(sweep_dir).as_posix()
    return run_dir.resolve().name if relative == "." else relative


def run_status(status: dict[str, Any], metrics: dict[str, Any]) -> str:
    if status.get("status") == "failed":
        return "failed"
    # A run stopped early on purpose (time budget, signal) may say so in its metrics.
    return str(metrics.get("status") or status.get("status") or "incomplete")


def run_row(run_dir: Path, sweep_dir: Path) -> dict[str, Any]:
    metrics = _read_json(run_dir / "metrics.json")
    status = _read_json(run_dir / STATUS_FILE)
    return {
        "run": run_name(run_dir, sweep_dir),
        "overrides": parse_overrides(run_dir),
        "status": run_status(status, metrics),
        "best_val_loss": metrics.get("best_val_loss"),
        "last_val_loss": metrics.get("val_loss"),
        "steps": metrics.get("step"),
        "tokens_per_sec": metrics.get("tokens_per_second"),
        "wall_s": metrics.get("train_seconds"),
        "error": status.get("error", ""),
    }


def _natural(text: str) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def sort_rows(rows: list[dict[str, Any]], by: str) -> list[dict[str, Any]]:
    """Best first: lowest loss or wall time, highest throughput; runs without the figure last."""

    def key(row: dict[str, Any]) -> tuple[Any, ...]:
        value = row.get(by)
        if by == "run" or value is None or (isinstance(value, float) and math.isnan(value)):
            return (by != "run", 0.0, _natural(row["run"]))
        return (False, -value if by == "tokens_per_sec" else value, _natural(row["run"]))

    return sorted(rows, key=key)


def flat_rows(rows: list[dict[str, Any]]) -> tuple[list[str], list[dict[str, Any]]]:
    """One column per override key (in order of first appearance), then the figures."""
    keys: list[str] = []
    for row in rows:
        keys += [k for k in row["overrides"] if k not in keys]
    columns = ["run", *keys, "status", *METRIC_COLUMNS, "error"]
    flat = [{"run": r["run"], **{k: r["overrides"].get(k, "") for k in keys}, **r} for r in rows]
    return columns, [{c: row.get(c) for c in columns} for row in flat]


FORMATS = {
    "best_val_loss": "{:.4f}", "last_val_loss": "{:.4f}", "tokens_per_sec": "{:,.0f}", "wall_s": "{:,.1f}",
}


def _cell(value: Any, column: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, (int, float)) and column in FORMATS:
        return FORMATS[column].format(value)
    return str(value)


def write_csv(path: Path, columns: list[str], rows: list[dict[str, Any]]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows({c: "" if row[c] is None else row[c] for c in columns} for row in rows)


def varying(columns: list[str], rows: list[dict[str, Any]]) -> tuple[list[str], dict[str, Any]]:
    """Override columns whose value differs between runs, and the settings all runs share."""
    overrides = columns[1 : columns.index("status")]
    shared = {c: rows[0][c] for c in overrides if len({str(r[c]) for r in rows}) == 1}
    return [c for c in columns if c not in shared], shared


SETTING_MIN_WIDTH = 12
ERROR_WIDTH = 50
WHOLE = ("run", "status", *METRIC_COLUMNS)  # never cropped or wrapped


def _min_width(column: str, rows: list[dict[str, Any]]) -> int:
    """The narrowest the column can be: whole for the run, status and metrics."""
    width = max(len(column), *(len(_cell(row[column], column)) for row in rows))
    if column in WHOLE:
        return width
    return min(width, ERROR_WIDTH if column == "error" else SETTING_MIN_WIDTH)


def _table(title: str, shown: list[str], rows: list[dict[str, Any]], caption: str | None) -> Table:
    table = Table(title=title, caption=caption)
    for column in shown:
        if column == "error":  # the first words; the CSV has it whole
            table.add_column(column, max_width=ERROR_WIDTH, no_wrap=True, overflow="ellipsis")
        elif column in WHOLE:
            justify = "right" if column in METRIC_COLUMNS else "left"
            table.add_column(column, justify=justify, min_width=_min_width(column, rows), no_wrap=True)
        else:  # a swept setting: wraps, down to a width that stays readable
            table.add_column(column, overflow="fold", min_width=_min_width(column, rows))
    styles = {"failed": "red", "interrupted": "yellow", "incomplete": "yellow"}
    for row in rows:
        table.add_row(*(_cell(row[c], c) for c in shown), style=styles.get(str(row["status"])))
    return table


def print_table(
    title: str, columns: list[str], rows: list[dict[str, Any]], console: Console | None = None
) -> None:
    """The screen shows the swept settings only; the CSV has every column. The table fits the
    terminal: setting columns wrap, then the last ones are left out (named in the caption), then
    the error column; the run, its status and the metrics are always shown whole."""
    console = console or Console()
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(width=10_000)  # into a file or pipe: whole lines, nothing cropped
    shown, shared = varying(columns, rows)
    if not any(row["error"] for row in rows):
        shown.remove("error")
    notes = ["shared: " + " ".join(f"{k}={v}" for k, v in shared.items())] if shared else []
    left_out: list[str] = []
    while True:
        hidden = ["not shown (see the CSV): " + ", ".join(left_out)] if left_out else []
        caption = "; ".join([*notes, *hidden])
        table = _table(title, shown, rows, caption or None)
        droppable = [c for c in shown if c not in WHOLE]
        # Each column has one space of padding either side and a border; one more border closes it.
        if sum(_min_width(c, rows) + 3 for c in shown) + 1 <= console.width or not droppable:
            break
        # Settings before the error column, the last setting first.
        drop = next((c for c in reversed(droppable) if c != "error"), droppable[-1])
        shown.remove(drop)
        left_out.insert(0, drop)
    if console.width == 10_000:
        console = Console(width=console.measure(table).maximum)
    console.print(table)


def report(sweep_dir: Path, csv_path: Path | None = None, sort_by: str = "best_val_loss") -> list[dict]:
    if not sweep_dir.is_dir():
        raise ChargptError(f"{sweep_dir} is not a directory; give a sweep directory (outputs/multirun/...)")
    runs = find_runs(sweep_dir)
    if not runs:
        raise ChargptError(f"no runs in {sweep_dir} (no .hydra/overrides.yaml in it); give a sweep directory")
    columns, rows = flat_rows(sort_rows([run_row(r, sweep_dir) for r in runs], sort_by))
    print_table(f"{sweep_dir} ({len(rows)} runs, sorted by {sort_by})", columns, rows)
    csv_path = csv_path or sweep_dir / "report.csv"
    write_csv(csv_path, columns, rows)
    print(f"written: {csv_path}")
    write_curves(csv_path.with_name(f"{csv_path.stem}_curves.png"), sweep_dir, columns, rows)
    return rows
