"""Every private Lightning member chargpt relies on, in one place.

Each has no public equivalent in the Lightning versions pyproject.toml allows (pinned to the
minor version the tests run against); tests/test_lightning_internals.py fails with the member's
name if an upgrade removes one.
"""

from __future__ import annotations

import lightning as L

# (owner, attribute path) pairs, checked by the test on a real Trainer and real loggers.
PRIVATE_MEMBERS: list[tuple[str, str]] = [
    # Whether the loggers write this step's values: Lightning's own rule (its LearningRateMonitor
    # asks the same), so values are handed to self.log only on the steps that are written.
    ("trainer", "_logger_connector.should_update_logs"),
    # Whether this batch only accumulates gradients (no optimizer step follows it).
    ("trainer", "fit_loop._should_accumulate"),
    # The step count the trainer stops at: set to the run's total (steps.set_total_steps) before
    # fitting, and lowered by a time budget during the run.
    ("trainer", "fit_loop.epoch_loop.max_steps"),
    # The trackers (trackers.py) extend Lightning's loggers, and read or reset their state:
    # the writer made on first use (a resumed CSV log keeps its rows, a finished W&B run is closed),
    ("CSVLogger", "_experiment"),
    ("WandbLogger", "_experiment"),
    # the MLflow run and store a resume continues, and whether the client is made yet,
    ("MLFlowLogger", "_run_id"),
    ("MLFlowLogger", "_tracking_uri"),
    ("MLFlowLogger", "_initialized"),
    # and the arguments W&B's run starts with (W&B warns of Lightning's anonymous=None).
    ("WandbLogger", "_wandb_init"),
]


def logs_this_step(trainer: L.Trainer) -> bool:
    """True on the steps whose logged values reach the loggers (every trainer.log_every_n_steps)."""
    return bool(trainer._logger_connector.should_update_logs)


def is_accumulating(trainer: L.Trainer) -> bool:
    """True inside gradient accumulation: the batch just run is not followed by an optimizer step."""
    return bool(trainer.fit_loop._should_accumulate())
