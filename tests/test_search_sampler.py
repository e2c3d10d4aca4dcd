"""A search's sampler without a seed takes the run's (chargpt.runs.search_sampler): a seed given
is kept, and a sampler that takes none is left as it is."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from chargpt.runs.search_sampler import SeededSearch
from conftest import lacks

pytestmark = pytest.mark.skipif(lacks("optuna", "hydra_plugins.hydra_optuna_sweeper"),
                                reason="the optuna extra is not installed")

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def _launched(*overrides: str) -> DictConfig:
    """The config a sweep of these overrides starts with, once the callback has seen it."""
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        config = compose("train", overrides=list(overrides), return_hydra_config=True)
    SeededSearch().on_multirun_start(config)
    return config


@pytest.mark.parametrize("sampler", ["tpe", "random", "cmaes", "nsgaii", "motpe"])
def test_a_sampler_without_a_seed_takes_the_runs(sampler: str) -> None:
    config = _launched("hydra/sweeper=optuna", f"hydra/sweeper/sampler={sampler}", "seed=5")
    assert config.hydra.sweeper.sampler.seed == 5


def test_a_seed_given_to_the_sampler_is_kept() -> None:
    config = _launched("hydra/sweeper=optuna", "hydra.sweeper.sampler.seed=7", "seed=5")
    assert config.hydra.sweeper.sampler.seed == 7
    config = _launched("hparams_search=optuna", "seed=5")  # its own `seed: ${seed}`
    assert config.hydra.sweeper.sampler.seed == 5


def test_a_stored_study_is_left_unseeded() -> None:
    # It continues in a new folder: TPESampler(seed=5) there would draw its first trials again.
    config = _launched("hydra/sweeper=optuna", "hydra.sweeper.storage=sqlite:///study.db", "seed=5")
    assert config.hydra.sweeper.sampler.seed is None


def test_a_sampler_that_takes_no_seed_is_left_as_it_is() -> None:
    config = _launched("hydra/sweeper=optuna", "hydra/sweeper/sampler=grid")
    assert "seed" not in config.hydra.sweeper.sampler
    config = _launched("optimizer.lr=1e-3")  # no search at all
    assert "sampler" not in config.hydra.sweeper
