"""The figures chargpt-report gives of each run, each defined once: its column, its key in the
run's metrics.json, how the table prints it, which way is better, and whether runs are compared
by it. The lists the report's modules read (the columns, --sort's choices, the settings' table's
figures) are derived from FIGURES."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Figure:
    column: str  # the tables' and the CSVs' column
    key: str  # where the run's metrics.json keeps it (written by the run_metrics callback)
    format: str | None = None  # how the table prints it (None: as it is); the CSV keeps every digit
    higher_is_better: bool = False  # ranked highest first; the other figures lowest first
    # Ranked by with --sort, and given as mean ± std over seeds in the settings' table.
    compared: bool = True
    # In the settings' table with its ± std on screen, whatever it is sorted by (the CSV has every std).
    spread_shown: bool = False
    # Measured on the run's validation text: compared only between runs of the same text (same_text.py).
    per_text: bool = False


FIGURES = (
    Figure("best_val_loss", "best_val_loss", "{:.4f}", spread_shown=True, per_text=True),
    Figure("last_val_loss", "val_loss", "{:.4f}", spread_shown=True, per_text=True),
    Figure("steps", "step", compared=False),  # a count the run was set to, not a result to rank
    Figure("tokens_per_sec", "tokens_per_second", "{:,.0f}", higher_is_better=True),
    Figure("wall_s", "train_seconds", "{:,.1f}"),
)

METRIC_COLUMNS = [f.column for f in FIGURES]  # the runs' table and CSV, after the settings
SORT_CHOICES = [*(f.column for f in FIGURES if f.compared), "run"]
HIGHER_IS_BETTER = frozenset(f.column for f in FIGURES if f.higher_is_better)
GROUP_METRICS = [f.column for f in FIGURES if f.compared]  # the settings' table: mean ± std of each
SPREAD_SHOWN = [f.column for f in FIGURES if f.spread_shown]
PER_TEXT = frozenset(f.column for f in FIGURES if f.per_text)
FORMATS = {f.column: f.format for f in FIGURES if f.format is not None}


def figures_of(metrics: dict[str, object]) -> dict[str, object]:
    """A run's figures from its metrics.json (None where the run lacks one: written before it)."""
    return {f.column: metrics.get(f.key) for f in FIGURES}
