"""Model hyperparameters, validated before anything is built."""

from __future__ import annotations

import dataclasses
import functools
import typing
from dataclasses import dataclass, field
from typing import Any

from chargpt.checks import real_number, whole_number, yes_no
from chargpt.errors import ConfigError

ARCHS = ("gpt", "bigram")
BIGRAM_SETTINGS = ("arch", "block_size")  # block_size: the window it trains and samples on
POS_ENCODINGS = ("learned", "sinusoidal", "rope")
ACTIVATIONS = ("relu", "gelu", "relu2", "swiglu")
NORMS = ("layernorm", "rmsnorm")
# The text settings and the values each takes.
CHOICES: dict[str, tuple[str, ...]] = {
    "arch": ARCHS, "pos_encoding": POS_ENCODINGS, "activation": ACTIVATIONS, "norm": NORMS,
}


@functools.cache
def _type_hints(cls: type) -> dict[str, Any]:
    """The declared types of a config class's fields (their annotations are text here)."""
    names = {f.name for f in dataclasses.fields(cls)}
    return {name: hint for name, hint in typing.get_type_hints(cls).items() if name in names}


@dataclass(frozen=True)
class ModelConfig:
    arch: str = "gpt"
    block_size: int = 64  # context length; also the training window length
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    # Not architecture (see `architecture()`): may change on resume and fine-tuning.
    dropout: float = field(default=0.0, metadata={"architecture": False})
    bias: bool = True  # biases in linear layers and LayerNorm (RMSNorm has none)
    pos_encoding: str = "learned"
    activation: str = "gelu"
    mlp_ratio: float = 4.0  # hidden width of the feed-forward as a multiple of n_embd
    norm: str = "layernorm"
    qk_norm: bool = False  # normalise queries and keys per head before attention
    tie_weights: bool = True  # share the token embedding with the output head
    init_std: float = 0.02  # std of the normal init of weights (residual outputs scaled by 1/sqrt(2L))
    # Start the residual output projections (attention out, feed-forward down) at zero, so every
    # block begins as the identity. Init only: not architecture, a checkpoint loads either way, and
    # not in an export (how the model trained, not what it is).
    zero_init_residual: bool = field(default=False, metadata={"architecture": False, "exported": False})
    logit_softcap: float | None = None  # squash logits into (-cap, cap) with cap * tanh(logits / cap)
    # torch.compile the training/validation forward. Not architecture: sampling from a checkpoint
    # never compiles, and a run may switch it on or off when it resumes. Not in an export either.
    compile: bool = field(default=False, metadata={"architecture": False, "exported": False})

    def __post_init__(self) -> None:
        # Each setting is checked by its declared type, so a field added later needs no entry here
        # (a text setting must have its choices in CHOICES). Whole numbers are counts and sizes.
        for name, hint in _type_hints(type(self)).items():
            value = getattr(self, name)
            if name in CHOICES:
                if value not in CHOICES[name]:
                    raise ConfigError(f"model.{name}={value!r} is not one of {', '.join(CHOICES[name])}")
            elif hint is bool:
                yes_no(f"model.{name}", value)
            elif hint is int:
                whole_number(f"model.{name}", value, low=1)
            elif hint is float:
                real_number(f"model.{name}", value)
            elif hint == float | None:
                real_number(f"model.{name}", value, optional=True)
            else:
                raise TypeError(f"ModelConfig.{name}: no check for {hint}; add one to __post_init__")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"model.dropout={self.dropout} must be in [0, 1)")
        if self.init_std <= 0:
            raise ConfigError(f"model.init_std={self.init_std} must be positive")
        if self.logit_softcap is not None and self.logit_softcap <= 0:
            raise ConfigError(f"model.logit_softcap={self.logit_softcap} must be positive or null")
        if self.mlp_ratio <= 0:
            raise ConfigError(f"model.mlp_ratio={self.mlp_ratio} must be positive")
        if self.n_embd % self.n_head:
            raise ConfigError(
                f"model.n_embd={self.n_embd} is not divisible by model.n_head={self.n_head}; "
                "pick a width that is a multiple of the number of heads"
            )
        if self.pos_encoding == "rope" and (self.n_embd // self.n_head) % 2:
            raise ConfigError(
                f"rope needs an even head size, got n_embd/n_head = {self.n_embd // self.n_head}; "
                "change model.n_embd or model.n_head"
            )

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def applicable(self) -> dict[str, Any]:
        """What an export describes: the settings this architecture uses (the bigram table has no
        layers, widths or positions), without how the model trained (fields marked
        `exported: False`)."""
        if self.arch == "bigram":
            return {k: getattr(self, k) for k in BIGRAM_SETTINGS}
        fields = dataclasses.fields(self)
        return {f.name: getattr(self, f.name) for f in fields if f.metadata.get("exported", True)}

    def architecture(self) -> dict[str, Any]:
        """The settings that fix the weights' shapes and meaning: resume and fine-tuning keep
        these and let the others (dropout, compile, zero_init_residual) change."""
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self) if f.metadata.get("architecture", True)
        }

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ModelConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - known - {"_target_"}
        if unknown:
            raise ConfigError(f"unknown model settings: {', '.join(sorted(unknown))}")
        return cls(**{k: v for k, v in values.items() if k in known})
