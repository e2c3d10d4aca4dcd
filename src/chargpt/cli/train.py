"""chargpt-train: compose the config, build data, model and trainer, fit, print a sample."""

from __future__ import annotations

if __name__ == "__main__":  # python -m chargpt.cli.train: as its console script runs it, whose
    from chargpt.cli.launch import run_as_main  # handling of a Ctrl-C covers the imports below

    run_as_main("train")

import contextlib
import functools
import importlib
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import hydra
from omegaconf import DictConfig, OmegaConf

from chargpt import shell_words
from chargpt.cli import CONFIG_PATH
from chargpt.cli.common import cli_task, naming_removed_settings, quiet_known_warnings, run_main, use_threads
from chargpt.cli.exits import console_outliving_its_reader, nothing_to_save_until_training, signal_of
from chargpt.cli.held_weights import FINETUNE_HOLDS, held_weights_note, training_run
from chargpt.cli.hydra_options import prints_only
from chargpt.cli.launch import collector_off_then_frozen
from chargpt.cli.prompts import NO_CLOSING_SAMPLE, check_output_writes, check_prompt_text, resolve_prompt
from chargpt.distributed import is_rank_zero
from chargpt.errors import (
    ChargptError,
    ask_for_less,
    exit_on_user_error,
    naming_what_ran_out,
    say_stopped_by,
    signal_exit_code,
)
from chargpt.hydra_run import is_multirun, parallel_sweep_dir, plain
from chargpt.inference import TrainedModel
from chargpt.metric_names import loss_shown
from chargpt.plural import counted
from chargpt.run_layout import last_checkpoint, run_dir_of
from chargpt.runs.continuation import forget_unstarted_job, keep_finished_jobs
from chargpt.runs.directory import claim_this_job, prepare_run_dir
from chargpt.runs.resume import record_environment, resume_command, resume_overrides
from chargpt.runs.status import forget_this_resume, has_started, record_status, record_trained
from chargpt.runs.sweep_record import continue_line
from chargpt.stop_request import JobStopped, requested_stop, stopping_untrained, sweep_process_ended
from chargpt.stop_signals import StoppedAfterLastStep

CONFIG_NAME = "train"  # configs/train.yaml
if TYPE_CHECKING:  # (training/ is imported where used, once the config is composed)
    import lightning as L

    from chargpt.data.datamodule import CharDataModule
    from chargpt.training.callbacks.graceful_interrupt import TrainingInterrupted
    from chargpt.training.module import CharLM

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
        _print_continue_command()
        sys.exit(signal_exit_code(signum))


def _train(cfg: DictConfig, parallel: Path | None) -> float | None:
    """train(); `parallel`: the sweep's folder, for a job run beside others in its own process."""
    # Lightning is imported here, once the config has composed: its import is ~60% of the CPU time of
    # a command that only prints (--help, --cfg) or is refused for its settings, which never train.
    # The first time in a process, with the collector off and what it made frozen, as launch.py
    # imports a command (not again for a sweep's next job: freezing would keep its garbage).
    claim_this_job(cfg)
    if "chargpt.training.build" not in sys.modules:
        with collector_off_then_frozen():
            importlib.import_module("chargpt.training.build")
    import lightning as L

    from chargpt.training.lightning_internals import print_lightning_lines_once

    quiet_known_warnings()
    print_lightning_lines_once()
    from chargpt.training.build import check_seed_and_sample

    check_seed_and_sample(cfg)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    output_dir = cfg.paths.output_dir
    prepare_run_dir(cfg)
    use_threads(cfg.get("threads"))
    if cfg.sample.max_new_tokens > 0:
        check_prompt_text(cfg.sample.prompt, "sample.prompt")
    # Memory running out (a batch too large to sample, a model too large for the GPU): one line
    # naming the settings, not numpy's or torch's traceback; the run is recorded as failed.
    with naming_what_ran_out(lambda: _smaller_settings(cfg, output_dir)):
        return _build_and_fit(cfg, parallel)


def _build_and_fit(cfg: DictConfig, parallel: Path | None) -> float | None:
    from chargpt.runs.status_callbacks import record_while_training
    from chargpt.training.build import build_run
    from chargpt.training.callbacks.graceful_interrupt import TrainingInterrupted
    from chargpt.training.callbacks.nonfinite_guard import NonFiniteLossError

    output_dir = cfg.paths.output_dir
    base_training = _training_start(cfg)
    datamodule, module, trainer, ckpt_path, finetuning, started_from = build_run(cfg)
    if started_from is not None and is_rank_zero():
        _say_unfinished_start(base_training, started_from, module.training_record.fine_tuned_from)
    sample_prompt = None
    if cfg.sample.max_new_tokens > 0:
        sample_prompt = resolve_prompt(cfg.sample.prompt, datamodule.tokenizer, "sample.prompt")
        if is_rank_zero():  # (which prints it)
            check_output_writes(datamodule.tokenizer, NO_CLOSING_SAMPLE)
    if is_rank_zero():
        # Now that the run is built (its own code imported), and before the continue command is
        # said: it sets the variables the sweep's jobs kept, this one's too.
        record_environment(output_dir)
        # (A parallel sweep's process says how to continue it, once every job has stopped.)
        after_quitting = continue_line() if parallel is None else None
        record_while_training(trainer, output_dir, parallel, after_quitting)
    try:
        # (Several processes: Lightning's own handling, which also ends the other ranks.)
        with nothing_to_save_until_training(parallel is None and trainer.world_size == 1):
            if finetuning:  # the starting point on the new text, logged at step 0
                trainer.validate(module, datamodule=datamodule, verbose=False)
            trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    except TrainingInterrupted as stop:
        _end_stopped_training(stop, cfg, parallel)
    except NonFiniteLossError as err:
        if not err.resumable or not is_rank_zero():
            raise
        raise NonFiniteLossError(f"{err}, e.g. {_resume_with_lower_rate(cfg)}", resumable=True) from err

    return _close_run(cfg, trainer, module, datamodule, bool(ckpt_path), parallel, sample_prompt)


def _close_run(
    cfg: DictConfig, trainer: L.Trainer, module: CharLM, datamodule: CharDataModule, resumed: bool,
    parallel: Path | None, sample_prompt: str | None,
) -> float | None:
    """After the fit: the closing figures, the run recorded finished, a warning if it is no better
    than guessing, then the closing sample (skipped after a signal); its best validation loss, the
    sweeper's result."""
    from chargpt.runs.train_on import how_to_train_on
    from chargpt.training.callbacks.budget import TimeBudget
    from chargpt.training.callbacks.graceful_interrupt import GracefulInterrupt
    from chargpt.training.callbacks.metrics import RunMetrics
    from chargpt.training.guessing import warn_if_no_better_than_guessing

    output_dir = cfg.paths.output_dir
    metrics = next((c for c in trainer.callbacks if isinstance(c, RunMetrics)), None)
    if is_rank_zero() and metrics is not None:
        m = metrics.final(trainer, module)  # as metrics.json says
        _log_closing_figures(m, output_dir)
        if resumed and not metrics.trained_here(trainer):
            log.info("nothing left to train: the run is at step %d, %s (this launch's settings are not kept)",
                     m["step"], how_to_train_on(trainer, output_dir))
            forget_this_resume(output_dir)
        record_trained(output_dir, metrics.best_val_loss)
        train_chars = len(datamodule.train_ids) if datamodule.train_ids is not None else 0
        warn_if_no_better_than_guessing(m, trainer, train_chars, datamodule.tokenizer.vocab_size)
        interrupt = next((c for c in trainer.callbacks if isinstance(c, GracefulInterrupt)), None)
        if interrupt is not None and interrupt.received is not None:
            _stop_after_last_step(interrupt.received, parallel, sample_prompt is not None)
            return metrics.best_val_loss  # a parallel sweep's job: its result goes back
        budget = next((c for c in trainer.callbacks if isinstance(c, TimeBudget)), None)
        sample_seconds, cut = None, False
        if sample_prompt is not None:
            trained = TrainedModel(module.model, datamodule.tokenizer)
            # With a budget, the sample stops where the command must end to keep it.
            clock, stop_at = time.monotonic, None
            if budget is not None:
                clock, stop_at = budget.clock, budget.closing_sample_deadline()
            began = clock()
            cut = print_sample(trained, cfg.sample, sample_prompt, output_dir, stop_at, clock)
            sample_seconds = clock() - began
        if budget is not None:
            budget.command_ended(sample_seconds, cut)
    return metrics.best_val_loss if metrics is not None else None


def _resume_with_lower_rate(cfg: DictConfig) -> str:
    """The run's own resume command (`ckpt_path` alone would take the defaults for the rest), its
    optimizer.lr a tenth of this run's: the lower rate a non-finite loss asks for, which a resume
    trains with (its optimizer state's rate is not put back)."""
    rate = OmegaConf.select(cfg, "optimizer.lr")
    lower = ([f"optimizer.lr={rate / 10:g}"]
             if isinstance(rate, int | float) and not isinstance(rate, bool) and rate > 0 else [])
    return resume_command(cfg.paths.output_dir, changed=lower, data_name=OmegaConf.select(cfg, "data.name"))


def _end_stopped_training(stop: TrainingInterrupted, cfg: DictConfig, parallel: Path | None) -> NoReturn:
    """A signal stopped training with a checkpoint: say where it is and how to resume the run (and
    its sweep), then end as that signal ends a command; a parallel sweep's job ends in JobStopped,
    for its sweep's process to end the sweep once every job has stopped."""
    if is_rank_zero():
        resume = resume_command(run_dir_of(stop.checkpoint), data_name=OmegaConf.select(cfg, "data.name"))
        print(
            f"stopped by {stop.signal_name} after step {stop.step}: "
            f"checkpoint written to {stop.checkpoint}\n"
            f"resume with: {resume}",
            file=sys.stderr, flush=True,
        )
        if parallel is not None:  # the sweep's process ends the sweep once every job has stopped
            if sweep_process_ended():  # unless it was killed: then no one else says it
                _print_continue_command()
            raise JobStopped(stop.signum, started=True) from stop
        _print_continue_command(after_resume=True)
    sys.exit(stop.exit_code)


def _log_closing_figures(m: dict[str, Any], output_dir: str) -> None:
    """The run's closing line: its step, val loss, time and speed (`m`, as metrics.json says)."""
    if m["step"] == 0 and m.get("initial_val_loss") is not None:
        # A fine-tune with trainer.max_steps=0 scores where it starts and trains nothing: no
        # best of its own, no throughput. (It said `best n/a`, 0 tokens/s.)
        log.info("step 0: val loss %s (the starting point's; no step trained), %.0f s; run dir %s",
                 loss_shown(m["val_loss"]), m["train_seconds"], output_dir)
    else:
        log.info(
            "step %d: val loss %s (best %s), %.0f s, %.0f tokens/s; run dir %s",
            m["step"], loss_shown(m["val_loss"]), loss_shown(m["best_val_loss"]), m["train_seconds"],
            m["tokens_per_second"] or 0, output_dir,
        )


def _training_start(cfg: DictConfig) -> Path | None:
    """The run a fine-tune's init_from names, when it is training. Asked before init_from is read,
    as chargpt-export asks it: a run that ends meanwhile is said to have ended, not to train. A path
    that cannot be looked at is left to the checks that refuse it, in their words."""
    if not cfg.get("init_from") or cfg.get("ckpt_path"):
        return None
    try:
        return training_run(str(cfg.init_from))
    except (OSError, RuntimeError):  # (too long a name; ~user of no such user)
        return None


def _say_unfinished_start(base_training: Path | None, checkpoint: Path, card: dict[str, Any] | None) -> None:
    """A note when a fine-tune starts from weights that are not a trained model's: those of a run
    still training, or of one stopped before it finished (as chargpt-export says of what it holds)."""
    step = (card or {}).get("step")
    # ({}: weights read from a checkpoint, where an export's start has no run to say anything of.)
    if (note := held_weights_note(base_training, {}, checkpoint, step, FINETUNE_HOLDS)) is not None:
        log.warning("note: %s", note)


def _smaller_settings(cfg: DictConfig, output_dir: str) -> str:
    """What most likely asked for the memory that ran out, and the fix: smaller values, from the
    last checkpoint where there is one (its batch size may change on resume)."""
    from chargpt.training.model_memory import model_too_large  # (training/ is imported once composed)

    batch = int(cfg.data.batch_size)
    settings = (f"data.batch_size={batch}, model.block_size={cfg.model.block_size} or the model's size "
                "(model.n_layer, model.n_embd)")
    smaller = f"data.batch_size={batch // 2}" if batch > 1 else "a smaller model"
    why = None
    if (model_alone := model_too_large(cfg)) is not None:  # no batch size would help
        settings = "the model alone"
        why, smaller = model_alone
    retry = "run again"
    # (a smaller model is a new run: a resume refuses another model's shape)
    if smaller.startswith("data.batch_size=") and last_checkpoint(Path(output_dir)) is not None:
        retry = "continue from its last checkpoint"
        # The run's own command, the smaller batch in place of its own: `ckpt_path` alone would
        # take the defaults for the rest.
        smaller = resume_command(output_dir, changed=[smaller])
    return ask_for_less(settings, retry, smaller, why=why)


def _smaller_sample(options: DictConfig, run_dir: str) -> str:
    """The closing sample's settings that sized the memory it ran out of, and how to draw it."""
    tokens = int(options.max_new_tokens)
    sample = ["chargpt-sample", f"ckpt_path={run_dir}"]
    if tokens > 1:
        command = shell_words.join([*sample, f"max_new_tokens={tokens // 2}"])
        return ask_for_less(f"sample.max_new_tokens={tokens}", "draw it", command)
    # One token is the least: it said "with less, e.g. max_new_tokens=1". A command of its own
    # holds the weights alone, not the optimizer's state and gradients this process holds.
    command = shell_words.join([*sample, "max_new_tokens=1"])
    apart = f"draw it apart from the training, which holds its optimizer's memory: {command}"
    return ask_for_less("sample.max_new_tokens=1", apart, None)


def _stop_after_last_step(signum: int, parallel: Path | None, sampling: bool) -> None:
    """A signal came after the last step: the run is finished and saved, and the command (or the
    sweep) stops here, rather than draw its sample and exit 0. Raises, but in a parallel sweep's
    job, whose result goes back: the sweep's process ends the sweep (the stop request stands: the
    signal wrote or read it)."""
    stop, name = StoppedAfterLastStep(signum), signal.Signals(signum).name
    if not is_multirun():
        skipped = " (no closing sample)" if sampling else ""
        print(f"stopped by {name} after the last step: the run finished{skipped}", file=sys.stderr,
              flush=True)
        raise stop
    print(f"stopped by {name} after this job's last step: it finished (no closing sample), and the "
          "sweep stops here", file=sys.stderr, flush=True)
    if parallel is None:
        _print_continue_command()
        raise SystemExit(signal_exit_code(signum)) from stop


def _print_continue_command(after_resume: bool = False) -> None:
    if line := continue_line(after_resume=after_resume):
        print(line, file=sys.stderr, flush=True)


def print_sample(
    trained: TrainedModel, options: DictConfig, prompt: str, run_dir: str, stop_at: float | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> bool:
    """The closing sample. The run is trained and saved by now: a sample that cannot be drawn
    is a warning, never a failed run (memory running out included: the sample's settings asked
    for it, and chargpt-sample draws it from the run with less). At `stop_at` (`clock`'s time: where
    the time budget must end the command) it stops, says how to draw it whole, and returns True."""
    settings = {k: v for k, v in plain(options).items() if k != "prompt"}
    print(f"\n--- sample (temperature {options.temperature}, seed {options.seed}) ---")
    print(prompt, end="", flush=True)
    drawn, cut = 0, False
    try:
        with naming_what_ran_out(lambda: _smaller_sample(options, run_dir)):
            characters = iter(trained.stream(prompt, **settings))
            # A sample whose last character is drawn as the deadline passes is whole, not cut.
            while drawn < options.max_new_tokens and not (cut := stop_at is not None and clock() >= stop_at):
                if (ch := next(characters, None)) is None:
                    break
                print(ch, end="", flush=True)
                drawn += 1
            if cut and callable(close := getattr(characters, "close", None)):
                close()
    except ChargptError as err:
        print(f"\nwarning: no sample ({err}); the run itself finished", file=sys.stderr)
    print()
    if cut:
        # Its own settings, the prompt included, as chargpt-sample takes them: the same text, whole.
        same = [f"{key}={value}" for key, value in plain(options).items() if value is not None]
        whole = shell_words.join(["chargpt-sample", f"ckpt_path={run_dir}", *same])
        print(f"note: the closing sample stopped after {counted(drawn, 'character')}, where the time budget "
              f"ends the command; draw it whole with: {whole}", file=sys.stderr, flush=True)
    return cut


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


def stopping_between_jobs(hydra_main: Callable[[], None]) -> Callable[[], None]:
    """A sweep whose jobs run in this process, stopped by a signal outside every job (while Hydra
    makes the next one ready, which takes seconds): its one line and the continue command, as a
    signal inside a job prints them (_sequential_job). It said `interrupted` alone."""

    @functools.wraps(hydra_main)
    def wrapper() -> None:
        try:
            hydra_main()
        except KeyboardInterrupt as stop:  # Terminated too
            # (A parallel sweep's process says it itself, once its jobs have stopped.)
            line = continue_line() if parallel_sweep_dir() is None else None
            if line is None:  # not a sweep, or one not recorded yet: nothing to continue
                raise
            signum = signal_of(stop)
            say_stopped_by(signum)
            print(line, file=sys.stderr, flush=True)
            sys.exit(signal_exit_code(signum))

    return wrapper


def main() -> None:
    # Ctrl-C before or after the training loop (nothing to save) ends with exit code 130. What only
    # prints (--help, --info, --cfg) stops printing into a closed pipe without a word: no run goes on.
    with console_outliving_its_reader("" if prints_only(sys.argv) else READER_GONE):
        run_main(stopping_between_jobs(_hydra_main), prepare=resume_overrides, config_name=CONFIG_NAME,
                 takes_new_settings=True)
