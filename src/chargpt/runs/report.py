"""One table of every run of a sweep, best first, printed and as CSV (chargpt-report SWEEP_DIR);
then one of its settings: the runs that differ only in `seed` grouped, mean ± std over the seeds,
each compared with the best setting (group_runs says the rule).

A run is any directory under SWEEP_DIR with a `.hydra/overrides.yaml` (what Hydra writes for each
job). Its figures come from the run's metrics.json (written at each validation) and status.json
(`running` from the first step, then how the run ended): a run whose status still says running
after its process is gone was `killed` (kill -9, a lost machine); one with no status at all
stopped before training started, or predates the record, and is `incomplete`.
"""

from __future__ import annotations

import csv
import math
import os
import re
import shlex
import sys
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf
from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

from chargpt.errors import ChargptError, first_line
from chargpt.files import read_json_object
from chargpt.overrides import is_sweep, literal_value, override_key
from chargpt.run_layout import (
    CONFIG_DIR,
    METRICS_FILE,
    OVERRIDES_FILE,
    SWEEP_CONFIG,
    NotOverrides,
    find_runs,
    last_checkpoint,
    overrides_files,
    read_overrides,
    read_status,
    saved_config,
    state_of,
)
from chargpt.runs.curves import PNG_SOFTWARE, CurveRun, shorten, write_curves
from chargpt.runs.resume import launch_cwd, resume_command
from chargpt.runs.sweep_record import as_written, continue_command, planned_jobs, recorded_sweep, stored_study

SEED = "seed"
METRIC_COLUMNS = ["best_val_loss", "last_val_loss", "steps", "tokens_per_sec", "wall_s"]
SORT_CHOICES = ["best_val_loss", "last_val_loss", "tokens_per_sec", "wall_s", "run"]


DEFAULT = "default"  # a setting a launch did not give


class NotARun(ChargptError):
    """A folder that looks like a run but whose recorded overrides cannot be read."""


def _overrides_in(path: Path) -> dict[str, str]:
    try:
        items = read_overrides(path)
    except NotOverrides as err:
        raise NotARun(str(err)) from None
    except Exception as err:  # YAML's errors, OmegaConf's, the OS's: each means unreadable
        raise NotARun(f"{path} cannot be read ({first_line(err, 80)})") from None
    overrides: dict[str, str] = {}
    for item in items:
        key = override_key(item)
        if key != "ckpt_path":  # how a resume is launched, not a setting of the run
            overrides[key] = literal_value(item)  # free text was quoted for Hydra
    return overrides


def parse_overrides(run_dir: Path) -> dict[str, str]:
    """The run's settings as its first launch gave them. A resume trains on with the settings of
    its own command line: where the latest one gave another value, or left one out (the default),
    the setting reads `first→latest` (trainer.max_steps=500→2000, optimizer.lr=3e-3→default)."""
    files = overrides_files(run_dir)
    first = _overrides_in(files[0])
    if len(files) == 1:
        return first
    latest = _overrides_in(files[-1])
    settings = {}
    for key in [*first, *(k for k in latest if k not in first)]:
        was, now = first.get(key, DEFAULT), latest.get(key, DEFAULT)
        settings[key] = was if was == now else f"{was}→{now}"
    return settings


def run_name(run_dir: Path, sweep_dir: Path) -> str:
    """Its path in the sweep; a single run directory given itself is named by its directory, not "."."""
    relative = run_dir.relative_to(sweep_dir).as_posix()
    return run_dir.resolve().name if relative == "." else relative


def run_status(status: dict[str, Any], metrics: dict[str, Any]) -> str:
    if status.get("status") == "failed":
        return "failed"
    if (state := state_of(status)) in ("running", "killed"):
        return state
    # A run stopped early on purpose (time budget, signal) may say so in its metrics.
    return str(metrics.get("status") or status.get("status") or "incomplete")


def recorded_seed(run_dir: Path) -> str | None:
    """The seed the run trained with, from its saved config (a run launched without `seed=` took
    the config's default)."""
    seed = saved_config(run_dir).get(SEED)
    return None if seed is None else str(seed)


def run_row(run_dir: Path, sweep_dir: Path) -> dict[str, Any]:
    metrics = read_json_object(run_dir / METRICS_FILE)
    status = read_status(run_dir)
    return {
        "run": run_name(run_dir, sweep_dir),
        "overrides": parse_overrides(run_dir),
        "recorded_seed": recorded_seed(run_dir),
        "status": run_status(status, metrics),
        "best_val_loss": metrics.get("best_val_loss"),
        "last_val_loss": metrics.get("val_loss"),
        "steps": metrics.get("step"),
        "tokens_per_sec": metrics.get("tokens_per_second"),
        "wall_s": metrics.get("train_seconds"),
        "error": status.get("error", ""),
        "dir": run_dir,  # not a column: where a stopped run resumes from
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
    """One column per override key (in order of first appearance), then the figures. `seed` is
    the seed each run trained with: its override, else the one its saved config records (as the
    settings' table counts it), so a sweep that set no seed still has the column."""
    keys: list[str] = []
    for row in rows:
        keys += [k for k in row["overrides"] if k not in keys]
    if SEED not in keys and any(row.get("recorded_seed") is not None for row in rows):
        keys.append(SEED)
    columns = ["run", *keys, "status", *METRIC_COLUMNS, "error"]
    flat = [{"run": r["run"], **{k: _setting(r, k) for k in keys}, **r} for r in rows]
    return columns, [{c: row.get(c) for c in columns} for row in flat]


def _setting(row: dict[str, Any], key: str) -> str:
    """The run's value of a setting column; empty where its launch did not give it."""
    if key == SEED and SEED not in row["overrides"]:
        return row.get("recorded_seed") or ""
    return row["overrides"].get(key, "")


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
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows({c: "" if row[c] is None else row[c] for c in columns} for row in rows)


LABEL_VALUE_CHARS = 20  # a longer value (a path) is cut in a curve's label: the settings after it stay


def curve_label(name: str, settings: dict[str, str]) -> str:
    """`name: key=value, ...`, or the name alone: two runs with the same settings stay apart."""
    given = ", ".join(f"{key}={shorten(value, LABEL_VALUE_CHARS)}" for key, value in settings.items())
    return f"{name}: {given}" if given else name


def curve_runs(rows: list[dict[str, Any]], swept: Collection[str] = ()) -> list[CurveRun]:
    """The runs (run_row's, in the table's order) for the curves: each labelled by its name and,
    of the settings that vary or are `swept`, those it set (one it left at its default is not
    `key=`)."""
    columns, flat = flat_rows(rows)
    shown, _ = varying(columns, flat, swept)
    settings = shown[1 : shown.index("status")]
    return [
        CurveRun(curve_label(row["run"], {k: row["overrides"][k] for k in settings if k in row["overrides"]}),
                 row["dir"], None if row.get("status") is None else str(row["status"]))
        for row in rows
    ]


def varying(
    columns: list[str], rows: list[dict[str, Any]], swept: Collection[str] = ()
) -> tuple[list[str], dict[str, Any]]:
    """The columns without the settings all runs share, and those. A `swept` setting is never
    shared: a sweep stopped after its first value has one value of it so far, not a fixed one."""
    overrides = columns[1 : columns.index("status")]
    shared = {c: rows[0][c] for c in overrides if c not in swept and len({str(r[c]) for r in rows}) == 1}
    return [c for c in columns if c not in shared], shared


def swept_by(sweep_dir: Path) -> set[str]:
    """The settings the sweep recorded in `sweep_dir` (its multirun.yaml) sweeps: its command's
    sweeps (`optimizer.lr=1e-3,3e-3`, `range(...)`, a search's `interval(...)`) and a search's
    space (hydra.sweeper.params); none when the folder records no sweep."""
    if (hydra := recorded_sweep(sweep_dir)) is None:
        return set()  # missing or unreadable: nothing known to be swept
    try:
        task = as_written(hydra.overrides.task)
        space = OmegaConf.select(hydra, "sweeper.params", default=None) or {}
    except Exception:  # a record of another shape: nothing known to be swept
        return set()
    keys = {override_key(str(key)) for key in space}
    return keys | {override_key(override) for override in task if is_sweep(override)}


def swept_settings(rows: list[dict[str, Any]], top: Path) -> set[str]:
    """The settings swept by the sweeps the runs are jobs of."""
    sweeps = {sweep for row in rows if (sweep := _sweep_of(row["dir"], top)) is not None}
    return set().union(*(swept_by(sweep) for sweep in sweeps))


SETTING_MIN_WIDTH = 12
ERROR_WIDTH = 50
WHOLE = ("run", "status", *METRIC_COLUMNS)  # never cropped or wrapped


def _min_width(column: str, rows: list[dict[str, Any]], whole: tuple[str, ...] = WHOLE) -> int:
    """The narrowest the column can be: whole for the run, status and metrics."""
    width = max(len(column), *(len(_cell(row[column], column)) for row in rows))
    if column in whole:
        return width
    return min(width, ERROR_WIDTH if column == "error" else SETTING_MIN_WIDTH)


def _table(
    title: str, shown: list[str], rows: list[dict[str, Any]], caption: str | None,
    whole: tuple[str, ...] = WHOLE, right: tuple[str, ...] = tuple(METRIC_COLUMNS),
) -> Table:
    # Text, not str: rich would read a path's or a setting's brackets as markup (`a[/]b` raises).
    table = Table(title=Text(title), caption=Text(caption) if caption else None)
    for column in shown:
        if column == "error":  # the first words; the CSV has it whole
            table.add_column(Text(column), max_width=ERROR_WIDTH, no_wrap=True, overflow="ellipsis")
        elif column in whole:
            justify = "right" if column in right else "left"
            table.add_column(Text(column), justify=justify, min_width=_min_width(column, rows, whole),
                             no_wrap=True)
        else:  # a swept setting: wraps, down to a width that stays readable
            table.add_column(Text(column), overflow="fold", min_width=_min_width(column, rows, whole))
    styles = {"failed": "red", "killed": "red", "interrupted": "yellow", "incomplete": "yellow"}
    for row in rows:
        table.add_row(*(Text(_cell(row[c], c)) for c in shown), style=styles.get(str(row.get("status"))))
    return table


def print_table(
    title: str, columns: list[str], rows: list[dict[str, Any]], console: Console | None = None,
    metric: str = "best_val_loss", swept: Collection[str] = (),
) -> None:
    """The screen shows the settings that vary or are `swept` only; the CSV has every column. The
    table fits the terminal: setting columns wrap, then the last ones are left out down to the
    first (named in the caption), then the error column, the metrics other than the ranking
    `metric`, and the first setting; run, status and what is shown of the metrics stay whole."""
    shown, shared = varying(columns, rows, swept)
    if not any(row["error"] for row in rows):
        shown.remove("error")
    notes = ["shared: " + " ".join(f"{k}={v}" for k, v in shared.items())] if shared else []
    last = tuple(c for c in reversed(METRIC_COLUMNS) if c != metric)
    _print_fitted(title, shown, rows, notes, WHOLE, tuple(METRIC_COLUMNS), console, drop_last=last)


class _Console(Console):
    """rich's console, except that output into a closed pipe (`| head`) raises BrokenPipeError,
    where rich would end the process with exit 1: the report still writes its files."""

    def on_broken_pipe(self) -> None:
        raise BrokenPipeError


def _print_fitted(
    title: str, shown: list[str], rows: list[dict[str, Any]], notes: list[str],
    whole: tuple[str, ...], right: tuple[str, ...], console: Console | None = None,
    drop_first: tuple[str, ...] = (), drop_last: tuple[str, ...] = (),
) -> None:
    """Print the table at the terminal's width: columns not in `whole` wrap, then columns are
    left out (named in the caption): the `drop_first` ones, the settings from the last down to the
    first, the error column, the `drop_last` ones, and the first setting."""
    console = console or _Console()
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = _Console(width=10_000)  # into a file or pipe: whole lines, nothing cropped
    shown = list(shown)
    left_out: list[str] = []
    while True:
        hidden = ["not shown (see the CSV): " + ", ".join(left_out)] if left_out else []
        caption = "; ".join([*notes, *hidden])
        table = _table(title, shown, rows, caption or None, whole, right)
        droppable = [c for c in shown if c not in whole]
        first = [c for c in drop_first if c in shown]
        last = [c for c in drop_last if c in shown]
        # Each column has one space of padding either side and a border; one more border closes it.
        fits = sum(_min_width(c, rows, whole) + 3 for c in shown) + 1 <= console.width
        if fits or not first + droppable + last:
            break
        settings = [c for c in droppable if c != "error"]
        if first:
            drop = first[0]
        elif len(settings) > 1:  # the last setting first, down to one (it tells the rows apart)
            drop = settings[-1]
        elif "error" in droppable:
            drop = "error"
        else:
            drop = (last or settings)[0]
        shown.remove(drop)
        left_out.insert(0, drop)
    text_console = console  # for a title or caption printed apart (below): the whole width
    if console.width == 10_000:
        console = _Console(width=console.measure(table).maximum)
    # rich wraps a title and caption to the table's width: a narrow table (few columns) would fold
    # them into a column of words, so those wider than it go above and below it instead.
    width = min(console.measure(table).maximum, console.width)
    above = [table.title] if table.title and cell_len(str(table.title)) > width else []
    below = [table.caption] if table.caption and cell_len(str(table.caption)) > width else []
    table.title, table.caption = (None if above else table.title), (None if below else table.caption)
    for line in above:
        text_console.print(line, style="table.title")
    console.print(table)
    for line in below:
        text_console.print(line, style="table.caption")


# Seeds: runs that differ only in `seed` are one setting measured several times.
GROUP_METRICS = ["best_val_loss", "last_val_loss", "tokens_per_sec", "wall_s"]
BEST, NOISE, NO_SPREAD, APART = "best", "≈ noise", "≈ n=1", "apart"
SPREAD_SHOWN = ["best_val_loss", "last_val_loss"]  # on screen with ± std; the CSV has every std
NO_STD = "—"  # one seed: no spread known


def _stats(values: list[float]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (n-1: the seeds are a sample); None where undefined."""
    if not values:
        return None, None
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, None
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _as_compared(value: str) -> tuple[str, Any]:
    try:
        return ("number", float(value))
    except ValueError:
        return ("text", value)


def group_runs(rows: list[dict[str, Any]], metric: str = "best_val_loss") -> list[dict[str, Any]]:
    """One row per setting: runs whose overrides are the same once `seed` is left out.

    Each figure is the mean and sample std over the group's seeds with a finished run (n of them;
    failed, interrupted and incomplete runs stopped early and are left out). Runs of one seed are
    one measurement, repeated (on a CPU, a copy of it): their mean counts once, and the seeds
    column shows the repeats (`3×2`). Groups are ranked by the mean
    of `metric`, best first, and each is compared with the best one: `≈ noise` when the means are
    closer than the sum of the two stds (the difference is smaller than the seeds' spread), `≈ n=1`
    when either has a single seed (no spread known, so it cannot be told apart), `apart` otherwise.
    """
    groups: dict[tuple[tuple[str, Any], ...], dict[str, Any]] = {}
    for row in rows:
        settings = {k: v for k, v in row["overrides"].items() if k != SEED}
        # In any order on the command line, and 1e-3 typed as a sweep records it (0.001): one setting.
        same = tuple(sorted((k, _as_compared(v)) for k, v in settings.items()))
        group = groups.setdefault(same, {"settings": settings, "runs": []})
        group["runs"].append(row)
    result = []
    for group in groups.values():
        by_seed: dict[tuple[str, int], list[dict[str, Any]]] = {}
        for i, r in enumerate(group["runs"]):
            by_seed.setdefault(_seed_key(r, i), []).append(r)
        seeds = sorted(by_seed, key=lambda key: (_natural(key[0]), key[1]))
        finished = [[r for r in by_seed[s] if r["status"] == "finished"] for s in seeds]
        out: dict[str, Any] = {
            "settings": group["settings"],
            "seeds": ",".join(_seed_label(s, len(by_seed[s])) for s in seeds),
            "runs": len(group["runs"]),
            "n": sum(any(_finite(r.get(metric)) for r in runs) for runs in finished),
            "seed_count": len(seeds),  # on screen: n of these, "2/3"
        }
        for column in GROUP_METRICS:
            out[f"{column}_mean"], out[f"{column}_std"] = _stats(_per_seed(finished, column))
        result.append(out)
    higher_is_better = metric == "tokens_per_sec"
    key = f"{metric}_mean"

    def rank(group: dict[str, Any]) -> tuple[bool, float]:
        mean = group[key]
        return (mean is None, 0.0 if mean is None else (-mean if higher_is_better else mean))

    result.sort(key=rank)
    best = result[0]
    for group in result:
        group["vs_best"] = _versus(group, best, metric)
        group["delta"] = None if group[key] is None or best[key] is None else group[key] - best[key]
    return result


def _seed_key(row: dict[str, Any], index: int) -> tuple[str, int]:
    """The run's seed as a number is written (`01` is 1), or, unknown, its own: ("-", its index)."""
    seed = row["overrides"].get(SEED) or row.get("recorded_seed")
    if seed is None or seed == "":
        return "-", index
    try:
        return str(int(seed)), -1
    except ValueError:
        return str(seed), -1


def _seed_label(key: tuple[str, int], repeats: int) -> str:
    return key[0] + (f"×{repeats}" if repeats > 1 else "")


def _per_seed(finished: list[list[dict[str, Any]]], column: str) -> list[float]:
    """Each seed's figure (its finished runs in `finished`): the mean of its repeats, if any."""
    means = (_stats([r[column] for r in runs if _finite(r.get(column))])[0] for runs in finished)
    return [m for m in means if m is not None]


def _versus(group: dict[str, Any], best: dict[str, Any], metric: str) -> str | None:
    mean, std = group[f"{metric}_mean"], group[f"{metric}_std"]
    if mean is None:
        return None  # no finished run: nothing to compare
    if group is best:
        return BEST
    if std is None or best[f"{metric}_std"] is None:
        return NO_SPREAD
    if abs(mean - best[f"{metric}_mean"]) < std + best[f"{metric}_std"]:
        return NOISE
    return APART


def group_columns(groups: list[dict[str, Any]]) -> list[str]:
    keys: list[str] = []
    for group in groups:
        keys += [k for k in group["settings"] if k not in keys]
    figures = [f"{c}_{s}" for c in GROUP_METRICS for s in ("mean", "std")]
    return [*keys, "seeds", "runs", "n", "seed_count", *figures, "delta", "vs_best"]


def flat_groups(groups: list[dict[str, Any]]) -> tuple[list[str], list[dict[str, Any]]]:
    """The CSV's rows: one column per setting, then the seeds, counts and figures."""
    columns = group_columns(groups)
    settings = columns[: columns.index("seeds")]
    figures = columns[len(settings):]
    return columns, [{**{c: g["settings"].get(c, "") for c in settings}, **{c: g[c] for c in figures}}
                     for g in groups]


def _mean_std(mean: float | None, std: float | None, column: str) -> str:
    if mean is None:
        return "-"
    spread = NO_STD if std is None else _cell(std, column)
    return f"{_cell(mean, column)} ± {spread}"


def print_groups(
    title: str, groups: list[dict[str, Any]], metric: str, console: Console | None = None,
    swept: Collection[str] = (),
) -> None:
    """The settings that vary between groups or are `swept`, then mean ± std of each figure over
    the seeds."""
    columns, flat = flat_groups(groups)
    settings = columns[: columns.index("seeds")]
    shared = {c: flat[0][c] for c in settings if c not in swept and len({str(r[c]) for r in flat}) == 1}
    swept = [c for c in settings if c not in shared]
    figures = [c for c in GROUP_METRICS if any(g[f"{c}_mean"] is not None for g in groups)]
    rows = []
    for group, row in zip(groups, flat, strict=True):
        shown = {c: row[c] for c in swept}
        # n: the seeds with a finished run; "2/3" when one of three failed or stopped early.
        shown["seeds"] = row["seeds"]
        shown["n"] = row["n"] if row["n"] == group["seed_count"] else f"{row['n']}/{group['seed_count']}"
        for c in figures:
            mean, std = group[f"{c}_mean"], group[f"{c}_std"]
            shown[c] = _mean_std(mean, std, c) if c in SPREAD_SHOWN else _cell(mean, c)
        shown["vs_best"] = group["vs_best"] or "-"
        rows.append(shown)
    # The settings all groups share are those under the run table: not repeated here.
    notes = [f"≈: {metric} not told apart from the best's (|Δ mean| < sum of stds, or n=1)"]
    whole = ("seeds", "n", *figures, "vs_best")
    # On a narrow terminal the figures other than the ranking one go before the settings do.
    extra = tuple(c for c in ("wall_s", "tokens_per_sec", "last_val_loss", "best_val_loss") if c != metric)
    _print_fitted(title, [*swept, *whole], rows, notes, whole, ("n", *figures), console, extra)


def output_paths(csv_path: Path) -> tuple[Path, Path, Path]:
    """The runs' CSV, the settings' CSV and the curves' picture written for `csv_path`."""
    return (csv_path, csv_path.with_name(f"{csv_path.stem}_groups.csv"),
            csv_path.with_name(f"{csv_path.stem}_curves.png"))


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
        return columns[0] == "run" and {"status", *METRIC_COLUMNS} <= set(columns)
    return {"seeds", "runs", "n"} <= set(columns)


def check_outputs(paths: tuple[Path, Path, Path]) -> None:
    """Refuse, before anything is written, a folder that is not there or a file a report did not
    write: a report replaces only its own earlier output."""
    for path, role in zip(paths, ("runs", "groups", "curves"), strict=True):
        if not path.parent.is_dir():
            raise ChargptError(f"cannot write {path}: the folder {path.parent} does not exist; create it "
                               "or pass another --csv path")
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


def _drawn_by_matplotlib(path: Path) -> bool:
    with path.open("rb") as f:
        return b"Software\0Matplotlib" in f.read(4096)


STOPPED = ("interrupted", "killed", "incomplete")


def sweep_note(sweep_dir: Path, rows: list[dict[str, Any]]) -> str | None:
    """For a sweep still running: how far it has got. For one that stopped part-way (jobs stopped,
    or never started) or has failed jobs: what is missing, and the command that continues it,
    which trains the failed jobs again."""
    if (command := continue_command(sweep_dir)) is None:
        return None
    planned = planned_jobs(sweep_dir)
    missing = planned - len(rows) if planned is not None else 0
    if running := sum(r["status"] == "running" for r in rows):
        waiting = f", {missing} of {planned} not started yet" if missing > 0 else ""
        return f"this sweep is still running ({running} running{waiting}): this table is not its last"
    stopped = sum(r["status"] in STOPPED for r in rows)
    # A search kept in a storage continues with new trials in a new folder: its failed ones stay failed.
    failed = 0 if _in_a_storage(sweep_dir) else sum(r["status"] == "failed" for r in rows)
    if not stopped and missing <= 0 and not failed:
        return None
    again = ", which trains the failed jobs again," if failed else ""
    if not stopped and missing <= 0:
        jobs = _count(len(rows), "job")
        return f"{failed} of {jobs} of this sweep failed; continue it{again} with: {command}"
    parts = [f"{stopped} stopped"] if stopped else []
    parts += [f"{failed} failed"] if failed else []
    parts += [f"{missing} of {planned} never started"] if missing > 0 else []
    return f"this sweep stopped part-way ({', '.join(parts)}); continue it{again} with: {command}"


def _in_a_storage(sweep_dir: Path) -> bool:
    hydra = recorded_sweep(sweep_dir)  # None when unreadable: continue_command found none either
    return hydra is not None and stored_study(hydra)


STOPPED_RUNS_LISTED = 5  # resume commands printed; the table's status column names the rest


def stopped_runs_note(rows: list[dict[str, Any]], top: Path) -> str | None:
    """For a folder of runs that is not itself a sweep: the command that resumes each stopped run
    from its last checkpoint, or that it has none; a stopped or failed job of a sweep inside the
    folder is given its sweep's continue command instead (it also runs the jobs that never started,
    and trains the failed ones again)."""
    stopped = [r for r in rows if r["status"] in STOPPED]
    # A failed job too: continuing its sweep trains it again.
    sweeps = {r["run"]: _sweep_of(r["dir"], top) for r in rows if r["status"] in (*STOPPED, "failed")}
    alone = [r for r in stopped if sweeps[r["run"]] is None]
    checkpoints = {r["run"]: last_checkpoint(r["dir"]) for r in alone}
    # Each resumed with the settings of its latest launch (its first, or its latest resume).
    latest = {r["run"]: overrides_files(r["dir"])[-1] for r in alone}
    commands = [resume_command(r["dir"].resolve(), read_overrides(latest[r["run"]]),
                               launch_cwd(latest[r["run"]].parent))
                for r in alone if checkpoints[r["run"]] is not None]
    fresh = [shlex.quote(r["run"]) for r in alone if checkpoints[r["run"]] is None]
    listed = STOPPED_RUNS_LISTED
    lines = [f"{sweep}: {note}" for sweep in dict.fromkeys(s for s in sweeps.values() if s is not None)
             if (note := sweep_note(sweep, [r for r in rows if sweep in r["dir"].parents]))]
    if commands:
        each = "each" if len(commands) > 1 else "it"
        stopped_early = _count(len(commands), "run")
        lines.append(f"{stopped_early} stopped early; resume {each} from its last checkpoint with:")
        lines += [f"  {c}" for c in commands[:listed]]
        if len(commands) > listed:
            lines.append(f"  ... and {len(commands) - listed} more (the table's status column)")
    if fresh:
        names = " ".join(fresh[:listed]) + (" ..." if len(fresh) > listed else "")
        lines.append(f"{_count(len(fresh), 'run')} stopped before a first checkpoint, nothing to resume "
                     f"({names}): launch {'them' if len(fresh) > 1 else 'it'} again to start over")
    return "\n".join(lines) or None


def _sweep_of(run_dir: Path, top: Path) -> Path | None:
    """The folder of the sweep whose job `run_dir` is (it records the sweep), up to `top`."""
    for folder in run_dir.parents:
        if (folder / SWEEP_CONFIG).is_file():
            return folder
        if folder == top:
            return None
    return None


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'s' if n != 1 else ''}"


def report(sweep_dir: Path, csv_path: Path | None = None, sort_by: str = "best_val_loss") -> list[dict]:
    if not sweep_dir.is_dir():
        what = "is not a directory" if sweep_dir.exists() else "does not exist"
        raise ChargptError(f"{sweep_dir} {what}; give a sweep directory (outputs/multirun/...)")
    csv_path, groups_path, curves_path = outputs = output_paths(csv_path or sweep_dir / "report.csv")
    check_outputs(outputs)
    runs = find_runs(sweep_dir)
    if not runs:
        raise ChargptError(f"no runs in {sweep_dir} (no {CONFIG_DIR}/{OVERRIDES_FILE} in it); give a sweep "
                           "directory")
    rows_read = []
    for run in runs:
        try:
            rows_read.append(run_row(run, sweep_dir))
        except NotARun as err:  # a folder left by something else: the other runs are still reported
            print(f"warning: left out {run}: {err}", file=sys.stderr)
    if not rows_read:
        raise ChargptError(f"no readable runs in {sweep_dir}; give a sweep directory")
    ranked = sort_rows(rows_read, sort_by)
    columns, rows = flat_rows(ranked)
    counted = _count(len(rows), "run")
    metric = "best_val_loss" if sort_by == "run" else sort_by
    groups = group_runs(ranked, metric)
    swept = swept_settings(ranked, sweep_dir)
    # Output into a pipe whose reader stopped (`| head`) stops the printing, not the files: the
    # closed pipe is raised (exit 141) once they are written.
    closed = _printing(lambda: print_table(f"{sweep_dir} ({counted}, sorted by {sort_by})", columns, rows,
                                           metric=metric, swept=swept))
    closed = closed or _printing(lambda: print_groups(
        f"{_count(len(groups), 'setting')}: mean ± std over seeds, sorted by {metric}", groups, metric,
        swept=swept))
    write_csv(csv_path, columns, rows)
    write_csv(groups_path, *flat_groups(groups))
    if continue_command(sweep_dir) is not None:  # a sweep: continued as a whole, or still running
        note = sweep_note(sweep_dir, rows)
    else:
        note = stopped_runs_note(ranked, sweep_dir)
    closed = closed or _printing(lambda: print(*([note] if note else []), f"written: {csv_path}",
                                               f"written: {groups_path}", sep="\n", flush=True))
    write_curves(curves_path, sweep_dir, curve_runs(ranked, swept))
    if closed:
        raise BrokenPipeError
    return rows


def _printing(show: Callable[[], None]) -> bool:
    """Run `show`; True when its output met a closed pipe."""
    try:
        show()
    except BrokenPipeError:
        return True
    return False
