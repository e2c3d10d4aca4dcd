"""Every private Lightning member chargpt relies on, in one place.

Each has no public equivalent in the Lightning versions pyproject.toml allows (pinned to the
minor version the tests run against); tests/test_lightning_internals.py fails with the member's
name if an upgrade removes one. Nothing here is imported from Lightning's private modules when
this module loads: a member an upgrade renames costs the one behaviour that needs it (with a
warning), not the import of every command.
"""

from __future__ import annotations

import functools
import importlib
import logging
from collections.abc import Callable
from typing import Any

import lightning as L

from chargpt.distributed import is_rank_zero
from chargpt.stop_signals import STOP_SIGNALS, handled_stop_signals

log = logging.getLogger(__name__)

# The module and class whose instance sets Lightning's signal handlers as a run starts.
SIGNAL_CONNECTOR = ("lightning.pytorch.trainer.connectors.signal_connector", "_SignalConnector")

# The console handler `import lightning` gives its `lightning` logger ("INFO: GPU available: ...").
LIGHTNING_CONSOLE = ("lightning", "_console")

# The module and flag by which Lightning's TensorBoard logger picks its SummaryWriter.
TENSORBOARD_AVAILABLE = ("lightning.fabric.loggers.tensorboard", "_TENSORBOARD_AVAILABLE")

# (owner, attribute path) pairs, checked by the test on a real Trainer and real loggers.
PRIVATE_MEMBERS: list[tuple[str, str]] = [
    # Whether the loggers write this step's values: Lightning's own rule (its LearningRateMonitor
    # asks the same), so values are handed to self.log only on the steps that are written.
    ("trainer", "_logger_connector.should_update_logs"),
    # What hands a step's logged values to the loggers once its on_train_batch_end hooks are done: a
    # run stopped inside one of those hooks (GracefulInterrupt) hands them over itself first.
    ("trainer", "_logger_connector.update_train_step_metrics"),
    # Whether this batch only accumulates gradients (no optimizer step follows it).
    ("trainer", "fit_loop._should_accumulate"),
    # Lightning's own rule for "a validation runs after this batch", and the training data fetcher
    # it reads: a stop at such a step lets that validation run first (GracefulInterrupt).
    ("trainer", "fit_loop.epoch_loop._should_check_val_fx"),
    ("trainer", "fit_loop._data_fetcher"),
    # The step count the trainer stops at: set to the run's total (steps.set_total_steps) before
    # fitting, and lowered by a time budget during the run.
    ("trainer", "fit_loop.epoch_loop.max_steps"),
    # The trackers (trackers.py) extend Lightning's loggers, and read or reset their state:
    # the writer made on first use (a resumed CSV log keeps its rows, a finished W&B run is closed),
    ("CSVLogger", "_experiment"),
    ("WandbLogger", "_experiment"),
    # the MLflow run and store a resume continues, whether the client is made yet, and the
    # prefix of its metrics' names (a resume reads which steps the run has); the client, once
    # made, and the experiment in which a new run ends those its folder's dead runs left RUNNING,
    ("MLFlowLogger", "_run_id"),
    ("MLFlowLogger", "_tracking_uri"),
    ("MLFlowLogger", "_initialized"),
    ("MLFlowLogger", "_prefix"),
    ("MLFlowLogger", "_mlflow_client"),
    ("MLFlowLogger", "_experiment_id"),
    # and the arguments W&B's run starts with (W&B warns of Lightning's anonymous=None).
    ("WandbLogger", "_wandb_init"),
    # Which SummaryWriter the TensorBoard logger hands the settings it does not take to (run_checks).
    TENSORBOARD_AVAILABLE,
    # What sets Lightning's signal handlers as a run starts, its class (an owner that is a module is
    # imported by the test), and the one call that sets each.
    ("trainer", "_signal_connector"),
    SIGNAL_CONNECTOR,
    ("trainer", "_signal_connector._register_signal"),
    # Lightning's own console handler, taken off where the job's logging prints its lines.
    LIGHTNING_CONSOLE,
]


def print_lightning_lines_once() -> None:
    """Lightning's log lines printed once, by the job's logging (Hydra's: the console, train.log).

    `import lightning` gives its logger a console handler of its own, and its lines reach the root's
    handlers as well: each was printed twice, once outside train.log. Lightning leaves the lines of
    lightning.pytorch to the root where the root has handlers; so does this, for the package's own
    handler, after the job's logging is set up (Lightning may be imported before it or after).
    Where the root has none (hydra/job_logging=disabled), Lightning's handler stays."""
    module, name = LIGHTNING_CONSOLE
    console = getattr(importlib.import_module(module), name, None)
    if console is not None and logging.getLogger().hasHandlers():
        logging.getLogger(module).removeHandler(console)


def logs_this_step(trainer: L.Trainer) -> bool:
    """True on the steps whose logged values reach the loggers (every trainer.log_every_n_steps)."""
    return bool(trainer._logger_connector.should_update_logs)


def log_step_values(trainer: L.Trainer) -> None:
    """Hand the step's logged values to the loggers now (on the steps they are written), as Lightning
    does right after the step's on_train_batch_end hooks: for a hook that ends the run there."""
    trainer._logger_connector.update_train_step_metrics()


def is_accumulating(trainer: L.Trainer) -> bool:
    """True inside gradient accumulation: the batch just run is not followed by an optimizer step."""
    return bool(trainer.fit_loop._should_accumulate())


def validates_after_this_batch(trainer: L.Trainer) -> bool:
    """True when Lightning runs a validation right after the training batch that just ended (in its
    on_train_batch_end hooks): the step is a multiple of val_check_interval, or the epoch's end."""
    return bool(trainer.fit_loop.epoch_loop._should_check_val_fx(trainer.fit_loop._data_fetcher))


def tensorboard_summary_writer() -> Callable[..., Any]:
    """The SummaryWriter Lightning's TensorBoard logger makes at its first log: torch's, else
    tensorboardX's, as Lightning picks (ImportError where the pick cannot be read)."""
    module, name = TENSORBOARD_AVAILABLE
    try:
        torchs = getattr(importlib.import_module(module), name)
    except AttributeError:
        raise ImportError(f"{module} has no {name}") from None
    if torchs:
        from torch.utils.tensorboard import SummaryWriter
    else:
        from tensorboardX import SummaryWriter
    return SummaryWriter


def _missing_signal_connector_piece(trainer: L.Trainer) -> str | None:
    """The name of the first piece of Lightning's signal handling that _keeping_ignored_signals
    needs and this Lightning lacks, or None."""
    module, name = SIGNAL_CONNECTOR
    try:
        connector = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return f"{module}.{name}"
    if not hasattr(trainer, "_signal_connector"):
        return "Trainer._signal_connector"
    if not hasattr(connector, "_register_signal"):
        return f"{name}._register_signal"
    return None


@functools.cache
def _keeping_ignored_signals() -> type:
    """Lightning's signal connector, except that a stop signal the process's starter ignores (`trap
    '' TERM`) stays ignored: Lightning takes SIG_IGN for a handler of the user's and sets its own
    SIGTERM handler around it, so a SIGTERM between that moment and the training loop's own handler
    (GracefulInterrupt, which keeps it ignored) set `received_sigterm`, and the run ended as if it
    had finished. Made on first use, once _missing_signal_connector_piece has found its base."""
    module, name = SIGNAL_CONNECTOR
    connector: Any = getattr(importlib.import_module(module), name)

    class _KeepingIgnoredSignals(connector):
        @staticmethod
        def _register_signal(signum: Any, handlers: Any) -> None:
            if signum in STOP_SIGNALS and signum not in handled_stop_signals():
                return  # ignored it stays, with no moment under another handler
            connector._register_signal(signum, handlers)

    return _KeepingIgnoredSignals


def keep_ignored_signals_ignored(trainer: L.Trainer) -> None:
    """A stop signal the starter ignores stays ignored while `trainer` runs (_keeping_ignored_signals).
    A Lightning without the pieces it needs keeps its own handling, and the run says which is missing."""
    missing = _missing_signal_connector_piece(trainer)
    if missing is None:
        trainer._signal_connector = _keeping_ignored_signals()(trainer)
    elif is_rank_zero():
        log.warning(
            "warning: Lightning %s has no %s: a stop signal ignored by this process's starter is "
            "handled by Lightning as usual (a SIGTERM may end the run as if finished); install a "
            "Lightning version that chargpt's pyproject.toml allows",
            L.__version__, missing,
        )
