"""A search's sampler (hydra.sweeper.sampler of Optuna's sweeper) as its launch gives it: seeded
from the run's seed where it has none, so that the command a stopped search prints draws the same
trials again."""

from __future__ import annotations

from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, read_write

from chargpt.runs.sweep_record import stored_study


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
