"""chargpt-report's two tables on the terminal, the runs' and the settings': each fitted to the
terminal's width, its setting columns wrapped, then columns left out and named in the caption (the
CSVs keep them all)."""

from __future__ import annotations

import os
from collections.abc import Collection
from typing import Any

from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

from chargpt import shell_words
from chargpt.errors import first_line
from chargpt.overrides import setting_typed
from chargpt.plural import counted
from chargpt.runs.report_figures import FORMATS, GROUP_METRICS, METRIC_COLUMNS, SPREAD_SHOWN
from chargpt.runs.run_rows import (
    IN_FOLDER,
    SEED,
    common_folder,
    in_folder,
    readable_draws,
    short_number,
    varying,
)
from chargpt.runs.same_text import text_ends
from chargpt.runs.seed_groups import flat_groups, several_texts

SETTING_MIN_WIDTH = 12
# A setting's least width where 12 cells each would leave out a setting that tells rows apart: its
# values wrap further and its name is shortened to its last part (`lr`), named in full under it.
SETTING_NARROWEST = 6
NARROWEST = 40  # the narrowest terminal a table is fitted to
HEADER_WIDTH = 24  # a setting's name is folded only when longer than this
ERROR_WIDTH = 50  # the narrowest an error column is made (a shorter error: its width)
ERRORS_SAID = 5  # failed runs whose error is said under a table too narrow for the column
WHOLE = ("run", "status", *METRIC_COLUMNS)  # never cropped or wrapped


def _cell(value: Any, column: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, (int, float)) and column in FORMATS:
        return FORMATS[column].format(value)
    return short_number(str(value), SETTING_MIN_WIDTH)  # on screen; the CSV keeps every digit


def _min_width(
    column: str, rows: list[dict[str, Any]], whole: tuple[str, ...] = WHOLE, narrow: bool = False
) -> int:
    """The narrowest the column can be: whole for the run, status and metrics; a setting's values
    wrap, but not its name (up to HEADER_WIDTH): `budget_second` over `s` read as two words.
    `narrow`: the settings down to SETTING_NARROWEST, their names shortened (_short_names)."""
    width = _natural_width(column, rows)
    if column in whole:
        return width
    if column == "error":
        return min(width, ERROR_WIDTH)
    if narrow:  # as wide as its shortened name, and its values up to SETTING_NARROWEST (`bigram`)
        values = min(_values_width(column, rows), SETTING_NARROWEST)
        return min(width, max(cell_len(_last_part(column)), values))
    return min(width, max(SETTING_MIN_WIDTH, min(cell_len(column), HEADER_WIDTH)))


def _last_part(column: str, parts: int = 1) -> str:
    """A setting's name by its last `parts` parts, as typed (`optimizer.lr`: `lr`; `+a.b.c`: `+c`)."""
    prefix = column[: len(column) - len(column.lstrip("+~"))]
    return prefix + ".".join(column[len(prefix):].split(".")[-parts:])


def _short_names(columns: list[str], widths: dict[str, int]) -> dict[str, str]:
    """The setting columns narrower than their name, each named by as few of its last parts as tell
    it from the other columns (`lr` for optimizer.lr; `a.path`, `b.path` for two paths)."""
    short = {}
    for column in (c for c, width in widths.items() if width < cell_len(c)):
        parts = 1
        while (name := _last_part(column, parts)) != column and any(
            _last_part(other, parts) == name for other in columns if other != column
        ):
            parts += 1
        if name != column:
            short[column] = name
    return short


def _natural_width(column: str, rows: list[dict[str, Any]]) -> int:
    """The column's width unwrapped, in terminal cells (an emoji takes two): its name or its widest
    value's longest line."""
    return max(cell_len(column), _values_width(column, rows))


def _values_width(column: str, rows: list[dict[str, Any]]) -> int:
    """The widest line of the column's values, in terminal cells."""
    return max((cell_len(line) for row in rows for line in _cell(row[column], column).splitlines()),
               default=0)


def _wrapped_widths(
    shown: list[str], rows: list[dict[str, Any]], whole: tuple[str, ...], room: int, narrow: bool = False
) -> dict[str, int]:
    """The widths of the columns that wrap, so that the table fits `room` cells: the widest is
    narrowed first, a cell at a time, and none below its least width (_min_width). rich's own
    narrowing takes a column below its least width too, which then takes its cells back: the table
    came out wider than the terminal and was cut off on the right. `narrow`: a setting's name is
    shortened before its values wrap, and given back whole where room is left."""
    widths = {c: _natural_width(c, rows) for c in shown}
    least = {c: _min_width(c, rows, whole, narrow) for c in shown if c not in whole}
    if narrow:  # `optimizer.lr` over `1e-3`: 12 cells, where `lr` takes 4 and leaves 8 to a path
        widths.update({c: max(_values_width(c, rows), least[c]) for c in least})
    excess = sum(width + 3 for width in widths.values()) + 1 - room  # as fits() counts the borders
    while excess > 0 and (narrowable := [c for c in least if widths[c] > least[c]]):
        widths[max(narrowable, key=widths.__getitem__)] -= 1
        excess -= 1
    for column in (c for c in least if narrow and widths[c] < cell_len(c) <= widths[c] - excess):
        excess += cell_len(column) - widths[column]
        widths[column] = cell_len(column)
    return {c: widths[c] for c in least}


def _table(
    title: str, shown: list[str], rows: list[dict[str, Any]], caption: str | None,
    whole: tuple[str, ...] = WHOLE, right: tuple[str, ...] = tuple(METRIC_COLUMNS),
    widths: dict[str, int] | None = None, ends: Collection[int] = (), narrow: bool = False,
    names: dict[str, str] | None = None,
) -> Table:
    # Text, not str: rich would read a path's or a setting's brackets as markup (`a[/]b` raises).
    # The notes under it left-aligned: one a line, a list reads down its left edge.
    # `widths`: those of the columns that wrap (_wrapped_widths), given, not left to rich.
    # `ends`: the rows after which a line is drawn (where the next text's rows begin).
    # `narrow`, `names`: the settings narrowed below SETTING_MIN_WIDTH, and their shortened names.
    widths, names = widths or {}, names or {}
    table = Table(title=Text(title), caption=Text(caption) if caption else None, caption_justify="left")
    for column in shown:
        if column == "error":  # wrapped in the room there is: cut at 50 characters, it lost its end
            table.add_column(Text(column), min_width=_min_width(column, rows, whole), overflow="fold",
                             width=widths.get(column))
        elif column in whole:
            justify = "right" if column in right else "left"
            table.add_column(Text(column), justify=justify, min_width=_min_width(column, rows, whole),
                             no_wrap=True)
        else:  # a swept setting: wraps, down to a width that stays readable
            table.add_column(Text(names.get(column, column)), overflow="fold",
                             min_width=_min_width(column, rows, whole, narrow), width=widths.get(column))
    styles = {"failed": "red", "killed": "red", "interrupted": "yellow", "incomplete": "yellow"}
    for i, row in enumerate(rows):
        table.add_row(*(Text(_cell(row[c], c)) for c in shown), style=styles.get(str(row.get("status"))),
                      end_section=i in ends)
    return table


def _typed_names(
    columns: list[str], rows: list[dict[str, Any]], swept: Collection[str], typed: dict[str, str]
) -> tuple[list[str], list[dict[str, Any]], set[str]]:
    """The columns, rows and `swept` with each setting a launch added named as typed (`typed`:
    {"new.key": "+new.key"}), as a command takes it; the CSVs keep the setting's name."""
    if not typed:
        return columns, rows, set(swept)
    columns = [typed.get(c, c) for c in columns]
    rows = [{typed.get(c, c): value for c, value in row.items()} for row in rows]
    return columns, rows, {typed.get(c, c) for c in swept}


def _draws_readable(rows: list[dict[str, Any]], drawn: Collection[str]) -> list[dict[str, Any]]:
    """The rows with each value of a `drawn` column (a search's draws) shown to the digits that tell
    them apart (readable_draws); the CSVs keep every digit."""
    rows = [dict(row) for row in rows]
    for column in (c for c in drawn if rows and c in rows[0]):
        shown = readable_draws(str(row[column]) for row in rows if row[column] is not None)
        for row in rows:
            row[column] = shown.get(str(row[column]), row[column])
    return rows


def print_table(
    title: str, columns: list[str], rows: list[dict[str, Any]], metric: str = "best_val_loss",
    swept: Collection[str] = (), typed: dict[str, str] | None = None, drawn: Collection[str] = (),
    ends: Collection[int] = (), said: list[str] | None = None,
) -> None:
    """The screen shows the settings that vary or are `swept` only; the CSV has every column. The
    table fits the terminal: setting columns wrap, then the seed is left out (named in the caption),
    then the other settings the rest tell the rows apart without, from the last, then the error
    column, the metrics other than the ranking `metric`, then the settings are narrowed (names
    shortened), and the settings left out, from the last down to the first; run, status and what is
    shown of the
    metrics stay whole. A setting a launch added is named as `typed` (`+new.key`); a search's
    `drawn` settings are shown to the digits that tell their values apart. The rows are ranked
    within each text, a line after each of `ends` (same_text.text_ends). `said`: lines under it."""
    columns, rows, swept = _typed_names(columns, _draws_readable(rows, drawn), swept, typed or {})
    shown, shared = varying(columns, rows, swept)
    if not any(row["error"] for row in rows):
        shown.remove("error")
    # As a shell takes them: a prompt with a space or an apostrophe pastes into a command as shown.
    notes = ["shared: " + shell_words.join(setting_typed(k, v) for k, v in shared.items())] if shared else []
    if ends:
        notes.append(RANKED_PER_TEXT.format(what="runs"))
    notes += said or []
    last = tuple(c for c in reversed(METRIC_COLUMNS) if c != metric)
    # A figure the same in every run (the steps of a sweep without a budget) tells no run apart: on
    # a narrow terminal it goes first, its value said once under the table.
    alike = tuple(c for c in last if len(rows) > 1 and len({_cell(row[c], c) for row in rows}) == 1)
    # A seed is a replicate, which the settings' table groups over: it goes before a setting that
    # tells settings apart, or rows of two settings would look alike but for their seed.
    _print_fitted(title, shown, rows, notes, WHOLE, tuple(METRIC_COLUMNS), drop_first=alike, drop_last=last,
                  replicates=(SEED,), ends=ends)


class _Console(Console):
    """rich's console, except that output into a closed pipe (`| head`) raises BrokenPipeError,
    where rich would end the process with exit 1: the report still writes its files."""

    def on_broken_pipe(self) -> None:
        raise BrokenPipeError


# The width of a console that writes whole lines (into a file or pipe): no table is that wide.
WHOLE_LINES = 10_000


def _fitted_console() -> Console:
    """The console a table is fitted to: the terminal's width; into a file or pipe, or a terminal
    too narrow for a table (COLUMNS=0 printed none, 20 a run column of no width), whole lines,
    nothing cropped."""
    console = _Console()
    if (not console.is_terminal and "COLUMNS" not in os.environ) or console.width < NARROWEST:
        console = _Console(width=WHOLE_LINES)
    return console


def _print_fitted(
    title: str, shown: list[str], rows: list[dict[str, Any]], notes: list[str],
    whole: tuple[str, ...], right: tuple[str, ...], drop_first: tuple[str, ...] = (),
    drop_last: tuple[str, ...] = (), replicates: tuple[str, ...] = (), ends: Collection[int] = (),
) -> None:
    """Print the table at the terminal's width: columns not in `whole` wrap, then columns are
    left out (named in the caption): the `drop_first` ones, the settings the others tell the rows
    apart without, from the last (the `replicates` among them before the others), the error
    column, the `drop_last` ones, then the settings are narrowed below SETTING_MIN_WIDTH (their
    names shortened, said in the caption), and the settings left, from the last down to the first."""
    console = _fitted_console()
    rows, notes = _without_common_folders(shown, rows, notes, whole)
    shown, left_out, narrow = _columns_that_fit(shown, rows, whole, drop_first, drop_last, replicates,
                                                console.width)
    widths = _wrapped_widths(shown, rows, whole, console.width, narrow)
    names = _short_names(shown, widths) if narrow else {}
    shortened = ["shortened: " + ", ".join(f"{short} = {column}" for column, short in names.items())]
    caption = "\n".join([*notes, *(shortened if names else []), *_left_out_notes(rows, left_out, drop_first)])
    table = _table(title, shown, rows, caption or None, whole, right, widths, ends, narrow, names)
    _print_table(table, console)


def _columns_that_fit(
    shown: list[str], rows: list[dict[str, Any]], whole: tuple[str, ...], drop_first: tuple[str, ...],
    drop_last: tuple[str, ...], replicates: tuple[str, ...], width: int,
) -> tuple[list[str], list[str], bool]:
    """The columns shown in `width`, those left out, in _print_fitted's order, and whether the
    settings are narrowed below SETTING_MIN_WIDTH: before one that tells rows apart is left out (at
    60 columns, of `data.path`, `optimizer.lr` and `model`, the rate was; two runs read alike)."""
    every, shown = list(shown), list(shown)
    left_out: list[str] = []
    narrow = False

    def fits(columns: list[str], narrowed: bool) -> bool:
        # Each column has one space of padding either side and a border; one more border closes it.
        return sum(_min_width(c, rows, whole, narrowed) + 3 for c in columns) + 1 <= width

    while True:
        droppable = [c for c in shown if c not in whole]
        first = [c for c in drop_first if c in shown]
        last = [c for c in drop_last if c in shown]
        if fits(shown, narrow) or not first + droppable + last:
            break
        # The replicates last in line, so the first to go: `sorted` keeps the others' order.
        settings = sorted((c for c in droppable if c != "error"), key=lambda c: c in replicates)
        # A setting that alone tells two rows apart goes after the measures: left out, `1e-3 tiny`
        # and `1e-3 bigram` both read `1e-3`.
        spare = [c for c in settings if c in replicates or _apart_without(c, settings, rows, replicates)]
        if first:
            drop = first[0]
        elif len(settings) > 1 and spare:  # the last one first, down to one
            drop = spare[-1]
        elif "error" in droppable:
            drop = "error"
        elif last:
            drop = last[0]
        elif settings and not narrow:
            narrow = True
            continue
        else:
            drop = settings[-1]
        shown.remove(drop)
        left_out.insert(0, drop)
    # A narrow column left out before a wide one went (the error, a metric) may fit again; one of
    # `drop_first`, the least wanted, only once every other one is back (a figure came back in
    # place of the setting that told two rows apart).
    for column in list(left_out):
        if column in drop_first and any(c not in drop_first for c in left_out):
            continue
        # A measure comes back only where it fits beside settings of SETTING_MIN_WIDTH: it went first.
        is_setting = column not in whole and column != "error"
        if fits(again := [c for c in every if c in shown or c == column], narrow and is_setting):
            shown = again
            left_out.remove(column)
    return shown, left_out, narrow


def _apart_without(
    column: str, settings: list[str], rows: list[dict[str, Any]], replicates: tuple[str, ...]
) -> bool:
    """Whether the `settings` shown but `column` (and the `replicates`) tell apart every two rows
    that they tell apart with it, as the rows are shown (_cell)."""
    def told(columns: list[str]) -> int:
        return len({tuple(_cell(row[c], c) for c in columns) for row in rows})

    kept = [c for c in settings if c not in replicates]
    return told([c for c in kept if c != column]) == told(kept)


def _left_out_notes(
    rows: list[dict[str, Any]], left_out: list[str], drop_first: tuple[str, ...]
) -> list[str]:
    """What the caption says of the columns left out: their one value, their names, the errors."""
    # A failed run's error left out of a narrow table is said under it: the CSV alone had it. Runs
    # that failed alike (a missing file, memory) are named together: each said it again, the same
    # lines over and over, and the other errors fell past the last said.
    failed: dict[str, list[str]] = {}
    for row in rows:
        if row.get("error"):
            failed.setdefault(first_line(row["error"]), []).append(str(row["run"]))
    errors = [f"{'runs' if len(runs) > 1 else 'run'} {', '.join(runs)} failed: {error}"
              for error, runs in failed.items()]
    if "error" not in left_out or not errors:
        errors = []
    elif len(errors) > ERRORS_SAID:
        unsaid = sum(len(runs) for runs in list(failed.values())[ERRORS_SAID:])
        errors[ERRORS_SAID:] = [f"{counted(unsaid, 'more run')} failed (see the CSV)"]
    # A left-out column of one value in every row is said with it (`steps=300`), not only named.
    alike = {c: _cell(rows[0][c], c) for c in left_out if c in drop_first and c != "error"
             and len(rows) > 1 and len({_cell(row[c], c) for row in rows}) == 1}
    named = [c for c in left_out if c not in alike and not (c == "error" and errors)]
    same = " ".join(f"{c}={v}" for c, v in alike.items())
    # One line a note: run together with `; ` they wrapped into one paragraph, a note starting
    # mid-line.
    return [*([f"the same in every row: {same}"] if alike else []),
            *(["not shown (see the CSV): " + ", ".join(named)] if named else []),
            *errors]


def _print_table(table: Table, console: Console) -> None:
    """Print `table`, its title and caption above and below it where wider than the table."""
    text_console = console  # for a title or caption printed apart (below): the whole width
    if console.width == WHOLE_LINES:
        console = _Console(width=console.measure(table).maximum)
    # rich wraps a title and caption to the table's width: a narrow table (few columns) would fold
    # them into a column of words, so those wider than it go above and below it instead.
    width = min(console.measure(table).maximum, console.width)
    above = [table.title] if table.title and cell_len(str(table.title)) > width else []
    widest_note = max((cell_len(line) for line in str(table.caption or "").splitlines()), default=0)
    below = [table.caption] if table.caption and widest_note > width else []
    table.title, table.caption = (None if above else table.title), (None if below else table.caption)
    for line in above:
        text_console.print(line, style="table.title")
    console.print(table)
    for line in below:
        text_console.print(line, style="table.caption")


def _without_common_folders(
    shown: list[str], rows: list[dict[str, Any]], notes: list[str], whole: tuple[str, ...]
) -> tuple[list[dict[str, Any]], list[str]]:
    """A setting whose values are paths in one folder shows each from there (`…/a.txt`), and the
    folder once in the notes: the whole paths wrapped over many lines, alike in every row."""
    rows, notes = [dict(row) for row in rows], list(notes)
    for column in (c for c in shown if c not in whole and c != "error"):
        folder = common_folder(column, (str(row[column] or "") for row in rows))
        if folder:
            for row in rows:
                row[column] = in_folder(str(row[column] or ""), folder) or row[column]
            notes.append(f"{IN_FOLDER} in {column}: {folder}")
    return rows, notes


NO_STD = "—"  # one seed: no spread known
# Under a table whose rows were trained on several texts, ranked within each (same_text.py).
RANKED_PER_TEXT = ("{what} ranked within each text, a line between texts: losses on different texts do not "
                   "compare")
# Under the settings' table of a sweep of several texts, whose losses do not compare.
PER_TEXT_NOTE = ("vs_best: against the best setting trained on the same text (losses on different texts "
                 "do not compare; -: the only setting on its text)")


def _mean_std(mean: float | None, std: float | None, column: str) -> str:
    if mean is None:
        return "-"
    spread = NO_STD if std is None else _cell(std, column)
    return f"{_cell(mean, column)} ± {spread}"


# In place of the settings' table when each setting ran once (an Optuna search, a sweep without
# seeds): that table would repeat the runs' rows, each `≈ n=1` with no spread (its CSV is written).
ONCE_EACH = ("settings: each ran once (one seed), so a table of their mean ± std over seeds would repeat "
             "the runs above; run each with several seeds (seed=1,2,3) to compare them")


def print_groups(
    title: str, groups: list[dict[str, Any]], metric: str, swept: Collection[str] = (),
    typed: dict[str, str] | None = None, drawn: Collection[str] = (),
) -> None:
    """The settings that vary between groups or are `swept`, then mean ± std of each figure over
    the seeds; where each setting ran once, one line (ONCE_EACH) instead. A setting a launch added
    is named as `typed` (`+new.key`); a search's `drawn` settings are shown as in the runs' table."""
    if all(group["runs"] == 1 for group in groups):
        _fitted_console().print(Text(ONCE_EACH))  # wrapped at the table's width
        return
    columns, flat = flat_groups(groups)
    columns, flat, swept = _typed_names(columns, _draws_readable(flat, drawn), swept, typed or {})
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
            # The ranking figure with its spread too: vs_best compares it by its std (--sort wall_s).
            shown[c] = _mean_std(mean, std, c) if c in SPREAD_SHOWN or c == metric else _cell(mean, c)
        shown["vs_best"] = group["vs_best"] or "-"
        rows.append(shown)
    # The settings all groups share are those under the run table: not repeated here.
    notes = [f"≈: {metric} not told apart from the best's (|Δ mean| < sum of stds, or n=1)"]
    texts = [group["text"] for group in groups]
    ends = text_ends(texts) if several_texts(groups, metric) else set()
    if ends:
        notes += [RANKED_PER_TEXT.format(what="settings"), PER_TEXT_NOTE]
    whole = ("seeds", "n", *figures, "vs_best")
    # On a narrow terminal the figures other than the ranking one go before the settings do.
    extra = tuple(c for c in reversed(GROUP_METRICS) if c != metric)
    # The seeds' list goes before any setting: without those, rows differ only in their figures.
    _print_fitted(title, [*swept, *whole], rows, notes, whole, ("n", *figures), (*extra, "seeds"), ends=ends)
