"""The scale-out and search configs compose into what their launchers and sweepers expect."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.types import RunMode
from omegaconf import OmegaConf

from chargpt.cli import CONFIG_PATH
from hydra_shortcuts import REAL_GET_MODE, mode_as_configured


def composed(*overrides: str):
    with initialize_config_dir(config_dir=CONFIG_PATH, version_base="1.3"):
        return compose("train", overrides=list(overrides), return_hydra_config=True)


def test_slurm_launcher_takes_nodes_and_gpus_from_the_trainer() -> None:
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    cfg = composed("hydra/launcher=slurm", "trainer=ddp", "trainer.devices=4", "trainer.num_nodes=2")
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert (launcher.nodes, launcher.tasks_per_node, launcher.gpus_per_node) == (2, 4, 4)
    assert cfg.trainer.strategy == "ddp"


@pytest.mark.parametrize("command", ["sample", "eval", "export"])
def test_slurm_launcher_composes_for_a_command_without_a_trainer(command: str) -> None:
    # `chargpt-sample -m hydra/launcher=slurm ...` failed with a traceback: InterpolationKeyError,
    # `Interpolation key 'trainer.devices' not found`.
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    with initialize_config_dir(config_dir=CONFIG_PATH, version_base="1.3"):
        cfg = compose(command, overrides=["hydra/launcher=slurm"], return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert (launcher.nodes, launcher.tasks_per_node, launcher.gpus_per_node) == (1, 1, 1)


def test_local_parallel_launcher_is_joblib() -> None:
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    cfg = composed("hydra/launcher=local_parallel", "hydra.launcher.n_jobs=3")
    assert cfg.hydra.launcher._target_.endswith("JoblibLauncher")
    assert cfg.hydra.launcher.n_jobs == 3


def test_hydras_joblib_launcher_stops_as_local_parallel_does() -> None:
    # `chargpt-train -m hydra/launcher=joblib ...` ran Hydra's class: `kill -INT` of the sweep's process
    # ended its jobs mid-step, without a checkpoint, each left `running` in its status.json.
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    from chargpt.stop_request import LAUNCHER

    joblib = composed("hydra/launcher=joblib").hydra.launcher
    assert joblib._target_ == LAUNCHER
    assert joblib.n_jobs == -1  # Hydra's own settings for it stay
    assert composed("hydra/launcher=joblib", "hydra.launcher.n_jobs=3").hydra.launcher.n_jobs == 3


def test_submitit_local_jobs_have_no_time_limit_unless_one_is_set() -> None:
    # submitit's 60 minutes ended a training job of a local sweep after an hour, killed a second
    # after its signal, without a checkpoint.
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    launcher = composed("hydra/launcher=submitit_local").hydra.launcher
    assert launcher._target_.endswith("StoppableLocalLauncher")
    assert launcher.timeout_min >= 60 * 24 * 365
    limited = composed("hydra/launcher=submitit_local", "hydra.launcher.timeout_min=90").hydra.launcher
    assert limited.timeout_min == 90


def test_optuna_search_space_and_direction() -> None:
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    cfg = composed("hparams_search=optuna")
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_.endswith("OptunaSweeper") and sweeper.direction == "minimize"
    assert set(sweeper.params) == {"optimizer.lr", "model.n_embd", "model.n_layer", "model.dropout"}
    assert str(cfg.hydra.mode) == "RunMode.MULTIRUN"
    # Every width in the space is divisible by the default number of heads.
    widths = OmegaConf.to_container(sweeper.params)["model.n_embd"]
    assert all(int(w) % cfg.model.n_head == 0 for w in widths[len("choice(") : -1].split(","))


def test_ddp_in_a_multirun_is_allowed_where_the_cluster_starts_the_ranks(monkeypatch) -> None:
    from omegaconf import OmegaConf

    from chargpt.errors import SetupError
    from chargpt.training import run_checks

    cfg = OmegaConf.create({"trainer": {"strategy": "ddp"}})
    monkeypatch.setattr(run_checks, "is_multirun", lambda: True)
    for name in ("SLURM_NTASKS", "SLURM_JOB_NAME", "TORCHELASTIC_RUN_ID"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(SetupError, match="cannot run inside a Hydra multirun"):
        run_checks.check_launch(cfg)  # Lightning would re-run the command line for each rank
    monkeypatch.setenv("SLURM_NTASKS", "8")  # the submitit launcher: SLURM started every rank
    monkeypatch.setenv("SLURM_JOB_NAME", "chargpt")
    run_checks.check_launch(cfg)


def test_a_ddp_sweep_is_refused_before_it_starts_unless_slurm_starts_its_ranks(monkeypatch, capsys) -> None:
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    from chargpt.cli.launch_checks import SweptSettings

    for name in ("SLURM_NTASKS", "SLURM_JOB_NAME", "TORCHELASTIC_RUN_ID"):
        monkeypatch.delenv(name, raising=False)
    with initialize_config_dir(config_dir=CONFIG_PATH, version_base="1.3"):
        local = compose("train", overrides=["trainer=ddp_cpu"], return_hydra_config=True)
        with pytest.raises(SystemExit) as refused:  # before the sweep's folder is made
            SweptSettings().on_multirun_start(local)
        assert refused.value.code == 2
        assert "cannot run inside a Hydra multirun" in capsys.readouterr().err
        # On the cluster SLURM starts every rank; the job's own check reads its environment there.
        slurm = compose("train", overrides=["hydra/launcher=slurm", "trainer=ddp_cpu"],
                        return_hydra_config=True)
        SweptSettings().on_multirun_start(slurm)


@pytest.mark.parametrize("command", ["train", "sample"])
def test_a_slurm_sweep_starts_where_srun_is_on_the_path(command: str, tmp_path: Path, monkeypatch) -> None:
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    from chargpt.cli.launch_checks import check_slurm_at_hand
    from chargpt.errors import ConfigError

    monkeypatch.setenv("PATH", str(tmp_path))
    with initialize_config_dir(config_dir=CONFIG_PATH, version_base="1.3"):
        slurm = compose(command, overrides=["hydra/launcher=submitit_slurm"], return_hydra_config=True)
        basic = compose(command, return_hydra_config=True)
    with pytest.raises(ConfigError, match=r"^hydra/launcher=submitit_slurm submits the sweep.s jobs"):
        check_slurm_at_hand(slurm)
    check_slurm_at_hand(basic)  # Hydra's own launcher needs no SLURM
    srun = tmp_path / "srun"  # a cluster's node
    srun.write_text("#!/bin/sh\n")
    srun.chmod(0o755)
    check_slurm_at_hand(slurm)


def _with_options(group: str) -> list[list[str]]:
    return [[f"{group}={p.stem}"] for p in sorted((Path(CONFIG_PATH) / group).glob("*.yaml"))]


MODE_CASES = [
    *[(name, []) for name in ("train", "sample", "eval", "export", "serve")],
    *[("train", o) for group in ("experiment", "hparams_search", "debug") for o in _with_options(group)],
]


MODE_IDS = [" ".join([name, *overrides]) for name, overrides in MODE_CASES]


@pytest.mark.parametrize(("config_name", "overrides"), MODE_CASES, ids=MODE_IDS)
def test_the_tests_shortcut_finds_the_mode_hydra_finds(config_name: str, overrides: list[str]) -> None:
    """The tests skip Hydra's mode check where they know its answer (conftest): the same answer."""
    with initialize_config_dir(config_dir=CONFIG_PATH, version_base="1.3"):
        hydra = GlobalHydra.instance().hydra
        real = REAL_GET_MODE(hydra, config_name, overrides)
        assert mode_as_configured(hydra, config_name, overrides) == real


def test_the_real_mode_check_can_fail() -> None:
    """A composition that failed would make the real check answer None too: set by an override,
    the mode is found, so the comparison above is between real answers."""
    with initialize_config_dir(config_dir=CONFIG_PATH, version_base="1.3"):
        hydra = GlobalHydra.instance().hydra
        for name in ("train", "sample"):
            assert REAL_GET_MODE(hydra, name, ["hydra.mode=RUN"]) == RunMode.RUN


# Composed in a process that finds chargpt's hydra_plugins before the installed plugins', as from a
# wheel (one site-packages folder, which Hydra scans in name order: chargpt_* before hydra_*).
_SCANNED_FIRST = """
import json, sys
import hydra_plugins
from hydra import compose, initialize_config_dir
from chargpt.cli import CONFIG_PATH
assert hydra_plugins.__path__[0].startswith(sys.argv[1]), list(hydra_plugins.__path__)
targets = {}
with initialize_config_dir(config_dir=CONFIG_PATH, version_base="1.3"):
    for choice in sys.argv[2:]:
        group = choice.partition("=")[0].split("/")[1]
        targets[choice] = compose("train", [choice], return_hydra_config=True).hydra[group]._target_
print(json.dumps(targets))
"""


def test_chargpts_launchers_and_sweeper_replace_plugins_scanned_after_them(tmp_path: Path) -> None:
    # From a wheel install, Hydra scanned joblib's plugin after chargpt's, and its entry won:
    # `chargpt-train -m hydra/launcher=joblib` ran Hydra's JoblibLauncher, and `kill -INT` of the
    # sweep's process ended its jobs mid-step, with no checkpoint, each left `running`.
    import json
    import subprocess
    import sys

    import hydra_plugins.chargpt_launcher as launcher_plugin

    src = str(Path(launcher_plugin.__file__).parents[2])
    expected = {}
    for plugin, choice, target in (
        ("hydra_joblib_launcher", "hydra/launcher=joblib",
         "hydra_plugins.chargpt_launcher.StoppableJoblibLauncher"),
        ("hydra_submitit_launcher", "hydra/launcher=submitit_local",
         "hydra_plugins.chargpt_launcher.submitit_local.StoppableLocalLauncher"),
        ("hydra_optuna_sweeper", "hydra/sweeper=optuna",
         "hydra_plugins.chargpt_sweeper.optuna_search.QuotingOptunaSweeper"),
    ):
        try:
            __import__(f"hydra_plugins.{plugin}")
            expected[choice] = target
        except ImportError:  # (an extra not installed)
            pass
    if not expected:
        pytest.skip("none of the joblib, slurm and optuna extras is installed")
    env = {**os.environ, "PYTHONPATH": src}
    found = subprocess.run([sys.executable, "-c", _SCANNED_FIRST, src, *expected], env=env, cwd=tmp_path,
                           capture_output=True, text=True, check=True)
    assert json.loads(found.stdout.strip().splitlines()[-1]) == expected
