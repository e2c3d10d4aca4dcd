"""Turn Ctrl-C or SIGTERM into a checkpoint at the next step boundary.

Lightning's own SIGTERM handling stops training without a checkpoint, and in multi-process runs
broadcasts from inside the signal handler; Ctrl-C stops mid-step. GracefulInterrupt replaces both
handlers while the training loop runs: a signal only sets a flag, the ranks agree on it at the
next step boundary (one tiny all-gather of the signal each received), write last.ckpt together and
raise TrainingInterrupted naming the signal received, whichever rank received it.
At a step where a validation is due, that validation runs first and the stop comes at its end,
after the checkpoint callbacks have written last.ckpt (and a best checkpoint, if it is one): the
checkpoint is the one the run writes there anyway, from which Lightning resumes at the next step,
so the step's val/loss and weights count as in a run never stopped. A signal during a validation
stops at its end the same way, unless it falls inside a step (a validation Lightning was told to run
after a batch that ends no step: chargpt's own interval counts steps): then the stop waits for the
step's end, as a checkpoint there would lose the batches accumulated so far.
A second signal gets the default behaviour (quit at once, no checkpoint: exit 130 for Ctrl-C, 143
for SIGTERM), not Lightning's KeyboardInterrupt shutdown; the first says what that would keep. A
signal after the last step (during the final validation and checkpoint) lets the run end normally,
and says so. When fit ends, the handlers the process had before it are back (not Lightning's, which
would ignore a SIGTERM), so a signal during the closing sample stops it at once.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from chargpt.distributed import is_rank_zero
from chargpt.errors import signal_exit_code
from chargpt.stop_request import request_stop, requested_stop, sweep_process_ended
from chargpt.stop_signals import STOP_SIGNALS, handled_stop_signals
from chargpt.training.callbacks.checkpointing import last_checkpoint_path, latest_checkpoint_kept
from chargpt.training.lightning_internals import is_accumulating, log_step_values, validates_after_this_batch
from chargpt.training.steps import is_last_step


class TrainingInterrupted(Exception):
    """Raised at a step boundary after a checkpoint was written because a signal arrived."""

    def __init__(self, signum: int, step: int, checkpoint: Path) -> None:
        super().__init__(f"{signal.Signals(signum).name} at step {step}; checkpoint {checkpoint}")
        self.signum, self.step, self.checkpoint = signum, step, checkpoint

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        return signal_exit_code(self.signum)


class GracefulInterrupt(Callback):
    def __init__(self, output_dir: str) -> None:
        self.output_dir = Path(output_dir)
        self.received: int | None = None
        # Called at the first signal with the line the console shows: a second signal ends the
        # process with no chance to record anything.
        self.on_signal: Callable[[str], None] | None = None
        # A job of a parallel sweep: the folder where a stop of the whole sweep is requested
        # (chargpt/stop_request.py), read at each step boundary and written at this job's signal.
        self.sweep_dir: Path | None = None
        # What to do after a second signal, said with the first (a sequential sweep: its continue
        # command, which the second signal leaves no chance to print).
        self.after_quitting: str | None = None
        self._original: dict[int, Any] = {}
        self._trainer: L.Trainer | None = None  # while fit runs: where its checkpoints are
        self._last_step = -1
        self._finishing = False  # the last step is taken: the run is validating and saving
        # The signal the ranks agreed to stop on at a step whose validation comes first.
        self._stop_after_validation: int | None = None
        self._last_ckpt_before_validation: tuple[int, int, int] | None = None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.received = signum
        # A second signal of the same kind quits at once: the default action ends the process, also
        # in a long C call or a collective (a Python handler would wait for it), so what that keeps
        # is said now.
        signal.signal(signum, signal.SIG_DFL)
        if self.sweep_dir is not None:
            request_stop(self.sweep_dir, signum)  # the sweep's other jobs stop at their next step too
        kept = latest_checkpoint_kept(self._trainer) if self._trainer is not None else ""
        kept = f"its last checkpoint, {kept}, stays" if kept else "it has no checkpoint yet"
        skipped = "them"  # what a second signal quits without
        if self._finishing:
            what = "the last step is done and the run is finishing (final validation and checkpoint)"
        elif self._stops_at_validation_end(self._trainer):
            what = "stopping at the end of this validation, once its checkpoint is written"
        else:
            what, skipped = "stopping after this step and writing a checkpoint", "one"
        then = f"send it again to quit at once without {skipped}: {kept}"
        then += f"; then {self.after_quitting}" if self.after_quitting else ""
        line = f"{signal.Signals(signum).name} received: {what} ({then})"
        if self.on_signal is not None:
            self.on_signal(line)
        if is_rank_zero():  # one line for the run: Ctrl-C reaches every process of a multi-process one
            print(f"\n{line}", file=sys.stderr, flush=True)

    def _read_sweep_stop(self) -> None:
        """A stop of the whole sweep (its process, or another job, got a signal) stops this job as
        its own first signal would (its own signal after that still counts as its first), and so
        does the end of the sweep's process, which asks the other jobs to stop too."""
        assert self.sweep_dir is not None
        if sweep_process_ended():  # (before the request: the first job to see it wrote one, no signal)
            signum = signal.SIGTERM  # (its exit code: the job is stopped, as by a scheduler's signal)
            request_stop(self.sweep_dir, signum)
            line = "the sweep's process has ended: this job stops after this step and writes a checkpoint"
        elif (signum := requested_stop(self.sweep_dir)) is not None:
            line = (f"{signal.Signals(signum).name} sent to the sweep: this job stops after this step and "
                    "writes a checkpoint")
        else:
            return
        self.received = signum
        if self.on_signal is not None:
            self.on_signal(line)
        if is_rank_zero():
            print(f"\n{line}", file=sys.stderr, flush=True)

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        # Before Lightning registers its SIGTERM handler: these are restored at teardown.
        if threading.current_thread() is threading.main_thread():
            self._original = {s: signal.getsignal(s) for s in STOP_SIGNALS}

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Installed here, after Lightning registered its own SIGTERM handler, so ours replaces it.
        self.received, self._last_step, self._finishing = None, trainer.global_step, False
        self._stop_after_validation = None
        self._trainer = trainer
        # Last among the callbacks, after the checkpoint callbacks that Lightning puts last: a stop
        # at a validation's end then comes once its checkpoints are written. (A new list: the one
        # Lightning is iterating to call this hook stays as it is.)
        trainer.callbacks = [c for c in trainer.callbacks if c is not self] + [self]
        if threading.current_thread() is threading.main_thread():
            handled = handled_stop_signals()
            for s in STOP_SIGNALS:
                # One the run's starter ignores stays ignored: set so again in place of Lightning's
                # SIGTERM handler, which would end the run at the next step as if it had finished.
                signal.signal(s, self._handle if s in handled else signal.SIG_IGN)

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        if trainer.global_step == self._last_step:
            return  # inside gradient accumulation: not a step boundary yet
        self._last_step = trainer.global_step
        if self.received is None and self.sweep_dir is not None:
            self._read_sweep_stop()
        stop = self._agreed_signal(trainer)
        self._finishing = is_last_step(trainer)
        if stop is None or self._finishing:
            return  # nothing received, or the run ends (validates and checkpoints) right now anyway
        if validates_after_this_batch(trainer):
            # Stopped before it, the resume would count this validation as done (Lightning's rule for
            # a checkpoint of a validation step): its val/loss lost, its weights never a best.
            self._stop_after_validation = stop
            return
        # Lightning logs this step's values only after every on_train_batch_end hook; raised here,
        # the run would leave the step out of every curve (its resume starts at the next one).
        log_step_values(trainer)
        path = last_checkpoint_path(trainer, self.output_dir)
        trainer.save_checkpoint(path, weights_only=False)  # the full training state
        raise TrainingInterrupted(stop, trainer.global_step, path)

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._last_ckpt_before_validation = _file_identity(last_checkpoint_path(trainer, self.output_dir))

    def _stops_at_validation_end(self, trainer: L.Trainer | None) -> bool:
        """Whether a stop asked for now comes at the end of the validation running: one at a step
        boundary, between steps of the training loop."""
        return (trainer is not None and trainer.validating and not trainer.sanity_checking
                and not self._finishing and not is_accumulating(trainer))

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self._stops_at_validation_end(self._trainer):
            return  # a sanity check, the final validation (the run ends anyway), or one inside a step
        stop = self._stop_after_validation or self._agreed_signal(trainer)
        if stop is None:
            return
        path = last_checkpoint_path(trainer, self.output_dir)
        # Rank 0's view of the file, which rank 0 writes: every rank takes part in a save or none.
        rewritten = _file_identity(path) not in (None, self._last_ckpt_before_validation)
        if not trainer.strategy.broadcast(rewritten):
            # No checkpoint callback rewrote last.ckpt at this validation: this step's one is written
            # here, after theirs, so it holds their record of it (the best checkpoint included).
            trainer.save_checkpoint(path, weights_only=False)
        raise TrainingInterrupted(stop, trainer.global_step, path)

    def _agreed_signal(self, trainer: L.Trainer) -> int | None:
        """The signal every rank stops on, or None: that of the first rank to receive one (rank 0,
        whose console line names what it received, first). A collective: every rank calls it at the
        same boundary. It is every rank's `received` from then on, so that a stop agreed at the last
        step also ends the command on rank 0 (which prints) as that signal's stop."""
        if trainer.world_size == 1:
            return self.received  # no collective: on a GPU its read back would wait for every step
        received = torch.tensor(int(self.received or 0), device=trainer.strategy.root_device)
        by_rank = trainer.strategy.all_gather(received).reshape(-1).tolist()  # (one process: itself)
        agreed = next((int(s) for s in by_rank if s), None)
        if agreed is not None:
            self.received = agreed
        return agreed

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._trainer = None
        if threading.current_thread() is threading.main_thread():
            for s, handler in self._original.items():
                signal.signal(s, handler)
        self._original = {}


def _file_identity(path: Path) -> tuple[int, int, int] | None:
    """What changes when the file is written again (an atomic write replaces it), or None."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return stat.st_ino, stat.st_mtime_ns, stat.st_size
