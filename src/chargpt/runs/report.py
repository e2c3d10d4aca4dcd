"""chargpt-report SWEEP_DIR: one table of every run of a sweep, best first, then one of its
settings (the runs that differ only in `seed` grouped: mean ± std over the seeds, each compared
with the best setting), printed and as CSV; a note on what is left to do (a sweep to continue, runs
to resume); the runs' validation-loss curves. Each part has its module (run_rows, seed_groups,
report_table, sweep_notes, report_files, curves): report() puts them together, after checking
that the files it writes replace only a report's own.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from chargpt.errors import ChargptError
from chargpt.plural import counted
from chargpt.run_layout import CONFIG_DIR, OVERRIDES_FILE, SWEEP_CONFIG, run_folders
from chargpt.run_state import held_now
from chargpt.runs.curves import curve_runs, write_curves
from chargpt.runs.report_figures import PER_TEXT
from chargpt.runs.report_files import check_outputs, output_paths, write_csv
from chargpt.runs.report_table import print_groups, print_table
from chargpt.runs.run_rows import NotARun, comparable_paths, flat_rows, run_row, sort_rows, typed_keys
from chargpt.runs.same_text import each_text_together, text_ends
from chargpt.runs.seed_groups import flat_groups, group_runs, text_labels
from chargpt.runs.sweep_notes import later_checkpoints_note, stopped_runs_note, sweep_note
from chargpt.runs.sweep_record import (
    as_typed_in_sweeps,
    drawn_settings,
    one_number_typed_twice,
    recorded_sweep,
    swept_settings,
)

# It reads any folder of runs: a sweep's, or one run's (it said only "a sweep directory").
GIVE_A_FOLDER = "give a sweep's folder or a run's (outputs/multirun/... or outputs/DATE/TIME)"


def report(sweep_dir: Path, csv_path: Path | None = None, sort_by: str = "best_val_loss") -> list[dict]:
    if not sweep_dir.is_dir():
        what = "is not a directory" if sweep_dir.exists() else "does not exist"
        raise ChargptError(f"{sweep_dir} {what}; {GIVE_A_FOLDER}")
    csv_path, groups_path, curves_path = outputs = output_paths(csv_path or sweep_dir / "report.csv")
    check_outputs(outputs, sweep_dir)
    runs, unrecorded = run_folders(sweep_dir)
    if not runs and unrecorded:
        raise ChargptError(f"no runs to report in {sweep_dir}: {_unrecorded(unrecorded)}")
    if not runs and (sweep_dir / SWEEP_CONFIG).is_file() and held_now(sweep_dir):  # (its process holds it)
        raise ChargptError(f"no runs in {sweep_dir} yet: its sweep is still running, its first job "
                           "starting; report it again once that job has started")
    if not runs:
        raise ChargptError(f"no runs in {sweep_dir} (no {CONFIG_DIR}/{OVERRIDES_FILE} in it); "
                           f"{GIVE_A_FOLDER}")
    if unrecorded:  # not left out unsaid: a report missing a run reads as a report of every run
        print(f"warning: left out {_unrecorded(unrecorded)}", file=sys.stderr)
    rows_read = []
    for run in runs:
        try:
            rows_read.append(run_row(run, sweep_dir))
        except NotARun as err:  # a folder left by something else: the other runs are still reported
            print(f"warning: left out {run}: {err}", file=sys.stderr)
    if not rows_read:
        raise ChargptError(f"no readable runs in {sweep_dir}; {GIVE_A_FOLDER}")
    ranked = sort_rows(comparable_paths(as_typed_in_sweeps(rows_read, sweep_dir)), sort_by)
    # A loss is ranked within its text: one ranking across texts read as if their losses compared.
    texts = [row["text"] for row in ranked] if sort_by in PER_TEXT else [None] * len(ranked)
    order = each_text_together(texts)
    ranked, texts = [ranked[i] for i in order], [texts[i] for i in order]
    columns, rows = flat_rows(ranked, text_labels([row["overrides"] for row in ranked],
                                                  [row["text"] for row in ranked]))
    how_many = counted(len(rows), "run")
    metric = "best_val_loss" if sort_by == "run" else sort_by
    groups = group_runs(ranked, metric)
    swept = swept_settings(ranked, sweep_dir)
    typed = typed_keys(ranked)
    drawn = drawn_settings(ranked, sweep_dir)
    # Output into a pipe whose reader stopped (`| head`) stops the printing, not the files: the
    # closed pipe is raised (exit 141) once they are written.
    said = one_number_typed_twice(ranked, sweep_dir)  # `-m optimizer.lr=1e-3,0.001`: rows alike, said why
    closed = _printing(lambda: print_table(f"{sweep_dir} ({how_many}, sorted by {sort_by})", columns, rows,
                                           metric=metric, swept=swept, typed=typed, drawn=drawn,
                                           ends=text_ends(texts), said=said))
    closed = closed or _printing(lambda: print_groups(
        f"{counted(len(groups), 'setting')}: mean ± std over seeds, sorted by {metric}", groups, metric,
        swept=swept, typed=typed, drawn=drawn))
    write_csv(csv_path, columns, rows)
    write_csv(groups_path, *flat_groups(groups))
    if recorded_sweep(sweep_dir) is not None:  # a sweep: continued as a whole, or still running
        to_do = sweep_note(sweep_dir, ranked, runs)
    else:
        to_do = stopped_runs_note(ranked, sweep_dir)
    notes = [note for note in (later_checkpoints_note(ranked), to_do) if note]
    closed = closed or _printing(lambda: print(*notes, f"written: {csv_path}",
                                               f"written: {groups_path}", sep="\n", flush=True))
    write_curves(curves_path, sweep_dir, curve_runs(ranked, swept, drawn))
    if closed:
        raise BrokenPipeError
    return rows


def _unrecorded(runs: list[Path]) -> str:
    """The runs launched with hydra.output_subdir=null, which the report has no settings of."""
    more = f" and {len(runs) - 1} more" if len(runs) > 1 else ""
    return (f"{counted(len(runs), 'run')} launched with hydra.output_subdir=null, so with no "
            f"{CONFIG_DIR}/{OVERRIDES_FILE} to read settings from: {runs[0]}{more}; launch runs to report "
            "without hydra.output_subdir=null")


def _printing(show: Callable[[], None]) -> bool:
    """Run `show`; True when its output met a closed pipe."""
    try:
        show()
    except BrokenPipeError:
        return True
    return False
