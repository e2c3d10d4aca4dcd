"""Whether a checkpoint's optimizer state fits the optimizer a resumed run builds.

Lightning loads the state into the new optimizer inside `fit`, and torch refuses a state whose
param groups differ (another optimizer, or other parameters frozen) with a traceback. Compared
here first, the refusal names the setting that differs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from hydra import compose
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

from chargpt import shell_words
from chargpt.errors import ConfigError
from chargpt.hydra_run import chosen, searchpath_overrides
from chargpt.run_layout import launched_with, run_of


def state_layout(state: Mapping[str, Any]) -> dict[str, list[int]]:
    """The parameters per param group of an optimizer's state_dict, by inner optimizer (Muon with
    AdamW keeps one state_dict for each; a plain optimizer's is under "")."""
    if "param_groups" in state:
        return {"": [len(group["params"]) for group in state["param_groups"]]}
    return {name: state_layout(inner)[""] for name, inner in state.items()
            if isinstance(inner, Mapping) and "param_groups" in inner}


def optimizer_named(
    target: str | None, option: str | None, settings: Mapping[str, Any] | None = None,
    options: Mapping[str, Mapping[str, Any]] | None = None,
) -> str | None:
    """An optimizer as a user picks it, `optimizer=NAME`: `option` (the one a launch chose) when
    it builds `target` (an optimizer's _target_), else the options that do, those with exactly
    these `settings` (a checkpoint's) where some have; None when none does (a _target_ given on
    the command line), or outside a Hydra app. `options`: the optimizer group's composed options
    where the caller has them already (composing each takes as long as a launch's config)."""
    if not target:
        return None
    if options is None:
        options = _optimizer_options()
    building = {name: c for name, c in options.items() if c.get("_target_") == target}
    if option in building:
        return f"optimizer={option}"
    names = [name for name, c in building.items() if c == settings] or sorted(building)
    if not names:
        return None
    return f"optimizer={names[0]}" + (f" (or {', '.join(names[1:])})" if len(names) > 1 else "")


def _optimizer_options() -> dict[str, dict[str, Any]]:
    """Each option of the optimizer group with its settings, as Hydra composes this app's config
    with it (its search path: chargpt's configs, any --config-dir and a command line's
    hydra.searchpath)."""
    if not GlobalHydra.instance().is_initialized() or not HydraConfig.initialized():
        return {}
    app = HydraConfig.get().job.config_name
    # Hydra's loader adds a command line's hydra.searchpath only to a composition given it: the
    # folders it names are listed, and their options composed, with it.
    searchpath = searchpath_overrides(HydraConfig.get())
    loader = GlobalHydra.instance().config_loader()
    options = {}
    for name in loader.get_group_options("optimizer", config_name=app, overrides=searchpath):
        try:
            composed = compose(app, [*searchpath, f"optimizer={name}"])
            settings = OmegaConf.to_container(composed.optimizer, resolve=True)
        except Exception:  # an option that does not compose on its own names nothing
            continue
        if isinstance(settings, dict):
            options[name] = settings
    return options


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
    trained_config = (ckpt.get("hyper_parameters") or {}).get("optimizer") or {}
    old = trained_config.get("_target_")
    new = optimizer_config.get("_target_")
    # The same optimizer may keep another layout: Muon with every hidden matrix frozen is AdamW alone.
    another_optimizer = (old != new) if old else (saved.keys() != built.keys())
    if another_optimizer:
        # The run's launch record says which option it chose; without it (its .hydra folder gone),
        # the options that build the checkpoint's optimizer do. Both names come from one
        # composition of the options.
        options = _optimizer_options()
        trained = optimizer_named(old, launched_with(run_of(file), "optimizer"), trained_config, options)
        again = trained or "the optimizer it was trained with" + (f" ({old})" if old else "")
        given = optimizer_named(new, chosen("optimizer"), optimizer_config, options)
        raise ConfigError(
            f"cannot resume from {file} with {given or new}: it was trained with "
            f"{trained or old or 'another optimizer'}, whose optimizer state does not carry over; resume "
            f"with {again}, or start a new run from its weights with "
            f"{shell_words.quote(f'init_from={file}')} in place of ckpt_path"
        )
    trained = sum(sum(sizes) for sizes in saved.values())
    trains = sum(sum(sizes) for sizes in built.values())
    raise ConfigError(
        f"cannot resume from {file}: it was trained with other parameters frozen (its optimizer "
        f"holds {trained} parameter tensors, this run trains {trains}); {freeze_fix()}"
    )
