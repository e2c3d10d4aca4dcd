"""A search's sampler (hydra.sweeper.sampler of Optuna's sweeper) as its launch gives it: seeded
from the run's seed where it has none, so that the command a stopped search prints draws the same
trials again; refused in one line where its settings are another sampler's."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.experimental.callback import Callback
from hydra.utils import get_object
from omegaconf import DictConfig, OmegaConf, read_write

from chargpt import shell_words
from chargpt.errors import ConfigError, SetupError, exit_on_user_error
from chargpt.hydra_internals import optuna_search_space
from chargpt.runs.sweep_record import recorded_sweep, stored_study

SAMPLERS = "hydra/sweeper/sampler"  # the config group of Optuna's samplers


class SeededSearch(Callback):
    """hydra/sweeper=optuna's samplers (hydra/sweeper/sampler=tpe, random, ...) have `seed: null`:
    each launch drew other trials, so a stopped search continued in its folder met a first job of
    other settings. Such a sampler takes the run's `seed`, as hparams_search=optuna's does
    (`seed: ${seed}`); a seed given (hydra.sweeper.sampler.seed=7) is kept. A study in a storage is
    left unseeded: it continues in a new folder, where a seeded sampler would draw its first trials
    again. Set before the sweeper is built from the config, and before the sweep records it
    (multirun.yaml)."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        sampler = OmegaConf.select(config, "hydra.sweeper.sampler", default=None)
        seed = config.get("seed")
        if not isinstance(sampler, DictConfig) or "seed" not in sampler or not isinstance(seed, int):
            return  # not a search, a sampler that takes no seed (grid), or no seed to give it
        if stored_study(config.hydra):
            return
        if sampler.seed is None:
            with read_write(sampler):
                sampler.seed = seed


def check_drawn_again(sweep_dir: Path, config: DictConfig) -> None:
    """A search continued in its folder (`config`: this launch's, its sampler seeded by SeededSearch)
    is drawn again: a folder whose record says its sampler had no seed (launched before SeededSearch
    was) holds trials no command draws again, and its continue command met other settings in its
    first job's folder, once the sweep's record there was replaced. Refused before that, in one line."""
    recorded = recorded_sweep(sweep_dir)
    then = OmegaConf.select(recorded, "sweeper.sampler", default=None) if recorded is not None else None
    if not isinstance(then, DictConfig) or "seed" not in then or stored_study(config.hydra):
        return
    try:
        unseeded = then.seed is None
    except Exception:  # a seed that no longer resolves: not known to be unseeded
        return
    if not unseeded:
        return
    seed = OmegaConf.select(config, "hydra.sweeper.sampler.seed", default=None)
    raise SetupError(
        f"the search in {sweep_dir} cannot be continued: its sampler had no seed (its multirun.yaml records "
        "hydra.sweeper.sampler.seed: null, as a search launched before chargpt seeded it does), so no "
        "command draws its trials again; its finished trials stay in their folders (chargpt-report "
        f"{shell_words.quote(str(sweep_dir))} shows them); run the search again with a new hydra.sweep.dir "
        + (f"(its sampler now takes seed={seed}, so a stop there continues as printed)" if seed is not None
           else "(or give it hydra.sweeper.sampler.seed=N, so that a stop there continues as printed)"))


class SamplerSettings(Callback):
    """hydra.sweeper.sampler._target_=optuna.samplers.RandomSampler keeps the settings of the
    sampler the group chose (tpe's consider_prior, ...), which the new one does not take: Hydra's
    four lines ending in a TypeError, exit 1, once the sweep had made its folder."""

    @exit_on_user_error
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        sampler = OmegaConf.select(config, "hydra.sweeper.sampler", default=None)
        if not isinstance(sampler, DictConfig) or "_target_" not in sampler:
            return
        _check_grid_lists(config)
        try:
            sampler_class = get_object(str(sampler._target_))
            taken = inspect.signature(sampler_class).parameters.values()
        except Exception:  # a target Hydra cannot find: its own error says so
            return
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in taken):
            return
        names = {p.name for p in taken}
        extra = [str(key) for key in sampler if not str(key).startswith("_") and key not in names]
        if not extra:
            return
        chosen = OmegaConf.select(config, "hydra.runtime.choices", default={}).get(SAMPLERS)
        option = _option_of(sampler_class)
        # The settings cannot be dropped (~hydra.sweeper.sampler.consider_prior: Hydra keeps its own
        # sampler's): a class with no option of its own starts from an option whose settings it takes.
        base = None if option else _option_taken_by(names)
        fix = (f"pick the sampler with {SAMPLERS}={option} in place of its _target_" if option else
               f"start from an option whose settings it takes: {SAMPLERS}={base} "
               f"hydra.sweeper.sampler._target_={sampler._target_}" if base else
               f"none of {SAMPLERS}'s options holds only settings it takes; pick one of "
               + ", ".join(_options()))
        raise ConfigError(
            f"hydra.sweeper.sampler._target_={sampler._target_} does not take the settings "
            f"{', '.join(extra)} that hydra.sweeper.sampler holds (the {chosen} sampler's); {fix}")


def _check_grid_lists(config: DictConfig) -> None:
    """A grid sampler runs a list of values for each setting searched: a range of numbers there
    (hparams_search=optuna's interval(0.0, 0.3)) ended Optuna's sweeper in a traceback ("ValueError:
    GridSampler only supports discrete distributions."), once the sweep had started. Refused here, in
    one line naming the setting, its values to run given as the sweeper reads them (a setting on the
    command line replaces hydra.sweeper.params' one)."""
    try:
        from optuna.distributions import (
            CategoricalDistribution,
            DiscreteUniformDistribution,
            IntUniformDistribution,
        )
        from optuna.samplers import GridSampler

        if get_object(str(config.hydra.sweeper.sampler._target_)) is not GridSampler:
            return
    except Exception:  # no optuna, or a sampler Hydra cannot find: its own error says so
        return
    params = OmegaConf.select(config, "hydra.sweeper.params", default=None) or {}
    written = [f"{name}={value}" for name, value in params.items()]
    written += list(OmegaConf.select(config, "hydra.overrides.task", default=[]))
    searched = optuna_search_space(written)
    listed = (CategoricalDistribution, DiscreteUniformDistribution, IntUniformDistribution)
    ranges = {name: d for name, d in searched.items() if not isinstance(d, listed)}
    if not ranges:
        return
    typed = [next(w for w in reversed(written) if w.startswith(f"{name}=")) for name in ranges]
    examples = [shell_words.quote(f"{name}=choice({d.low},{d.high})") for name, d in ranges.items()]
    one = len(ranges) == 1
    raise ConfigError(
        f"the grid sampler ({SAMPLERS}=grid) runs a list of values for each setting it searches, where "
        f"{', '.join(typed)} {'is a range' if one else 'are ranges'} of numbers; give "
        f"{'it' if one else 'each'} the values to run, e.g. {' '.join(examples)} "
        "(choice(...) or range(...), on the command line)")


def _options() -> list[str]:
    """The options of the samplers' group: tpe, random, ..."""
    return [name.removesuffix(".yaml") for name in sorted(ConfigStore.instance().list(SAMPLERS))]


def _option_taken_by(names: set[str]) -> str | None:
    """The option of the samplers' group with the most settings, each one of `names` (a sampler
    class's parameters): random (its seed) for most."""
    store = ConfigStore.instance()
    fitting = [(len(keys), option) for option in _options()
               if set(keys := [str(k) for k in store.load(f"{SAMPLERS}/{option}.yaml").node
                               if k != "_target_"]) <= names]
    return max(fitting)[1] if fitting else None


def _option_of(sampler_class: Any) -> str | None:
    """The option of the samplers' group (hydra/sweeper/sampler=random) that builds `sampler_class`."""
    store = ConfigStore.instance()
    for name in sorted(store.list(SAMPLERS)):
        target = OmegaConf.select(store.load(f"{SAMPLERS}/{name}").node, "_target_", default=None)
        try:
            if target is not None and get_object(str(target)) is sampler_class:
                return name.removesuffix(".yaml")
        except Exception:  # an option whose class cannot be imported here: not this one
            continue
    return None
