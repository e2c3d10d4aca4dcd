"""Hydra's own errors before a command's task starts (an unknown setting, a value its grammar
rejects) as one `error:` line with exit code 2, like chargpt's own.

Hydra prints such an error over several lines, with advice for developers, and exits 1. What it
writes to stderr before the task starts is held back: if it then exits 1, the held text is the
error, said again in one line; once the task starts, the held text (warnings) is let through and
stderr is the terminal's again (the ReleaseStderr callback lets it through sooner, as soon as
Hydra has composed the config: a sweep's launcher may run its tasks in other processes).
"""

from __future__ import annotations

import io
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import ConfigCompositionException
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from chargpt import shell_words
from chargpt.cli import CONFIG_PATH
from chargpt.cli.exits import stdout_writes_any_text
from chargpt.errors import ConfigError, exit_on_user_error, exit_usage, full_errors_requested
from chargpt.hydra_run import as_written
from chargpt.overrides import hydra_quoted, parsed_override, swept_values
from chargpt.spelling import did_you_mean, nearest_name

_HINT = "Set the environment variable HYDRA_FULL_ERROR=1"
# Names other tools use for a setting that no spelling check would connect to chargpt's.
ALSO_KNOWN_AS = {"learning_rate": "lr"}
# Groups read setting by setting, not handed whole to a constructor: a key added under them is
# refused (model: ModelConfig has its fields only) or read by nothing, so `+KEY` is no advice there.
_NOTHING_ADDED = ("model", "sample", "finetune")
_NOT_IN_STRUCT = re.compile(r"Could not override '([^']+)'\.\s+To append to your config use (\S+)")
_NOT_DELETABLE = re.compile(r"Could not delete from config\. '([^']+)' does not exist")
# `~hydra.KEY` of a field of Hydra's own structured config (hydra.job_logging, hydra.run.dir), which
# Hydra cannot delete; entries of its dicts (hydra.callbacks.NAME) can go.
_HYDRA_FIELD = re.compile(r"Error merging override ~(\S+)\s+\S+ \(DictConfig\) does not support deletion")
# Hydra's fields that its config groups fill (hydra/job_logging=stdout picks another whole setup).
# Python's logging refusing a setup (the first of its chained errors names the part at fault).
_LOGGING_REFUSED = re.compile(r"ValueError: (Unable to configure \w+ '[^']*'|Unable to add \w+ '[^']*')")
# A number typed with thousands separators (max_new_tokens=1,000), which Hydra reads as values to
# sweep over, and advises a list, a string or --multirun: none of them the number meant.
_THOUSANDS = re.compile(r"Ambiguous value for argument '([^'=]+)=([+-]?\d{1,3}(?:,\d{3})+)'")
# Any other value with a comma outside a sweep (optimizer.lr=1e-3,3e-3): Hydra's three numbered
# ways out over four lines, the sweep meant last.
_AMBIGUOUS = re.compile(r"Ambiguous value for argument '([^'=]+)=(.*)'$", re.MULTILINE)
# An option a config group does not have (Hydra's own groups, hydra/launcher=slrum: chargpt checks
# its own before Hydra composes), which Hydra lists a line each, then its whole config search path.
_NO_OPTION = re.compile(
    r"Could not find '([^']+)/([^'/]+)'\s+Available options in '\1':\n((?:[ \t]+\S+\n?)+)")
# The same for an option in a list (hydra/launcher=[slrum]): Hydra names it, and no options.
_NOT_LOADED = re.compile(r"Could not load '([^']+)/([^'/]+)'")
# A sweep over one of Hydra's own settings or groups (-m hydra/launcher=slrum,basic), which Hydra
# refuses whatever the values: its config is one for the whole sweep.
_SEARCH_PARAMS = "hydra.sweeper.params."  # where a search's config file names its dimensions
_HYDRA_SWEPT = re.compile(r"Sweeping over Hydra's configuration is not supported : '([^'=]+)=(.*)'")
# --config-name naming no config, then the search path, a `provider=..., path=...` line a folder.
_NO_PRIMARY = re.compile(r"Cannot find primary config '([^']+)'")
_CONFIG_DIR = re.compile(r"provider=(?:main|command-line), path=file://(.+)")
# A typed setting of Hydra's own config given a value of another type (hydra.job.chdir=maybe).
_WRONG_TYPE = re.compile(
    r"Error merging override [^\n]*\n(?:Value ('.*') is not a valid (\w+)"
    r"|Value ('.*') of type '\w+' could not be converted to (\w+)"
    r"|Invalid value ('.*'), expected one of \[(.*)\])[^\n]*\s+full_key: (\S+)")
_TYPE_TAKES = {"bool": "must be true or false", "int": "must be a whole number",
               "Integer": "must be a whole number", "float": "must be a number", "Float": "must be a number"}
_HYDRA_GROUPS = {"hydra.job_logging": "stdout, none or disabled", "hydra.hydra_logging": "none or disabled",
                 "hydra.launcher": "another launcher", "hydra.sweeper": "another sweeper"}


class _HeldStderr(io.TextIOBase):
    """sys.stderr while Hydra composes the config: holds what is written until `release`, then
    passes it through (logging handlers made meanwhile keep writing here)."""

    def __init__(self, target: TextIO) -> None:
        self.target, self.holding, self.held = target, True, []

    def write(self, text: str) -> int:
        if self.holding:
            self.held.append(text)
        else:
            self.target.write(text)
        return len(text)

    def flush(self) -> None:
        self.target.flush()

    def release(self) -> None:
        if self.holding:
            self.holding = False
            self.target.write("".join(self.held))
            self.held.clear()

    # What handlers and progress bars ask of a stream: the terminal's answers.
    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self.target.encoding

    def isatty(self) -> bool:
        return self.target.isatty()

    def fileno(self) -> int:
        return self.target.fileno()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.target, name)


_current: _HeldStderr | None = None


def release_stderr() -> None:
    """The config is composed: what follows is the command's own output (cli_task calls this as
    its task starts; the ReleaseStderr callback sooner)."""
    global _current
    if _current is not None:
        _current.release()
        if sys.stderr is _current:
            sys.stderr = _current.target
        _current = None


@contextmanager
def one_line_hydra_errors(
    settings_beside: Callable[[str], list[str]] | None = None, takes_new_settings: bool = True
) -> Iterator[None]:
    """`settings_beside(key)`: the settings next to a key that is not one (for "did you mean").
    `takes_new_settings`: whether a key that is not a setting may be added (`+KEY=VALUE`)."""
    global _current
    if full_errors_requested():
        yield
        return
    held = _current = _HeldStderr(sys.stderr)
    sys.stderr = held
    try:
        yield
    except SystemExit as exit_:
        text = "".join(held.held)
        plain = "Traceback" not in text or _LOGGING_REFUSED.search(text)  # a traceback: a defect, shown
        if held.holding and exit_.code == 1 and plain and text.strip():
            held.held.clear()
            held.release()  # the error line goes straight to the terminal's stderr
            exit_usage(one_line(text, settings_beside, takes_new_settings))
        raise
    finally:
        held.release()
        if sys.stderr is held:
            sys.stderr = held.target
        _current = None


def one_line(
    text: str, settings_beside: Callable[[str], list[str]] | None = None, takes_new_settings: bool = True
) -> str:
    """Hydra's message in one line, with chargpt's advice where it has some. A key that is not a
    setting is offered `+KEY=VALUE` only where `takes_new_settings` (chargpt-train: the other
    commands read nothing else)."""
    message = text.split(_HINT, 1)[0].strip()
    if match := _NOT_IN_STRUCT.search(message):
        key, added = match[1], match[2]
        if "/" in key:  # `+KEY` would add a setting named so, which nothing reads
            return not_a_group(added.lstrip("+"), key)
        parent, _, name = key.rpartition(".")
        where = f"a setting of {parent}" if parent else "a setting"
        beside = settings_beside(key) if settings_beside else []
        same_name = [setting for setting in beside if setting.endswith(f".{name}")]  # a group's (argv.py)
        if same_name:  # not misspelt, and a setting of one's own so named would be read by nothing
            return f"{key} is not {where}{did_you_mean(same_name[0])}; set it as {same_name[0]}=" \
                   f"{added.partition('=')[2]}"
        near = ALSO_KNOWN_AS[name] if ALSO_KNOWN_AS.get(name) in beside else nearest_name(name, beside)
        meant = did_you_mean(near, parent)
        spelling = f"{key} is not {where}{meant}; check its spelling (--cfg job shows every setting)"
        if not takes_new_settings or key.split(".", 1)[0] in _NOTHING_ADDED:
            return spelling
        return f"{spelling}, or add a setting of your own with {added}"
    if match := _NOT_DELETABLE.search(message):  # Hydra says so of a setting that is null, too
        key = match[1]
        parent, _, name = key.rpartition(".")
        beside = settings_beside(key) if settings_beside else []
        if name in beside:
            return f"~{key} removes nothing: {key} is null (no value) already; leave it out, or set {key}=..."
        near = nearest_name(name, beside)
        meant = did_you_mean(near, parent, "~")
        return f"~{key}: {key} is not a setting{meant}; check its spelling (--cfg job shows every setting)"
    if match := _LOGGING_REFUSED.search(message):  # hydra.hydra_logging's, set up before any callback
        return (f"hydra.hydra_logging does not work: {match[1]} (a handler, formatter or filter "
                f"removed but still named?); pick another option of its group instead: "
                f"hydra/hydra_logging=OPTION ({_HYDRA_GROUPS['hydra.hydra_logging']})")
    if match := _HYDRA_FIELD.search(message):
        key = match[1]
        cannot = f"~{key}: {key} is one of Hydra's own settings, which Hydra cannot remove"
        if key in _HYDRA_GROUPS:  # filled by a group: another of its options replaces it whole
            group, options = key.replace(".", "/"), _HYDRA_GROUPS[key]
            return f"{cannot}; pick another option of its group instead: {group}=OPTION ({options})"
        return f"{cannot}; leave it out, or set it to the value you want: {key}=VALUE"
    if match := _THOUSANDS.search(message):
        key, value = match[1], match[2]
        return (f"{key}={value} is read as {value.count(',') + 1} values, a comma separating them: for the "
                f"number, write it without commas, {key}={value.replace(',', '')} (with -m, a comma "
                "separates the values a sweep runs)")
    if match := _AMBIGUOUS.search(message):
        return _values_without_sweep(match[1], match[2])
    if match := _NO_OPTION.search(message):
        group, option, options = match[1], match[2], match[3].split()
        return f"{group}={option} is not an option of {group}; use one of: {', '.join(options)}"
    if (match := _NOT_LOADED.search(message)) and (options := _in_config_repository(
            lambda loader: loader.get_group_options(match[1]))):
        return f"{match[1]}={match[2]} is not an option of {match[1]}; use one of: {', '.join(options)}"
    if match := _HYDRA_SWEPT.search(message):
        return _hydra_swept(match[1], match[2])
    if match := _NO_PRIMARY.search(message):
        return _no_primary_config(match[1], _CONFIG_DIR.findall(message))
    if match := _WRONG_TYPE.search(message):
        value, kind, converted, into, choice, choices, key = match.groups()
        if choice is not None:
            return f"{key}={choice} is not one of {choices}"
        value, kind = (value, kind) if value is not None else (converted, into)
        return f"{key}={value} {_TYPE_TAKES.get(kind, f'must be of type {kind}')}"
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    return "; ".join(lines)


# The config groups whose options are alternatives (one model, one optimizer): a list of them is
# no list of things (as logger=[tensorboard,csv] is) but one option merged over another.
ONE_OPTION_GROUPS = ("data", "model", "optimizer", "scheduler", "trainer", "paths")


def _values_without_sweep(key: str, value: str) -> str:
    """`key=a,b` without -m, which Hydra takes for a sweep: -m runs each; a list is written in
    brackets (no way out for a group of alternatives: a list of them is refused); text with a
    comma is quoted for Hydra."""
    said = f"{key}={value} is read as several values, a comma separating them: to run once with each, add " \
           "-m (a sweep)"
    group = key.lstrip("+")
    # Each fix as typed into a shell, whatever the value holds ($, !, quotes): pasted, it is what it says.
    listed = shell_words.quote_in_double_quotes(f"{key}=[{value}]")
    if _in_config_repository(lambda loader: loader.get_group_options(group)):
        if group in ONE_OPTION_GROUPS:
            return f"{said}, or pick one"
        return f"{said}; for a list of its options, write it in brackets: {listed}"
    said += f"; for a list, write it in brackets: {listed}"
    if not all(_reads_as_number(item) for item in value.split(",")):
        text = shell_words.quote_in_double_quotes(f"{key}={hydra_quoted(value)}")
        said += f"; for text with a comma in it, quote it for Hydra too: {text}"
    return said


def _hydra_swept(key: str, value: str) -> str:
    """`-m key=a,b` of Hydra's own config: one value serves the whole sweep, so one is picked, from
    the group's options where it is a group (a misspelt one named); a search's dimension typed
    under hydra.sweeper.params is one typed as its setting."""
    group = key.lstrip("+")
    if group.startswith(_SEARCH_PARAMS):  # a search's dimension, typed where its config file holds it
        dimension = shell_words.quote(f"{group.removeprefix(_SEARCH_PARAMS)}={value}")
        return (f"{key}={value}: a search's dimension is given on the command line as the setting itself, "
                f"not under {_SEARCH_PARAMS.rstrip('.')}: {dimension}")
    said = f"{key}={value}: a sweep cannot vary Hydra's own settings (one serves all its jobs); pick one"
    # (A glob(...) of the group's options is listed by the config loader.)
    values = _with_config_loader(lambda loader: swept_values(parsed_override(f"{key}={value}", loader)))
    options = _in_config_repository(lambda loader: loader.get_group_options(group)) if "/" in group else []
    if not options:
        return f"{said}, e.g. {shell_words.quote(f'{key}={values[0]}')}" if values else said
    said += f" of {group}"
    if unknown := [item for item in values if item not in options]:
        said += f" ({', '.join(unknown)}: not {'an option' if len(unknown) == 1 else 'options'})"
    return f"{said}: {', '.join(options)}"


def _reads_as_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _in_config_repository(read: Callable[[Any], list[str]]) -> list[str]:
    """What `read` finds with Hydra's config loader (_with_config_loader), sorted."""
    return sorted(_with_config_loader(read))


def _with_config_loader(read: Callable[[Any], list[str]]) -> list[str]:
    """What `read` finds with Hydra's config loader: the one composing the config, or (on an
    error's path, Hydra done and cleared) one over chargpt's configs and Hydra's own; none where
    that fails."""
    if GlobalHydra.instance().is_initialized():
        return read(GlobalHydra.instance().config_loader())
    try:
        with initialize_config_dir(config_dir=CONFIG_PATH, version_base="1.3"):
            return read(GlobalHydra.instance().config_loader())
    except Exception:
        return []
    finally:
        GlobalHydra.instance().clear()


def groups_beside(key: str) -> list[str]:
    """The config groups beside `key`, a GROUP/NAME that names none: its parent's subgroups (those
    of `hydra`: launcher, sweeper, ...), else the top-level ones."""
    parent = key.rpartition("/")[0]

    def listed(loader: Any) -> list[str]:
        inner = [f"{parent}/{group}" for group in loader.list_groups(parent)] if parent else []
        return inner or loader.list_groups("")

    return _in_config_repository(listed)


def not_a_group(typed: str, key: str) -> str:
    """`typed` (`+hydra/foo=bar`, `foo/bar=baz`) sets `key`, which names no config group: Hydra takes
    it for a setting of that name, which no code reads."""
    groups = groups_beside(key)
    by_name = {group.rpartition("/")[2]: group for group in groups}
    near = nearest_name(key.rpartition("/")[2], by_name)
    meant = f" (did you mean {by_name[near]}?)" if near else ""
    listed = f" ({', '.join(groups)})" if groups else ""
    return (f"{typed}: {key} is not a config group{meant}, and a setting of that name is read by nothing; "
            f"pick an option of a group that exists{listed} as GROUP=OPTION, or drop it")


def _no_primary_config(name: str, config_dirs: list[str]) -> str:
    """`--config-name NAME` found in none of the folders searched; `config_dirs`: their file:// ones
    (chargpt's, a --config-path in its place, a --config-dir)."""
    config_dirs = [d for d in config_dirs if Path(d) != Path(CONFIG_PATH)]
    if not config_dirs:
        return (f"--config-name {name}: chargpt's configs have no {name}.yaml; give the folder that holds it "
                f"with --config-dir DIR, or leave --config-name out for this command's own config")
    folder = Path(config_dirs[-1])
    names = sorted(f.stem for f in folder.glob("*.yaml")) if folder.is_dir() else []
    have = f"its configs: {', '.join(names)}" if names else "it has no .yaml file at its top"
    return (f"--config-name {name}: no {name}.yaml in {folder} ({have}); name one of its "
            f"configs, or give the folder that holds {name}.yaml")


class QuietlyTaken(Callback):
    """A Hydra callback: what Hydra takes without a word that does nothing or harm in chargpt,
    refused in one line before any folder is made: `+GROUP/NAME=OPTION` where GROUP/NAME is no
    config group (Hydra adds a setting of that name, which no code reads), and hydra.job.chdir=true
    (the run would read its relative paths from its own folder: data.path=corpus.txt was not found
    there, and Hydra takes hydra.job.chdir=5 for true)."""

    @exit_on_user_error
    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        check_quietly_taken(config)

    @exit_on_user_error
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        check_quietly_taken(config)


def check_quietly_taken(config: DictConfig) -> None:
    typed = [*as_written(config.hydra.overrides.task), *as_written(config.hydra.overrides.hydra)]

    def as_given(key: str, default: str) -> str:
        return next((o for o in reversed(typed) if o.split("=", 1)[0].lstrip("+") == key), default)

    for key in (str(k) for k in config if "/" in str(k)):
        raise ConfigError(not_a_group(as_given(key, f"+{key}=..."), key))
    if OmegaConf.select(config, "hydra.job.chdir"):
        raise ConfigError(
            f"{as_given('hydra.job.chdir', 'hydra.job.chdir=true')}: chargpt works in the folder it is "
            "launched from and reads relative paths (data.path, ckpt_path, ...) from there; a run's files "
            "go to its run folder without it; drop it")


class ReleaseStderr(Callback):
    """A Hydra callback: the config is composed, so stderr is the command's from here on, also in
    the process that launches a sweep's jobs elsewhere (its sweeper's log lines come as they
    happen, not when the sweep ends)."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        release_stderr()

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        release_stderr()


class LoggingSetup(Callback):
    """A Hydra callback: a job logging setup that names a handler, formatter or filter it does not
    define (`~hydra.job_logging.handlers.file` leaves the root logger naming `file`) is refused in
    one line before the run's folder is made; Python's logging would end the job in a traceback."""

    @exit_on_user_error
    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        check_logging_setup(config.hydra.job_logging, "hydra.job_logging")

    @exit_on_user_error
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        check_logging_setup(config.hydra.job_logging, "hydra.job_logging")


def check_logging_setup(setup: DictConfig | None, key: str) -> None:
    """A ConfigError naming the first handler, formatter or filter that `setup` (a logging
    dictConfig) uses without defining it."""
    if setup is None:
        return
    plain = OmegaConf.to_container(setup, resolve=False)
    defined = {kind: set(plain.get(kind) or {}) for kind in ("handlers", "formatters", "filters")}
    used: list[tuple[str, str, Any]] = []  # (where, kind, name)
    for name, handler in (plain.get("handlers") or {}).items():
        if isinstance(handler, dict) and handler.get("formatter") is not None:
            used.append((f"handlers.{name}.formatter", "formatters", handler["formatter"]))
        used += [(f"handlers.{name}.filters", "filters", f) for f in (handler or {}).get("filters") or []]
    loggers = {"root": plain.get("root") or {}}
    loggers |= {f"loggers.{name}": logger or {} for name, logger in (plain.get("loggers") or {}).items()}
    for where, logger in loggers.items():
        used += [(f"{where}.handlers", "handlers", h) for h in logger.get("handlers") or []]
        used += [(f"{where}.filters", "filters", f) for f in logger.get("filters") or []]
    for where, kind, name in used:
        if isinstance(name, str) and name not in defined[kind]:
            group, options = key.replace(".", "/"), _HYDRA_GROUPS[key]
            names = "NAME" if where.endswith(".formatter") else "[...]"
            raise ConfigError(
                f"{key}.{where} names the {kind[:-1]} {name!r}, which {key}.{kind} does not define; "
                f"name one it defines ({key}.{where}={names}), or pick another option of its "
                f"group: {group}=OPTION ({options})")


class SweptSettings(Callback):
    """A Hydra callback: a sweep's settings are checked before it starts. Hydra composes each job
    with its own values only when the job starts, so a misspelt swept setting was Hydra's error
    over several lines (exit 1), and a `ddp` job launched here, or a closing sample the console
    cannot write, was refused after the sweep's folder was made."""

    @exit_on_user_error
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from chargpt.cli.common import naming_removed_settings  # (common imports this module)
        from chargpt.cli.prompts import check_sweep_output_writes  # multirun only: it imports torch
        from chargpt.training.run_checks import check_launch  # multirun only: it imports Lightning
        from chargpt.training.trackers import check_sweep_job_loggers

        jobs = check_swept_settings(config)
        for job in jobs:
            check_sweep_job_loggers(job)
        # A SLURM launcher's jobs start on the cluster, whose environment the job's own check reads.
        if not submits_to_slurm(config):
            for job in jobs:
                with naming_removed_settings():  # trainer.strategy=${oc.env:UNSET}: refused here, once
                    check_launch(job, in_sweep=True)
                check_sweep_output_writes(job)


def submits_to_slurm(config: DictConfig) -> bool:
    """Whether the sweep's launcher submits its jobs to SLURM (hydra/launcher=slurm, submitit_slurm)."""
    return "slurm" in str(config.hydra.launcher.get("_target_")).lower()


class SlurmAtHand(Callback):
    """A Hydra callback: a SLURM launcher submits jobs with SLURM's commands, which only a
    cluster's nodes have. Elsewhere submitit refused in a traceback (`Could not detect "srun"`)
    once the sweep had started; here it is one line, before the sweep's folder is made."""

    @exit_on_user_error
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        check_slurm_at_hand(config)


def check_slurm_at_hand(config: DictConfig) -> None:
    """A ConfigError if the sweep's launcher is SLURM's and this machine has no SLURM (by
    submitit's own test: an `srun` on the PATH)."""
    if not submits_to_slurm(config):
        return
    from submitit import SlurmExecutor  # the launcher composed, so the `slurm` extra is there

    if SlurmExecutor.affinity() > 0:
        return
    choice = OmegaConf.select(config, "hydra.runtime.choices", default={}).get("hydra/launcher") or "slurm"
    raise ConfigError(
        f"hydra/launcher={choice} submits the sweep's jobs to SLURM, but this machine has no SLURM (no "
        f"srun command on the PATH); run the command on the cluster's login node, or drop "
        f"hydra/launcher={choice} (hydra/launcher=local_parallel runs the jobs here, side by side)")


# The settings each value of which a sweep gives is checked as its own job, where the first job's
# alone let them start: those that decide how a job starts its processes (`trainer=cpu,ddp_cpu`)
# and the experiments, which set them; and, on a console that cannot write every character, those
# that decide the text and its closing sample (composing a job takes ~0.1-0.3 s: not for nothing).
_LAUNCH_KEYS = ("trainer", "trainer.strategy", "experiment")
_TEXT_KEYS = ("data", "sample.max_new_tokens")


def _checked_per_value(key: str) -> bool:
    key = key.lstrip("+~")
    if key in _LAUNCH_KEYS:
        return True
    return (key in _TEXT_KEYS or key.startswith("data.")) and not stdout_writes_any_text()


def check_swept_settings(config: DictConfig) -> list[DictConfig]:
    """Compose the sweep's first job as its launcher will (each swept setting at its first value;
    a search's continuous dimension at null, which any setting takes): a ConfigError in one line
    if that fails. Returns the jobs composed: the first, and that job with each other value of a
    swept setting that _checked_per_value names (none for a sweep of no jobs)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser  # multirun only

    loader = GlobalHydra.instance().config_loader()
    parser = OverridesParser.create(config_loader=loader)  # glob(...) of a group lists its options
    given = parser.parse_overrides(as_written(config.hydra.overrides.task))
    search = OmegaConf.to_container(config.hydra.sweeper).get("params") or {}  # a search's dimensions
    given += parser.parse_overrides([f"{key}={value}" for key, value in search.items()
                                     if key not in {o.key_or_group for o in given}])
    first_job, stand_ins, others = [], {}, []
    for override in given:
        key = override.get_key_element()
        if not override.is_sweep_override():
            first_job.append(f"{key}={override.get_value_element_as_str()}")
        elif override.is_discrete_sweep():
            values = swept_values(override)
            if not values:  # range(0), an empty glob: a sweep of no jobs, Hydra's to say
                return []
            if _checked_per_value(key):
                others += [(len(first_job), f"{key}={value}") for value in values[1:]]
            first_job.append(f"{key}={values[0]}")
        else:
            first_job.append(f"{key}=null")
            stand_ins[f"{key}=null"] = override.input_line
    jobs = [first_job, *([*first_job[:at], line, *first_job[at + 1:]] for at, line in others)]
    try:
        return [loader.load_sweep_config(config, job) for job in jobs]
    except ConfigCompositionException as err:
        message = one_line(str(err), lambda key: settings_in(config, key))
        for stand_in, typed in stand_ins.items():  # the advice names the dimension as typed
            message = message.replace(f"+{stand_in}", f"+{typed}")
        raise ConfigError(message) from None


def settings_in(config: DictConfig, key: str) -> list[str]:
    """The settings beside `key` in `config` (its parent's keys), for a "did you mean"."""
    parent = key.rpartition(".")[0]
    node = OmegaConf.select(config, parent) if parent else config
    return [str(k) for k in node] if isinstance(node, DictConfig) else []
