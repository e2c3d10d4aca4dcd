"""What a model's parameters need of this machine's memory: to train, and to be built at all."""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig

from chargpt.errors import ChargptError, ConfigError
from chargpt.hydra_run import plain
from chargpt.model import ModelConfig, count_parameters
from chargpt.training.precision import lightning_precision_name, run_device

# The model is built in float32 on the CPU, whatever the precision it then trains in.
BUILT_BYTES_PER_PARAMETER = 4
# The settings a GPT's parameter count grows with: each layer's width and feed-forward, the number
# of layers, and the learned position table's rows.
_SIZE_SETTINGS = ("n_layer", "n_embd", "mlp_ratio", "block_size")


@dataclass(frozen=True)
class ModelSize:
    """A model's parameter count, and the settings that make it that large."""

    parameters: int
    settings: dict[str, object]  # name -> value, as typed: model.NAME=VALUE

    @classmethod
    def of(cls, config: ModelConfig, vocab_size: int) -> ModelSize:
        """Each size setting above ModelConfig's own value whose excess holds at least half of the
        parameters (model.mlp_ratio=10000000 of a 4-layer model is that one, not model.n_layer);
        model.n_layer and model.n_embd where none does alone."""
        parameters = count_parameters(config, vocab_size)
        large = [name for name in _SIZE_SETTINGS
                 if (usual := _usual_size(config, name)) is not None
                 and parameters - count_parameters(usual, vocab_size) >= parameters / 2]
        return cls(parameters, {name: getattr(config, name) for name in large or ("n_layer", "n_embd")})

    def said(self) -> str:
        """"model.n_layer=100000 and model.n_embd=4096 make 20,137,984,274,432 parameters"."""
        named = [f"model.{name}={value}" for name, value in self.settings.items()]
        verb = "makes" if len(named) == 1 else "make"
        return f"{' and '.join(named)} {verb} {self.parameters:,} parameters"

    def smaller(self) -> str:
        """The fix: "a smaller model.n_layer or model.n_embd"."""
        return "a smaller " + " or ".join(f"model.{name}" for name in self.settings)


def _usual_size(config: ModelConfig, name: str) -> ModelConfig | None:
    """`config` with the setting `name` at ModelConfig's own value (a width its heads divide, of an
    even head size for rope); None where it is no larger than that already."""
    usual = next(f.default for f in dataclasses.fields(ModelConfig) if f.name == name)
    if name == "n_embd":
        step = config.n_head * (2 if config.pos_encoding == "rope" else 1)
        usual = -(-usual // step) * step
    if getattr(config, name) <= usual:
        return None
    return dataclasses.replace(config, **{name: usual})


def physical_memory() -> int:
    """This machine's RAM in bytes (OSError where the system does not say)."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def swap_memory() -> int:
    """This machine's swap in bytes; 0 where the system does not say (not Linux)."""
    try:
        found = re.search(r"^SwapTotal:\s+(\d+) kB", Path("/proc/meminfo").read_text(), re.MULTILINE)
    except OSError:
        return 0
    return int(found[1]) * 1024 if found else 0


def bytes_per_parameter(cfg: DictConfig) -> tuple[int, str]:
    """What training holds of each parameter whatever the batch, and what that is: its weight and
    gradient, and AdamW's two moments or (at least) Muon's one momentum, each in the width the
    precision keeps weights in (float32 for autocast: bf16-mixed and 16-mixed keep it)."""
    name = lightning_precision_name(cfg.trainer.get("precision"))
    # (auto is bf16-mixed or 32-true; transformer-engine's weights are bf16 or float16)
    width = 8 if name == "64-true" else 4 if name in ("auto", "32-true") or name.endswith("-mixed") else 2
    if str(cfg.optimizer.get("_target_", "")).endswith("muon_adamw"):
        return 3 * width, "weights, gradients, Muon's momentum"
    return 4 * width, "weights, gradients, AdamW's moments"


def check_model_fits(config: ModelConfig, vocab_size: int) -> None:
    """Refuse a model whose float32 weights alone are more than this machine's memory, swap included,
    before building it: built, it took the memory layer by layer until the machine had none left.
    Any model refused here could not have been built."""
    try:
        memory = physical_memory() + swap_memory()
    except (OSError, ValueError):
        return
    needed = count_parameters(config, vocab_size) * BUILT_BYTES_PER_PARAMETER
    if needed > memory:
        size = ModelSize.of(config, vocab_size)
        raise ConfigError(
            f"{size.said()}, {needed / 2**30:,.0f} GiB of weights alone where this machine has "
            f"{memory / 2**30:,.0f} GiB of memory (swap included); use {size.smaller()}")


def model_too_large(cfg: DictConfig) -> tuple[str, str] | None:
    """What the model alone needs to train, said where that is more memory than this machine has
    (its RAM, or its GPU's where the run trains on one: the model is built in one and trained in
    the other), and the settings to make smaller. None where it fits, or where the config cannot say."""
    try:
        fields = plain(cfg.model)
        fields.pop("auto", None)  # model=auto: the shape chosen is written over its own
        config = ModelConfig.from_dict(fields)
        parameters = count_parameters(config, vocab_size=256)  # the vocabulary adds little
        per_parameter, held = bytes_per_parameter(cfg)
        memory = physical_memory()
    except (ChargptError, ValueError, OSError):
        return None
    if (device := run_device(cfg.trainer)).type == "cuda":  # (a run on the CPU has the RAM alone)
        memory = min(memory, torch.cuda.get_device_properties(device).total_memory)
    needed = parameters * per_parameter
    if needed <= memory:
        return None
    size = ModelSize.of(config, vocab_size=256)
    return (f"the model alone is too large for this machine: {size.said()}, {needed / 2**30:,.0f} GiB to "
            f"train ({per_parameter} bytes each: {held}) where it has {memory / 2**30:,.0f} GiB",
            size.smaller())
