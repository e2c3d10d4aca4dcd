"""The tests' cheaper Hydra composition (hydra_shortcuts) gives Hydra's own config, every time."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import HydraException
from hydra.types import RunMode
from omegaconf import OmegaConf

from chargpt.cli import CONFIG_PATH
from hydra_shortcuts import REAL_GET_MODE, mode_as_configured, real_hydra

TINY = ["model.n_layer=1", "model.n_embd=32"]

# (config, overrides, run mode): group choices, deletions, additions, values, plain commands, sweeps,
# and the same group choices again with other values (what the shortcut keeps must not carry over).
CASES = [
    ("train", [], RunMode.RUN),
    ("train", TINY, RunMode.RUN),
    ("train", ["model=tiny", *TINY], RunMode.RUN),
    ("train", ["model=tiny"], RunMode.RUN),
    ("train", ["data=text", "data.path=a b.txt", "logger=none", "~callbacks.progress_bar"], RunMode.RUN),
    ("train", ["data=text", "data.path=c.txt", "logger=none"], RunMode.RUN),
    ("train", ["logger=[tensorboard,csv]", "+trainer.gradient_clip_algorithm=value"], RunMode.RUN),
    ("train", ["experiment=cpu_100s", "seed=3"], RunMode.RUN),
    ("train", ["optimizer=muon", "+optimizer.extra={a: 1}"], RunMode.RUN),
    ("train", ["~callbacks.progress_bar", "~logger"], RunMode.RUN),
    ("train", ["optimizer.lr=1e-3,3e-3", "model=tiny,small"], RunMode.MULTIRUN),
    ("train", ["model=tiny", "optimizer.lr=2e-3"], RunMode.MULTIRUN),
    ("train", ["hydra/launcher=joblib", "seed=1,2"], RunMode.MULTIRUN),
    ("sample", ["ckpt_path=x", "prompt=ROMEO:"], RunMode.RUN),
    ("eval", ["ckpt_path=x", "stride=8"], RunMode.RUN),
    ("export", ["ckpt_path=x"], RunMode.RUN),
]


def _compose(config_name: str, overrides: list[str], mode: RunMode) -> str:
    loader = GlobalHydra.instance().config_loader()
    cfg = loader.load_configuration(config_name=config_name, overrides=overrides, run_mode=mode)
    return OmegaConf.to_yaml(cfg)


@pytest.mark.slow  # ~6 s: Hydra's own composition, without the YAML cache, 16 times
def test_each_composition_is_hydras_own() -> None:
    with initialize_config_dir(config_dir=CONFIG_PATH, version_base="1.3"):
        with real_hydra():
            expected = [_compose(*case) for case in CASES]
        for _ in range(2):  # the second time, everything the shortcuts keep is used
            assert [_compose(*case) for case in CASES] == expected


@pytest.mark.parametrize(
    "overrides",
    # hydra.job.chdir is a typed node of Hydra's structured config: a copy that lost its type takes it
    [["model=nope"], ["model=tiny", "~callbacks.nope"], ["model.nope=1"], ["+model=tiny"],
     ["hydra.job.chdir=maybe"]],
)
def test_a_refused_composition_is_refused_alike(overrides: list[str]) -> None:
    with initialize_config_dir(config_dir=CONFIG_PATH, version_base="1.3"):
        with real_hydra(), pytest.raises(HydraException) as real:
            _compose("train", overrides, RunMode.RUN)
        for _ in range(2):
            with pytest.raises(HydraException) as shortcut:
                _compose("train", overrides, RunMode.RUN)
            assert (type(shortcut.value), str(shortcut.value)) == (type(real.value), str(real.value))


def test_a_config_folder_of_ones_own_is_read_each_time(tmp_path: Path) -> None:
    """A test may change its own config file between two compositions: nothing of it is kept."""
    (tmp_path / "model").mkdir()
    (tmp_path / "train.yaml").write_text("defaults:\n  - model: a\n  - _self_\nseed: 1\n")
    (tmp_path / "model" / "a.yaml").write_text("width: 1\n")
    with initialize_config_dir(config_dir=str(tmp_path), version_base="1.3"):
        assert "width: 1" in _compose("train", [], RunMode.RUN)
        (tmp_path / "model" / "a.yaml").write_text("width: 2\n")
        assert "width: 2" in _compose("train", [], RunMode.RUN)


def test_a_search_path_reaches_its_own_composition_only(tmp_path: Path) -> None:
    """Hydra copies its config sources for a composition that adds to them: the next one, without
    `hydra.searchpath`, no longer finds what that folder held."""
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "mine.yaml").write_text("n_layer: 7\n")
    with initialize_config_dir(config_dir=CONFIG_PATH, version_base="1.3"):
        found = _compose("train", [f"hydra.searchpath=[file://{tmp_path}]", "model=mine"], RunMode.RUN)
        assert "n_layer: 7" in found
        with pytest.raises(HydraException, match="Could not find 'model/mine'"):
            _compose("train", ["model=mine"], RunMode.RUN)


def test_the_run_mode_of_a_config_folder_of_ones_own_is_hydras(tmp_path: Path) -> None:
    """Such a folder may set `hydra.mode` in any config (chargpt's own set it only in hparams_search)."""
    (tmp_path / "train.yaml").write_text("hydra:\n  mode: MULTIRUN\nseed: 1\n")
    with initialize_config_dir(config_dir=str(tmp_path), version_base="1.3"):
        hydra = GlobalHydra.instance().hydra
        assert REAL_GET_MODE(hydra, "train", []) == RunMode.MULTIRUN
        assert mode_as_configured(hydra, "train", []) == RunMode.MULTIRUN
