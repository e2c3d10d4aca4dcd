"""A search's sampler without a seed takes the run's (chargpt.runs.search_sampler): a seed given
is kept, and a sampler that takes none is left as it is."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, read_write

from chargpt.runs.search_sampler import SamplerSettings, SeededSearch
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
    SamplerSettings().on_multirun_start(config)  # each option's settings are its sampler's: no refusal


def test_a_seed_given_to_the_sampler_is_kept() -> None:
    config = _launched("hydra/sweeper=optuna", "hydra.sweeper.sampler.seed=7", "seed=5")
    assert config.hydra.sweeper.sampler.seed == 7
    config = _launched("hparams_search=optuna", "seed=5")  # its own `seed: ${seed}`
    assert config.hydra.sweeper.sampler.seed == 5


@pytest.mark.parametrize(("sampler", "target"), [("random", "RandomSampler"), ("cmaes", "CmaEsSampler")])
def test_hparams_search_takes_another_sampler_by_its_option(sampler: str, target: str) -> None:
    # Its own TPE settings (n_startup_trials) were merged over the sampler picked: "In
    # 'hparams_search/optuna': ConfigKeyError ... Key 'n_startup_trials' not in 'SamplerConfig'".
    config = _launched("hparams_search=optuna", f"hydra/sweeper/sampler={sampler}", "seed=5")
    sampler_config = config.hydra.sweeper.sampler
    assert sampler_config._target_ == f"optuna.samplers.{target}"
    assert sampler_config.seed == 5
    SamplerSettings().on_multirun_start(config)  # its settings are that sampler's: no refusal
    assert config.hydra.sweeper.params["optimizer.lr"] == "tag(log, interval(1e-4, 1e-2))"  # its space kept


def test_a_stored_study_is_left_unseeded() -> None:
    # It continues in a new folder: TPESampler(seed=5) there would draw its first trials again.
    config = _launched("hydra/sweeper=optuna", "hydra.sweeper.storage=sqlite:///study.db", "seed=5")
    assert config.hydra.sweeper.sampler.seed is None


def test_a_sampler_that_takes_no_seed_is_left_as_it_is() -> None:
    config = _launched("hydra/sweeper=optuna", "hydra/sweeper/sampler=grid")
    assert "seed" not in config.hydra.sweeper.sampler
    config = _launched("optimizer.lr=1e-3")  # no search at all
    assert "sampler" not in config.hydra.sweeper


def test_a_sampler_named_by_its_target_alone_is_refused_naming_its_option(tmp_path: Path, capsys) -> None:
    # The TPE sampler's settings stayed in the node: Hydra's four lines ending in
    # "TypeError(... unexpected keyword argument 'consider_prior')", exit 1.
    from chargpt.cli import train as train_cli
    from conftest import run_main

    sweep = tmp_path / "my runs é"
    code, _, err = run_main(train_cli.main, [
        "-m", "hydra/sweeper=optuna", "hydra.sweeper.sampler._target_=optuna.samplers.RandomSampler",
        "hydra.sweeper.n_trials=1", "optimizer.lr=interval(1e-3,1e-2)", f"hydra.sweep.dir={sweep}"], capsys)
    assert code == 2, err
    assert err.splitlines() == [
        "error: hydra.sweeper.sampler._target_=optuna.samplers.RandomSampler does not take the settings "
        "consider_prior, prior_weight, consider_magic_clip, consider_endpoints, n_startup_trials, "
        "n_ei_candidates, multivariate, warn_independent_sampling that hydra.sweeper.sampler holds (the tpe "
        "sampler's); pick the sampler with hydra/sweeper/sampler=random in place of its _target_"]
    assert not sweep.exists()


def test_a_sampler_of_no_option_is_told_an_option_to_start_from(tmp_path: Path, capsys) -> None:
    # It was told to "drop them (~hydra.sweeper.sampler.consider_prior ...)", which Hydra refuses:
    # the TPE sampler's settings cannot be removed.
    from chargpt.cli import train as train_cli
    from conftest import run_main

    sweep = tmp_path / "my runs é 🚀"
    target = "hydra.sweeper.sampler._target_=optuna.integration.PyCmaSampler"
    code, _, err = run_main(train_cli.main, [
        "-m", "hydra/sweeper=optuna", target, "hydra.sweeper.n_trials=1", "optimizer.lr=interval(1e-3,1e-2)",
        f"hydra.sweep.dir={sweep}"], capsys)
    assert code == 2, err
    assert err.splitlines()[0].endswith(
        "; start from an option whose settings it takes: hydra/sweeper/sampler=random " + target)
    assert not sweep.exists()
    config = _launched("hydra/sweeper=optuna", "hydra/sweeper/sampler=random", target)  # as advised
    SamplerSettings().on_multirun_start(config)
    assert config.hydra.sweeper.sampler.seed == 1337


def test_a_grid_sampler_runs_its_points_in_order_whatever_random_holds() -> None:
    # Optuna 2.10's GridSampler picked each trial's point with an unseeded random.choice.
    import functools
    import random

    import optuna
    from optuna.samplers import GridSampler

    from chargpt.runs.optuna_sampler import grid_in_order

    built = grid_in_order(functools.partial(GridSampler))
    assert isinstance(built, functools.partial) and built.func is GridSampler  # Hydra's sweeper's test
    for seed in (0, 1, 2):
        random.seed(seed)
        study = optuna.create_study(sampler=built({"lr": [3e-3, 1e-3, 2e-3], "n": [2, 1]}))
        trials = [study.ask() for _ in range(6)]  # asked at once, as n_jobs=6 asks them
        drawn = [(t.suggest_categorical("lr", [1e-3, 2e-3, 3e-3]), t.suggest_categorical("n", [1, 2]))
                 for t in trials]
        assert drawn == [(1e-3, 1), (1e-3, 2), (2e-3, 1), (2e-3, 2), (3e-3, 1), (3e-3, 2)]


def test_a_grid_over_a_range_of_numbers_is_refused_naming_the_settings(tmp_path: Path, capsys) -> None:
    # hparams_search=optuna's space searches intervals, which a grid cannot list: Optuna's sweeper
    # ended in a traceback, "ValueError: GridSampler only supports discrete distributions."
    from chargpt.cli import train as train_cli
    from conftest import run_main

    sweep = tmp_path / "my runs é 🚀"
    code, _, err = run_main(train_cli.main, [
        "-m", "hparams_search=optuna", "hydra/sweeper/sampler=grid", "hydra.sweeper.n_trials=2",
        "optimizer.lr=choice(1e-3,3e-3)", f"hydra.sweep.dir={sweep}"], capsys)
    assert code == 2, err
    assert err.splitlines() == [
        "error: the grid sampler (hydra/sweeper/sampler=grid) runs a list of values for each setting it "
        "searches, where model.dropout=interval(0.0, 0.3) is a range of numbers; give it the values to "
        "run, e.g. 'model.dropout=choice(0.0,0.3)' (choice(...) or range(...), on the command line)"]
    assert not sweep.exists()
    config = _launched("hparams_search=optuna", "hydra/sweeper/sampler=grid")
    with read_write(config):  # as a sweep of these sees them (compose takes no sweep)
        config.hydra.overrides.task = ["model.dropout=choice(0.0,0.3)", "optimizer.lr=choice(1e-3,3e-3)"]
    SamplerSettings().on_multirun_start(config)  # as advised: every setting a list (n_layer's int range too)


@pytest.mark.slow
def test_a_grid_runs_each_point_once_where_a_setting_of_the_search_is_fixed(tmp_path: Path) -> None:
    # model.n_layer=1 left the trials' space after Optuna's sweeper built the grid from it: its
    # int(interval(2, 5)) made three copies of each point, and job 2 ran job 0's settings again.
    from test_sweep_report import TINY, chargpt, write_corpus

    corpus = write_corpus(tmp_path)
    sweep = tmp_path / "my runs é 🚀"
    result = chargpt("train", "-m", "hparams_search=optuna", "hydra/sweeper/sampler=grid",
                     "hydra.sweeper.n_trials=3", "optimizer.lr=choice(1e-3,3e-3)",
                     "model.n_embd=choice(16,32)", "model.dropout=0.0", "model.n_layer=1", "model.n_head=2",
                     "model=tiny", "data=text", f"data.path={corpus}", *TINY, "trainer.max_steps=1",
                     f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    ran = [set((sweep / str(job) / ".hydra" / "overrides.yaml").read_text().splitlines()[:2])
           for job in range(3)]
    assert ran == [{"- model.n_embd=16", "- optimizer.lr=0.001"},
                   {"- model.n_embd=16", "- optimizer.lr=0.003"},
                   {"- model.n_embd=32", "- optimizer.lr=0.001"}]
