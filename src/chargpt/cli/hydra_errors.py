"""Hydra's own errors before a command's task starts (an unknown setting, a value its grammar
rejects) as one `error:` line with exit code 2, like chargpt's own.

Hydra prints such an error over several lines, with advice for developers, and exits 1. What it
writes to stderr before the task starts is held back: if it then exits 1, the held text is the
error, said again in one line; once the task starts, the held text (warnings) is let through and
stderr is the terminal's again (the ReleaseStderr callback lets it through sooner, as soon as
Hydra has composed the config: a sweep's launcher may run its tasks in other processes).
What Hydra takes without an error but chargpt refuses, the launch checks, is cli/launch_checks.py's.
"""

from __future__ import annotations

import io
import re
import shlex
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol, TextIO, TypeVar

from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import HydraException
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from chargpt import shell_words
from chargpt.cli import CONFIG_PATH
from chargpt.errors import exit_usage, full_errors_requested
from chargpt.overrides import hydra_quoted, parsed_override, swept_as_typed, swept_values
from chargpt.spelling import did_you_mean, nearest_name

T = TypeVar("T")
_HINT = "Set the environment variable HYDRA_FULL_ERROR=1"
# Names other tools use for a setting that no spelling check would connect to chargpt's.
ALSO_KNOWN_AS = {"learning_rate": "lr"}
# Groups read setting by setting, not handed whole to a constructor: a key added under them is
# refused (model: ModelConfig has its fields only) or read by nothing, so `+KEY` is no advice there.
_NOTHING_ADDED = ("model", "sample", "finetune")
_NOT_IN_STRUCT = re.compile(r"Could not override '([^']+)'\.\s+To append to your config use ([^\n]+)")
# Under it, the key Hydra could not add: where it is below the setting overridden, a dict value
# (extra={seed: 1, lr: 2}) named a key the dict there lacks, which a merge into it does not add.
_FULL_KEY = re.compile(r"^\s*full_key: (\S+)$", re.MULTILINE)
_NOT_DELETABLE = re.compile(r"Could not delete from config\. '([^']+)' does not exist")
# `~hydra.KEY` of a field of Hydra's own structured config (hydra.job_logging, hydra.run.dir), which
# Hydra cannot delete; entries of its dicts (hydra.callbacks.NAME) can go.
_HYDRA_FIELD = re.compile(r"Error merging override ~(\S+)\s+\S+ \(DictConfig\) does not support deletion")
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
# Hydra's fields that its config groups fill (hydra/job_logging=stdout picks another whole setup).
HYDRA_GROUPS = {"hydra.job_logging": "stdout, none or disabled", "hydra.hydra_logging": "none or disabled",
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


class SettingsBeside(Protocol):
    """The settings beside `key` (composed_checks.settings_beside), for a "did you mean"; the
    overrides of `typed`, a misspelt key standing for it, left out of the config composed."""

    def __call__(self, key: str, typed: str = "") -> list[str]: ...

    def nearest_node(self, key: str) -> tuple[str, DictConfig] | None:
        """The deepest node above `key` that the config has, and its name; None where unknown."""

    def commands_taking(self, key: str) -> tuple[str, list[str]]:
        """This command (chargpt-sample), and the other commands that have the setting `key`."""


class _NoSettings:
    def __call__(self, key: str, typed: str = "") -> list[str]:
        return []

    def nearest_node(self, key: str) -> tuple[str, DictConfig] | None:
        return None

    def commands_taking(self, key: str) -> tuple[str, list[str]]:
        return "", []


def shows_every_setting(key: str) -> str:
    """The option that prints the settings `key` is among: `--cfg job` leaves Hydra's own out."""
    return "--cfg hydra shows Hydra's settings" if _is_hydras(key) else "--cfg job shows every setting"


def _is_hydras(key: str) -> bool:
    return key.lstrip("+~").split(".", 1)[0] == "hydra"


@contextmanager
def one_line_hydra_errors(
    settings_beside: SettingsBeside | None = None, takes_new_settings: bool = True
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
    text: str, settings_beside: SettingsBeside | None = None, takes_new_settings: bool = True
) -> str:
    """Hydra's message in one line, with chargpt's advice where it has some. A key that is not a
    setting is offered `+KEY=VALUE` only where `takes_new_settings` (chargpt-train: the other
    commands read nothing else)."""
    message = text.split(_HINT, 1)[0].strip()
    beside = settings_beside or _NoSettings()
    if match := _NOT_IN_STRUCT.search(message):
        if (inner := _FULL_KEY.search(message)) and inner[1].startswith(f"{match[1]}."):
            return _not_in_the_dict(match[2], inner[1], beside, takes_new_settings)
        return _not_a_setting(match[1], match[2], beside, takes_new_settings)
    if match := _NOT_DELETABLE.search(message):  # Hydra says so of a setting that is null, too
        return _not_removable(match[1], beside)
    if match := _LOGGING_REFUSED.search(message):  # hydra.hydra_logging's, set up before any callback
        return (f"hydra.hydra_logging does not work: {match[1]} (a handler, formatter or filter "
                f"removed but still named?); pick another option of its group instead: "
                f"hydra/hydra_logging=OPTION ({HYDRA_GROUPS['hydra.hydra_logging']})")
    if match := _HYDRA_FIELD.search(message):
        return _hydra_setting_removed(match[1])
    if match := _THOUSANDS.search(message):
        key, value = match[1], match[2]
        return (f"{key}={value} is read as {value.count(',') + 1} values, a comma separating them: for the "
                f"number, write it without commas, {key}={value.replace(',', '')} (with -m, a comma "
                "separates the values a sweep runs)")
    if match := _AMBIGUOUS.search(message):
        return _values_without_sweep(match[1], match[2])
    if match := _NO_OPTION.search(message):
        return not_an_option(match[1], match[2], match[3].split())
    if (match := _NOT_LOADED.search(message)) and (options := _in_config_repository(
            lambda loader: loader.get_group_options(match[1]))):
        return not_an_option(match[1], match[2], options)
    if match := _HYDRA_SWEPT.search(message):
        return _hydra_swept(match[1], match[2])
    if match := _NO_PRIMARY.search(message):
        return _no_primary_config(match[1], _CONFIG_DIR.findall(message))
    if match := _WRONG_TYPE.search(message):
        return _wrong_type(*match.groups())
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    return "; ".join(lines)


def _not_a_setting(
    key: str, added: str, settings_beside: SettingsBeside, takes_new_settings: bool
) -> str:
    """`key` (typed as `added`, KEY=VALUE) is no setting: a group's setting of that name, a misspelt
    one, or (where the command takes them) one of the user's own to add with `+`."""
    if "/" in key:  # `+KEY` would add a setting named so, which nothing reads
        return not_a_group(added.lstrip("+"), key)
    if _is_hydras(key):
        return _not_a_hydra_setting(key, added, settings_beside)
    parent, _, name = key.rpartition(".")
    where = f"a setting of {parent}" if parent else "a setting"
    beside = settings_beside(key)
    # A group's setting of that name (composed_checks.settings_beside lists them).
    same_name = [setting for setting in beside if setting.endswith(f".{name}")]
    if same_name:  # not misspelt, and a setting of one's own so named would be read by nothing
        return f"{key} is not {where}{did_you_mean(same_name[0])}; set it as {same_name[0]}=" \
               f"{added.partition('=')[2]}"
    if another := _another_commands(key, added, settings_beside):
        return another
    near = ALSO_KNOWN_AS[name] if ALSO_KNOWN_AS.get(name) in beside else nearest_name(name, beside)
    meant = did_you_mean(near, parent)
    top, _, below = key.partition(".")
    # (Hydra's own settings are not among the job's that settings_beside lists: hydra is no misspelling.)
    tops = settings_beside(top) if parent and not beside and top != "hydra" else []
    group_meant = None
    if tops and top not in tops:  # the group itself misspelt (optimzer.lr): nothing beside `name`
        group = nearest_name(top, tops)
        inside = settings_beside(f"{group}.{below}", key) if group is not None else []
        # Named only where it has the setting typed, or one near it: seeds.x names none (seed is a
        # number, seed.x no setting); optimzer.lrr names optimizer.lr.
        setting = below if name in inside else nearest_name(below, inside) if "." not in below else None
        group_meant = group if setting else None
        where, meant = f"a setting: there is no {top}", did_you_mean(group_meant, below=setting or below)
    spelling = f"{key} is not {where}{meant}; check its spelling (--cfg job shows every setting)"
    # A setting added under a misspelt group (+optimzer.lr) is read by nothing: the group meant is the fix.
    if not takes_new_settings or key.split(".", 1)[0] in _NOTHING_ADDED or group_meant:
        return spelling
    return f"{spelling}, or add a setting of your own with {_pasted(added)}"


def _another_commands(key: str, added: str, settings_beside: SettingsBeside) -> str | None:
    """`key` is another command's setting: this one's of the same meaning where it has one (training's
    sample.prompt is chargpt-sample's prompt), else the commands that take it; None where none does."""
    command, others = settings_beside.commands_taking(key)
    if not others:
        return None
    whose = f"a setting of {_listed(others)}, not of {command}"
    own = key.partition(".")[2]
    if own and "." not in own and own in settings_beside(own, key):
        return f"{key} is {whose}{did_you_mean(own)}; set it as {own}={added.partition('=')[2]}"
    return f"{key} is {whose}; drop it, or give it to {others[0] if len(others) == 1 else 'one of those'}"


def _listed(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def _pasted(added: str) -> str:
    """`added` quoted where the shell would split or read it (tag(log, ...), a space): pasted, it is
    what it says."""
    return added if shlex.quote(added) == added else shell_words.quote_in_double_quotes(added)


def _not_a_hydra_setting(key: str, added: str, settings_beside: SettingsBeside) -> str:
    """`key` (typed as `added`) is none of Hydra's settings: the one meant where one is near, from
    the deepest node the key's start names (hydra.job.env_sett.FOO: env_set of hydra.job). `+KEY`
    is advised only into a node of Hydra's config that is a dict (hydra.job.env_set,
    hydra.callbacks), which Hydra reads whole; into one of its structured configs (hydra.run,
    hydra.job) a key is added as well, but Hydra reads their fields alone."""
    parent = key.rpartition(".")[0]
    above, node = settings_beside.nearest_node(key) or ("", None)
    first, _, below = key.removeprefix(f"{above}.").partition(".")
    names = [str(name) for name in node] if node is not None else []
    meant = did_you_mean(nearest_name(first, names), above, below=below)
    where = f"a setting of {parent}" if above == parent else f"a setting: there is no {above}.{first}"
    spelling = f"{key} is not {where}{meant}; check its spelling ({shows_every_setting(key)})"
    if node is None or OmegaConf.get_type(node) is not dict:
        return spelling
    return f"{spelling}, or add a setting of your own with {_pasted(added)}"


def _not_in_the_dict(
    added: str, full_key: str, settings_beside: SettingsBeside, takes_new_settings: bool
) -> str:
    """A value of settings (typed as `added`, +KEY=VALUE) names `full_key`, which the settings there
    lack: Hydra merges the value into them, which adds no name; a misspelt one is named, and `++` adds
    one only where the command reads settings of one's own (as `_not_a_setting` offers `+`)."""
    typed = added.lstrip("+")
    parent, _, name = full_key.rpartition(".")
    said = f"{typed} adds {name}, which {parent} has not"
    meant = did_you_mean(nearest_name(name, settings_beside(full_key)), parent)
    fix = shell_words.quote("++" + typed)
    if not takes_new_settings or full_key.split(".", 1)[0] in _NOTHING_ADDED:
        return f"{said}{meant}; check its spelling ({shows_every_setting(full_key)})"
    if meant:
        return (f"{said}{meant}; check its spelling ({shows_every_setting(full_key)}), or, to add it (a "
                f"value of settings is merged into the one there), write {fix}")
    return f"{said}: a value of settings is merged into the one there; to add {name}, write {fix}"


def _not_removable(key: str, settings_beside: SettingsBeside) -> str:
    """`~key` removes nothing: the setting is null already, or there is none so named."""
    parent, _, name = key.rpartition(".")
    beside = settings_beside(key)
    if name in beside:
        return f"~{key} removes nothing: {key} is null (no value) already; leave it out, or set {key}=..."
    near = nearest_name(name, beside)
    meant = did_you_mean(near, parent, "~")
    return f"~{key}: {key} is not a setting{meant}; check its spelling ({shows_every_setting(key)})"


def _hydra_setting_removed(key: str) -> str:
    cannot = f"~{key}: {key} is one of Hydra's own settings, which Hydra cannot remove"
    if key in HYDRA_GROUPS:  # filled by a group: another of its options replaces it whole
        group, options = key.replace(".", "/"), HYDRA_GROUPS[key]
        return f"{cannot}; pick another option of its group instead: {group}=OPTION ({options})"
    return f"{cannot}; leave it out, or set it to the value you want: {key}=VALUE"


def _wrong_type(
    value: str | None, kind: str | None, converted: str | None, into: str | None, choice: str | None,
    choices: str | None, key: str,
) -> str:
    """A value of the wrong type (as Hydra or OmegaConf words it), or not one of an enum's choices."""
    if choice is not None:
        return f"{key}={choice} is not one of {choices}"
    value, kind = (value, kind) if value is not None else (converted, into)
    return f"{key}={value} {_TYPE_TAKES.get(kind, f'must be of type {kind}')}"


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


def under_search_params(key: str, value: str) -> str | None:
    """`key=value` typed where a search's config file holds its dimensions (hydra.sweeper.params.KEY,
    `+` or not): a dimension, or a fixed value, is typed as its setting. (Hydra's refusal of a sweep
    of its own settings, OmegaConf's traceback where no search is set up, or a `+KEY` that nests
    the dimension under the first part of its name.) None for any other key."""
    if not key.lstrip("+").startswith(_SEARCH_PARAMS):
        return None
    dimension = shell_words.quote(f"{key.lstrip('+').removeprefix(_SEARCH_PARAMS)}={value}")
    return (f"{key}={value}: a search's dimension is given on the command line as the setting itself, "
            f"not under {_SEARCH_PARAMS.rstrip('.')}: {dimension}")


def search_params_dict(override: str) -> dict | None:
    """The dimensions of `hydra.sweeper.params={model.dropout: x}` (`+` or not), a search's space
    typed as one dict; None for any other override, and for `{}`, which gives none."""
    if override.partition("=")[0].lstrip("+") != _SEARCH_PARAMS.rstrip("."):
        return None
    try:
        dimensions = parsed_override(override).value()
    except HydraException:
        return None
    return dimensions if isinstance(dimensions, dict) and dimensions else None


def no_search_to_give(override: str, dimensions: dict, searches: bool) -> str:
    """The error for `hydra.sweeper.params={...}` where no search is set up (its params are null,
    and OmegaConf's merge into them was a traceback): each dimension given as its setting.
    `searches`: whether the command has the hparams_search group that sets a search up."""
    set_up = " (hparams_search=optuna sets one up)" if searches else ""
    said = (f"{override}: no search is set up to take it{set_up}; a sweep's values, as a search's "
            "dimensions, are given on the command line as the settings themselves")
    return f"{said}: {_as_settings(dimensions)}"


def dimensions_as_settings(override: str, dimensions: dict) -> str:
    """The error for `hydra.sweeper.params={...}` that a search's params cannot take as typed (a
    new dimension without `+`, which Hydra said was no setting; a sweep typed bare, which OmegaConf
    cannot merge): each dimension given as its setting."""
    return (f"{override}: a search's dimensions are given on the command line as the settings "
            f"themselves: {_as_settings(dimensions)}")


def _as_settings(dimensions: dict) -> str:
    return shell_words.join(f"{name}={swept_as_typed(value)}" for name, value in dimensions.items())


def _hydra_swept(key: str, value: str) -> str:
    """`-m key=a,b` of Hydra's own config: one value serves the whole sweep, so one is picked, from
    the group's options where it is a group (a misspelt one named)."""
    group = key.lstrip("+")
    said = f"{key}={value}: a sweep cannot vary Hydra's own settings (one serves all its jobs); pick one"
    # (A glob(...) of the group's options is listed by the config loader.)
    values = with_config_loader(lambda loader: swept_values(parsed_override(f"{key}={value}", loader)))
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
    """What `read` finds with Hydra's config loader (with_config_loader), sorted."""
    return sorted(with_config_loader(read))


def with_config_loader(read: Callable[[Any], T]) -> T | list[str]:
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


def not_an_option(group: str, option: str, options: list[str]) -> str:
    """`group=option` names no option of config group `group`: the line listing those it has, and
    the one a misspelling most likely meant."""
    near = nearest_name(option, options)
    meant = f" (did you mean {group}={near}?)" if near else ""
    return f"{group}={option} is not an option of {group}{meant}; use one of: {', '.join(options)}"


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


class ReleaseStderr(Callback):
    """A Hydra callback: the config is composed, so stderr is the command's from here on, also in
    the process that launches a sweep's jobs elsewhere (its sweeper's log lines come as they
    happen, not when the sweep ends)."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        release_stderr()

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        release_stderr()


def settings_in(config: DictConfig, key: str) -> list[str]:
    """The settings beside `key` in `config` (its parent's keys), for a "did you mean"."""
    parent = key.rpartition(".")[0]
    node = OmegaConf.select(config, parent) if parent else config
    return [str(k) for k in node] if isinstance(node, DictConfig) else []
