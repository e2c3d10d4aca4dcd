"""A sweep whose every job failed ends as a failure: each job's failure is logged and the sweep
goes on (runs/status.py), so without this the command would exit 0 having trained nothing, and a
search would name a failed configuration its best. A search of no trials is refused before it
starts: it could name no best at all."""

from __future__ import annotations

import logging
import math
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from chargpt.errors import ConfigError, exit_on_user_error
from chargpt.hydra_internals import OPTUNA_SWEEPER
from chargpt.run_layout import find_runs
from chargpt.run_state import read_status

FAILED_SWEEP_EXIT_CODE = 1
SEARCH_RESULT = "optimization_results.yaml"  # written by Optuna's sweeper in the sweep's folder
SEARCH_LOGGER = OPTUNA_SWEEPER[0]  # the sweeper's module logger
BEST_LINES = ("Best parameters:", "Best value:")  # what it logs once its trials are done


def job_statuses(sweep_dir: Path) -> list[dict[str, Any]]:
    """status.json of each job folder of the sweep (its folders that Hydra recorded a launch in)."""
    return [read_status(job_dir) for job_dir in find_runs(sweep_dir)]


def _drop_a_failed_best(result: Path) -> None:
    """Optuna's sweeper has just written its best trial; when every trial failed (each scored
    +inf) that "best" is a failure, and the file goes. A study continued from a storage may still
    name an earlier trial that succeeded: that file stays."""
    try:
        best = OmegaConf.load(result).get("best_value")
    except (OSError, ValueError, OmegaConfBaseException):
        return
    if isinstance(best, float) and math.isinf(best):
        result.unlink()


def every_job_failed(statuses: list[dict[str, Any]]) -> bool:
    return bool(statuses) and all(s.get("status") == "failed" for s in statuses)


class _NoBestOfFailures(logging.Filter):
    """Drops the sweeper's "Best parameters: ..." and "Best value: inf" lines when every job failed:
    they named a failure the best just before the sweep's error said that nothing trained."""

    def __init__(self, sweep_dir: Path) -> None:
        super().__init__()
        self.sweep_dir = sweep_dir

    @staticmethod
    def remove() -> None:
        search_log = logging.getLogger(SEARCH_LOGGER)
        for added in [f for f in search_log.filters if isinstance(f, _NoBestOfFailures)]:
            search_log.removeFilter(added)

    def filter(self, record: logging.LogRecord) -> bool:
        if not str(record.msg).startswith(BEST_LINES):
            return True
        return not (self.sweep_dir.is_dir() and every_job_failed(job_statuses(self.sweep_dir)))


class FailedSweep(Callback):
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        _NoBestOfFailures.remove()  # an earlier sweep's of this process, one that raised
        logging.getLogger(SEARCH_LOGGER).addFilter(_NoBestOfFailures(Path(str(config.hydra.sweep.dir))))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        _NoBestOfFailures.remove()
        sweep_dir = Path(str(config.hydra.sweep.dir))  # the folder the guard claimed (resolved)
        statuses = job_statuses(sweep_dir) if sweep_dir.is_dir() else []
        if every_job_failed(statuses):
            _drop_a_failed_best(sweep_dir / SEARCH_RESULT)
            first = statuses[0].get("error", "see its train.log")
            print(f"error: every job of this sweep failed ({len(statuses)} of {len(statuses)}; the first: "
                  f"{first}); chargpt-report {sweep_dir} lists them", file=sys.stderr)
            sys.exit(FAILED_SWEEP_EXIT_CODE)


class EmptySearch(Callback):
    """hydra.sweeper.n_trials below 1: Optuna's sweeper would run nothing and then fail with a
    traceback asking for the best of no trials."""

    @exit_on_user_error
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        trials = config.hydra.sweeper.get("n_trials")
        if trials is not None and trials < 1:
            raise ConfigError(f"hydra.sweeper.n_trials={trials} runs no trial; give at least 1, e.g. "
                              "hydra.sweeper.n_trials=20")
