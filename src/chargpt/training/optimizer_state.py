"""Whether a checkpoint's optimizer state fits the optimizer a resumed run builds.

Lightning loads the state into the new optimizer inside `fit`, and torch refuses a state whose
param groups differ (another optimizer, or other parameters frozen) with a traceback. Compared
here first, the refusal names the setting that differs.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from chargpt.errors import ConfigError
from chargpt.run_layout import launched_with, run_dir_of


def state_layout(state: Mapping[str, Any]) -> dict[str, list[int]]:
    """The parameters per param group of an optimizer's state_dict, by inner optimizer (Muon with
    AdamW keeps one state_dict for each; a plain optimizer's is under "")."""
    if "param_groups" in state:
        return {"": [len(group["params"]) for group in state["param_groups"]]}
    return {name: state_layout(inner)[""] for name, inner in state.items()
            if isinstance(inner, Mapping) and "param_groups" in inner}


def check_optimizer_state(ckpt: dict[str, Any], file: Path, optimizer: torch.optim.Optimizer,
                          optimizer_config: Mapping[str, Any], freeze_fix: Callable[[], str]) -> None:
    """Refuse a resume whose optimizer cannot take the checkpoint's state. `freeze_fix`: what to
    resume with when only the trained parameters differ (a fine-tune's finetune.freeze_*), asked
    only then."""
    states = ckpt.get("optimizer_states") or []
    if len(states) != 1 or not isinstance(states[0], Mapping):
        return  # none kept (weights only), or several optimizers: Lightning's own checks apply
    saved, built = state_layout(states[0]), state_layout(optimizer.state_dict())
    if saved == built:
        return
    old = ((ckpt.get("hyper_parameters") or {}).get("optimizer") or {}).get("_target_")
    new = optimizer_config.get("_target_")
    # The same optimizer may keep another layout: Muon with every hidden matrix frozen is AdamW alone.
    another_optimizer = (old != new) if old else (saved.keys() != built.keys())
    if another_optimizer:
        option = launched_with(run_dir_of(file), "optimizer")
        again = (f"optimizer={option}" if option
                 else "the optimizer it was trained with" + (f" ({old})" if old else ""))
        raise ConfigError(
            f"cannot resume from {file} with {new}: it was trained with {old or 'another optimizer'}, "
            f"whose optimizer state does not carry over; resume with {again}, or start a new run "
            f"from its weights with {shlex.quote(f'init_from={file}')} in place of ckpt_path"
        )
    trained = sum(sum(sizes) for sizes in saved.values())
    trains = sum(sum(sizes) for sizes in built.values())
    raise ConfigError(
        f"cannot resume from {file}: it was trained with other parameters frozen (its optimizer "
        f"holds {trained} parameter tensors, this run trains {trains}); {freeze_fix()}"
    )
