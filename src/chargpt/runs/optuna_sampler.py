"""The hparams_search sampler: Optuna's TPE, continuing a stored study instead of repeating it;
and Optuna's grid sampler (hydra/sweeper/sampler=grid) running its points in order.

Needs the `optuna` extra; imported only when a search builds its sampler.
"""

from __future__ import annotations

import atexit
import functools
import sys
from typing import Any

import numpy as np
from optuna.samplers import GridSampler, RandomSampler, TPESampler
from optuna.trial import TrialState


class ContinuingTPESampler(TPESampler):
    """TPESampler(seed=...) whose random stream resumes with the study.

    A seeded sampler restarts its stream in every process, so a study continued from storage
    (hydra.sweeper.storage=sqlite:///FILE) would be proposed its first trials again. Here the
    stream is seeded from (seed, trials the study already holds) at this process's first trial:
    a new study draws exactly what TPESampler(seed) draws, a continued one draws new points, and
    both are reproducible.
    """

    def __init__(self, seed: int | None = None, **options: Any) -> None:
        super().__init__(seed=seed, **options)
        self._base_seed = seed
        self._placed = False
        self._study: Any = None
        self._numbers: set[int] = set()  # the trials this process drew

    def _place(self, trials_before: int) -> None:
        if self._placed:
            return
        self._placed = True
        if self._base_seed is not None and trials_before > 0:
            seed = int(np.random.SeedSequence([self._base_seed, trials_before]).generate_state(1)[0])
            self._rng = np.random.RandomState(seed)
            self._random_sampler = RandomSampler(seed=seed)

    def infer_relative_search_space(self, study: Any, trial: Any) -> dict[str, Any]:
        self._place(trial.number)  # Optuna calls this first for every new trial
        self._note(study, trial.number)
        return super().infer_relative_search_space(study, trial)

    def _note(self, study: Any, number: int) -> None:
        if self._study is None:
            atexit.register(self.fail_unfinished)
        self._study = study
        self._numbers.add(number)

    def fail_unfinished(self) -> None:
        """Mark FAIL the trials this process drew that are still RUNNING: a search stopped (Ctrl-C,
        SIGTERM, an error) before it reported them. Optuna's own `optimize` does so for an
        interrupted trial; Hydra's sweeper reports a trial only once its job returns, so a stored
        study would keep such a trial RUNNING for ever. Runs at exit; a normal end leaves none."""
        study, self._study = self._study, None
        if study is None:
            return
        try:
            for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
                if trial.number in self._numbers:
                    study.tell(trial.number, state=TrialState.FAIL)
        except Exception as err:  # at exit: one line, never a traceback
            print(f"warning: could not mark the unfinished trials failed in the study's storage ({err})",
                  file=sys.stderr)

    def sample_independent(self, study: Any, trial: Any, param_name: str, param_distribution: Any) -> Any:
        self._place(trial.number)
        return super().sample_independent(study, trial, param_name, param_distribution)


class GridInOrder(GridSampler):
    """Optuna 2.10's GridSampler gives each trial a point picked at random (`random.choice`,
    unseeded) among those no trial has run or runs, so that workers of one stored study rarely pick
    the same: each launch ran the grid in another order, and a stopped grid search, continued in its
    folder, met a first job of other settings. Here each trial gets the first such point, in the
    grid's order (each setting's values sorted, the settings by name): the same points in the same
    jobs at every launch. Once every point has run (a stored study continued), Optuna's own choice."""

    def sample_relative(self, study: Any, trial: Any, search_space: dict[str, Any]) -> dict[str, Any]:
        left = self._get_unvisited_grid_ids(study)
        if not left:
            return super().sample_relative(study, trial, search_space)
        # As GridSampler records its pick, which its sample_independent and after_trial read.
        study._storage.set_trial_system_attr(trial._trial_id, "search_space", self._search_space)
        study._storage.set_trial_system_attr(trial._trial_id, "grid_id", min(left))
        return {}


class _GridInOrderPartial(functools.partial):
    """hydra/sweeper/sampler=grid as Hydra's Optuna sweeper gets it, a partial of GridSampler that it
    calls with the search space: it tells a grid search by that partial's func, so the func stays
    GridSampler, and the sampler built is GridInOrder."""

    def __call__(self, *args: Any, **kwargs: Any) -> GridSampler:
        return GridInOrder(*self.args, *args, **{**self.keywords, **kwargs})


def grid_in_order(sampler: Any) -> Any:
    """The sampler Hydra's Optuna sweeper was given, with a grid's points run in order (GridInOrder)."""
    if isinstance(sampler, functools.partial) and sampler.func is GridSampler:
        return _GridInOrderPartial(GridSampler, *sampler.args, **sampler.keywords)
    return sampler
