"""What the Hydra entry points share: running one (the command line made ready by argv.py, the
settings the command does not read refused, clean exits, one-line errors), quiet warnings, threads.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import signal
import sys
import warnings
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

import torch
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, InterpolationResolutionError

from chargpt.checks import whole_number
from chargpt.cli.argv import hydra_argv
from chargpt.cli.composed_checks import (
    check_removals,
    check_search_space_typed,
    composed,
    removed_a_needed_setting,
    settings_beside,
)
from chargpt.cli.config_groups import check_one_option_lists
from chargpt.cli.exits import (
    BROKEN_PIPE_EXIT_CODE,
    Terminated,
    clean_exits,
    exit_on_os_error,
    raising_on_sigterm,
)
from chargpt.cli.hydra_errors import one_line_hydra_errors, release_stderr, settings_in
from chargpt.cli.hydra_options import full_options, override_positions
from chargpt.cli.prompt_files import literal_argv
from chargpt.errors import (
    ConfigError,
    SettingError,
    cause_of,
    exit_stopped_by,
    exit_usage,
    full_errors_requested,
)
from chargpt.hydra_run import task_overrides
from chargpt.overrides import as_typed, override_key
from chargpt.runs.claims import release_claims
from chargpt.spelling import did_you_mean, nearest_name

F = TypeVar("F", bound=Callable[..., Any])

# What sample, export and serve refuse (run_main's `unused`): their model is a trained one.
MODEL_FROM_CHECKPOINT = {"model": "the model comes from the checkpoint"}

# The command line as the shell handed it over (prompt files read): Lightning's multi-process
# launcher starts the other ranks with sys.argv, and they must prepare it again the same way.
_literal: list[str] | None = None


def run_main(
    hydra_main: Callable[[], Any],
    prepare: Callable[[list[str]], list[str]] | None = None,
    config_name: str | None = None,
    unused: Mapping[str, str] | None = None,
    takes_new_settings: bool = False,
    checkpoint_sweeps: bool = False,
) -> None:
    """Run a Hydra entry point: the command line prepared for Hydra, user errors as one line (exit
    2), Ctrl-C as exit 130 with one line (SIGTERM: 143), a closed output pipe quietly (exit 141),
    and whatever a failed or interrupted start created removed again. `config_name` (the command's
    config) lets a misspelt setting's error name the one meant. `unused`: settings (and groups) the
    command does not use, each with why: given, they are refused before Hydra reads them.
    `takes_new_settings`: whether a setting added with `+KEY=VALUE` can be read (chargpt-train's
    callbacks and trainer options of one's own); elsewhere one is refused. `checkpoint_sweeps`: whether
    `ckpt_path=choice(...)` is a sweep of checkpoints (a command that reads one per job)."""
    global _literal
    saved, failed = sys.argv, True
    try:
        with clean_exits():
            try:
                literal = literal_argv(sys.argv, config_name)
                # Abbreviated options written out first: `prepare` (a resume) looks for -m/--multirun.
                literal = full_options(literal)
                if prepare is not None:
                    literal = prepare(literal)
                prepared = hydra_argv(literal, checkpoint_sweeps)
                overrides = [prepared[i] for i in override_positions(prepared)]
                if config_name:
                    check_removals(config_name, overrides)
                    check_search_space_typed(config_name, prepared)
                refuse_unused(overrides, unused or {}, config_name)
                check_one_option_lists(overrides)
                if config_name and not takes_new_settings:
                    refuse_added(overrides, config_name)
            except ConfigError as err:
                if full_errors_requested():
                    raise
                exit_usage(str(err))
            _literal, sys.argv = literal, prepared
            # SIGTERM (a `kill`, a scheduler) unwinds the command as Ctrl-C does: one line, exit 143.
            beside = settings_beside(config_name, overrides) if config_name else None
            with raising_on_sigterm(), one_line_hydra_errors(beside, takes_new_settings):
                hydra_main()
            failed = False
    except SystemExit as exit_:
        failed = exit_.code not in (0, None)
        raise
    finally:
        sys.argv, _literal = saved, None
        release_claims(failed)


def refuse_unused(overrides: list[str], unused: Mapping[str, str], config_name: str | None) -> None:
    """A setting the command does not use would silently do nothing (or Hydra would offer to append
    it, which does nothing either): refused, with why."""
    for typed in overrides:
        key = override_key(typed)
        for setting, why in unused.items():
            if key == setting or key.startswith(setting + "."):
                raise ConfigError(f"{as_typed(typed)} does nothing in chargpt-{config_name} ({why}); drop it")


def refuse_added(overrides: list[str], config_name: str) -> None:
    """A setting added with `+KEY=VALUE` (or `++KEY=VALUE` where KEY is none) that the command's
    config lacks: Hydra adds it and the command, which reads only its own settings, goes on without
    it (`chargpt-sample +n=2` drew one sample). Refused, with the setting meant where one is close."""
    added = [o for o in overrides if o.startswith("+") and re.split(r"[./]", override_key(o))[0] != "hydra"]
    if not added:
        return
    config = composed(config_name, [o for o in overrides if o not in added])
    if config is None:
        return  # another setting is wrong: Hydra's error names it
    for typed in added:
        key = override_key(typed)
        parent, _, name = key.rpartition(".")
        settings = settings_in(config, key)
        if name in settings:
            continue  # `++KEY=VALUE` sets it; `+KEY=VALUE` is Hydra's error (it is there already)
        near = nearest_name(name, settings)
        meant = did_you_mean(near, parent)
        raise ConfigError(f"{as_typed(typed)} does nothing in chargpt-{config_name}: it is not one of its "
                          f"settings{meant}, and the command reads only those (--help lists them); drop it")


def cli_task(task: F) -> F:
    """Wrap a Hydra task function: the other ranks see the command line as typed, and a closed
    output pipe leaves the run quietly (Hydra would print it as a failure)."""

    @functools.wraps(task)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        release_stderr()
        if _literal is not None:
            sys.argv = _literal
        # A removed setting's ConfigError is said here (the task's own errors are lines already).
        # Not by wrapping the task in exit_on_user_error up front: a parallel sweep pickles this
        # wrapper, and a context manager kept in it holds a generator, which cannot be pickled.
        try:
            with naming_removed_settings(), unwrapping_sigterm():
                return task(*args, **kwargs)
        except ConfigError as err:
            if full_errors_requested():
                raise
            exit_usage(str(err))
        except BrokenPipeError:
            sys.exit(BROKEN_PIPE_EXIT_CODE)
        except OSError as err:  # Hydra would print it as a failure, with a traceback
            if full_errors_requested():
                raise
            exit_on_os_error(err)
            raise
        except ValueError as err:  # os's, for a path with a NUL in it (a config file's "\0")
            held = _holding_nul(args[0]) if args and isinstance(args[0], DictConfig) else []
            if str(err) != "embedded null byte" or not held or full_errors_requested():
                raise
            exit_usage(f"{held[0]} holds a NUL character (\\0), which no path can hold; remove it")

    return wrapper  # type: ignore[return-value]


def _holding_nul(cfg: DictConfig) -> list[str]:
    """The settings whose text holds a NUL character, as `data.path`."""
    held = []

    def visit(node: object, key: str) -> None:
        if isinstance(node, dict):
            for name, value in node.items():
                visit(value, f"{key}.{name}" if key else str(name))
        elif isinstance(node, list):
            for i, value in enumerate(node):
                visit(value, f"{key}[{i}]")
        elif isinstance(node, str) and "\0" in node:
            held.append(key)

    visit(OmegaConf.to_container(cfg, resolve=False), "")
    return held


@contextlib.contextmanager
def unwrapping_sigterm() -> Iterator[None]:
    """SIGTERM's Terminated, caught by a library mid-import and raised as another exception (which
    Hydra would print as a failure, exit 1): one line and exit 143, as run_main ends Terminated."""
    try:
        yield
    except Exception as err:
        if cause_of(err, Terminated) is None:
            raise
        exit_stopped_by(signal.SIGTERM)


@contextlib.contextmanager
def naming_removed_settings() -> Iterator[None]:
    """A setting the command reads, removed with `~KEY` on the command line (where composed_checks.py's check
    up front lets one through), or whose `${...}` cannot be resolved: a ConfigError saying so
    (omegaconf's traceback otherwise). chargpt-train uses it inside its status record too, so that
    a sweep's job records the one line."""
    try:
        yield
    except (ConfigAttributeError, ConfigKeyError) as err:
        removed = _removed_by_override(err)
        if removed is None:
            raise
        raise removed_a_needed_setting(removed, err.full_key) from None
    except InterpolationResolutionError as err:  # `lr=${oc.env:NOPE}`, `n_layer=${oops}`: a traceback
        key = err.full_key or "a setting"
        reason = str(err).split("\n", 1)[0].removeprefix("KeyError raised while resolving interpolation: ")
        raise ConfigError(f"{key}: cannot resolve its ${{...}} ({reason.strip()}); set {key} to a plain "
                          "value, or define what it refers to") from None


def _removed_by_override(err: ConfigAttributeError | ConfigKeyError) -> str | None:
    """The `~KEY` of the command line that removed the setting `err` found missing, if one did."""
    missing = str(getattr(err, "full_key", "") or "")
    if not missing:
        return None
    for override in task_overrides():
        key = override_key(override)
        if override.startswith("~") and (missing == key or missing.startswith(key + ".")):
            return key
    return None


def quiet_known_warnings() -> None:
    """Silence warnings that say nothing actionable for this project's runs."""
    for message in (
        r".*LeafSpec.*",  # torch.utils._pytree deprecation inside Lightning, printed every run
        r".*does not have many workers.*",  # batches are gathered in one vectorised index
        r".*resuming from a checkpoint that ended before the epoch ended.*",  # batches are indexed by step
        r".*Checkpoint directory .* exists and is not empty.*",  # expected when a run resumes
        r".*Experiment logs directory .* exists and is not empty.*",  # a resumed run's CSV rows stay
        r".*smaller than the logging interval.*",  # short runs log less often: nothing to fix
        # Lightning's text is "use `self.log('val/loss', ..., sync_dist=True)`": every rank scores
        # the whole validation split, so the values agree without a reduction.
        r".*sync_dist=True.*",
    ):
        warnings.filterwarnings("ignore", message=message)
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logger = logging.getLogger(name)
        if _says_nothing not in logger.filters:
            logger.addFilter(_says_nothing)


# Lightning's info lines that tell a chargpt user nothing: a litlogger advertisement, the TPUs a
# CPU or GPU machine does not have, and "`max_steps=N` reached" (chargpt's own last line says the
# step, the loss and the run directory).
_NOTHING_TO_SAY = re.compile(
    r"litlogger|^TPU available: False|^`Trainer.fit` stopped: `max_steps=\d+` reached"
)


def _says_nothing(record: logging.LogRecord) -> bool:
    return not _NOTHING_TO_SAY.search(record.getMessage())


# What an earlier run of this process changed, to put back: the jobs of a multirun share the
# process, and a job with `threads: null` must not inherit the count an earlier job set.
_threads_before: tuple[int, str | None] | None = None  # torch's count, OMP_NUM_THREADS


def _most_threads() -> int:
    # Past a few threads a core nothing runs faster, and OpenMP allocates for each thread at once: two
    # billion (the most torch's C int takes) ended in "libgomp: Out of memory", a larger count in
    # torch's "Overflow when unpacking" traceback.
    return max(1024, 4 * (os.cpu_count() or 1))


def check_threads(threads: object) -> None:
    """A count of torch's CPU threads, or null for torch's default."""
    count = whole_number("threads", threads, low=1, optional=True)
    if count is not None and count > (most := _most_threads()):
        raise SettingError(f"threads={count} is more threads than this machine can run (at most {most}); "
                           f"give at most its {os.cpu_count()} cores, or null for one per core", "threads")


def use_threads(threads: object) -> None:
    """`threads`: torch's CPU threads for this command; None leaves (or puts back) torch's default.
    OMP_NUM_THREADS is set too: Lightning's CPU DDP launcher sets each process's threads from it
    (cores // processes when it is unset), and processes a run starts inherit it."""
    global _threads_before
    check_threads(threads)
    if threads is None:
        if _threads_before is not None:
            count, env = _threads_before
            torch.set_num_threads(count)
            if env is None:
                os.environ.pop("OMP_NUM_THREADS", None)
            else:
                os.environ["OMP_NUM_THREADS"] = env
            _threads_before = None
        return
    if _threads_before is None:
        _threads_before = (torch.get_num_threads(), os.environ.get("OMP_NUM_THREADS"))
    torch.set_num_threads(threads)
    os.environ["OMP_NUM_THREADS"] = str(threads)
