"""Optimizers: parameter groups for AdamW, and Muon for hidden matrices with AdamW for the rest.

An optimizer config names its `_target_`. Plain torch optimizers (e.g. torch.optim.AdamW) are
called with `param_groups(model.parameters(), weight_decay)`; a factory marked `takes_model`
(muon_adamw) is called with the model itself, because it splits parameters by the role of their
module.
Weight decay applies to matrices and embeddings, not to biases and norm gains.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from hydra.utils import get_object, instantiate
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

from chargpt.checks import real_number, shown, whole_number, yes_no
from chargpt.errors import ConfigError
from chargpt.training.muon import NS_DTYPES, Muon

# Muon arrived in torch 2.9; the rest of chargpt runs on the torch>=2.6 that pyproject.toml allows.
MUON_TORCH = "2.9"


def param_groups(params: Iterable[nn.Parameter], weight_decay: float, name: str | None = None) -> list[dict]:
    """Decayed matrices and embeddings, undecayed biases and gains, of the trained `params` (a
    model's parameters(), where a tied weight appears once); `name` labels both groups (their
    learning rate is logged under it)."""
    params = [p for p in params if p.requires_grad]
    label = {"name": name} if name else {}
    return [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay, **label},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0, **label},
    ]


def group_rates(optimizer: torch.optim.Optimizer) -> dict[str, float]:
    """The learning rate of each named group (the first group of each name), for logging:
    {"": lr} when the groups have no names (one optimizer, one rate)."""
    rates: dict[str, float] = {}
    for group in optimizer.param_groups:
        rates.setdefault(str(group.get("name", "")), float(group["lr"]))
    return rates


def _fraction(name: str, value: object) -> None:
    if not 0.0 <= real_number(name, value) < 1.0:  # type: ignore[operator]
        raise ConfigError(f"{name}={value} must be at least 0 and below 1 (e.g. 0.9)")


def _betas(name: str, value: object) -> None:
    if not (isinstance(value, (list, tuple)) and len(value) == 2):
        raise ConfigError(f"{name}={value} must be two numbers in [0, 1), e.g. {name}=[0.9,0.99]")
    for i, beta in enumerate(value):
        _fraction(f"{name}[{i}]", beta)


def _positive(name: str, value: object) -> None:
    if real_number(name, value) <= 0:  # type: ignore[operator]
        raise ConfigError(f"{name}={value} must be above 0 (e.g. 1e-8)")


def _one_of(*choices: str | None) -> Callable[[str, object], None]:
    def check(name: str, value: object) -> None:
        if value not in choices:
            listed = ", ".join("null" if c is None else c for c in choices)
            raise ConfigError(f"{name}={shown(value)} is not one of {listed}")
    return check


# What each setting of the optimizers here takes (AdamW's nested under `adamw` for Muon): checked
# before any data work, where torch would raise its own error, or take a string as true, later.
SETTINGS: dict[str, Callable[[str, object], Any]] = {
    "lr": lambda name, value: real_number(name, value, low=0),
    "weight_decay": lambda name, value: real_number(name, value, low=0),
    "momentum": _fraction,
    "betas": _betas,
    "eps": _positive,
    "fused": lambda name, value: value is None or yes_no(name, value),
    "foreach": lambda name, value: value is None or yes_no(name, value),
    "nesterov": yes_no,
    "ns_steps": lambda name, value: whole_number(name, value, low=1),
    "ns_dtype": _one_of(*NS_DTYPES),
    "adjust_lr_fn": _one_of(None, "original", "match_rms_adamw"),
}


def check_optimizer(config: dict[str, Any] | None) -> None:
    """Refuse, before any data work, an optimizer this torch does not have, or a setting of the
    wrong kind or out of its range."""
    _check_settings(dict(config or {}), "optimizer.")
    target = get_object(dict(config or {}).get("_target_", "torch.optim.AdamW"))
    check = getattr(target, "check_available", None)
    if check is not None:
        check()


def _check_settings(settings: dict[str, Any], prefix: str) -> None:
    for key, value in settings.items():
        if key in SETTINGS:
            SETTINGS[key](f"{prefix}{key}", value)
        elif isinstance(value, dict):
            _check_settings(value, f"{prefix}{key}.")
    if settings.get("fused") is True and settings.get("foreach") is True:  # torch's own refusal: a traceback
        raise ConfigError(f"{prefix}fused=true and {prefix}foreach=true cannot be used together; "
                          f"drop one (add {prefix}fused=false to use foreach)")


def build_optimizer(model: nn.Module, config: dict[str, Any] | None) -> torch.optim.Optimizer:
    config = dict(config or {"_target_": "torch.optim.AdamW"})
    check_optimizer(config)
    if getattr(get_object(config["_target_"]), "takes_model", False):
        return instantiate(config, _partial_=True)(model)
    weight_decay = config.pop("weight_decay", 0.0)
    return instantiate(config, _partial_=True)(param_groups(model.parameters(), weight_decay))


def plain_training_step(
    model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
    run_precision: Any, clip: float | None,
) -> None:
    """One training step as the Trainer takes it (forward in the run's precision, backward,
    gradient clipping, update), without Lightning: what model=auto's calibration and
    scripts/bench_train.py time. `run_precision`: the run's Lightning precision plugin."""
    with run_precision.forward_context():
        _, loss = model(x, y)
    loss.backward()
    if clip:
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def hidden_matrices(model: nn.Module) -> list[nn.Parameter]:
    """Weights of the Linear layers inside the network: not the embeddings, positions or output head
    (Muon is meant for hidden layers; the head is tied to the embedding by default anyway)."""
    head = getattr(model, "head", None)
    excluded = {id(head.weight)} if head is not None else set()
    excluded |= {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    return [
        m.weight for m in model.modules()
        if isinstance(m, nn.Linear) and m is not head and id(m.weight) not in excluded
        and m.weight.requires_grad
    ]


class MuonWithAdamW(torch.optim.Optimizer):
    """Two optimizers stepped as one, so Lightning's automatic optimization, gradient clipping
    and a single LR scheduler work unchanged. The param groups are the inner optimizers' own
    group dicts: a scheduler scaling `lr` in them scales both (each from its own base rate)."""

    def __init__(self, muon: torch.optim.Optimizer, adamw: torch.optim.Optimizer) -> None:
        self.optimizers = (muon, adamw)
        super().__init__([g for opt in self.optimizers for g in opt.param_groups], {})

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for opt in self.optimizers:
            opt.step()
        return loss

    def state_dict(self) -> dict[str, Any]:
        return {"muon": self.optimizers[0].state_dict(), "adamw": self.optimizers[1].state_dict()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.optimizers[0].load_state_dict(state_dict["muon"])
        self.optimizers[1].load_state_dict(state_dict["adamw"])
        # load_state_dict replaces the inner group dicts: share them again.
        self.param_groups = [g for opt in self.optimizers for g in opt.param_groups]


def muon_adamw(
    model: nn.Module,
    lr: float = 0.02,
    momentum: float = 0.95,
    weight_decay: float = 0.0,
    nesterov: bool = True,
    ns_steps: int = 5,
    adjust_lr_fn: str | None = None,
    ns_dtype: str = "auto",
    adamw: dict[str, Any] | None = None,
) -> torch.optim.Optimizer:
    """Muon (torch's, orthogonalising in `ns_dtype`: chargpt.training.muon) on the hidden 2-D
    weights; AdamW (settings in `adamw`, decay on matrices and embeddings only) on embeddings,
    positions, head, norms and biases."""
    adamw = dict(adamw or {})
    adamw_decay = adamw.pop("weight_decay", 0.0)
    hidden = hidden_matrices(model)
    hidden_ids = {id(p) for p in hidden}
    rest = (p for p in model.parameters() if id(p) not in hidden_ids)
    adam = torch.optim.AdamW([g for g in param_groups(rest, adamw_decay, "adamw") if g["params"]], **adamw)
    if not hidden:  # e.g. the bigram model: nothing for Muon
        return adam
    muon = Muon(
        [{"params": hidden, "name": "muon"}], lr=lr, momentum=momentum, weight_decay=weight_decay,
        nesterov=nesterov, ns_steps=ns_steps, adjust_lr_fn=adjust_lr_fn, ns_dtype=ns_dtype,
    )
    return MuonWithAdamW(muon, adam)


def _check_muon() -> None:
    if not hasattr(torch.optim, "Muon"):
        raise ConfigError(
            f"optimizer=muon needs torch.optim.Muon (torch>={MUON_TORCH}) but this is torch "
            f"{torch.__version__}; upgrade torch (pip install 'torch>={MUON_TORCH}') or use optimizer=adamw"
        )


muon_adamw.takes_model = True  # type: ignore[attr-defined]
muon_adamw.check_available = _check_muon  # type: ignore[attr-defined]


# What a parameter group holds besides its settings: the parameters, its label, and the rates the
# schedule derives (the current rate from the base rate `initial_lr`).
_NOT_SETTINGS = ("params", "name", "lr", "initial_lr")


def settings_of(optimizer: torch.optim.Optimizer) -> list[dict[str, Any]]:
    """Each parameter group's settings as configured: base rate under "lr", then the rest."""
    return [{"lr": g.get("initial_lr", g["lr"]), **{k: v for k, v in g.items() if k not in _NOT_SETTINGS}}
            for g in optimizer.param_groups]


def apply_settings(
    optimizer: torch.optim.Optimizer, scheduler: LambdaLR | None, configured: list[dict[str, Any]]
) -> list[str]:
    """Put this run's configured settings (settings_of, taken before a checkpoint's optimizer state
    was loaded) back into the groups: the loaded state carries the settings of the run that wrote
    it, which would silently undo a rate or decay given for the resumed run. The moments and the
    step count stay. Returns what changed, as "group setting old -> new"."""
    changed: list[str] = []
    for i, (group, wanted) in enumerate(zip(optimizer.param_groups, configured, strict=True)):
        label = str(group.get("name") or "optimizer")
        for key, value in wanted.items():
            old = group.get("initial_lr", group["lr"]) if key == "lr" else group.get(key)
            if _plain(old) == _plain(value):
                continue
            if key == "lr":
                _set_base_rate(group, i, value, scheduler)
            else:
                group[key] = value
            note = f"{label} {key} {_plain(old)} -> {_plain(value)}"
            if note not in changed:  # the decayed and undecayed groups share a label
                changed.append(note)
    return changed


def _set_base_rate(group: dict[str, Any], index: int, rate: float, scheduler: LambdaLR | None) -> None:
    """A group's base rate, and the rate of its coming step: the schedule's multiplier of it, as
    LambdaLR sets it after each step."""
    if "initial_lr" in group:
        group["initial_lr"] = rate
    if scheduler is None:
        group["lr"] = rate
        return
    scheduler.base_lrs[index] = rate
    group["lr"] = rate * scheduler.lr_lambdas[index](scheduler.last_epoch)


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value

