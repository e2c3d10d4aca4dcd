"""chargpt-train: compose the config, build data, model and trainer, fit, print a sample."""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
import shlex
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from chargpt.checks import check_seed, training_seed
from chargpt.cli import CONFIG_PATH
from chargpt.cli.argv import prints_only
from chargpt.cli.common import cli_task, naming_removed_settings, quiet_known_warnings, run_main, use_threads
from chargpt.cli.exits import console_outliving_its_reader, nothing_to_save_until_training, signal_of
from chargpt.cli.prompts import check_output_writes, check_prompt_text, resolve_prompt
from chargpt.distributed import is_rank_zero
from chargpt.errors import ChargptError, exit_on_user_error, say_stopped_by, signal_exit_code
from chargpt.hydra_run import is_multirun, plain, task_overrides
from chargpt.inference import TrainedModel
from chargpt.metric_names import TRAIN_LOSS
from chargpt.model.sampling import check_sampling
from chargpt.overrides import override_key
from chargpt.run_layout import CONFIG_DIR, launch_cwd, run_dir_of
from chargpt.runs.claims import claim_job
from chargpt.runs.continuation import continued_job, forget_unstarted_job, keep_finished_jobs
from chargpt.runs.directory import check_run_dir
from chargpt.runs.resume import resume_command, resume_overrides, this_process_environment
from chargpt.runs.status import (
    forget_this_resume,
    has_started,
    record_signalled,
    record_started,
    record_status,
    record_trained,
)
from chargpt.runs.sweep_record import continue_command, kept_on_continuing
from chargpt.stop_request import (
    LAUNCHER,
    JobStopped,
    requested_stop,
    stopping_untrained,
    sweep_process_ended,
)
from chargpt.stop_signals import StoppedAfterLastStep
from chargpt.training.build import build_run
from chargpt.training.callbacks.budget import TimeBudget
from chargpt.training.callbacks.checkpointing import best_checkpoint_written
from chargpt.training.callbacks.graceful_interrupt import GracefulInterrupt, TrainingInterrupted
from chargpt.training.callbacks.metrics import RunMetrics

CONFIG_NAME = "train"  # configs/train.yaml
READER_GONE = ("warning: the console's reader closed its pipe; the run goes on without console output, "
               "and its train.log keeps its log")

log = logging.getLogger(__name__)


def train(cfg: DictConfig) -> float | None:
    """Train as configured; returns the best validation loss (the metric sweeps optimise)."""
    parallel = parallel_sweep_dir()
    if parallel is None and is_multirun():
        return _sequential_job(cfg)
    if parallel is None:  # (a SIGTERM is raised as Ctrl-C by run_main, and ends with `terminated`, 143)
        try:
            return _train(cfg, None)
        except KeyboardInterrupt as stop:
            _say_nothing_to_resume(Path(cfg.paths.output_dir), signal_of(stop), bool(cfg.ckpt_path))
            raise
    with stopping_untrained(parallel):  # a signal before or after the training loop
        if (signum := requested_stop(parallel)) is not None:  # the sweep is stopping
            forget_unstarted_job(cfg.paths.output_dir)  # its continuation trains this job
            raise JobStopped(signum, started=False)
        return _train(cfg, parallel)


def _say_nothing_to_resume(run_dir: Path, signum: int, resumed: bool) -> None:
    """A signal before the first training step (the run being built: its text read, model=auto's
    timing) has nothing to checkpoint; from that step on, GracefulInterrupt writes one and prints
    the resume command."""
    if not is_rank_zero() or has_started(run_dir):
        return
    stopped = f"\nstopped by {signal.Signals(signum).name} before training"
    if resumed:
        said = f"{stopped} resumed: the checkpoint stays as it was; run the same command to resume"
    else:
        said = f"{stopped} began: no checkpoint was written; run the same command to start the run again"
    print(said, file=sys.stderr, flush=True)


def _sequential_job(cfg: DictConfig) -> float | None:
    """A job of a sweep whose jobs run one after another in this process. A signal inside its
    training loop checkpoints and prints the continue command (`_train`); one outside it (the job
    being built, its closing sample) ends the sweep where it is, with that command too."""
    try:
        return _train(cfg, None)
    except KeyboardInterrupt as stop:  # Ctrl-C, or SIGTERM as run_main raises it (Terminated)
        signum = signal_of(stop)
        say_stopped_by(signum)
        _print_continue_command("continue the sweep")
        sys.exit(signal_exit_code(signum))


def _train(cfg: DictConfig, parallel: Path | None) -> float | None:
    """train(); `parallel`: the sweep's folder, for a job run beside others in its own process."""
    quiet_known_warnings()
    training_seed("seed", cfg.seed)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    output_dir = cfg.paths.output_dir
    continued = continued_job(output_dir)  # a job of a continued sweep that did not finish
    if continued == "resume":
        with open_dict(cfg):
            cfg.ckpt_path = str(output_dir)
    if is_rank_zero():
        # Sweep jobs (which Hydra's run-directory callback does not see) are checked here.
        setting = "hydra.sweep.dir" if is_multirun() else "hydra.run.dir"
        if is_multirun():  # a single run's folder is claimed before Hydra writes there (RunDirGuard)
            claim_job(Path(output_dir))
        check_run_dir(Path(output_dir), cfg.ckpt_path, setting, start_over=continued == "start over")
    use_threads(cfg.get("threads"))
    # Before the run is built (the time budget counts the closing sample): a bad sample setting
    # must not waste the run.
    check_sampling(cfg.sample.temperature, cfg.sample.top_k, cfg.sample.top_p, cfg.sample.max_new_tokens,
                   "sample.")
    check_seed("sample.seed", cfg.sample.seed, optional=True)
    if cfg.sample.max_new_tokens > 0:
        check_prompt_text(cfg.sample.prompt, "sample.prompt")
    datamodule, module, trainer, ckpt_path, finetuning = build_run(cfg)
    sample_prompt = None
    if cfg.sample.max_new_tokens > 0:
        sample_prompt = resolve_prompt(cfg.sample.prompt, datamodule.tokenizer, "sample.prompt")
        if is_rank_zero():  # (which prints it)
            check_output_writes(datamodule.tokenizer, ", or sample.max_new_tokens=0 for no closing sample")
    if is_rank_zero():
        trainer.callbacks.append(_RecordStart(output_dir))
        for callback in trainer.callbacks:
            if isinstance(callback, GracefulInterrupt):
                callback.on_signal = functools.partial(record_signalled, output_dir)
                callback.sweep_dir = parallel
                if parallel is None:  # (a parallel sweep's process says it, once every job has stopped)
                    callback.after_quitting = _continue_command("continue the sweep")
    try:
        # (Several processes: Lightning's own handling, which also ends the other ranks.)
        with nothing_to_save_until_training(parallel is None and trainer.world_size == 1):
            if finetuning:  # the starting point on the new text, logged at step 0
                trainer.validate(module, datamodule=datamodule, verbose=False)
            trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    except TrainingInterrupted as stop:
        if is_rank_zero():
            print(
                f"stopped by {stop.signal_name} after step {stop.step}: "
                f"checkpoint written to {stop.checkpoint}\n"
                f"resume with: {resume_command(run_dir_of(stop.checkpoint))}",
                file=sys.stderr, flush=True,
            )
            if parallel is not None:  # the sweep's process ends the sweep once every job has stopped
                if sweep_process_ended():  # unless it was killed: then no one else says it
                    _print_continue_command("continue the sweep")
                raise JobStopped(stop.signum, started=True) from stop
            _print_continue_command("or continue the whole sweep")
        sys.exit(stop.exit_code)

    metrics = next((c for c in trainer.callbacks if isinstance(c, RunMetrics)), None)
    if is_rank_zero() and metrics is not None:
        m = metrics.final(trainer, module)  # as metrics.json says
        log.info(
            "step %d: val loss %s (best %s), %.0f s, %.0f tokens/s; run dir %s",
            m["step"], _fmt(m["val_loss"]), _fmt(m["best_val_loss"]), m["train_seconds"],
            m["tokens_per_second"] or 0, output_dir,
        )
        if ckpt_path and not metrics.trained_here(trainer):
            log.info("nothing left to train: the run is at step %d, %s (this launch's settings are not kept)",
                     m["step"], _how_to_train_on(trainer, output_dir))
            forget_this_resume(output_dir)
        record_trained(output_dir, metrics.best_val_loss)
        train_chars = len(datamodule.train_ids) if datamodule.train_ids is not None else 0
        _warn_if_no_better_than_guessing(m, trainer, train_chars, datamodule.tokenizer.vocab_size)
        interrupt = next((c for c in trainer.callbacks if isinstance(c, GracefulInterrupt)), None)
        if interrupt is not None and interrupt.received is not None:
            # The signal came after the last step: the run is finished and saved, and the command
            # (or the sweep) stops here, rather than draw its sample and exit 0.
            stop, name = StoppedAfterLastStep(interrupt.received), signal.Signals(interrupt.received).name
            if not is_multirun():
                skipped = " (no closing sample)" if sample_prompt is not None else ""
                print(f"stopped by {name} after the last step: the run finished{skipped}",
                      file=sys.stderr, flush=True)
                raise stop
            print(f"stopped by {name} after this job's last step: it finished (no closing sample), and the "
                  "sweep stops here", file=sys.stderr, flush=True)
            if parallel is not None:  # its result goes back; the sweep's process ends the sweep
                return metrics.best_val_loss  # (the stop request stands: the signal wrote or read it)
            _print_continue_command("continue the sweep")
            raise SystemExit(signal_exit_code(stop.signum)) from stop
        if sample_prompt is not None:
            print_sample(TrainedModel(module.model, datamodule.tokenizer), cfg.sample, sample_prompt)
    return metrics.best_val_loss if metrics is not None else None


def _how_to_train_on(trainer: L.Trainer, run_dir: str) -> str:
    """Why a resumed run trained nothing, and what trains it on. A budgeted run keeps the count its
    budget planned whatever trainer.max_steps says (its schedule was set for it): it trains on
    without the budget, and a model=auto run with its chosen shape in place of model=auto (which
    needs a budget)."""
    budget = next((c for c in trainer.callbacks if isinstance(c, TimeBudget) and c.active), None)
    if budget is None or budget.planned_steps is None:
        return f"trainer.max_steps={trainer.max_steps}; pass a larger trainer.max_steps to train on"
    # model=auto's: its first launch's command line as typed (there), with the shape it chose.
    auto = (budget.auto or {}).get("rerun_with")
    launched = shlex.split(auto)[1:] if auto else task_overrides()
    fixed = ("budget_seconds", "trainer.max_steps", "ckpt_path", "model") if auto else (
        "budget_seconds", "trainer.max_steps", "ckpt_path")
    kept = [o for o in launched if override_key(o) not in fixed]
    if auto:
        cwd = launch_cwd(Path(run_dir) / CONFIG_DIR)
    else:
        cwd = HydraConfig.get().runtime.cwd if HydraConfig.initialized() else None
    command = resume_command(run_dir, [*kept, "budget_seconds=null", "trainer.max_steps=STEPS"], cwd,
                             typed=bool(auto))
    command = " ".join([*this_process_environment(), command])
    return (f"the {budget.planned_steps} steps its time budget planned, which a resume keeps whatever "
            f"trainer.max_steps says; to train on, resume it without the budget, with STEPS above "
            f"{budget.planned_steps}: {command}")


def parallel_sweep_dir() -> Path | None:
    """The sweep's folder, for a job that runs beside others in its own process (the launcher of
    runs/parallel_launcher.py: a stop of the sweep reaches it through that folder)."""
    if not is_multirun() or not HydraConfig.initialized():
        return None
    if HydraConfig.get().launcher.get("_target_") != LAUNCHER:
        return None
    return Path(HydraConfig.get().sweep.dir)


def _continue_command(lead: str) -> str | None:
    """In a sweep: how to continue it, its finished jobs kept."""
    hydra = HydraConfig.get() if is_multirun() else None
    if hydra is not None and (command := continue_command(Path(hydra.sweep.dir))):
        return f"{lead} ({kept_on_continuing(hydra)}) with: {command}"
    return None


def _print_continue_command(lead: str) -> None:
    if line := _continue_command(lead):
        print(line, file=sys.stderr, flush=True)


class _RecordStart(L.Callback):
    """status.json says running from the first step trained: a resume refused before it (a
    budget added to a run that had none, ...) leaves the run's status as it was."""

    def __init__(self, run_dir: str) -> None:
        self.run_dir, self.done = run_dir, False

    def on_train_batch_start(self, *args: object) -> None:
        if not self.done:
            record_started(self.run_dir)
            self.done = True


def _warn_if_no_better_than_guessing(
    m: dict[str, Any], trainer: L.Trainer, train_chars: int, vocab_size: int
) -> None:
    """A run that went over its whole text and ends worse than a uniform guess learnt what does not
    carry over: a short text memorised (1,400 characters of prose, 20 s of model=auto: 447 epochs,
    validation 6.99 against ln 68 = 4.22; validated every 20 steps, its best was 3.42 at step 60).
    The figures alone do not say it, so say it (a log line: train.log keeps it)."""
    last, best, tokens = m.get("val_loss"), m.get("best_val_loss"), m.get("tokens") or 0
    guess = math.log(vocab_size)
    if last is None or last <= guess or not train_chars or tokens < train_chars:
        return
    train_loss = trainer.callback_metrics.get(TRAIN_LOSS)
    fitted = f" (train loss {float(train_loss):.2f})" if train_loss is not None else ""
    best_file = best_checkpoint_written(trainer)
    every = getattr(trainer, "val_check_batch", None)
    batches = trainer.global_step * getattr(trainer, "accumulate_grad_batches", 1)  # as every counts
    validated_often = isinstance(every, int) and batches >= 4 * every
    if best_file and best is not None and best < guess:
        what = (f"its last weights have memorised them; this run's best checkpoint, {best:.2f}, beats "
                f"guessing: {best_file}. A longer text helps most")
    else:
        what = ("the model has learnt nothing that carries over to the validation text. A longer text "
                "helps most")
        if not validated_often:
            what += "; or validate often (e.g. trainer.val_check_interval=20) and use the best checkpoint"
    log.warning(
        "warning: validation loss %.2f is worse than guessing uniformly among the %d characters of its "
        "vocabulary (%.2f): after %s epochs over its %s training characters%s, %s",
        last, vocab_size, guess, f"{tokens / train_chars:,.0f}", f"{train_chars:,}", fitted, what,
    )


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4f}"


def print_sample(trained: TrainedModel, options: DictConfig, prompt: str) -> None:
    """The closing sample. The run is trained and saved by now: a sample that cannot be drawn
    is a warning, never a failed run."""
    settings = {k: v for k, v in plain(options).items() if k != "prompt"}
    print(f"\n--- sample (temperature {options.temperature}, seed {options.seed}) ---")
    print(prompt, end="", flush=True)
    try:
        for ch in trained.stream(prompt, **settings):
            print(ch, end="", flush=True)
    except ChargptError as err:
        print(f"\nwarning: no sample ({err}); the run itself finished", file=sys.stderr)
    print()


TaskFunction = Callable[[DictConfig], "float | None"]


def ending_an_orphaned_worker(task: TaskFunction) -> TaskFunction:
    """A parallel sweep's job whose sweep's process was killed outright ends its worker process once
    it has recorded how it ended: nothing else would (stop_request.sweep_process_ended)."""

    @functools.wraps(task)
    def wrapper(cfg: DictConfig) -> float | None:
        try:
            return task(cfg)
        finally:
            if parallel_sweep_dir() is not None and is_rank_zero() and sweep_process_ended():
                logging.shutdown()  # (the job's log files are flushed and closed)
                with contextlib.suppress(OSError, ValueError):
                    sys.stdout.flush()
                os._exit(signal_exit_code(signal.SIGTERM))

    return wrapper


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name=CONFIG_NAME)
@cli_task
@exit_on_user_error
@keep_finished_jobs  # a continued sweep does not train its finished jobs again
@ending_an_orphaned_worker
@record_status  # status.json per run; in a sweep a failing job does not stop the others
def _hydra_main(cfg: DictConfig) -> float | None:
    # Inside record_status: a sweep's job records the one line. The console guard again here: a
    # parallel sweep's worker process runs only this.
    with naming_removed_settings(), console_outliving_its_reader(READER_GONE):
        return train(cfg)


def main() -> None:
    # Ctrl-C before or after the training loop (nothing to save) ends with exit code 130. What only
    # prints (--help, --info, --cfg) stops printing into a closed pipe without a word: no run goes on.
    with console_outliving_its_reader("" if prints_only(sys.argv) else READER_GONE):
        run_main(_hydra_main, prepare=resume_overrides, config_name=CONFIG_NAME)


if __name__ == "__main__":
    main()
