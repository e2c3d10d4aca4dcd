"""CountSyncs: a Lightning callback that counts the device-to-host synchronisations of each training
step into a JSON file. scripts/gpu_check.py adds it to a chargpt-train run with

    +callbacks.count_syncs._target_=count_syncs.CountSyncs +callbacks.count_syncs.path=FILE

(with this folder on PYTHONPATH).
"""

from __future__ import annotations

import json
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import lightning as L
import torch

from chargpt.training.callbacks.nonfinite_guard import NonFiniteGuard


def steps_that_may_sync(trainer: L.Trainer, steps: int) -> set[int]:
    """The steps allowed to read values on the host: those that log, check the loss or validate,
    the first and the last, and the set-up before the first (-1)."""
    every = [trainer.log_every_n_steps, trainer.val_check_batch]
    every += [c.check_every for c in trainer.callbacks if isinstance(c, NonFiniteGuard)]
    periodic = {s for s in range(steps) for n in every if isinstance(n, int) and n > 0 and (s + 1) % n == 0}
    return periodic | {-1, 0, steps - 1}


class CountSyncs(L.Callback):
    """torch's CUDA sync debug mode warns at every synchronising call (reading a tensor's value, a
    blocking copy to the host); each warning is charged to the step whose batch started last, so a
    step's count includes its logging, its loss checks and a validation it ends with. A run that is
    not on a CUDA device records no synchronisations. The run's other warnings are shown once each
    at the end (they are held back while counting)."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self._cuda = False
        self._caught: warnings.catch_warnings | None = None
        self._warnings: list[warnings.WarningMessage] = []
        self._step_of: list[int] = []  # the step each recorded warning is charged to
        self._step = -1

    def _charge(self) -> None:
        self._step_of += [self._step] * (len(self._warnings) - len(self._step_of))

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._cuda = pl_module.device.type == "cuda"
        self._caught = warnings.catch_warnings(record=True)
        self._warnings = self._caught.__enter__()
        warnings.simplefilter("always")
        if self._cuda:
            torch.cuda.set_sync_debug_mode("warn")

    def on_train_batch_start(self, trainer: L.Trainer, *args: Any) -> None:
        self._charge()
        self._step = trainer.global_step

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._charge()
        if self._cuda:
            torch.cuda.set_sync_debug_mode("default")
        if self._caught is not None:
            self._caught.__exit__(None, None, None)
        recorded = list(zip(self._step_of, self._warnings, strict=True))
        syncs = [(step, w) for step, w in recorded if "synchroniz" in str(w.message)]
        others = {(str(w.message), w.category, w.filename, w.lineno) for _, w in recorded} - {
            (str(w.message), w.category, w.filename, w.lineno) for _, w in syncs}
        for message, category, filename, lineno in sorted(others, key=str):
            warnings.showwarning(message, category, filename, lineno)
        per_step = Counter(step for step, _ in syncs)
        sources = Counter(f"{Path(w.filename).name}:{w.lineno}" for _, w in syncs)
        allowed = steps_that_may_sync(trainer, trainer.global_step)
        self.path.write_text(json.dumps({
            "cuda": self._cuda,
            "steps": trainer.global_step,
            "syncs": len(syncs),
            "steps_with_syncs": sorted(per_step),
            "syncs_per_step": {str(step): n for step, n in sorted(per_step.items())},
            "unexpected_steps": sorted(s for s in per_step if s not in allowed),
            "sources": dict(sources.most_common(12)),
        }))
