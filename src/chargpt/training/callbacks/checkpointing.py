"""Which checkpoint callback writes last.ckpt, where it goes, and which of the checkpoints a run
has written are the latest and the best (lowest val/loss).

Both checkpoints are Lightning ModelCheckpoint callbacks (configs/callbacks/): `model_checkpoint`
(RunModelCheckpoint) keeps best-<step>.ckpt (lowest val/loss), `last_checkpoint` rewrites last.ckpt
at every validation. Lightning's own `save_last` refreshes last.ckpt only when a best checkpoint
is saved at the same step, so after a validation that did not improve the loss, a resume from
the run directory would silently lose the steps since the best one.
"""

from __future__ import annotations

import logging
import os
from datetime import timedelta
from pathlib import Path

import lightning as L
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, Logger, TensorBoardLogger
from omegaconf import DictConfig

from chargpt import shell_words
from chargpt.checks import shown, whole_number
from chargpt.errors import SettingError
from chargpt.metric_names import MONITORABLE, VAL_LOSS, is_monitorable
from chargpt.overrides import removal_typed
from chargpt.run_layout import CHECKPOINT_DIR, LAST, last_name_in

log = logging.getLogger(__name__)


def check_checkpoint_settings(
    monitor: object, save_top_k: object, mode: object, every_n_train_steps: object, filename: object = None,
    every_n_epochs: object = None, train_time_interval: object = None, save_last: object = None,
    save_on_exception: object = False, *, label: str,
) -> None:
    """The settings of Lightning's ModelCheckpoint that it refuses naming no fix (save_top_k=x: "'<' not
    supported between instances of 'str' and 'int'"), or only at the first validation (a monitor no
    metric is logged as): checked as a run builds the callback, and before it reads any data
    (run_checks.BORROWED_CHECKS), where Lightning's own checks (mode, every_n_train_steps) came
    only once the text was read. `label`: the callback's config (`callbacks.NAME`), for a fix that
    removes it."""
    if monitor is not None and not is_monitorable(monitor):
        raise SettingError(f"monitor={monitor} is not a logged metric; use one of {', '.join(MONITORABLE)}",
                           "monitor")
    if isinstance(save_top_k, bool) or not isinstance(save_top_k, int) or save_top_k < -1:
        raise SettingError(f"save_top_k={shown(save_top_k)} must be how many of the best checkpoints "
                           "to keep: a whole number (e.g. 1), 0 for none, or -1 for every one", "save_top_k")
    if monitor is None and save_top_k not in (-1, 0, 1):  # Lightning's own refusal, once the text was read
        if filename == Path(LAST).stem:  # one file: given a monitor, it would keep last.ckpt only
            raise SettingError(f"save_top_k={save_top_k}: this callback writes the one "
                               f"{CHECKPOINT_DIR}/{LAST}, which a resume reads: keep 1 (0: none); to keep "
                               f"more checkpoints, set callbacks.model_checkpoint.save_top_k={save_top_k} "
                               "(the best by val/loss)", "save_top_k")
        # Not val/loss: callbacks.model_checkpoint's, which a second callback may not share (Lightning
        # refuses two checkpoint callbacks of one monitor and mode).
        raise SettingError(f"save_top_k={save_top_k} keeps the best checkpoints by its monitor, which is "
                           "null: nothing ranks them; give it a monitor (e.g. monitor=step mode=max: the "
                           "latest ones), or keep -1 (every one), 0 or 1", "save_top_k")
    if mode not in ("min", "max"):
        raise SettingError(f"mode={shown(mode)} is not one of min, max (min keeps the lowest monitor value, "
                           "as val/loss wants)", "mode")
    whole_number("every_n_train_steps", every_n_train_steps, low=0, optional=True)
    whole_number("every_n_epochs", every_n_epochs, low=0, optional=True)
    check_time_span(train_time_interval)
    check_one_trigger(every_n_train_steps, every_n_epochs, train_time_interval)
    check_checkpoint_written(every_n_train_steps, every_n_epochs, train_time_interval, save_last,
                             save_on_exception, label)


def check_one_trigger(every_n_train_steps: object, every_n_epochs: object,
                      train_time_interval: object) -> None:
    """Two triggers of one checkpoint callback (every_n_train_steps=5 with every_n_epochs=1, or either
    with a train_time_interval): Lightning takes one, and refused two only as the run built the
    callback, once its text was read, naming none to drop."""
    writes = {}  # each trigger set (Lightning's: above 0, or any interval), as typed: when it writes
    if every_n_train_steps:
        writes[f"every_n_train_steps={every_n_train_steps}"] = f"every {every_n_train_steps} steps"
    if every_n_epochs:
        writes[f"every_n_epochs={every_n_epochs}"] = ("at each validation" if every_n_epochs == 1
                                                      else f"every {every_n_epochs} epochs")
    if train_time_interval is not None:
        writes["train_time_interval"] = "at its interval of time"
    if len(writes) < 2:
        return
    typed = list(writes)
    fixes = [f"drop {' and '.join(t.partition('=')[0] for t in typed if t != kept)} to write {when}"
             for kept, when in writes.items()]
    count = "two" if len(typed) == 2 else "three"
    raise SettingError(f"{', '.join(typed[:-1])} and {typed[-1]} set {count} triggers of one checkpoint "
                       f"callback, and Lightning takes one; {', or '.join(fixes)}",
                       typed[-1].partition("=")[0])


def check_time_span(train_time_interval: object) -> None:
    """train_time_interval is a timedelta (in a config, one Hydra instantiates): Lightning read
    anything else only at the first step, a traceback once the text was read ("'int' object has no
    attribute 'total_seconds'")."""
    if train_time_interval is None or isinstance(train_time_interval, timedelta):
        return
    if isinstance(train_time_interval, dict) and "_target_" in train_time_interval:
        try:
            if isinstance(instantiate(train_time_interval), timedelta):
                return
        except InstantiationException:
            pass
    seconds = train_time_interval if isinstance(train_time_interval, (int, float)) \
        and not isinstance(train_time_interval, bool) else "N"
    raise SettingError(f"train_time_interval={shown(train_time_interval)} is not a time span; give a "
                       f"timedelta: train_time_interval={{_target_: datetime.timedelta, seconds: {seconds}}}",
                       "train_time_interval")


def check_checkpoint_written(every_n_train_steps: object, every_n_epochs: object, train_time_interval: object,
                             save_last: object, save_on_exception: object, label: str) -> None:
    """A checkpoint callback that can never write (every_n_train_steps=0 with every_n_epochs unset):
    Lightning reads all three triggers unset as every_n_epochs=1, but any one set as the others 0,
    and a callback of none above 0 trained to its end without a word and without a file. save_last
    still writes last.ckpt as training ends, save_on_exception on a crash."""
    if every_n_train_steps is None and every_n_epochs is None and train_time_interval is None:
        return
    if every_n_train_steps or every_n_epochs or train_time_interval is not None or save_last \
            or save_on_exception:
        return
    steps, epochs = f"every_n_train_steps={every_n_train_steps}", f"every_n_epochs={every_n_epochs}"
    if every_n_epochs is None:
        typed, why = steps, " (Lightning reads every_n_epochs, unset, as 0 once every_n_train_steps is set)"
    elif every_n_train_steps is None:
        typed, why = epochs, ""
    else:
        typed, why = f"{steps} with {epochs}", ""
    setting = "every_n_train_steps" if every_n_train_steps is not None else "every_n_epochs"
    raise SettingError(f"{typed} never writes a checkpoint{why}; set every_n_epochs=1 (at each validation) "
                       "or every_n_train_steps=N (every N steps), or remove the callback "
                       f"({removal_typed(label)})", setting)


def _last_kept_elsewhere(config: DictConfig, cfg: DictConfig,
                         loggers: list[Logger]) -> tuple[str, str] | None:
    """Where a checkpoint callback writes its last.ckpt, when that is not where a resume of the run's
    folder reads one (run_layout.last_checkpoint: RUN/checkpoints/, or RUN/ itself), and how to name
    that file; None when it is. As Lightning places it: in its dirpath made absolute from this folder,
    or without one in the folder of the first of the run's `loggers`, or in the Trainer's
    default_root_dir/checkpoints when it logs nowhere."""
    run = Path(cfg.paths.output_dir)
    dirpath, why = config.get("dirpath"), ""
    default_root = Path(cfg.trainer.get("default_root_dir") or os.getcwd())
    if dirpath is None and loggers:
        dirpath = _first_logger_folder(loggers[0], default_root)
        why = " (its first logger's folder: it has no dirpath)"
        if dirpath is None:
            return "its first logger's folder (it has no dirpath)", "by name"
    elif dirpath is None:
        dirpath = default_root / CHECKPOINT_DIR
    folder = os.path.realpath(os.path.expanduser(dirpath))
    if folder in (os.path.realpath(run / CHECKPOINT_DIR), os.path.realpath(run)):
        return None
    # (named with the run's folder: a checkpoint outside its checkpoints/ alone would go on in a new one)
    by_name = shell_words.join([f"ckpt_path={last_name_in(Path(folder), run)}", f"hydra.run.dir={run}"])
    return f"{folder}{why}", f"by name, in the run's own folder: {by_name}"


def _first_logger_folder(logger: Logger, default_root: Path) -> str | None:
    """The folder a checkpoint callback of no dirpath writes in beside `logger`, the run's first, as
    Lightning names it (SAVE_DIR/NAME/VERSION/checkpoints); None for a logger whose name or version
    is known only once its run starts (MLflow's experiment and run ids, W&B's): reading them here
    would start that run."""
    if not isinstance(logger, (TensorBoardLogger, CSVLogger)):
        return None
    version = logger.version if isinstance(logger.version, str) else f"version_{logger.version}"
    return os.path.join(logger.save_dir or default_root, str(logger.name), version, CHECKPOINT_DIR)


def warn_if_not_resumable(cfg: DictConfig, loggers: list[Logger]) -> None:
    """A run that keeps no last.ckpt (`callbacks.last_checkpoint.save_top_k=0`, valid for a run never
    resumed, or `~callbacks.last_checkpoint`) is told so as it starts, with what a resume after a
    crash would go on from: it trained to its end without a word, and a crash left nothing to resume
    or, beside a best checkpoint, only that best where the latest validation improved on the others
    (run_layout.last_checkpoint: an older best would train the steps after it again). One whose
    last.ckpt is Lightning's save_last of a monitored callback (rewritten with each new best only,
    where it was told it kept none) is told that a resume may go back to its best's step, and one
    whose last.ckpt goes to another folder (callbacks.last_checkpoint.dirpath=ELSEWHERE, or a
    save_last's dirpath: where it was told nothing) that a resume of the run's folder does not read it.
    `loggers`: the run's, the first of which places the last.ckpt of a callback of no dirpath."""
    configs = {key: config for key, config in (cfg.get("callbacks") or {}).items() if config is not None}
    writers = [key for key, config in configs.items() if config.get("filename") == Path(LAST).stem]
    writing = [key for key in writers if configs[key].get("save_top_k") != 0]
    elsewhere = {key: kept for key in writing if (kept := _last_kept_elsewhere(configs[key], cfg, loggers))}
    if any(key not in elsewhere for key in writing):
        return
    # Lightning's save_last writes last.ckpt beside the callback's checkpoints each time it saves one:
    # at every validation without a monitor, only with a new best with one.
    saving_last = {key: config for key, config in configs.items()
                   if config.get("save_last") and config.get("save_top_k") != 0
                   and str(config.get("_target_", "")).endswith("ModelCheckpoint")}
    elsewhere |= {key: kept for key in saving_last
                  if (kept := _last_kept_elsewhere(configs[key], cfg, loggers))}
    saving_last = {key: config for key, config in saving_last.items() if key not in elsewhere}
    if any(config.get("monitor") is None for config in saving_last.values()):
        return
    if elsewhere and not saving_last:
        key, (folder, named) = next(iter(elsewhere.items()))
        added = "" if "dirpath" in configs[key] else "+"  # (a key the config lacks is added with '+')
        in_run = shell_words.quote(f"{added}callbacks.{key}.dirpath=${{paths.output_dir}}/{CHECKPOINT_DIR}")
        writer = (f"callbacks.{key}" if key in writing
                  else f"callbacks.{key}.save_last={str(configs[key].save_last).lower()}")
        log.warning(f"warning: {writer} writes its {LAST} in {folder}, where a resume of the run's folder "
                    f"(ckpt_path=RUN_DIR) does not look: keep it in the run's {CHECKPOINT_DIR}/ ({in_run}), "
                    f"or resume from that file {named}")
        return
    if writing:  # (a save_last rewriting checkpoints/last.ckpt with each new best is told above)
        return
    if saving_last:
        key = next(iter(saving_last))
        log.warning(f"warning: callbacks.{key}.save_last={str(saving_last[key].save_last).lower()} "
                    f"rewrites {CHECKPOINT_DIR}/{LAST} only when its best checkpoint improves: after a "
                    "validation that did not improve on it, a resume goes on from that best's step and "
                    "trains the steps after it again (only Ctrl-C or SIGTERM writes a later one); keep "
                    "callbacks.last_checkpoint to keep the run resumable from every validation")
        return
    bests = [key for key, config in configs.items() if key not in writers and config.get("save_top_k") != 0
             and str(config.get("_target_", "")).endswith("ModelCheckpoint")]
    if writers:
        keeps_none, fix = f"callbacks.{writers[0]}.save_top_k=0 keeps", "leave it at 1"
    elif bests:  # removed (without any checkpoint callback, the run's build says so)
        keeps_none, fix = "without callbacks.last_checkpoint this run keeps", "keep callbacks.last_checkpoint"
    else:
        return
    if bests:
        after_crash = (f"if it crashes or its machine is lost, a resume goes on from its best checkpoint "
                       f"(callbacks.{bests[0]}) only where that is its latest validation's, and is refused "
                       "after a validation that did not improve on it")
    else:
        after_crash = "this run cannot be resumed if it crashes or its machine is lost"
    log.warning(f"warning: {keeps_none} no {CHECKPOINT_DIR}/{LAST}, which a resume reads: {after_crash} "
                f"(only Ctrl-C or SIGTERM writes one); {fix} to keep the run resumable from every validation")


class RunModelCheckpoint(ModelCheckpoint):
    """Lightning's ModelCheckpoint, whose checkpoints in its own folder are removed as they are
    superseded also where the run resumed from one of them.

    Lightning keeps the checkpoint a run resumed from, whatever supersedes it. A run killed (-9) while
    writing its first last.ckpt resumes from its best-<step>.ckpt, which then stayed beside every later
    best, where a run stopped by a signal (resumed from its last.ckpt) kept only its latest best. The file
    goes only once the checkpoint that supersedes it is written, and only one this callback's record
    (the resumed checkpoint's) names: never one of another folder.
    """

    def _should_remove_checkpoint(self, trainer: L.Trainer, previous: str, current: str) -> bool:
        if previous == current or self.dirpath is None:
            return super()._should_remove_checkpoint(trainer, previous, current)
        return Path(self.dirpath).absolute() in Path(previous).absolute().parents

    def _generate_state_key(self, **kwargs: object) -> str:
        # Lightning's own class name: a checkpoint written by either restores into the other, and
        # readers of a checkpoint's record (the model card's score) find it under that name.
        return f"{ModelCheckpoint.__qualname__}{kwargs!r}"


def last_checkpoint_callback(trainer: L.Trainer) -> ModelCheckpoint | None:
    """The ModelCheckpoint that writes last.ckpt (configs/callbacks/last_checkpoint.yaml)."""
    return next((c for c in trainer.checkpoint_callbacks if c.filename == Path(LAST).stem), None)


def last_checkpoint_path(trainer: L.Trainer, output_dir: str | Path) -> Path:
    """Where last.ckpt goes: beside the configured checkpoints, else RUN_DIR/checkpoints."""
    callback = last_checkpoint_callback(trainer) or trainer.checkpoint_callback
    dirpath = getattr(callback, "dirpath", None)
    return (Path(dirpath) if dirpath else Path(output_dir) / CHECKPOINT_DIR) / LAST


def latest_checkpoint_written(trainer: L.Trainer) -> str:
    """The newest checkpoint this run has written, or "" before the first one. Lightning names a
    checkpoint as its callback's before the write (atomic: checkpoint_io.py) ends: one not on disk
    yet is not written, and a signal then must not call it kept."""
    last = last_checkpoint_callback(trainer)
    named = [last.best_model_path] if last is not None else []
    named += [c.best_model_path for c in trainer.checkpoint_callbacks]
    return next((path for path in named if path and Path(path).is_file()), "")


def latest_checkpoint_kept(trainer: L.Trainer) -> str:
    """The newest checkpoint on disk for this run: the newest this launch has written, else the one
    a resumed run started from (an interruption's last.ckpt is written outside the checkpoint
    callbacks, whose record then names none), or "" when there is neither."""
    written = latest_checkpoint_written(trainer)
    if written:
        return written
    resumed_from = getattr(trainer, "ckpt_path", None)
    return str(resumed_from) if resumed_from and Path(resumed_from).is_file() else ""


def best_checkpoint_written(trainer: L.Trainer) -> str:
    """The checkpoint of the lowest val/loss this run has written (configs/callbacks/
    model_checkpoint.yaml), or "" when there is none."""
    return next((c.best_model_path for c in trainer.checkpoint_callbacks
                 if isinstance(c, ModelCheckpoint) and c.monitor == VAL_LOSS), "")
