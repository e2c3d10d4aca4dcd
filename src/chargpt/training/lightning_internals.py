"""Every private Lightning member chargpt relies on, in one place.

Each has no public equivalent in the Lightning versions pyproject.toml allows (pinned to the
minor version the tests run against); tests/test_lightning_internals.py fails with the member's
name if an upgrade removes one.
"""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.trainer.connectors.signal_connector import _SignalConnector

from chargpt.stop_signals import STOP_SIGNALS, handled_stop_signals

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
    # What sets Lightning's signal handlers as a run starts, and the one call that sets each.
    ("trainer", "_signal_connector"),
    ("trainer", "_signal_connector._register_signal"),
]


def logs_this_step(trainer: L.Trainer) -> bool:
    """True on the steps whose logged values reach the loggers (every trainer.log_every_n_steps)."""
    return bool(trainer._logger_connector.should_update_logs)


def is_accumulating(trainer: L.Trainer) -> bool:
    """True inside gradient accumulation: the batch just run is not followed by an optimizer step."""
    return bool(trainer.fit_loop._should_accumulate())


class _KeepingIgnoredSignals(_SignalConnector):
    """Lightning's signal handling, except that a stop signal the process's starter ignores (`trap ''
    TERM`) stays ignored: Lightning takes SIG_IGN for a handler of the user's and sets its own
    SIGTERM handler around it, so a SIGTERM between that moment and the training loop's own handler
    (GracefulInterrupt, which keeps it ignored) set `received_sigterm`, and the run ended as if it
    had finished."""

    @staticmethod
    def _register_signal(signum: Any, handlers: Any) -> None:
        if signum in STOP_SIGNALS and signum not in handled_stop_signals():
            return  # ignored it stays, with no moment under another handler
        _SignalConnector._register_signal(signum, handlers)


def keep_ignored_signals_ignored(trainer: L.Trainer) -> None:
    """A stop signal the starter ignores stays ignored while `trainer` runs (_KeepingIgnoredSignals)."""
    trainer._signal_connector = _KeepingIgnoredSignals(trainer)
