"""The Hydra callbacks that refuse a launch's settings in one line (exit code 2) before any folder
is made: what Hydra takes without a word that does nothing or harm (`+GROUP/NAME=OPTION` naming no
group, hydra.job.chdir=true, a sweep's hydra.run.dir or its `seed=[1,2]`), a logging setup naming
what it does not define, a SLURM launcher with no SLURM here, and a sweep's settings, each job's
checked as its launcher will compose it.
"""

from __future__ import annotations

import collections.abc
import contextlib
import copy
import inspect
import re
import types
import typing
from collections.abc import Callable, Iterator
from typing import Any

from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.types import Override
from hydra.errors import ConfigCompositionException, HydraException
from hydra.experimental.callback import Callback
from hydra.utils import get_object
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from chargpt import shell_words
from chargpt.checks import WITHOUT_DECIMAL_POINT
from chargpt.cli.common import check_threads, naming_removed_settings
from chargpt.cli.composed_checks import settings_beside_in
from chargpt.cli.hydra_errors import HYDRA_GROUPS, not_a_group, one_line
from chargpt.errors import ConfigError, exit_on_user_error, first_line
from chargpt.hydra_run import as_written
from chargpt.overrides import (
    is_free_text_key,
    is_sweep,
    literal_value,
    override_key,
    parsed_override,
    sweep_item,
    swept_values,
)


class QuietlyTaken(Callback):
    """A Hydra callback: what Hydra takes without a word that does nothing or harm in chargpt,
    refused in one line before any folder is made: `+GROUP/NAME=OPTION` where GROUP/NAME is no
    config group (Hydra adds a setting of that name, which no code reads), hydra.job.chdir=true
    (the run would read its relative paths from its own folder: data.path=corpus.txt was not found
    there, and Hydra takes hydra.job.chdir=5 for true), and a sweep's setting typed as one value
    (`seed=[1,2]`, `seed=1..3`)."""

    @exit_on_user_error
    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        check_quietly_taken(config)

    @exit_on_user_error
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        check_quietly_taken(config)
        check_no_run_dir(config)
        check_sweeps_typed_as_one_value(config)


def check_no_run_dir(config: DictConfig) -> None:
    """A sweep's `hydra.run.dir=DIR`: Hydra reads a sweep's folder from hydra.sweep.dir only, and
    took this without a word; the jobs went to a new dated folder, not to DIR."""
    overrides = as_written(config.hydra.overrides.hydra)
    typed = [o for o in overrides if o.split("=", 1)[0].lstrip("+") == "hydra.run.dir"]
    if typed:
        folder = literal_value(typed[-1])
        said = (f"hydra.run.dir={folder} names one run's folder, which a sweep (-m) does not use: its jobs "
                "go into hydra.sweep.dir, one folder each")
        sweep_dirs = [o for o in overrides if o.split("=", 1)[0].lstrip("+") == "hydra.sweep.dir"]
        if sweep_dirs:  # (writing it instead would name the sweep's folder twice)
            raise ConfigError(f"{said} ({literal_value(sweep_dirs[-1])} here); drop hydra.run.dir")
        raise ConfigError(f"{said}; write {shell_words.quote(f'hydra.sweep.dir={folder}')} instead")


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


# A setting the sweep's defaults do not have (`+trainer.my_list=[1,2]`, a setting of one's own).
_ABSENT = object()
# `seed=1..3`, a range as other tools write it: Hydra reads it as the text '1..3'.
_DOTTED_RANGE = re.compile(r"\s*([+-]?\d+)\s*\.{2,3}\s*([+-]?\d+)\s*")


def check_sweeps_typed_as_one_value(config: DictConfig) -> None:
    """A sweep's setting typed as a list (`seed=[1,2]`) or as a range the way other tools write one
    (`seed=1..3`) is one value to Hydra, the same in every job, which each job then refused ("must
    be a whole number") once the sweep's folder was made: refused here, naming the sweep meant. A
    list is refused where the setting's default is one value, or null and the list's items are all
    numbers (`sample.top_k=[5,10]`; data.data_files, null too, takes a list of names); Hydra's
    settings, free text and a setting whose constructor takes a list for it (_takes_a_list:
    trainer.devices, a count or the GPUs to use) are left as typed."""
    typed = [o for o in as_written(config.hydra.overrides.task) if not is_sweep(o)]
    typed = [o for o in typed
             if not (key := override_key(o)).startswith("hydra.") and not is_free_text_key(key)]
    for override in typed:
        key, value = override_key(override), override.partition("=")[2]
        if (ends := _DOTTED_RANGE.fullmatch(value)) is not None:
            first, last = int(ends[1]), int(ends[2])
            ranged = f"{shell_words.quote(f'{key}=range({first},{last + 1})')} (its end is left out) or " \
                if first < last else ""
            each = range(first, last + 1) if first <= last else range(first, last - 1, -1)
            raise ConfigError(f"{override} is one value to Hydra, the text {value!r}, not a range to sweep: "
                              f"{_for_each(config, key, f'of {first} to {last}')}, write {ranged}"
                              f"{key}={','.join(map(str, each))}")
    lists = {o: items for o in typed if (items := _list_items(o))}
    if not lists:
        return
    # The defaults beside the other settings typed (an experiment may set them), and the options of a
    # group chosen in a list (`callbacks=[default,mine]`: their settings are among those checked).
    loader = GlobalHydra.instance().config_loader()
    others = [o for o in as_written(config.hydra.overrides.task)
              if (o not in lists or _names_a_group(loader, override_key(o))) and not is_sweep(o)]
    try:
        defaults = loader.load_sweep_config(config, others)
    except HydraException:  # a misspelt setting: the sweep's other checks name it
        return
    for override, items in lists.items():
        key = override_key(override)
        default = OmegaConf.select(defaults, key, default=_ABSENT, throw_on_resolution_failure=False)
        one_value = isinstance(default, (bool, int, float, str)) or (default is None and _numbers(override))
        if one_value and not _takes_a_list(defaults, key):
            swept = shell_words.quote(f"{key}={','.join(items)}")
            raise ConfigError(f"{override} gives {key} a list, the same in every job, where it takes one "
                              f"value: {_for_each(config, key)}, write the values without brackets: {swept}")


def _names_a_group(loader: Any, key: str) -> bool:
    """Whether `key` (`callbacks`, `hydra/launcher`) is a config group, whose list is of its options."""
    parent, _, name = key.rpartition("/")
    return name in loader.list_groups(parent)


def _takes_a_list(defaults: DictConfig, key: str) -> bool:
    """Whether the class or function a setting is handed to (its config's `_target_`: lightning.Trainer
    for trainer.devices) takes a list for it, as its type hints say (`devices: list[int] | str | int`;
    a tuple, a Sequence or an Iterable, `every: tuple[int, ...]`, takes one too)."""
    parent, _, name = key.rpartition(".")
    target = OmegaConf.select(defaults, f"{parent}._target_" if parent else "_target_", default=None,
                              throw_on_resolution_failure=False)
    if not isinstance(target, str):
        return False
    try:
        built = get_object(target)
        hint = typing.get_type_hints(built.__init__ if inspect.isclass(built) else built).get(name)
    except (ImportError, AttributeError, NameError, TypeError, HydraException):
        return False  # (a target that cannot be imported: the run's own checks name it)
    kinds = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    return any((typing.get_origin(kind) or kind) in _COLLECTIONS for kind in kinds)


# The hints (their origins: `tuple` for `tuple[int, ...]`) of a collection of items, which a list given is.
# Not every class that iterates: a tensor does (`lr: float | Tensor`), and text, and a mapping.
_COLLECTIONS = (list, tuple, set, frozenset, collections.abc.Iterable, collections.abc.Collection,
                collections.abc.Sequence, collections.abc.MutableSequence, collections.abc.Set)


def _for_each(config: DictConfig, key: str, values: str = "") -> str:
    """What a sweep of `key`'s values (`values`: "of 1 to 3", or them all) does: a job for each,
    or, under a search (hparams_search=optuna), a choice each trial draws one of."""
    if OmegaConf.select(config, "hydra.runtime.choices", default={}).get("hydra/sweeper") == "optuna":
        return f"for the search to draw each trial's {key} from {values.removeprefix('of ') or 'them'}"
    return f"to run once with each{' ' + values if values else ''}"


def _numbers(override: str) -> bool:
    """Whether an override's value is a list of numbers only (`[5,10]`): a list that no setting whose
    default is null takes (those that take a list, such as data.data_files, take names)."""
    value = parsed_override(override).value()
    return all(isinstance(item, (int, float)) and not isinstance(item, bool) for item in value)


def _list_items(override: str) -> list[str]:
    """The items of a list typed as an override's value (`[1e-3, 3e-3]`: `1e-3` and `3e-3`, as
    typed); none for any other value."""
    try:
        value = parsed_override(override).value()
    except HydraException:
        return []
    if not isinstance(value, list) or not value:
        return []
    raw = override.partition("=")[2].strip()
    items = [item.strip() for item in raw[1:-1].split(",")]
    return items if len(items) == len(value) else [sweep_item(str(item)) for item in value]


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
            group, options = key.replace(".", "/"), HYDRA_GROUPS[key]
            names = "NAME" if where.endswith(".formatter") else "[...]"
            raise ConfigError(
                f"{key}.{where} names the {kind[:-1]} {name!r}, which {key}.{kind} does not define; "
                f"name one it defines ({key}.{where}={names}), or pick another option of its "
                f"group: {group}=OPTION ({options})")


class SweptSettings(Callback):
    """A Hydra callback: a sweep's settings are checked before it starts, each value it gives a
    setting in a job of its own, with the checks a run makes of its settings before it reads any
    data (build.check_settings). Hydra composes each job with its own values only when the job
    starts, so a misspelt swept setting was Hydra's error over several lines (exit 1), and a bad
    setting (`trainer.max_steps=0`, `model.dropout=0.1,1.5`), a `ddp` job launched here, or a
    closing sample the console cannot write, was refused by each job once the sweep's folder was
    made (exit 1)."""

    @exit_on_user_error
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from chargpt.cli.prompts import check_sweep_output_writes  # multirun only: it imports torch
        from chargpt.training.build import check_seed_and_sample, check_settings  # multirun only: Lightning
        from chargpt.training.trackers import check_sweep_job_loggers

        jobs, dimensions = check_swept_settings(config)
        for _, job in jobs:
            check_sweep_job_loggers(job)
        # A SLURM launcher's jobs start on the cluster, whose environment (and memory) the job's own
        # checks read.
        if not submits_to_slurm(config):
            for overrides, job in jobs:
                # (naming_removed_settings: trainer.strategy=${oc.env:UNSET} is refused here, once)
                with naming_removed_settings(), naming_search_dimensions(dimensions):
                    check_threads(job.get("threads"))  # (a run's first check: use_threads)
                    check_seed_and_sample(job)
                    check_settings(job, overrides, in_sweep=True)
                check_sweep_output_writes(job)


@contextlib.contextmanager
def naming_search_dimensions(dimensions: dict[str, str]) -> Iterator[None]:
    """A search's continuous dimension (`dimensions`: each setting's, as typed) is checked at its
    low end (`model.dropout=interval(-0.5, 0.3)` as model.dropout=-0.5): a value refused is said
    with the dimension as typed, which the value alone did not name. Where a whole number is wanted
    (`seed=interval(0, 100)`, checked as seed=0.0), the fix is int(...), which draws whole numbers:
    a single run's advice, "write it without a decimal point", did not fix the search."""
    try:
        yield
    except ConfigError as err:  # a SettingError names its setting; a model's error starts with it
        said = str(err)
        named = getattr(err, "setting", None) or next((k for k in dimensions if said.startswith(f"{k}=")), "")
        typed = dimensions.get(named)
        if typed is None:
            raise
        head, hint, _ = said.partition(f"; {WITHOUT_DECIMAL_POINT}")
        if not hint:
            raise ConfigError(f"{typed} is checked at its low end: {said}") from None
        key, _, value = typed.partition("=")
        wanted, whole = head.partition(" must be ")[2], shell_words.quote(f"{key}=int({value})")
        raise ConfigError(f"{typed} draws decimal numbers, where {key} must be {wanted}; to draw whole "
                          f"numbers, write {whole}") from None


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


def check_swept_settings(config: DictConfig) -> tuple[list[tuple[list[str], DictConfig]], dict[str, str]]:
    """Compose the sweep's jobs as its launcher will: the first (each swept setting at its first
    value; a search's continuous dimension at its low end, where Optuna draws from), and for each
    other value of a swept setting, the first job with that value, so that each value a setting is
    given is checked once (a job for each combination would take ~0.2 s each: a grid of 10 x 10
    would wait 20 s). A ConfigError in one line if one cannot be composed. Returns each job's
    overrides and its config (none for a sweep of no jobs), and each continuous dimension's
    setting with the dimension as typed."""
    loader = GlobalHydra.instance().config_loader()  # with it, glob(...) of a group lists its options
    given = [parsed_override(override, loader) for override in as_written(config.hydra.overrides.task)]
    search = OmegaConf.to_container(config.hydra.sweeper).get("params") or {}  # a search's dimensions
    typed = {o.key_or_group for o in given}
    given += [_search_dimension(key, value, loader) for key, value in search.items() if key not in typed]
    first_job, stand_ins, others = [], {}, []
    as_typed: dict[str, str] = {}  # each value a job is given, as a setting, and its sweep as typed
    for override in given:
        key = override.get_key_element()
        if not override.is_sweep_override():
            first_job.append(f"{key}={override.get_value_element_as_str()}")
        elif override.is_discrete_sweep():
            values = swept_values(override)
            if not values:  # range(0), an empty glob: a sweep of no jobs, Hydra's to say
                return [], {}
            others += [(len(first_job), f"{key}={value}") for value in values[1:]]
            first_job.append(f"{key}={values[0]}")
            as_typed |= {f"{key}={value}": override.input_line for value in values}
        else:
            stand_in = f"{key}={_low_end(override)}"
            first_job.append(stand_in)
            stand_ins[stand_in] = as_typed[stand_in] = override.input_line
    try:
        first = loader.load_sweep_config(config, first_job)
        jobs = [(first_job, first)]
        for at, line in others:
            job = [*first_job[:at], line, *first_job[at + 1:]]
            jobs.append((job, _with_setting(first, line) or loader.load_sweep_config(config, job)))
        return jobs, {stand_in.partition("=")[0]: typed for stand_in, typed in stand_ins.items()}
    except ConfigCompositionException as err:
        # Told as a single run is (the settings beside a key composed again without it), its advice
        # naming the sweep as typed, not the one value the job was composed with (+optimizer.lrr=0.001).
        said = _APPEND_ADVICE.sub(lambda m: m[1] + as_typed.get(m[2], m[2]), str(err))
        raise ConfigError(one_line(said, settings_beside_in(_composer(loader, config), first_job,
                                                       config.hydra.job.config_name))) from None


# Hydra's advice for a key that is not a setting, naming the override it could not apply.
_APPEND_ADVICE = re.compile(r"(To append to your config use \+)(.*)$", re.MULTILINE)


def _composer(loader: Any, config: DictConfig) -> Callable[[list[str], bool], DictConfig | None]:
    """A sweep's job composed with these overrides, as its launcher composes one (its `hydra` part
    with it, asked for or not); None where it cannot be."""

    def compose(overrides: list[str], with_hydra: bool = True) -> DictConfig | None:
        try:
            return loader.load_sweep_config(config, overrides)
        except (HydraException, OmegaConfBaseException):
            return None

    return compose


def _with_setting(job: DictConfig, override: str) -> DictConfig | None:
    """`job` with one more setting's value (`model.dropout=0.2`) as Hydra applies an override to a
    composed config, where it changes a setting `job` has: ~6 ms, where composing the job takes
    ~0.2 s (a sweep of seed=range(50) would wait 10 s). None for another override (a group's
    option, `+key`, `~key`), and where it does not apply: composing says why."""
    parsed = parsed_override(override)
    key = parsed.key_or_group
    if parsed.package is not None or parsed.is_add() or parsed.is_force_add() or parsed.is_delete():
        return None
    if isinstance(OmegaConf.select(job, key, default=None), DictConfig) or "/" in key:
        return None  # a config group's option, or a setting whose value is a config of its own
    changed = copy.deepcopy(job)
    try:
        OmegaConf.update(changed, key, parsed.value(), merge=True)
    except (OmegaConfBaseException, HydraException):
        return None
    return changed


def _low_end(dimension: Override) -> str:
    """A search's continuous dimension (`interval(1e-4, 1e-2)`) at its low end, the least value
    Optuna draws; null where it has none."""
    start = getattr(dimension.value(), "start", None)
    return "null" if start is None else repr(start)


def _search_dimension(key: str, value: Any, loader: Any) -> Override:
    """A search's dimension (hydra.sweeper.params: `key: value`) as Hydra reads it; a ConfigError
    in one line where it cannot (`interval(0.0`): it was Hydra's parse error over lines, exit 1."""
    try:
        return parsed_override(f"{key}={value}", loader)
    except HydraException as err:
        raise ConfigError(
            f"the search's dimension {key}: {value} (hydra.sweeper.params) cannot be read "
            f"({first_line(err)}); write it in Hydra's sweep grammar, e.g. interval(0.0, 0.3), "
            "choice(64, 128) or tag(log, interval(1e-4, 1e-2))") from None
