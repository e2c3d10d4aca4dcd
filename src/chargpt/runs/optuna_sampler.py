"""The hparams_search sampler: Optuna's TPE, continuing a stored study instead of repeating it.

Needs the `optuna` extra; imported only when hparams_search=optuna builds its sampler.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from optuna.samplers import RandomSampler, TPESampler


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
        return super().infer_relative_search_space(study, trial)

    def sample_independent(self, study: Any, trial: Any, param_name: str, param_distribution: Any) -> Any:
        self._place(trial.number)
        return super().sample_independent(study, trial, param_name, param_distribution)
