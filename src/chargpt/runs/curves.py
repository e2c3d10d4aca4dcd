"""The validation-loss curves of a sweep's runs in one picture (chargpt-report writes it beside
report.csv): one line per run of the report's rows, labelled by its name and the settings it set
that the sweep varied (curve_runs). The runs of one setting (differing only in seed) share a
colour, each seed with its own marker.

Each run's curve comes from what its loggers wrote: csv/metrics.csv (logger=csv) or the
TensorBoard event files (the default logger); a run with neither is left out of the picture.
"""

from __future__ import annotations

import csv
import logging
import math
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from chargpt import shell_words
from chargpt.files import atomic_path
from chargpt.glyphs import drawable, drawable_cut, families
from chargpt.metric_names import STEP, VAL_LOSS
from chargpt.overrides import is_path_key, setting_typed
from chargpt.plural import counted
from chargpt.run_layout import launched_with
from chargpt.runs.run_rows import (
    IN_FOLDER,
    SEED,
    common_folder,
    flat_rows,
    in_folder,
    natural_order,
    readable_draws,
    short_number,
    typed_keys,
    varying,
)
from chargpt.runs.seed_groups import setting_of, text_settings

PNG_SOFTWARE = "chargpt-report"
# A run that did not finish is drawn dashed (failed) or dotted (stopped, or still running).
LINE_STYLES = {"failed": "--", "killed": "--", "interrupted": ":", "incomplete": ":", "running": ":"}
SEED_MARKERS = "os^Dv<>PX*"  # the runs of one setting: one marker per seed
MARKERS_PER_LINE = 12  # a longer curve marks every few points, so its line stays readable
WIDTH_IN, PLOT_HEIGHT_IN, DPI = 9.0, 5.5, 110  # the legend's rows are added below the plot
# A label's line holds a search's four settings (`12: optimizer.lr=0.000998381, model.n_embd=192,
# model.n_layer=2, model.dropout=0.249711`); a longer label goes on over more lines, broken between
# settings. Cut at 96 characters instead, it lost the settings after the cut: runs told apart by
# optimizer.lr alone had one label. Labels of one line may take two or three columns.
LABEL_LINE_CHARS = 96
LABEL_INDENT = "    "  # a label's next lines, so that each run's entry reads as one
LEGEND_COLUMNS = 3
LABEL_VALUE_CHARS = 20  # a longer value (a prompt, a path's folders) is cut in a curve's label, as drawn
CSV_LOGS, EVENT_FILES = "csv/**/metrics.csv", "tensorboard/**/events.out.tfevents.*"  # in a run's folder


def csv_curve(run_dir: Path) -> list[tuple[int, float]]:
    points = {}
    for file in sorted(run_dir.glob(CSV_LOGS)):
        with file.open(newline="") as f:
            for row in csv.DictReader(f):
                if row.get(VAL_LOSS) and row.get(STEP):
                    points[int(row[STEP])] = float(row[VAL_LOSS])
    return sorted(points.items())


def tensorboard_curve(run_dir: Path) -> list[tuple[int, float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    points = {}
    # A run resumed after a kill logs again the steps after its last checkpoint: TensorBoard drops
    # the old ones, as it should, with a warning per file that tells a report reader nothing.
    tensorboard_log = logging.getLogger("tensorboard")
    for folder in sorted({p.parent for p in run_dir.glob(EVENT_FILES)}):
        events = EventAccumulator(str(folder), size_guidance={"scalars": 0})
        level = tensorboard_log.level
        tensorboard_log.setLevel(logging.ERROR)
        try:
            events.Reload()
        finally:
            tensorboard_log.setLevel(level)
        if VAL_LOSS in events.Tags().get("scalars", []):
            points.update({e.step: e.value for e in events.Scalars(VAL_LOSS)})  # later files win
    return sorted(points.items())


def keeps_a_log(run_dir: Path) -> bool:
    """Whether the run writes a log a curve is read from: it has one, or its logger (as launched)
    would write one when it validates. logger=none, mlflow and wandb keep none in the folder."""
    if any(run_dir.glob(CSV_LOGS)) or any(run_dir.glob(EVENT_FILES)):
        return True
    logger = launched_with(run_dir, "logger")
    # No record of its launch: say only that it has no curve.
    return logger is None or any(name in logger for name in ("tensorboard", "csv"))


def val_curve(run_dir: Path) -> list[tuple[int, float]]:
    """(step, validation loss) pairs of one run, from its CSV log or its TensorBoard events."""
    points = csv_curve(run_dir) or tensorboard_curve(run_dir)
    return [(s, v) for s, v in points if not math.isnan(v)]


@dataclass(frozen=True)
class CurveRun:
    """One run to draw: its legend label, its folder and how it stands (its line style)."""

    label: str
    folder: Path
    status: str | None = None
    setting: int = 0  # which setting (runs that differ only in seed share one): its colour
    seed: int = 0  # which of its setting's runs: its marker


def left_out(runs: list[CurveRun]) -> tuple[str, int]:
    """Why the runs without a curve have none, counted (no validation, or no log to read it from),
    and how many keep no log."""
    unlogged = sum(not keeps_a_log(run.folder) for run in runs)
    parts = [f"{len(runs) - unlogged} never validated" if len(runs) > unlogged else "",
             f"{unlogged} without a TensorBoard or CSV log" if unlogged else ""]
    return ", ".join(part for part in parts if part), unlogged


def curves_figure(sweep_dir: Path, runs: list[CurveRun]) -> Figure | None:
    """The runs' validation-loss curves (in the table's order), or None when no run has a curve."""
    curves = [(run, val_curve(run.folder)) for run in runs]
    missing = [run for run, points in curves if not points]
    curves = [(run, points) for run, points in curves if points]
    if not curves:
        return None
    fig = Figure(figsize=(WIDTH_IN, PLOT_HEIGHT_IN), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    settings = sorted({run.setting for run, _ in curves})
    colors = dict(zip(settings, line_colors(len(settings)), strict=False))  # a palette may hold more
    for run, points in curves:
        steps, losses = zip(*points, strict=True)
        ax.plot(
            steps, losses, color=colors[run.setting], marker=SEED_MARKERS[run.seed % len(SEED_MARKERS)],
            markevery=max(1, math.ceil(len(points) / MARKERS_PER_LINE)), markersize=4, linewidth=1.6,
            linestyle=LINE_STYLES.get(str(run.status), "-"),
            label=f"{drawable(run.label)}  ({losses[-1]:.3f})",
        )
    ax.set_xlabel("step")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # steps are whole: no 19.25 for one point
    ax.set_ylabel("validation loss")
    where = "/".join(sweep_dir.resolve().parts[-2:])  # e.g. multirun/example, not the whole path
    # Runs without a curve (no log, or stopped before validating) are missing: say so, and why.
    how_many = counted(len(curves), "run")
    if missing:
        how_many = f"{len(curves)} of {len(runs)} runs ({left_out(missing)[0]})"
    title = f"validation loss of {how_many}: {drawable(where)}"
    ax.set_title(title, fontsize=11, family=families(title))
    ax.grid(alpha=0.3)
    _legend_below(fig, fontsize=8 if len(curves) > 6 else 9, labels="".join(run.label for run, _ in curves))
    return fig


def label_value(value: str, whole: bool = False, path: bool = False) -> str:
    """A setting's value as its curve's label shows it: drawable, and cut to LABEL_VALUE_CHARS
    unless `whole`. A `path` is cut at its start instead, between folders, its file name kept whole
    (`…/my texts/b, c.txt`): cut at its end, `/srv/somewhere/scra…` hid what tells runs apart."""
    # A search's draw to 6 digits, as in the table: cut at 20 characters it kept 17 of them.
    value = short_number(value)
    if whole or not path or len(drawable(value)) <= LABEL_VALUE_CHARS or "/" not in value:
        return drawable(value) if whole or path else drawable_cut(value, LABEL_VALUE_CHARS)
    *folders, kept = value.rstrip("/").split("/")
    kept += "/" * value.endswith("/")  # a folder, `corpus/`, is kept whole too
    for folder in reversed(folders):
        if len(drawable(f"{IN_FOLDER}{folder}/{kept}")) > LABEL_VALUE_CHARS:
            break
        kept = f"{folder}/{kept}"
    return drawable(IN_FOLDER + kept)


def _one_setting(shown: str) -> str:
    """A label's value quoted as a shell takes it where it holds a comma, which otherwise reads as
    the end of the setting (`data.name=my ds, é, seed=1`); any other as it is, the label kept short."""
    return shell_words.quote(shown) if "," in shown else shown


def curve_label(
    name: str, settings: dict[str, str], whole: Collection[str] = (), typed: dict[str, str] | None = None
) -> str:
    """`name: key=value, ...` as drawn (drawable), or the name alone: two runs with the same settings
    stay apart. The name and every setting stay whole, over lines of up to LABEL_LINE_CHARS; a
    value is cut (label_value) unless its key is in `whole`, and quoted where it holds a comma. A
    setting a launch added is named as `typed` (`+new.key=1`), as the tables name it."""
    typed = typed or {}
    shown = {key: value and _one_setting(label_value(value, key in whole, is_path_key(key)))
             for key, value in settings.items()}
    given = [drawable(setting_typed(typed.get(key, key), value)) for key, value in shown.items()]
    if not given:
        return drawable(name)
    lines = [f"{drawable(name)}: {given[0]}"]
    for setting in given[1:]:
        if len(lines[-1]) + len(", ") + len(setting) <= LABEL_LINE_CHARS:
            lines[-1] += f", {setting}"
        else:
            lines[-1] += ","
            lines.append(LABEL_INDENT + setting)
    return "\n".join(lines)


def curve_runs(
    rows: list[dict[str, Any]], swept: Collection[str] = (), drawn: Collection[str] = ()
) -> list[CurveRun]:
    """The runs (run_row's, in the table's order) for the curves: each labelled by its name and,
    of the settings that vary or are `swept`, those it set (one it left at its default is not
    `key=`), one a launch added named as typed (`+new.key=1`), a search's `drawn` one as the table
    shows it (0.00134)."""
    columns, flat = flat_rows(rows)
    shown, _ = varying(columns, flat, swept)
    settings = shown[1 : shown.index("status")]
    readable = {k: readable_draws(row["overrides"][k] for row in rows if k in row["overrides"])
                for k in settings if k in drawn}
    rows = [{**row, "overrides": {k: readable.get(k, {}).get(v, v) for k, v in row["overrides"].items()}}
            for row in rows]
    # Paths in one folder are labelled from there (`…/b.txt`): cut to its width, a label kept the
    # folder, the same for every run.
    folders = {k: common_folder(k, (row["overrides"].get(k, "") for row in rows)) for k in settings}
    values = {k: {in_folder(row["overrides"][k], folders[k]) for row in rows if k in row["overrides"]}
              for k in settings}
    # Values that the cut would make alike (`…/shakespeare_v1.txt` and `…/shakespeare_v2.txt` both
    # `…/shakespeare_v…`) are shown whole: they are what tells their runs apart.
    whole = {k for k, given in values.items()
             if len({label_value(v, path=is_path_key(k)) for v in given}) < len(given)}
    # One marker per seed, the same in every setting (seed 1's curves all circles); a run that sets
    # no seed takes its place among its setting's runs.
    typed = typed_keys(rows)
    seeds = sorted({row["overrides"][SEED] for row in rows if SEED in row["overrides"]}, key=natural_order)
    groups: dict[Any, int] = {}  # a setting -> its runs so far
    runs = []
    # The data settings that tell apart the texts of runs of one setting, first in their labels.
    text_of = (text_settings([row["overrides"] for row in rows], [row.get("text") for row in rows])
               or [{}] * len(rows))
    for i, row in enumerate(rows):
        # Runs of one setting on two texts are two settings (seed_groups.group_runs): two colours.
        setting = (setting_of(row["overrides"]), row.get("text"))
        groups[setting] = groups.get(setting, 0) + 1
        seed = row["overrides"].get(SEED)
        runs.append(CurveRun(
            curve_label(row["run"], {**text_of[i], **{k: in_folder(row["overrides"][k], folders[k])
                                                      for k in settings if k in row["overrides"]}},
                        whole, typed),
            row["dir"], None if row.get("status") is None else str(row["status"]),
            setting=list(groups).index(setting),
            seed=seeds.index(seed) if seed is not None else groups[setting] - 1,
        ))
    return runs


def line_colors(count: int) -> list[Any]:
    """Distinct colours for `count` lines: tab10's, then tab20's lighter shades, then a colour map
    sampled evenly (past 20 runs no palette keeps every line apart)."""
    if count <= 10:
        return list(colormaps["tab10"].colors)
    if count <= 20:
        pairs = colormaps["tab20"].colors  # dark, light, dark, ...: the dark ones first, as tab10
        return [*pairs[0::2], *pairs[1::2]]
    return [colormaps["turbo"](i / (count - 1)) for i in range(count)]


def _legend_below(fig: Figure, fontsize: int, labels: str) -> None:
    """The legend under the plot, outside it, so it never hides a curve: in as many columns as fit
    the figure's width, and the figure made taller by its rows so the plot keeps its height. Its
    font is the default one, then an installed font for each character of `labels` that lacks."""
    prop = {"family": families(labels), "size": fontsize}
    renderer = fig.canvas.get_renderer()
    for columns in range(LEGEND_COLUMNS, 0, -1):
        legend = fig.legend(loc="outside lower center", ncols=columns, prop=prop,
                            title="run (last value)", title_fontsize=8, frameon=False)
        if columns == 1 or legend.get_window_extent(renderer).width <= fig.bbox.width * 0.96:
            break
        legend.remove()
    # One column of labels wider than the figure (capital letters, code points): the figure widens
    # to hold it, where its ends were cut off.
    fig.set_figwidth(max(WIDTH_IN, legend.get_window_extent(renderer).width / fig.dpi / 0.96))
    fig.set_figheight(PLOT_HEIGHT_IN + legend.get_window_extent(renderer).height / fig.dpi)


def write_curves(png: Path, sweep_dir: Path, runs: list[CurveRun]) -> Path | None:
    """Draw the curves into `png` and say so; when no run has a curve, nothing is written and the
    report says why."""
    fig = curves_figure(sweep_dir, runs)
    if fig is None:
        if runs:
            why, unlogged = left_out(runs)
            fix = "; logger=tensorboard or csv writes one" if unlogged else ""
            print(f"no curves drawn ({counted(len(runs), 'run')}: {why}{fix})")
        return None
    # Whole or not at all: a report stopped mid-write keeps the earlier picture, where an empty one
    # (a kill between its opening and its first write) was refused by every later report.
    with atomic_path(png, durable=False) as tmp:  # (its name ends .partial: the format is named)
        fig.savefig(tmp, format="png", metadata={"Software": PNG_SOFTWARE})  # how a later report knows it
    print(f"written: {png}")
    return png
