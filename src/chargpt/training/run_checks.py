"""The checks that refuse a run's settings before any data is read or any step is taken.

Each check is one error naming the setting and its fix, where Lightning or Hydra would fail later
(or not at all) with a traceback or a message that names no fix. `build_run` runs them first.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import math
import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import get_object, instantiate
from lightning.fabric.plugins.environments import SLURMEnvironment, TorchElasticEnvironment
from lightning.pytorch.accelerators import AcceleratorRegistry
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from omegaconf import DictConfig, ListConfig, OmegaConf

from chargpt.checkpoints import resolve_checkpoint
from chargpt.checks import named_under, real_number, shown, whole_number, yes_no
from chargpt.errors import ChargptError, ConfigError, SettingError, SetupError, first_line
from chargpt.hydra_run import is_multirun
from chargpt.model import ModelConfig
from chargpt.overrides import override_key, removal_typed
from chargpt.run_layout import run_dir_of
from chargpt.spelling import did_you_mean, nearest_name
from chargpt.training.callbacks.checkpointing import check_checkpoint_settings
from chargpt.training.finetune import resume_settings
from chargpt.training.lightning_internals import tensorboard_summary_writer


def is_finetune_experiment() -> bool:
    """Whether the run composes experiment=finetune (which only makes sense with init_from)."""
    return HydraConfig.initialized() and HydraConfig.get().runtime.choices.get("experiment") == "finetune"


def check_devices(trainer_cfg: DictConfig, overrides: Sequence[str] = ()) -> None:
    """More devices than the machine has, or a count that is none, is a one-line error (Lightning's
    own is a traceback, or a message that names no fix). `overrides`: the run's, as typed, for the
    message to name the accelerator as it was chosen (`trainer=cpu`)."""
    accelerator = str(trainer_cfg.get("accelerator", "auto"))
    chosen, other = _accelerator_chosen(accelerator, overrides)
    devices = trainer_cfg.get("devices", "auto")
    gpus = torch.cuda.device_count()
    on_gpus = accelerator in ("gpu", "cuda") or (accelerator == "auto" and gpus)
    text = str(devices)
    # On GPUs Lightning also takes -1 (every GPU) and a string of indices ("0,1").
    gpu_choice = text == "-1" or re.fullmatch(r"[\d\s,]*,[\d\s,]*", text) is not None
    listed = isinstance(devices, (list, ListConfig))
    mps = torch.backends.mps.is_available()
    on_cpu = accelerator == "cpu" or (accelerator == "auto" and not gpus and not mps)
    if accelerator in ("gpu", "cuda") and not gpus:
        # (devices=auto too: Lightning's "No supported gpu backend found!" came once the text was read)
        raise ConfigError(f"{chosen} but no CUDA GPU is visible; use {other('cpu')}")
    if on_cpu and (listed or gpu_choice):  # Lightning's "should be an int > 0", which names no fix
        count = max(len(devices) if listed else len([d for d in text.split(",") if d.strip()]), 1)
        if accelerator == "cpu":
            raise ConfigError(f"trainer.devices={text} names GPUs, but {chosen} takes a number of processes; "
                              f"write trainer.devices={count}, or {other('gpu')}")
        raise ConfigError(f"trainer.devices={text} names GPUs, but no CUDA GPU is visible: the run trains on "
                          f"the CPU, which takes a number of processes; write trainer.devices={count}")
    if listed:
        wanted = len(devices)
    elif text.isdigit() and int(text) > 0:
        wanted = int(text)
    elif text == "auto" or (on_gpus and gpu_choice):
        return  # Lightning takes what exists, or the GPUs named
    else:  # Lightning's "`devices` selected with `CPUAccelerator` should be an int > 0."
        raise ConfigError(f"trainer.devices={devices!r} is not a number of devices; use a whole number "
                          "from 1 (trainer.devices=1), a list of GPU indices ([0,1]), or auto")
    if on_gpus:
        if wanted > gpus:
            raise ConfigError(
                f"trainer.devices={devices} but {gpus} CUDA GPU(s) are visible; "
                f"use trainer.devices={gpus} or fewer"
            )
    elif accelerator in ("cpu", "auto") and wanted > (cores := os.cpu_count() or 1):
        raise ConfigError(
            f"trainer.devices={devices} asks for {wanted} CPU processes but this machine has {cores} CPU "
            f"cores; use trainer.devices={cores} or fewer"
        )


def check_accelerator(trainer_cfg: DictConfig, overrides: Sequence[str] = ()) -> None:
    """An accelerator Lightning does not know (`trainer.accelerator=xyz`), or one it finds none of on
    this machine (tpu without torch_xla, mps off a Mac), is one line naming those it finds, by
    Lightning's own registry and test, where Lightning refused it as the Trainer was built, once the
    text was read. (cuda and gpu without a GPU: check_devices.) `overrides` as check_devices takes them."""
    accelerator = trainer_cfg.get("accelerator", "auto")
    if not isinstance(accelerator, str) or accelerator in ("auto", "gpu", "cuda"):
        return  # (an Accelerator's config of one's own: built, it checks itself)
    names = sorted(AcceleratorRegistry.available_accelerators())
    if accelerator not in names:
        raise ConfigError(f"trainer.accelerator={accelerator} is not an accelerator; use one of "
                          f"{', '.join(sorted([*names, 'auto', 'gpu']))}")
    if AcceleratorRegistry[accelerator]["accelerator"].is_available():
        return
    chosen, other = _accelerator_chosen(accelerator, overrides)
    found = [name for name in names if AcceleratorRegistry[name]["accelerator"].is_available()]
    raise ConfigError(f"{chosen}, but Lightning finds no {accelerator} accelerator on this machine (it finds "
                      f"{', '.join(found)}); use {other(found[0])}, or auto")


# The trainer's step and epoch counts: whole numbers from these lows (-1: no limit), or null.
# Lightning's counts: the least each takes, and whether it takes None (its own default then).
TRAINER_COUNTS = {"max_steps": (-1, False), "max_epochs": (-1, True), "log_every_n_steps": (1, True),
                  "accumulate_grad_batches": (1, False), "num_sanity_val_steps": (-1, True),
                  "num_nodes": (1, False)}
# Lightning's limits on the batches of a loop: a count, or a fraction of them (null: all).
TRAINER_BATCH_LIMITS = ("limit_train_batches", "limit_val_batches", "limit_test_batches",
                        "limit_predict_batches", "overfit_batches")
# Lightning's switches (a string there would count as true); `deterministic` also takes "warn".
TRAINER_FLAGS = ("deterministic", "enable_model_summary", "use_distributed_sampler", "benchmark",
                 "inference_mode", "detect_anomaly", "barebones", "sync_batchnorm")


# A trainer option's counterpart on the other accelerator, where it is not that accelerator's own
# option: trainer=ddp's processes on CPUs are trainer=ddp_cpu's (trainer.accelerator=cpu would make one).
TRAINER_ELSEWHERE = {("ddp", "cpu"): "ddp_cpu"}


def _accelerator_chosen(accelerator: str, overrides: Sequence[str]) -> tuple[str, Callable[[str], str]]:
    """trainer.accelerator as the run's command line chose it (`trainer.accelerator=cpu` as typed, or
    the trainer option that sets it: `trainer=cpu`), and how to choose another there (`trainer=gpu`
    for `trainer=cpu`; trainer.accelerator=gpu otherwise)."""
    keys = [override_key(o) for o in overrides]
    setting = f"trainer.accelerator={accelerator}"
    if "trainer.accelerator" in keys or "trainer" not in keys:
        return setting, lambda kind: f"trainer.accelerator={kind}"
    option = overrides[len(keys) - 1 - keys[::-1].index("trainer")].lstrip("+")
    if option != f"trainer={accelerator}":  # (trainer=ddp_cpu: trainer=gpu would lose its strategy)
        name = option.partition("=")[2]
        return f"{option} (its {setting})", lambda kind: (
            f"trainer={TRAINER_ELSEWHERE[name, kind]}" if (name, kind) in TRAINER_ELSEWHERE
            else f"trainer.accelerator={kind}")
    return option, lambda kind: f"trainer={kind}"


def check_trainer_numbers(trainer_cfg: DictConfig, finetuning: bool = False, logged: bool = True) -> None:
    """Counts and intervals of the wrong type are one line naming the setting (Lightning's own
    error, "'<' not supported between instances of 'str' and 'int'", names neither). `logged`:
    whether the run has a logger (logger=none: none, where logging nothing is what was asked)."""
    # Lightning's 0 turns step logging off, without a word: the curves a run is watched by stay empty.
    zero = type(trainer_cfg.get("log_every_n_steps")) is int and trainer_cfg.log_every_n_steps == 0
    if zero and logged:
        raise ConfigError("trainer.log_every_n_steps=0 turns off the logging of training values (train/loss, "
                          "train/lr, ...); log them every N steps with a whole number from 1 (e.g. 50), or "
                          "pass logger=none to log nothing")
    for key, (low, nullable) in TRAINER_COUNTS.items():
        if key in trainer_cfg and not (key == "log_every_n_steps" and zero):
            whole_number(f"trainer.{key}", trainer_cfg[key], low, optional=nullable)
    # Training is counted in steps, and validated every val_check_interval steps: Lightning's
    # epoch-based settings would only meet an epoch of chargpt's sampler (the whole run) later.
    whole_number("trainer.val_check_interval", trainer_cfg.get("val_check_interval"), 1, optional=True)
    if trainer_cfg.get("check_val_every_n_epoch") is not None:
        raise ConfigError(
            f"trainer.check_val_every_n_epoch={trainer_cfg.check_val_every_n_epoch} does not apply: chargpt "
            "validates every trainer.val_check_interval steps (e.g. 250); leave it null"
        )
    # The loader's length is max_steps x accumulate_grad_batches batches, which len() must hold.
    steps, accumulation = trainer_cfg.get("max_steps"), trainer_cfg.get("accumulate_grad_batches") or 1
    if isinstance(steps, int) and steps * accumulation > sys.maxsize:
        raise ConfigError(f"trainer.max_steps={steps} is more steps than a run can count (at most "
                          f"{sys.maxsize // accumulation}); give a smaller number, or budget_seconds=S to "
                          "train for a time")
    if trainer_cfg.get("max_epochs") == 0 or (trainer_cfg.get("max_steps") == 0 and not finetuning):
        key = "max_epochs" if trainer_cfg.get("max_epochs") == 0 else "max_steps"
        raise ConfigError(
            f"trainer.{key}=0 trains nothing; pass trainer.max_steps=N (e.g. 3000) or budget_seconds=S "
            "(with init_from=CKPT, trainer.max_steps=0 scores the starting point)"
        )
    for key in TRAINER_BATCH_LIMITS:  # (as Lightning takes them: a whole float as its count, 2.0 as 2)
        limit = trainer_cfg.get(key)
        number = isinstance(limit, (int, float)) and not isinstance(limit, bool) and math.isfinite(limit)
        if limit is not None and not (number and (0 <= limit <= 1 or (limit > 1 and limit % 1 == 0))):
            raise SettingError(f"trainer.{key}={shown(limit)} must be a whole number of batches >= 0 "
                               "(e.g. 5) or a fraction of them from 0.0 to 1.0 (e.g. 0.25), or null",
                               f"trainer.{key}")
    real_number("trainer.gradient_clip_val", trainer_cfg.get("gradient_clip_val"), 0, optional=True)
    algorithm = trainer_cfg.get("gradient_clip_algorithm")  # (Lightning's own check: once the text was read)
    if algorithm is not None and algorithm not in ("norm", "value"):
        raise ConfigError(f"trainer.gradient_clip_algorithm={shown(algorithm)} is not one of norm, value "
                          "(norm scales the gradients to trainer.gradient_clip_val; value cuts each one off "
                          "there)")
    for key in TRAINER_FLAGS:
        value = trainer_cfg.get(key)
        if value is not None and not (key == "deterministic" and value == "warn"):
            yes_no(f"trainer.{key}", value)


def check_launch(cfg: DictConfig, in_sweep: bool | None = None) -> None:
    """Lightning's `ddp` starts each extra rank by re-running the command line: inside a Hydra
    multirun that re-runs the sweep, and the ranks silently train different configs. Its spawn
    and fork strategies are refused everywhere. `in_sweep`: whether `cfg` is a sweep's job (None:
    whether this command is a multirun)."""
    strategy = str(OmegaConf.select(cfg, "trainer.strategy", default="auto"))  # (names it if unresolvable)
    sweep = is_multirun() if in_sweep is None else in_sweep
    if any(k in strategy for k in ("spawn", "fork", "notebook")):
        # Lightning's multiprocessing launcher: the run trains in child processes, which the run's
        # own ending (its result, closing sample, resume command) does not reach.
        raise SetupError(
            f"trainer.strategy={strategy} trains in child processes, which chargpt-train does not "
            "support: use trainer.strategy=ddp, which starts each rank as a copy of the command"
            + (", in a single run (not -m)" if sweep else "")
        )
    # Under SLURM (the submitit launcher) or torchrun the cluster starts every rank itself.
    external = SLURMEnvironment.detect() or TorchElasticEnvironment.detect()
    if strategy.startswith("ddp") and sweep and not external:
        raise SetupError(
            f"trainer.strategy={strategy} cannot run inside a Hydra multirun (-m): each extra process "
            "would re-run the whole sweep with other settings; start each configuration as its own "
            "chargpt-train command"
        )


def _wandb_init() -> Callable[..., Any]:
    import wandb

    return wandb.init


# Where a class's `**kwargs` go once no base takes them ("module.Class": what receives them as the
# logger starts): Lightning's TensorBoard logger hands them to its SummaryWriter, its W&B logger to
# wandb.init. Imported only for a setting the classes themselves do not take.
HANDED_ON: dict[str, Callable[[], Callable[..., Any]]] = {
    "lightning.fabric.loggers.tensorboard.TensorBoardLogger": tensorboard_summary_writer,
    "lightning.pytorch.loggers.wandb.WandbLogger": _wandb_init,
}
# The names a class passes on itself, which a setting cannot give as well ("got multiple values",
# as the logger is built or starts), and those chargpt gives it (training.build._logger_kwargs: a
# resume's purge_step, its tracker runs), which would replace a setting without a word; each with
# who gives it and what to set instead.
_FROM_SAVE_DIR = "the logger makes its folder from save_dir; set {label}.save_dir instead"
_PURGE_STEP = "chargpt gives it, so that a resumed run's curves show no step twice; drop it"
_TRACKER_RUNS = "chargpt gives it, a resumed run's tracker runs, from its checkpoint; drop it"
SET_ITSELF: dict[str, dict[str, str]] = {
    "lightning.pytorch.loggers.tensorboard.TensorBoardLogger": {"root_dir": _FROM_SAVE_DIR},
    "lightning.fabric.loggers.tensorboard.TensorBoardLogger": {"log_dir": _FROM_SAVE_DIR,
                                                               "purge_step": _PURGE_STEP},
    "chargpt.training.trackers.CSVTracker": {"purge_step": _PURGE_STEP},
    "chargpt.training.trackers.MLFlowTracker": {
        # MLflow's way to file a run under one of the user's: a child run, which a resume continues.
        "run_id": "chargpt gives it, a resumed run's tracker run, from its checkpoint; drop it (to file "
                  "this run under an MLflow run of yours, make it a child run: "
                  "'+{label}.tags={{mlflow.parentRunId:RUN_ID}}')",
        "tracker_runs": _TRACKER_RUNS,
    },
    "chargpt.training.trackers.WandbTracker": {"tracker_runs": _TRACKER_RUNS},
}


def _name(owner: Callable[..., Any]) -> str:
    return f"{owner.__module__}.{owner.__qualname__}"


def _keywords(init: Callable[..., Any]) -> tuple[set[str], bool]:
    """The keyword arguments `init` takes by name, and whether it takes `**kwargs` too."""
    parameters = list(inspect.signature(init).parameters.values())
    names = {p.name for p in parameters if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    return names - {"self"}, any(p.kind is p.VAR_KEYWORD for p in parameters)


def _arguments(target: Callable[..., Any]) -> tuple[set[str], Callable[..., Any] | None, dict[str, str]]:
    """The keyword arguments `target` takes, following `**kwargs` up a class's bases (the data
    module hands its own to CharText), the class (or function) whose `**kwargs` no base takes
    (None: none is left open), and those of its arguments given it by itself or chargpt (SET_ITSELF)."""
    names: set[str] = set()
    set_itself: dict[str, str] = {}
    open_owner: Callable[..., Any] | None = target  # nothing known of it yet
    for owner in inspect.getmro(target) if inspect.isclass(target) else (target,):
        if owner is object or (inspect.isclass(owner) and "__init__" not in vars(owner)):
            continue
        taken, more = _keywords(owner.__init__ if inspect.isclass(owner) else owner)
        names |= taken
        set_itself |= SET_ITSELF.get(_name(owner), {})
        if not more:
            open_owner = None
            break
        open_owner = owner
    return names - set_itself.keys(), open_owner, set_itself


def _handed_on(open_owner: Callable[..., Any]) -> tuple[set[str], str] | None:
    """The settings that what `open_owner` hands its `**kwargs` to takes, and its name; None where
    that is not known (or not installed, which the logger itself reports)."""
    receiver = HANDED_ON.get(_name(open_owner))
    if receiver is None:
        return None
    try:
        taker = receiver()
    except ImportError:
        return None
    taken, more = _keywords(taker)
    return None if more else (taken, _name(taker))


def imported_target(label: str, target: str) -> Callable[..., Any]:
    """The class or function a `_target_` names (the config at `label`), imported. One that cannot
    be is one error naming `LABEL._target_` and why: a module of the user's own not on Python's path
    was Hydra's traceback for a logger, and cut to "Error loading 'mymod.MyCallback':" for a callback
    (a console script, unlike `python -m`, does not import from the current folder)."""
    hydra_log = logging.getLogger("hydra.utils")  # get_object logs the error's text before raising it
    was_disabled, hydra_log.disabled = hydra_log.disabled, True
    try:
        return get_object(target)
    except Exception as err:  # what importing the module raised, wrapped by Hydra in an ImportError
        cause = err.__cause__ or err
        why = _import_failure(cause, target)
        raise ConfigError(f"{label}._target_={target} cannot be imported: {why}") from cause
    finally:
        hydra_log.disabled = was_disabled


def _import_failure(cause: BaseException, target: str) -> str:
    """Why `target` could not be imported, and the fix where it is the target's own name that is
    not found (not a module its module imports in turn)."""
    missing = cause.name if isinstance(cause, ModuleNotFoundError) else None
    if missing == target.split(".")[0]:
        return (
            f"no module named {missing!r}; install it, or add the folder that holds it to Python's path "
            f"(PYTHONPATH=FOLDER chargpt-train ...): chargpt-train does not import from the current folder"
        )
    if missing and f"{target}.".startswith(f"{missing}."):  # its module imported, without that name
        module, _, name = missing.rpartition(".")
        near = nearest_name(name, dir(sys.modules.get(module)))
        return f"{module} has no {name!r}{did_you_mean(near, module)}"
    return f"{type(cause).__name__}: {first_line(cause)} (HYDRA_FULL_ERROR=1 shows where)"


def _unknown_setting(label: str, settings: DictConfig) -> None:
    """The first setting of `settings` (the config at `label`) its `_target_` does not take, as
    one error naming it and the setting meant."""
    takes, open_owner, given = _arguments(imported_target(label, str(settings._target_)))
    also = ""
    for key in settings:
        if str(key).startswith("_") or key in takes:  # Hydra's own (_target_, _partial_, ...)
            continue
        if open_owner is not None:  # looked up once, only for a setting the class does not name
            handed = _handed_on(open_owner)
            if handed is None:
                return
            takes |= handed[0] - given.keys()  # (given: open_owner's too, found on the way up)
            also, open_owner = f" or the {handed[1]} it hands settings to", None
            if key in takes:
                continue
        if key in given:
            raise ConfigError(f"{label}.{key} is not a setting: {given[str(key)].format(label=label)}")
        raise _not_a_setting(label, str(key), f"{settings._target_}{also}", takes)


def _not_a_setting(label: str, key: str, owner: str, takes: set[str], more: str = "") -> ConfigError:
    """The error for a setting `label`.`key` that `owner` does not take (it takes `takes`): the
    setting meant, if one is near, and the fix; `more`: where else settings are told of."""
    meant = did_you_mean(nearest_name(key, sorted(takes)), label)
    return ConfigError(f"{label}.{key} is not a setting of {owner}{meant}; drop it, or check its spelling "
                       f"(--cfg job shows every setting{more})")


def check_constructor_settings(cfg: DictConfig) -> None:
    """A setting of a group that its constructor does not take (`+optimizer.epsilon=1e-8`, added as
    the advice for a key the config lacks says) is one error naming it, before any data work: the
    optimizer and the schedule are built as training starts, and their TypeError was a traceback
    after the run's folder was made. A logger's too: TensorBoard's refused a setting only at the
    first log, in the SummaryWriter it hands its own to. The Trainer's and the callbacks' were
    refused only after the data was read, naming no setting meant; a `_target_` that cannot be
    imported is named too (imported_target)."""
    groups = [(group, cfg.get(group)) for group in ("data", "optimizer", "scheduler", "trainer")]
    groups += [(f"{section}.{key}", c) for section in ("logger", "callbacks")
               for key, c in (cfg.get(section) or {}).items()]
    for label, settings in groups:
        if isinstance(settings, DictConfig) and "_target_" in settings:
            _unknown_setting(label, settings)
            check_setting_values(label, settings)


# What Lightning tells checkpoint callbacks apart by (ModelCheckpoint.state_key): two alike would keep
# their records under one name in a checkpoint, which Lightning refuses.
CHECKPOINT_KEY = ("monitor", "mode", "every_n_train_steps", "every_n_epochs", "train_time_interval")


def _as_lightning_makes_it(settings: DictConfig) -> ModelCheckpoint | None:
    """A ModelCheckpoint of these settings' CHECKPOINT_KEY, whose state_key is Lightning's for them:
    Lightning fills in what is unset (neither every_n_* set is every_n_epochs=1, as every_n_epochs=1
    typed). None for settings it refuses (its own error says which)."""
    # (Read in place, so that an interpolation resolves; a train_time_interval is a timedelta's config.)
    typed = {name: settings[name] for name in CHECKPOINT_KEY if name in settings}
    try:
        return ModelCheckpoint(**{name: instantiate(value) if isinstance(value, DictConfig) else value
                                  for name, value in typed.items()})
    except (MisconfigurationException, TypeError, ValueError):
        return None


def check_checkpoint_callbacks_apart(cfg: DictConfig) -> None:
    """Two checkpoint callbacks of the same monitor and mode (a `+callbacks.NAME` beside
    callbacks.model_checkpoint) are one line naming both and the fix, before any data work: Lightning
    refused them once the text was read ("Found more than one stateful callback of type
    `ModelCheckpoint`"), naming no setting."""
    seen: dict[str, str] = {}
    for key, settings in (cfg.get("callbacks") or {}).items():
        if not isinstance(settings, DictConfig) or "_target_" not in settings:
            continue
        label = f"callbacks.{key}"
        target = imported_target(label, str(settings._target_))
        # (A subclass with a state_key of its own tells its callbacks apart its own way.)
        if not inspect.isclass(target) or getattr(target, "state_key", None) is not ModelCheckpoint.state_key:
            continue
        made = _as_lightning_makes_it(settings)
        if made is None:
            continue
        if (other := seen.get(made.state_key)) is not None:
            raise ConfigError(
                f"{other} and {label} are both checkpoint callbacks of monitor={made.monitor} and "
                f"mode={made.mode}, which Lightning cannot keep in one checkpoint; give {label} "
                "another monitor, mode or every_n_train_steps (e.g. monitor=step mode=max: the latest ones), "
                f"or remove one ({removal_typed(label)})")
        seen[made.state_key] = label


# The checks chargpt makes of a class it does not own, as the run builds it (its subclasses too).
BORROWED_CHECKS: dict[type, Callable[..., Any]] = {ModelCheckpoint: check_checkpoint_settings}


def check_setting_values(label: str, settings: DictConfig) -> None:
    """The values of a part's settings (the config at `label`), checked by what checks them as the part
    is built: its class's `check_settings`, which its constructor calls, or BORROWED_CHECKS' (each
    taking the constructor's arguments of those names, and as `label` the config's, for a fix that
    names it). A run builds the scheduler and the callbacks once its text is read, and a sweep's
    jobs each built them after the sweep's folder was made: a bad value (scheduler.warmup_steps=-1)
    is one error before either."""
    if "_target_" not in settings:
        return
    target = imported_target(label, str(settings._target_))
    bases = inspect.getmro(target) if inspect.isclass(target) else ()
    # chargpt's are static methods: a class of the user's own may have a check_settings of its own
    # meaning (an attribute, a method of the built part), which is not called with its settings.
    own = inspect.getattr_static(target, "check_settings", None)
    borrowed = not isinstance(own, (staticmethod, classmethod))
    check = next((BORROWED_CHECKS[base] for base in bases if base in BORROWED_CHECKS), None) if borrowed \
        else own.__get__(None, target)
    if check is None:
        return
    defaults = inspect.signature(target).parameters
    values: dict[str, Any] = {}
    for name in inspect.signature(check).parameters:
        if borrowed and name == "label":
            values[name] = label
        elif name in settings:  # (read alone: a setting naming the run's folder resolves only in the run)
            value = settings[name]
            values[name] = OmegaConf.to_container(value) if OmegaConf.is_config(value) else value
        elif name in defaults and defaults[name].default is not inspect.Parameter.empty:
            values[name] = defaults[name].default
        else:
            return  # a required argument not given: the part's construction says so
    try:
        with named_under(label):
            check(**values)
    except ChargptError:
        raise
    except Exception as err:  # a class of the user's own raises its own: said as its construction's is
        raise ConfigError(f"{label}: {first_line(err)}") from None


MODEL_TARGET = "chargpt.model.ModelConfig"  # configs/model/tiny.yaml's, which the other models start from


def check_model_target(cfg: DictConfig) -> None:
    """The model is chargpt's own, built from the model.* settings: another `model._target_` (a
    class of the user's own, as other groups take) was ignored, and the run trained chargpt's GPT."""
    target = cfg.model.get("_target_")
    if target is not None and target != MODEL_TARGET:
        raise ConfigError(
            f"model._target_={target}: a run's model is chargpt's GPT, built from the model.* settings by "
            f"{MODEL_TARGET}, and another class would be ignored; leave model._target_ out (a model setting "
            f"of your own is a field of ModelConfig: docs/configuration.md)"
        )


def check_model_settings(cfg: DictConfig) -> None:
    """A key added under model (`+model.foo=1`): Hydra lets it through, and the model takes
    ModelConfig's fields only. One error naming it, the setting meant and the fix, where
    ModelConfig's own (for any record it reads) said "unknown model settings: foo"."""
    takes = {f.name for f in dataclasses.fields(ModelConfig)}
    for key in cfg.model:
        if key in takes or key in ("_target_", "auto"):  # (auto: model=auto's switch, read before)
            continue
        raise _not_a_setting("model", str(key), "model", takes,
                             "; a model setting of your own is a field of ModelConfig: docs/configuration.md")


def check_window_length(cfg: DictConfig) -> None:
    """The data's windows are the model's context: one setting, model.block_size. The data config
    only follows it, so a data.block_size of its own would be silently replaced."""
    window, context = cfg.data.get("block_size"), cfg.model.get("block_size")
    if window is not None and window != context:
        raise ConfigError(
            f"data.block_size={window} differs from model.block_size={context}: the windows are the "
            f"model's context, set in one place; pass model.block_size={window} instead"
        )


def check_not_its_own_start(init_from: str, ckpt_path: str | None) -> None:
    """ckpt_path continues a run and init_from starts a new one from a run: both at one run would
    continue it under the fine-tune's settings (frozen layers, a fresh vocabulary check) unasked."""
    resumed, start = resumable(ckpt_path), resumable(init_from)
    if resumed and start and run_dir_of(Path(resumed)).resolve() == run_dir_of(Path(start)).resolve():
        raise ConfigError(
            f"init_from and ckpt_path both name the run {run_dir_of(Path(start))}: init_from starts a new "
            "run from its weights, ckpt_path continues it; drop ckpt_path to fine-tune it, or init_from to "
            "continue it"
        )


def resumable(ckpt_path: str | None) -> str | None:
    """The checkpoint a run resumes from, when there is one to read (else the resume reports why)."""
    if not ckpt_path:
        return None
    try:
        return str(resolve_checkpoint(ckpt_path))
    except ChargptError:
        return None


def check_finetune_settings(cfg: DictConfig) -> None:
    """experiment=finetune and the finetune.* settings need init_from: refused without it, naming
    the init_from a fine-tune being resumed started with when its run recorded one."""
    if not cfg.get("init_from") and is_finetune_experiment():
        resumed = resumable(cfg.get("ckpt_path"))
        if resumed and (fix := resume_settings(None, Path(resumed))):
            raise ConfigError(f"experiment=finetune needs init_from to resume {resumed}: {fix}")
        raise ConfigError(
            "experiment=finetune starts from a trained model but no init_from was given; pass "
            "init_from=RUN_DIR (or a .ckpt file, or an export folder), or drop experiment=finetune to "
            "train from scratch"
        )
    given = [f"finetune.{k}={shown(v)}" for k, v in (cfg.get("finetune") or {}).items() if v]
    if given and not cfg.get("init_from"):
        raise ConfigError(
            f"{given[0]} applies when fine-tuning, and this run starts from scratch; pass "
            "init_from=RUN_DIR (or a .ckpt file, or an export folder), or drop it"
        )
