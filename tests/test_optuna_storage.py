"""hparams_search=optuna with a stored study: the pinned optuna works with its storage, and a
study that was stopped continues with new trials instead of repeating its first ones."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import tomllib

from conftest import lacks
from test_sweep_report import TINY, chargpt, write_corpus

if TYPE_CHECKING:
    import optuna

# Optuna is imported by the tests that use it: a second of imports every test worker would
# otherwise pay when it collects this module.
pytestmark = pytest.mark.skipif(lacks("optuna", "hydra_plugins.hydra_optuna_sweeper"),
                                reason="the optuna extra is not installed")

ROOT = Path(__file__).resolve().parents[1]


def _pins() -> dict[str, str]:
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["optuna"]
    return dict(re.fullmatch(r"([\w.-]+)==([\w.]+)", pin).groups() for pin in extra)


def test_optuna_extra_pins_what_the_pinned_optuna_needs() -> None:
    pins = {name.lower(): version for name, version in _pins().items()}
    assert pins["optuna"].startswith("2.") and pins["sqlalchemy"].startswith("1.")
    for name, version in pins.items():  # what is installed is what is declared
        assert metadata.version(name) == version, name


def _optimize(storage: str, sampler: optuna.samplers.BaseSampler, n_trials: int) -> optuna.Study:
    import optuna

    study = optuna.create_study(storage=storage, study_name="s", sampler=sampler, load_if_exists=True)
    study.optimize(lambda t: (t.suggest_float("x", 0, 1) - 0.3) ** 2 + t.suggest_int("n", 1, 100), n_trials)
    return study


@pytest.mark.slow
def test_a_stored_study_continues_with_new_trials(tmp_path: Path) -> None:
    import optuna

    from chargpt.runs.optuna_sampler import ContinuingTPESampler

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    _optimize(storage, ContinuingTPESampler(seed=7, n_startup_trials=10), 3)
    # A later process: a new sampler with the same seed, the study loaded from the file.
    study = _optimize(storage, ContinuingTPESampler(seed=7, n_startup_trials=10), 3)
    params = [tuple(t.params.values()) for t in study.trials]
    assert len(params) == 6 and len(set(params)) == 6  # no finished trial proposed again
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    # A new study draws exactly what TPE with that seed draws.
    tpe = optuna.samplers.TPESampler(seed=7, n_startup_trials=10)
    plain = _optimize(f"sqlite:///{tmp_path / 'plain.db'}", tpe, 3)
    assert [t.params for t in plain.trials] == [t.params for t in study.trials[:3]]


STOPPED_SEARCH = """
import sys
import optuna
from chargpt.runs.optuna_sampler import ContinuingTPESampler
storage, mine = sys.argv[1], int(sys.argv[2])
study = optuna.create_study(storage=storage, study_name="s", sampler=ContinuingTPESampler(seed=1),
                            load_if_exists=True)
study.optimize(lambda t: t.suggest_float("x", 0, 1), 1)  # one finished trial
for _ in range(mine):  # drawn, then the search stops before it reports them (as on a Ctrl-C)
    study.ask().suggest_float("x", 0, 1)
sys.exit(130)
"""


@pytest.mark.slow  # a search stopped in a subprocess: seconds
def test_trials_a_stopped_search_drew_are_marked_failed_not_left_running(tmp_path: Path) -> None:
    import optuna

    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    # Another worker of the same stored study (e.g. another machine) is running a trial right now.
    other = optuna.create_study(storage=storage, study_name="s", load_if_exists=True)
    running_elsewhere = other.ask()
    running_elsewhere.suggest_float("x", 0, 1)
    command = [sys.executable, "-c", STOPPED_SEARCH, storage, "2"]
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 130, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    states = {t.number: t.state for t in optuna.load_study(study_name="s", storage=storage).trials}
    S = optuna.trial.TrialState
    assert states == {0: S.RUNNING, 1: S.COMPLETE, 2: S.FAIL, 3: S.FAIL}  # the other worker's untouched


@pytest.mark.slow  # two sweeps of two short trainings, each in its own process
def test_hparams_search_stored_in_sqlite_is_stopped_and_continued(tmp_path: Path) -> None:
    import optuna

    corpus = write_corpus(tmp_path)
    db = tmp_path / "optuna.db"
    # A small model; the search space is overridden as the config's comment shows.
    space = ["model.n_embd=32", "model.n_layer=1", "optimizer.lr=tag(log, interval(1e-3, 1e-2))"]

    def sweep(name: str) -> str:
        result = chargpt(
            "train", "hparams_search=optuna", f"hydra.sweeper.storage=sqlite:///{db}",
            "hydra.sweeper.n_trials=2", *space,  # all 4 trials are the config's random start-up trials
            "data=text", f"data.path={corpus}", f"hydra.sweep.dir={tmp_path / name}", *TINY, cwd=tmp_path,
        )
        assert result.returncode == 0, result.stderr[-2000:]
        return result.stdout + result.stderr

    first = sweep("first")
    second = sweep("second")
    assert "setup plugin" not in first + second and "Traceback" not in first + second
    # Optuna's own lines, plain in a pipe (they had colorlog's escape codes).
    assert "A new study created in RDB" in first and "Using an existing study" in second
    assert "\x1b[" not in first + second
    study = optuna.load_study(study_name="chargpt", storage=f"sqlite:///{db}")
    finished = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(finished) == 4
    assert len({tuple(sorted(t.params.items())) for t in finished}) == 4  # the second sweep drew new trials
