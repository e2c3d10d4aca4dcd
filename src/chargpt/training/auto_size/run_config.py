"""model=auto in the run's config: what it refuses before any data work (`check_auto`), the choice
written in (`apply_choice`), and the command line that reproduces the run without model=auto."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from omegaconf import DictConfig, ListConfig, open_dict

from chargpt.errors import ConfigError
from chargpt.model import ModelConfig
from chargpt.overrides import as_typed, override_key
from chargpt.training.auto_size import ladder as shape_ladder
from chargpt.training.auto_size.choice import KEPT, Choice
from chargpt.training.auto_size.ladder import shape_fields

# What model=auto sets: given on the command line, these are refused (they are the choice).
CHOSEN_KEYS = ("model.n_layer", "model.n_embd", "model.n_head", "model.block_size", "data.batch_size")


def check_auto(cfg: DictConfig, overrides: Sequence[str]) -> None:
    """Refuse, before any data work, what model=auto cannot do."""
    if cfg.get("budget_seconds") is None:
        raise ConfigError(
            "model=auto sizes the model for a time budget, but budget_seconds is not set; pass "
            "budget_seconds=SECONDS (e.g. budget_seconds=300), or pick a fixed model such as model=tiny"
        )
    if cfg.get("init_from"):
        raise ConfigError(
            "model=auto cannot fine-tune: init_from keeps the pretrained model's shape; drop model=auto"
        )
    given = [k for k in map(override_key, overrides) if k in CHOSEN_KEYS]
    if given:
        raise ConfigError(
            f"model=auto chooses {', '.join(given)} itself; drop {'it' if len(given) == 1 else 'them'}, "
            "or pass the shape without model=auto (each model=auto run prints the override that "
            "reproduces it)"
        )
    accumulation = cfg.trainer.get("accumulate_grad_batches", 1)
    if isinstance(accumulation, int) and not isinstance(accumulation, bool) and accumulation > 1:
        # Each optimizer step would be that many batches: a larger batch than the one it chose, which
        # its timing (a step of one batch) and its rates (measured at its own batch) do not price.
        raise ConfigError(
            f"model=auto chooses the batch itself (data.batch_size, one batch a step), but "
            f"trainer.accumulate_grad_batches={accumulation} makes each step {accumulation} batches; drop "
            "it, or pass the shape without model=auto and add it there (each model=auto run prints the "
            "override that reproduces it)"
        )
    devices, nodes = cfg.trainer.get("devices", 1), cfg.trainer.get("num_nodes", 1)
    if isinstance(devices, (list, ListConfig)):
        devices = len(devices)
    if (str(devices).isdigit() and int(devices) > 1) or int(nodes or 1) > 1:
        raise ConfigError(
            "model=auto measures one process's speed, but this run has several (trainer.devices / "
            "trainer.num_nodes); size it on one device first and pass its printed override"
        )


def apply_choice(
    cfg: DictConfig, choice: Choice, overrides: Sequence[str], choices: Mapping[str, Any]
) -> None:
    """Write the choice into the run's config (what the command line gave stays) and fill in the
    override that reproduces the run without model=auto."""
    given = {override_key(o) for o in overrides}
    with open_dict(cfg):
        for key, value in shape_fields(choice.shape).items():
            cfg.model[key] = value
        cfg.data.batch_size = choice.shape.batch_size
        if "model.dropout" not in given:
            cfg.model.dropout = choice.dropout
        choice.dropout = float(cfg.model.dropout)
        adamw = cfg.optimizer.get("adamw")
        if adamw is not None:  # Muon + AdamW, the optimizer the rule was measured with
            if "optimizer.adamw.lr" not in given:
                adamw.lr = choice.adamw_lr
            choice.adamw_lr = float(adamw.lr)
            if "optimizer.weight_decay" not in given:
                cfg.optimizer.weight_decay = choice.weight_decay
            if "optimizer.momentum" not in given and choice.momentum is not None:
                cfg.optimizer.momentum = choice.momentum
            momentum = cfg.optimizer.get("momentum")
            choice.momentum = None if momentum is None else float(momentum)
        else:  # no Muon: the optimizer keeps its own rate and decay; the record says what ran
            choice.momentum = None
            choice.adamw_lr = float(cfg.optimizer.get("lr", choice.adamw_lr))
        choice.weight_decay = float(cfg.optimizer.get("weight_decay", 0.0))
        if adamw is None and not choice.reason.startswith(KEPT):  # a resumed run keeps the first reason
            choice.reason += (
                f"; this optimizer has no Muon part: its own lr {choice.adamw_lr:g} and weight decay "
                f"{choice.weight_decay:g} apply"
            )
        cfg.model.auto = False
    choice.overrides = reproducing_overrides(cfg, overrides, choices)


def reproducing_overrides(cfg: DictConfig, overrides: Sequence[str], choices: Mapping[str, Any]) -> list[str]:
    """The command line without model=auto: the user's own overrides, the config groups model=auto
    picked (`choices`: Hydra's runtime choices), every model setting that differs from the default
    model's, and the values model=auto set in other groups."""
    chosen = {k: v for k, v in cfg.model.items() if k not in ("_target_", "auto")}
    defaults = ModelConfig().to_dict()
    shape_keys = shape_fields(shape_ladder.LADDER[0])  # (through the module: tests replace the ladder)
    model = [f"model.{k}={_value(v)}" for k, v in chosen.items() if k in shape_keys or defaults.get(k) != v]
    groups = [f"{g}={choices[g]}" for g in ("optimizer", "scheduler") if g in choices]
    values = [f"optimizer.lr={_value(cfg.optimizer.lr)}"] if "lr" in cfg.optimizer else []
    if "weight_decay" in cfg.optimizer:
        values.append(f"optimizer.weight_decay={_value(cfg.optimizer.weight_decay)}")
    if "momentum" in cfg.optimizer:
        values.append(f"optimizer.momentum={_value(cfg.optimizer.momentum)}")
    if cfg.optimizer.get("adamw") is not None:
        values.append(f"optimizer.adamw.lr={_value(cfg.optimizer.adamw.lr)}")
    values += [
        f"data.batch_size={cfg.data.batch_size}",
        f"trainer.max_steps={cfg.trainer.max_steps}",
        f"trainer.val_check_interval={cfg.trainer.val_check_interval}",
        f"trainer.gradient_clip_val={_value(cfg.trainer.get('gradient_clip_val'))}",
        f"trainer.precision={_value(cfg.trainer.precision)}",  # as resolved from auto on this machine
        f"matmul_precision={cfg.get('matmul_precision') or 'highest'}",  # the same
    ]
    # Not kept: what is set here, the resume (a new run) and the run directory (a new one).
    dropped = {override_key(o) for o in [*model, *groups, *values]} | {"model", "ckpt_path"}
    kept = [o for o in overrides if (key := override_key(o)) not in dropped and not key.startswith("hydra.")]
    return ["chargpt-train", *map(as_typed, kept), *groups, *model, *values]


def _value(v: Any) -> str:
    """A config value as the printed command types it, short to read: text bare (model=auto's
    values are words such as rope or 32-true), a float as below."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, float):  # short where that is exact (3e-3 as 0.003), else every digit
        return f"{v:g}" if float(f"{v:g}") == v else repr(v)
    return str(v)
