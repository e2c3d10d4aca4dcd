"""Every private member of Hydra, and of the Hydra plugins chargpt extends, that chargpt relies on,
in one place.

Each has no public equivalent in the versions pyproject.toml allows (hydra-core 1.3, the plugins
pinned); tests/test_hydra_internals.py fails with the member's name if an upgrade removes one.
Nothing is imported from a private module when this module loads: a member an upgrade renames
costs the one behaviour that needs it, not the import of every command. The plugin classes of
src/hydra_plugins subclass two of them (BASIC_SWEEPER, OPTUNA_SWEEPER), which they import themselves.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
from typing import Any

from hydra.core.override_parser.types import Override
from hydra.core.utils import JobReturn

# (module, name): the basic sweeper, the class chargpt's default sweeper extends, and its expansion of
# `a=1,2 b=range(3)` into jobs; Optuna's sweeper, whose trials' overrides chargpt's search writes.
BASIC_SWEEPER = ("hydra._internal.core_plugins.basic_sweeper", "BasicSweeper")
OPTUNA_SWEEPER = ("hydra_plugins.hydra_optuna_sweeper._impl", "OptunaSweeperImpl")
# Hydra's command-line parser, whose options are not overrides (cli/hydra_options.py).
ARGS_PARSER = ("hydra._internal.utils", "get_args_parser")
# How the basic sweeper escapes a `choice(...)` value as it writes it into a job's override.
ESCAPE = ("hydra._internal.grammar.utils", "escape_special_characters")
# The characters a backslash escapes in an unquoted value (its grammar's ESC rule).
ESCAPED = ("hydra._internal.grammar.utils", "_ESC")
# How Optuna's sweeper reads its search space from `name=value` lines (tag(log, interval(...)), ...).
OPTUNA_SPACE = ("hydra_plugins.hydra_optuna_sweeper._impl", "create_params_from_overrides")

# (owner, attribute path) pairs, checked by the test: an owner with a dot is a module (imported by
# the test), else a class named here.
PRIVATE_MEMBERS: list[tuple[str, str]] = [
    BASIC_SWEEPER,
    ("BasicSweeper", "split_arguments"),
    ARGS_PARSER,
    ESCAPE,
    ESCAPED,
    # A parsed override's value (a sweep's list of choices), read and replaced.
    ("Override", "_value"),
    # A job's result or its exception, read without Hydra's `Error executing job` line that the
    # public return_value writes for a failed job.
    ("JobReturn", "_return_value"),
    # Optuna's sweeper (its extra): the one step that writes each trial's overrides, and the module
    # whose logger says the search's best trial (runs/sweep_outcome.py).
    OPTUNA_SWEEPER,
    ("OptunaSweeperImpl", "_configure_trials"),
    OPTUNA_SPACE,
]


def _member(module: str, name: str) -> Any:
    return getattr(importlib.import_module(module), name)


def basic_sweeper() -> type:
    """Hydra's BasicSweeper class."""
    return _member(*BASIC_SWEEPER)


@functools.cache
def hydra_options() -> tuple[str, ...]:
    """The options Hydra's own command line takes (--multirun, -cn, --cfg, ...)."""
    parser = _member(*ARGS_PARSER)()
    return tuple(option for action in parser._actions for option in action.option_strings)


@functools.cache
def hydra_switches() -> tuple[str, ...]:
    """Hydra's options that take no value (--multirun, --shell-completion, --help, ...)."""
    parser = _member(*ARGS_PARSER)()
    return tuple(option for action in parser._actions if action.nargs == 0
                 for option in action.option_strings)


def optuna_search_space(written: list[str]) -> dict[str, Any]:
    """The Optuna distribution of each setting searched in `written` (`name=value` lines, a later
    line of a name replacing an earlier), as Optuna's sweeper reads them: a setting given a fixed
    value there leaves the search."""
    searched, fixed = _member(*OPTUNA_SPACE)(written)
    return {name: value for name, value in searched.items() if name not in fixed}


def escape_special_characters(text: str) -> str:
    """`text` escaped as Hydra's basic sweeper writes a choice's value into its job's override."""
    return str(_member(*ESCAPE)(text))


def escaped_characters() -> str:
    """The characters a backslash escapes in an unquoted value (`\\,` is a comma, `\\\\` a backslash)."""
    return str(_member(*ESCAPED))


def override_value(override: Override) -> Any:
    """A parsed override's value as parsed (a sweep: its ChoiceSweep, RangeSweep, ...)."""
    return override._value


def with_value(override: Override, value: Any) -> Override:
    """`override` with another parsed value."""
    return dataclasses.replace(override, _value=value)


def job_result(result: JobReturn) -> Any:
    """What a job returned, or the exception it failed with."""
    return result._return_value
