"""The note under chargpt-report's tables on what is left to do: how far a sweep still running
has got; for a sweep stopped part-way or with failed jobs, the command that continues it; for runs
stopped early outside a sweep, the command that resumes each from its last checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from chargpt import shell_words
from chargpt.checkpoint_step import checkpoint_step
from chargpt.errors import out_of_memory_fix
from chargpt.files import read_json_object
from chargpt.plural import counted
from chargpt.run_layout import METRICS_FILE, last_checkpoint
from chargpt.run_state import held_now
from chargpt.runs.resume import recorded_resume_command
from chargpt.runs.run_rows import changed_settings, run_name
from chargpt.runs.sweep_record import continue_command, planned_jobs, recorded_sweep, stored_study, sweep_of

STOPPED = ("interrupted", "killed", "incomplete")


def sweep_note(sweep_dir: Path, rows: list[dict[str, Any]], runs: list[Path] | None = None) -> str | None:
    """For a sweep still running: how far it has got. For one that stopped part-way (jobs stopped,
    or never started) or has failed jobs: what is missing, and the command that continues it,
    which trains the failed jobs again; a job that ran out of memory is given its own error's fix
    instead. `rows`: run_row's; `runs`: the run folders under `sweep_dir` where the caller has
    found them already (continue_command)."""
    if (command := continue_command(sweep_dir, runs)) is None:
        return None
    planned = planned_jobs(sweep_dir)
    missing = planned - len(rows) if planned is not None else 0
    running = sum(r["status"] == "running" for r in rows)
    if running or held_now(sweep_dir):  # (held: between two jobs, the next one not yet made)
        parts = [f"{running} running"] if running else []
        parts += [f"{missing} of {planned} not started yet"] if missing > 0 else []
        detail = f" ({', '.join(parts)})" if parts else ""
        return f"this sweep is still running{detail}: this table is not its last"
    # A job resumed apart with other settings is kept as it is by a continuation, which would run
    # nothing for it: its own resume command is given below instead.
    stopped = sum(r["status"] in STOPPED and not _resumed_apart(r) for r in rows)
    # A search kept in a storage continues with new trials in a new folder: its failed ones stay failed.
    failed_rows = [] if _in_a_storage(sweep_dir) else [r for r in rows if r["status"] == "failed"]
    # Memory ran out: continuing would train the job again as it was, to run out again; its own
    # error gives the fix (a smaller batch from its checkpoint, or a smaller model).
    short = [r for r in failed_rows if out_of_memory_fix(r.get("error") or "") is not None]
    failed = sum(r not in short and not _resumed_apart(r) for r in failed_rows)
    # "run", as the table's column and title name each job's row: the note named `job 2` where the
    # table said `run 2`.
    runs_of = counted(len(rows), "run")
    lines = []
    again = ", which trains the failed runs again," if failed else ""
    if not stopped and missing <= 0 and failed:
        lines.append(f"{failed} of {runs_of} of this sweep failed; continue it{again} with: {command}")
    elif stopped or missing > 0:
        parts = [f"{stopped} stopped"] if stopped else []
        parts += [f"{failed} failed"] if failed else []
        parts += [f"{missing} of {planned} never started"] if missing > 0 else []
        lines.append(f"this sweep stopped part-way ({', '.join(parts)}); continue it{again} with: {command}")
    if short:
        many = len(short) > 1
        them, they_were, their = ("them", "they were", "their") if many else ("it", "it was", "its")
        lines.append(f"{len(short)} of {runs_of} of this sweep ran out of memory; continuing the sweep would "
                     f"train {them} as {they_were}, which runs out again: go on as {their} error says:")
        lines += [f"  run {shell_words.quote(run_name(r['dir'], sweep_dir))}: "
                  f"{out_of_memory_fix(r['error'])}" for r in short]
    # (one that ran out of memory again is given its error's fix above, from its latest settings)
    unfinished = [r for r in rows if r["status"] in STOPPED or (r in failed_rows and r not in short)]
    lines += _resumed_apart_lines(unfinished, sweep_dir)
    return "\n".join(lines) or None


def _resumed_apart_lines(rows: list[dict[str, Any]], sweep_dir: Path) -> list[str]:
    """For the sweep's jobs (run_row's, stopped or failed) that a command of their own resumed with
    other settings (`data.batch_size=default→6`, the smaller batch an out-of-memory error gave; more
    steps): continuing the sweep keeps each as it is (runs/continuation.py), so each is given its own
    resume command, with its latest settings."""
    apart = [r for r in rows if _resumed_apart(r)]
    if not apart:
        return []
    many = len(apart) > 1
    kept = "them as they are" if many else "it as it is"
    lines = [f"{counted(len(apart), 'run')} of this sweep {'were' if many else 'was'} resumed with other "
             f"settings than the sweep's; continuing the sweep keeps {kept}: "
             f"resume {'each' if many else 'it'} with {'their' if many else 'its'} latest settings with:"]
    for row in apart[:STOPPED_RUNS_LISTED]:
        changed = " ".join(changed_settings(row["overrides"]))
        lines.append(f"  run {shell_words.quote(run_name(row['dir'], sweep_dir))} ({changed}): "
                     f"{recorded_resume_command(row['dir'])}")
    return lines


def _resumed_apart(row: dict[str, Any]) -> bool:
    return bool(changed_settings(row["overrides"]))


def _in_a_storage(sweep_dir: Path) -> bool:
    hydra = recorded_sweep(sweep_dir)  # None when unreadable: continue_command found none either
    return hydra is not None and stored_study(hydra)


STOPPED_RUNS_LISTED = 5  # resume commands printed; the table's status column names the rest


def later_checkpoints_note(rows: list[dict[str, Any]]) -> str | None:
    """The runs (run_row's) whose last checkpoint holds a later step than the figures their rows
    show: a run writes metrics.json once each checkpoint is on disk, so where that write failed (a
    full disk) its row keeps an earlier validation's figures, while a resume, or its sweep's
    continuation, goes on from the later checkpoint. Told by the step each holds, of runs that
    failed or stopped only (a finished run writes its figures last): the files' times told it
    wrongly of a copied folder (`cp -r` gives its files new times, in the copy's own order)."""
    later = [r for r in rows if r["status"] in ("failed", *STOPPED) and _checkpoint_after_figures(r["dir"])]
    if not later:
        return None
    named = ", ".join(shell_words.quote(r["run"]) for r in later[:STOPPED_RUNS_LISTED])
    more = f" and {len(later) - STOPPED_RUNS_LISTED} more" if len(later) > STOPPED_RUNS_LISTED else ""
    runs, them = ("runs", "their") if len(later) > 1 else ("run", "its")
    return (f"{runs} {named}{more}: {them} last checkpoint holds more steps than the steps column says "
            "(metrics.json was not updated after it was written); resuming goes on from that checkpoint")


def _checkpoint_after_figures(run_dir: Path) -> bool:
    """Whether the run's last checkpoint holds a later step than its metrics.json (none: no figures
    to be behind, a run without the run_metrics callback)."""
    checkpoint = last_checkpoint(run_dir)
    figures = read_json_object(run_dir / METRICS_FILE).get("step")
    held = checkpoint_step(checkpoint) if checkpoint is not None and isinstance(figures, int) else None
    return held is not None and held > figures


def stopped_runs_note(rows: list[dict[str, Any]], top: Path) -> str | None:
    """For a folder of runs that is not itself a sweep: the command that resumes each stopped run
    from its last checkpoint, or that it has none, and each failed run that wrote one (a full disk,
    a NaN: once fixed, it goes on from there); a stopped or failed job of a sweep inside the folder
    is given its sweep's continue command instead (it also runs the jobs that never started, and
    trains the failed ones again)."""
    # A failed job too: continuing its sweep trains it again.
    sweeps = {r["run"]: sweep_of(r["dir"], top) for r in rows if r["status"] in (*STOPPED, "failed")}
    alone = [r for r in rows if r["run"] in sweeps and sweeps[r["run"]] is None]
    checkpoints = {r["run"]: last_checkpoint(r["dir"]) for r in alone}
    stopped = [r for r in alone if r["status"] in STOPPED]
    failed = [r for r in alone if r["status"] == "failed" and checkpoints[r["run"]] is not None]
    # Memory ran out: its own error gives the fix (a smaller batch from its checkpoint, or a smaller
    # model, a new run), where its command as it was would run out again or refuse the smaller model.
    short = [r for r in failed if out_of_memory_fix(r.get("error") or "") is not None]
    failed = [r for r in failed if r not in short]
    fresh = [shell_words.quote(r["run"]) for r in stopped if checkpoints[r["run"]] is None]
    lines = []
    for sweep in dict.fromkeys(s for s in sweeps.values() if s is not None):
        jobs = [r for r in rows if sweep in r["dir"].parents]
        # Its jobs' folders, found already: a walk of the sweep's folder for each note was one too many.
        if note := sweep_note(sweep, jobs, [r["dir"] for r in jobs]):
            lines.append(f"{sweep}: {note}")
    resumable = [r for r in stopped if checkpoints[r["run"]] is not None]
    lines += _resume_lines(resumable, "{runs} stopped early; resume {each} from its last checkpoint with:")
    lines += _resume_lines(failed, "{runs} failed after writing a checkpoint; fix what {its} error says, "
                                   "then resume {each} from its last checkpoint with:")
    if short:
        lines.append(f"{counted(len(short), 'run')} ran out of memory after writing a checkpoint; go on as "
                     f"{'their' if len(short) > 1 else 'its'} error says:")
        lines += [f"  {shell_words.quote(r['run'])}: {out_of_memory_fix(r['error'])}" for r in short]
    listed = STOPPED_RUNS_LISTED
    if fresh:
        names = " ".join(fresh[:listed]) + (" ..." if len(fresh) > listed else "")
        lines.append(f"{counted(len(fresh), 'run')} stopped before a first checkpoint, nothing to resume "
                     f"({names}): launch {'them' if len(fresh) > 1 else 'it'} again to start over")
    return "\n".join(lines) or None


def _resume_lines(rows: list[dict[str, Any]], heading: str) -> list[str]:
    """`heading` (of {runs}, {each}, {its}), then the command that resumes each run of `rows`, for up
    to STOPPED_RUNS_LISTED of them; none for no rows. Each resumes with the settings of its latest
    launch (its first, or its latest resume)."""
    if not rows:
        return []
    many = len(rows) > 1
    commands = [recorded_resume_command(r["dir"]) for r in rows]
    lines = [heading.format(runs=counted(len(rows), "run"), each="each" if many else "it",
                            its="their" if many else "its")]
    lines += [f"  {c}" for c in commands[:STOPPED_RUNS_LISTED]]
    if len(commands) > STOPPED_RUNS_LISTED:
        lines.append(f"  ... and {len(commands) - STOPPED_RUNS_LISTED} more (the table's status column)")
    return lines

