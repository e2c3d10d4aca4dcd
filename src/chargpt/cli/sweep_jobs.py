"""A sweep (-m) of a command that reads a run (chargpt-sample, chargpt-eval, chargpt-export): Hydra's
sweep folder (multirun.yaml and a folder per job) goes to a temporary folder removed when the command
ends, however it ends; each job's output is headed by the settings the sweep gave it (and held whole
where jobs run in parallel: held_output.py); chargpt-eval's jobs end in a table comparing them;
chargpt-export's jobs each write a folder of their own."""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import functools
import os
import shutil
import signal
import socket
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf
from rich.cells import cell_len

from chargpt import file_locks, shell_words
from chargpt.cli.common import naming_removed_settings
from chargpt.cli.held_output import (
    LOCAL_LAUNCHERS,
    held_files,
    held_outputs,
    jobs_write_where_the_sweep_does,
    output_held_whole,
    print_held_output,
)
from chargpt.cli.hydra_options import group_choices, override_positions
from chargpt.errors import ConfigError, exit_on_user_error, signal_exit_code
from chargpt.hydra_run import as_written, is_multirun, sweep_dir, task_overrides
from chargpt.overrides import as_typed, hydra_quoted, is_sweep, override_key
from chargpt.plural import counted
from chargpt.run_layout import CONFIG_DIR, SWEEP_CONFIG, holds_run
from chargpt.runs.same_text import best_of_each_text

if TYPE_CHECKING:
    from chargpt.data.tokenizer import CharTokenizer

F = TypeVar("F", bound=Callable[..., Any])
# A command's check of a job's settings with its model's vocabulary (chargpt-sample's prompt).
VocabularyCheck = Callable[[DictConfig, "CharTokenizer"], None]
# A command's check of a job's settings with its model's context length (chargpt-eval's stride).
ContextCheck = Callable[[DictConfig, int], None]

# The settings the running sweep varies (SweptKeys records them as it starts); None where this
# process did not start the sweep: a parallel launcher's worker, which reads them in the sweep's record.
_swept: list[str] | None = None
# Each finished job of chargpt-eval's sweep: its heading's settings and its result.
_results: list[tuple[list[str], dict[str, Any]]] = []
# The running command's checks of a job, made on every job as its sweep starts (sweep_folder_removed's
# `check` and `with_vocabulary`); None for a command that has none.
_job_check: Callable[[DictConfig], None] | None = None
_vocabulary_check: VocabularyCheck | None = None
_context_check: ContextCheck | None = None


class SweptKeys(Callback):
    """A Hydra callback: records which settings the sweep varies, so that a job's heading names
    those (`max_new_tokens=1,2` -> `max_new_tokens=1`) and not the ones every job shares."""

    @exit_on_user_error
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        global _swept
        # First: whatever the checks below raise, this process is the sweep's, not a worker.
        _swept = _swept_keys(config.hydra.overrides.task)
        _results.clear()
        check_jobs_can_read(config)
        if _job_check is not None:  # (before the folder is held, which makes it: refused, none is left)
            check_each_job(config, _job_check, _vocabulary_check, _context_check)
        _hold_the_sweep_folder(Path(str(config.hydra.sweep.dir)))


def check_each_job(config: DictConfig, check: Callable[[DictConfig], None],
                   with_vocabulary: VocabularyCheck | None = None,
                   with_context: ContextCheck | None = None) -> None:
    """`check` (the command's own check of its settings), and that the checkpoint is there, made on
    each value of each setting the sweep sweeps, as its launcher will compose the jobs
    (launch_checks.check_swept_settings), before its first job starts: a bad value or a checkpoint
    not found was one job's error line after the jobs before it had run (`chargpt-sample -m
    temperature=0.5,-1`). `with_vocabulary`, `with_context`: the command's check of a job with its
    model's vocabulary (a prompt's characters) and context length (an evaluation's stride), made with
    each checkpoint's, as a sweep of checkpoints and prompts runs each prompt with each. A SLURM
    launcher's jobs are composed alone: they start on the cluster, whose devices and files their own
    checks read (`device=cuda` from a login node without a GPU), as a training sweep's do."""
    from chargpt.cli.launch_checks import check_swept_settings, submits_to_slurm  # (Hydra's config loader)
    from chargpt.inference import find_trained, trained_context, trained_vocabulary

    jobs, _ = check_swept_settings(config)  # (a search's dimensions: training's alone)
    if submits_to_slurm(config):
        return
    for _, job in jobs:
        with naming_removed_settings():
            check(job)
            find_trained(job.ckpt_path)
    if with_vocabulary is not None:
        _check_with_each_checkpoint([job for _, job in jobs], trained_vocabulary, with_vocabulary)
    if with_context is not None:
        _check_with_each_checkpoint([job for _, job in jobs], trained_context, with_context)


def _check_with_each_checkpoint(jobs: list[DictConfig], read: Callable[[str], Any],
                                check: Callable[[DictConfig, Any], None]) -> None:
    """`check` of each job with what `read` reads of each of the sweep's checkpoints."""
    paths = dict.fromkeys(str(job.ckpt_path) for job in jobs)  # each checkpoint once, in the jobs' order
    read_of = {path: read(path) for path in paths}
    for job in jobs:  # one job per swept value, not the grid: so each job with every checkpoint
        for path, what in read_of.items():
            try:
                check(job, what)
            except ConfigError as err:  # which of the sweep's models refuses it
                raise ConfigError(f"ckpt_path={path}: {err}" if len(read_of) > 1 else str(err)) from None


_NOT_WRITABLE = (errno.EACCES, errno.EPERM, errno.EROFS)
# The sweep's record (SWEEP_CONFIG) in its folder, locked by the sweep's process from its start to its
# command's end (sweep_folder_removed): another sweep in that folder at once would rewrite the record
# its jobs read their headings from, and mix its jobs' held output with theirs.
_record_lock: int | None = None


def _hold_the_sweep_folder(folder: Path) -> None:
    """The sweep folder's record locked for this sweep: refused while another sweep holds it. Once
    locked, the held output a sweep killed outright left there (no process of it can print it) goes."""
    global _record_lock
    _let_go_of_the_sweep_folder()  # an earlier command of this process (a notebook, the tests)
    _check_holds_no_runs(folder)
    if not file_locks.LOCKING:
        return
    # Open for writing (not truncated: it is the record): NFS emulates flock with byte-range locks,
    # and refuses an exclusive one on a file opened read-only (EBADF).
    try:
        folder.mkdir(parents=True, exist_ok=True)
        lock = os.open(folder / SWEEP_CONFIG, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:
        if err.errno not in _NOT_WRITABLE:
            raise
        # Said here: Hydra, writing the record next, would end in a traceback.
        raise ConfigError(f"cannot write the sweep's record {folder / SWEEP_CONFIG} ({err.strerror}); name a "
                          "writable hydra.sweep.dir, or leave it out for a temporary one") from None
    try:
        file_locks.lock(lock, wait=False)
    except BlockingIOError:
        os.close(lock)
        raise ConfigError(f"{shell_words.quote(f'hydra.sweep.dir={folder}')} is in use by another sweep that "
                          "is still running; wait for it to end, or name another folder") from None
    except OSError:  # a file system without locks: sweeps there are not told apart
        os.close(lock)
        return
    _record_lock = lock
    for out in held_outputs(folder):
        for held in held_files(folder, int(out.stem.removeprefix(".job-"))):
            held.unlink(missing_ok=True)


def _check_holds_no_runs(folder: Path) -> None:
    """A training run's or sweep's folder is not a reading sweep's: Hydra would rewrite the training
    sweep's record there (multirun.yaml), which its continuation reads, and put job folders in a run."""
    try:
        runs = [p for p in (folder, *sorted(folder.iterdir())) if _is_a_run(p)]
    except OSError:  # no such folder yet, or none this process can list (Hydra says so as it writes)
        return
    if runs:
        held = "is a training run's folder" if folder in runs else (
            f"holds training runs ({', '.join(p.name for p in runs)})")
        raise ConfigError(f"hydra.sweep.dir={folder} {held}, whose records this sweep would overwrite; name "
                          "another folder, or leave hydra.sweep.dir out for a temporary one")


def _is_a_run(path: Path) -> bool:
    """Whether `path` is a training run's folder; not for one this process may not look into (another
    user's, in a shared folder), which is no run of its own to overwrite."""
    try:
        return path.is_dir() and ((path / CONFIG_DIR).is_dir() or holds_run(path))
    except OSError:
        return False


def _let_go_of_the_sweep_folder() -> None:
    global _record_lock
    if _record_lock is not None:
        os.close(_record_lock)
        _record_lock = None


def _swept_keys(overrides: Any) -> list[str]:
    return [override_key(o) for o in as_written(overrides) if is_sweep(o)]


def swept_settings() -> list[str]:
    """The settings the running sweep varies, in the sweep's own process (none elsewhere)."""
    return list(_swept or [])


def in_a_worker() -> bool:
    """Whether this is a sweep's job run in a process of its own, beside others (a parallel launcher)."""
    return is_multirun() and _swept is None


def job_settings() -> list[str]:
    """This sweep job's settings as typed: those the sweep varies; none outside a sweep."""
    if not is_multirun():
        return []
    return _settings_of(task_overrides())


def _settings_of(overrides: list[str]) -> list[str]:
    """Of a sweep job's overrides, those the sweep varies, as typed (all of them where it is not
    known which)."""
    swept = _swept
    folder = sweep_dir()
    if swept is None and folder is not None and (folder / SWEEP_CONFIG).is_file():  # in a worker
        swept = _swept_keys(OmegaConf.load(folder / SWEEP_CONFIG).hydra.overrides.task)
    given = [as_typed(o) for o in overrides]
    return given if swept is None else [o for o in given if override_key(o) in swept]


def job_heading() -> str | None:
    """The line that heads a sweep job's output, as `head` heads each of several files; None
    outside a sweep, or for a sweep's only job (nothing varies)."""
    settings = job_settings()
    return f"==> {_on_one_line(settings)} <==" if settings else None


def _on_one_line(settings: list[str]) -> str:
    """A job's settings as its heading and its row of a table show them: a prompt's line break
    escaped, not breaking the line."""
    return " ".join(shell_words.setting_on_one_line(setting) for setting in settings)


def job_folder(out: Path) -> Path:
    """Where a sweep job writes what its command writes to `out`: `out/N`, N its job number (0, 1,
    ...), as Hydra numbers a sweep's folders; `out` itself outside a sweep."""
    return out / str(HydraConfig.get().job.num) if is_multirun() else out


def record_returns(returns: list[JobReturn]) -> None:
    """What a sweep's jobs returned, as its sweeper has them back from the launcher (also from jobs
    run in other processes): chargpt-eval's results, for its table. The sweep before is forgotten."""
    # (A training job returns its loss, sampling and export nothing: only evaluations are kept.)
    _results[:] = [(_settings_of(list(r.overrides)), r.return_value) for r in returns
                   if r.status == JobStatus.COMPLETED and isinstance(r.return_value, dict)]


def whole_in_parallel_sweeps(task: F) -> F:
    """Wrap a Hydra task: a job that runs beside others (a parallel launcher's worker) writes its
    output, stdout then stderr, whole when it ends (however it ends), one job at a time; the jobs'
    characters and lines interleaved as they were written. Elsewhere the task writes as it goes."""

    @functools.wraps(task)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not in_a_worker():
            return task(*args, **kwargs)
        with output_held_whole(sweep_dir(), HydraConfig.get().job.num):
            try:
                return task(*args, **kwargs)
            except SystemExit as exit_:
                if jobs_write_where_the_sweep_does() or not exit_.code:
                    raise
                # A job run apart that exits hands its launcher no result (submitit's traceback): its
                # exit goes back as what it returns, for its sweep to exit so (exit_as_a_job_did).
                return JobExit(exit_.code)

    return wrapper  # type: ignore[return-value]


@dataclasses.dataclass(frozen=True)
class JobExit:
    """What a sweep's job run apart (submitit's launchers) returns where it exited: a bad setting's
    `error:` line (in its held output) and exit code 2."""

    code: int | str


def exit_as_a_job_did(returns: Sequence[JobReturn]) -> None:
    """For the sweep's process, its jobs' output printed: exit as the first job that exited did."""
    for job in returns:
        if job.status == JobStatus.COMPLETED and isinstance(job.return_value, JobExit):
            sys.exit(job.return_value.code)


def launch_reading_sweep(
    config: DictConfig, launch: Callable[[], Sequence[JobReturn]]
) -> Sequence[JobReturn]:
    """A parallel launcher's `launch` of a sweep that trains nothing. A worker that dies (the
    out-of-memory killer, a crash, a `kill` of its pid) ends every job of the sweep: what its
    unfinished jobs had written is printed under their headings, then one line says what happened
    and what to do, and the sweep ends with the signal's exit code (not joblib's traceback)."""
    folder = Path(str(config.hydra.sweep.dir))
    earlier = held_outputs(folder)  # (none of this launch's jobs: what print_held_output leaves)
    try:
        return launch()
    except BaseException as err:
        # (imported here: the launcher's module and what it reads are a training sweep's)
        from chargpt.runs.parallel_launcher import worker_ended_by

        if (signum := worker_ended_by(err)) is None:
            raise
        unfinished = print_held_output(folder, earlier)
        print(f"error: a worker process of the sweep was ended by {signal.Signals(signum).name} (the "
              "out-of-memory killer, a crash, or a kill of its pid), and the sweep with it"
              + (f": {counted(unfinished, 'job')} did not finish, {'its' if unfinished == 1 else 'their'} "
                 "output so far is above" if unfinished else "")
              + "; run the sweep again, with fewer jobs at once (hydra.launcher.n_jobs=1) if memory ran out",
              file=sys.stderr, flush=True)
        sys.exit(signal_exit_code(signum))


# The table's figures: (JSON key, column title).
_FIGURES = (("loss", "loss"), ("bpc", "bpc"), ("tokens", "tokens"), ("step", "step"))


def results_table() -> str | None:
    """The jobs of a chargpt-eval sweep side by side, the lowest loss marked among the jobs that scored
    the same text; None for fewer than two. Read once: the next command of this process (a notebook,
    the tests) starts with none."""
    results = list(_results)
    _results.clear()
    if len(results) < 2:
        return None
    texts = [_scored_text(result) for _, result in results]
    marked = set(best_of_each_text([result["loss"] for _, result in results], texts).values())
    one_text = len(set(texts)) == 1
    rows = [["settings", *(title for _, title in _FIGURES), *([] if one_text else ["text"])]]
    for i, (settings, result) in enumerate(results):
        figures = [_figure(result.get(key)) for key, _ in _FIGURES]
        label = [] if one_text else [f"{result.get('split')} of {result.get('data')}"]
        rows.append([_on_one_line(settings) + (" *" if i in marked else ""), *figures, *label])
    # Widths in terminal cells, as the settings' paths and prompts show (an emoji or a CJK letter
    # takes two): padded by characters, such a row's figures stood right of the others'.
    widths = [max(cell_len(row[c]) for row in rows) for c in range(len(rows[0]))]
    # The settings left-aligned, the figures right-aligned, the text left-aligned (last: the longest).
    end = 1 + len(_FIGURES)
    lines = ["  ".join([row[0] + " " * (widths[0] - cell_len(row[0])),
                        *(" " * (width - cell_len(cell)) + cell
                          for cell, width in zip(row[1:end], widths[1:end], strict=True)),
                        *row[end:]])
             for row in rows]
    if one_text:
        note = "* lowest loss"
    elif marked:
        note = "* lowest loss of the jobs that scored the same text"
    else:
        note = ("no lowest loss marked: each job scored another text (the text column), and losses on "
                "different texts do not compare")
    return "\n".join([*(line.rstrip() for line in lines), note])


def _scored_text(result: dict[str, Any]) -> tuple[Any, ...]:
    """What a job's loss was measured on: the split of the text, and how many characters (the same
    file cut elsewhere, data.train_fraction, is another text)."""
    return result.get("data"), result.get("split"), result.get("tokens")


def _figure(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.5f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


@contextlib.contextmanager
def sweep_folder_removed(check: Callable[[DictConfig], None] | None = None,
                         with_vocabulary: VocabularyCheck | None = None,
                         with_context: ContextCheck | None = None) -> Iterator[Any]:
    """For run_main's `prepare`: a sweep's command line gets `hydra.sweep.dir` in a new temporary
    folder, removed when the block ends (a finished sweep, a failed job, Ctrl-C): Hydra's sweeper
    always makes that folder and writes multirun.yaml there, which a command that writes nothing
    must not leave behind. A `hydra.sweep.dir` given on the command line is kept, as asked. Under a
    launcher that runs jobs on other machines (`hydra/launcher=slurm`), which read their job files in
    it, the folder is made in the current one, not in this machine's own temporary folder. The folders
    an earlier sweep killed outright (`kill -9`) left there are removed first; one in the current
    folder, whose jobs may still run elsewhere, is named instead. `check`: the command's check of a
    job's settings, made on every job before the first starts (check_each_job), and `with_vocabulary`,
    `with_context` its checks of a job with its model's vocabulary and context length."""
    global _job_check, _vocabulary_check, _context_check
    made: list[tuple[Path, int | None]] = []
    _results.clear()  # an earlier command of this process that stopped before its table
    _job_check, _vocabulary_check, _context_check = check, with_vocabulary, with_context

    def prepare(argv: list[str]) -> list[str]:
        given = {override_key(argv[i]) for i in override_positions(argv)}
        if not {"-m", "--multirun"} & set(argv) or "hydra.sweep.dir" in given:
            return argv
        here = group_choices(argv).get("hydra/launcher", "basic").strip() not in LOCAL_LAUNCHERS
        parent = Path.cwd() if here else Path(tempfile.gettempdir())
        prefix = ".chargpt-sweep-" if here else "chargpt-sweep-"
        _remove_left_behind(parent, prefix, removing=not here)
        made.append(_made_and_held(parent, prefix))
        return [*argv, f"hydra.sweep.dir={hydra_quoted(str(made[-1][0]))}"]

    try:
        yield prepare
    finally:
        _job_check = _vocabulary_check = _context_check = None
        _let_go_of_the_sweep_folder()
        for folder, held in made:
            shutil.rmtree(folder, ignore_errors=True)
            if held is not None:
                os.close(held)


def check_jobs_can_read(config: DictConfig) -> None:
    """As the sweep starts, once Hydra has composed its config: a launcher that runs jobs apart from
    this process (on other machines, or in processes of their own: not LOCAL_LAUNCHERS), chosen in a
    config file (a --config-dir config) where sweep_folder_removed could not see it on the command
    line, would hand them a folder in this machine's own temporary folder, which jobs on other
    machines cannot read, and where the next sweep removes a folder whose sweep was killed outright,
    under jobs still running. Refused before any job is submitted."""
    launcher = config.hydra.runtime.choices.get("hydra/launcher")
    folder = Path(str(config.hydra.sweep.dir))
    if launcher is None or launcher in LOCAL_LAUNCHERS:
        return
    if folder.name.startswith("chargpt-sweep-") and folder.parent == Path(tempfile.gettempdir()):
        if launcher in _OWN_PROCESS_LAUNCHERS:
            why = ("runs the sweep's jobs in processes of their own, which may still run after this one "
                   "is killed outright: their folder is not made in this machine's temporary folder, "
                   "where the next sweep would remove it under them")
            named = "name a folder"
        else:
            why = "runs the sweep's jobs on other machines, which cannot read this machine's temporary folder"
            named = "name a folder they can read"
        raise ConfigError(
            f"hydra/launcher={launcher} (chosen in the config) {why}; add hydra/launcher={launcher} to the "
            f"command line (the sweep's folder is then made in the current one), or {named} with "
            "hydra.sweep.dir=DIR")


# Launchers whose jobs run on this machine, in processes of their own that outlive a sweep killed
# outright (submitit's local executor): the others not in LOCAL_LAUNCHERS run them on other machines.
_OWN_PROCESS_LAUNCHERS = ("submitit_local",)


# In a temporary sweep folder, locked (shared) by the sweep's process while it lives: a folder whose
# lock no process holds was left by a sweep killed outright. It holds the name of the machine the sweep
# runs on: where locks are each machine's own (a shared TMPDIR mounted with local locks), another
# machine's live sweep holds no lock that this one sees.
_IN_USE = ".in-use"


def _made_and_held(parent: Path, prefix: str) -> tuple[Path, int | None]:
    """A new temporary sweep folder in `parent`, and the descriptor of its lock, held (None where the
    file system takes no lock)."""
    while True:
        folder = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
        if not file_locks.LOCKING:
            return folder, None
        try:
            held = os.open(folder / _IN_USE, os.O_RDWR | os.O_CREAT, 0o600)
            os.write(held, socket.gethostname().encode())
        except FileNotFoundError:
            continue  # taken for a dead sweep's by another starting at once, and removed: another
        try:
            file_locks.lock(held, shared=True)
        except OSError:  # no locks here: nothing can tell this folder from a dead sweep's
            return folder, held
        if (folder / _IN_USE).exists():
            return folder, held
        os.close(held)  # (as above, removed between its lock file's making and its lock)


def _remove_left_behind(parent: Path, prefix: str, removing: bool) -> None:
    """The temporary folders of sweeps killed outright in `parent` (their lock held by no process):
    removed, or (`removing` false: jobs on other machines may still read them) each named in a note.
    A folder without a lock file is left: a sweep starting now has not yet made it. So is one a sweep
    on another machine made (its lock file names that machine): its lock may not be seen here; in this
    machine's temporary folder, a note names it (the machine may be this one, renamed)."""
    if not file_locks.LOCKING:
        return
    for folder in sorted(parent.glob(f"{prefix}*")):
        try:
            lock = os.open(folder / _IN_USE, os.O_RDWR)  # (read-only: NFS takes no exclusive lock)
        except OSError:
            continue
        try:
            file_locks.lock(lock, wait=False)
            made_on = os.read(lock, 1024).decode(errors="replace")
        except OSError:  # held by a live sweep (or no locks here)
            os.close(lock)
            continue
        try:
            # (None named: made by an older chargpt, or a sweep killed before it wrote the name.)
            if made_on not in ("", socket.gethostname()):
                # Another machine's live sweep (a shared TMPDIR) or this one's under an earlier name:
                # nothing here tells them apart, so it is left, but named, not left unseen for ever.
                if removing:
                    print(f"note: {folder} was made by a sweep on the machine named {made_on!r} (this one is "
                          f"{socket.gethostname()!r}); remove it if no sweep runs there (or the machine "
                          "was renamed)", file=sys.stderr)
                continue
            if removing:
                shutil.rmtree(folder, ignore_errors=True)
            else:
                print(f"note: {folder.name} here was left by a sweep killed outright; remove it once its "
                      "jobs have ended (it holds their files and logs)", file=sys.stderr)
        finally:
            os.close(lock)
