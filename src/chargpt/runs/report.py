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
import re
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf
from rich.console import Console
from rich.table import Table

from chargpt.errors import ChargptError
from chargpt.runs.curves import write_curves
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
        key, _, value = str(item).partition("=")
        overrides[key.lstrip("+~")] = value
    return overrides


def run_status(status: dict[str, Any], metrics: dict[str, Any]) -> str:
    if status.get("status") == "failed":
        return "failed"
    # A run stopped early on purpose (time budget, signal) may say so in its metrics.
    return str(metrics.get("status") or status.get("status") or "incomplete")


def run_row(run_dir: Path, sweep_dir: Path) -> dict[str, Any]:
    metrics = _read_json(run_dir / "metrics.json")
    status = _read_json(run_dir / STATUS_FILE)
    return {
        "run": run_dir.relative_to(sweep_dir).as_posix() or ".",
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


def print_table(title: str, columns: list[str], rows: list[dict[str, Any]]) -> None:
    """The screen shows the swept settings only; the CSV has every column."""
    shown, shared = varying(columns, rows)
    if not any(row["error"] for row in rows):
        shown.remove("error")
    caption = "shared: " + " ".join(f"{k}={v}" for k, v in shared.items()) if shared else None
    table = Table(title=title, caption=caption)
    for column in shown:
        if column == "error":  # the first words; the CSV has it whole
            table.add_column(column, max_width=50, no_wrap=True, overflow="ellipsis")
        else:
            width = max(len(column), *(len(_cell(row[column], column)) for row in rows))
            table.add_column(column, justify="right" if column in METRIC_COLUMNS else "left", min_width=width)
    styles = {"failed": "red", "interrupted": "yellow", "incomplete": "yellow"}
    for row in rows:
        table.add_row(*(_cell(row[c], c) for c in shown), style=styles.get(str(row["status"])))
    Console(width=max(120, Console().width)).print(table)


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
