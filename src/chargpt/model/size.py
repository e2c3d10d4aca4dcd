"""A model's size, and whether its weights alone fit in this machine's memory at all: training checks
it before it builds a model, and loading a trained one before it builds that."""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass
from pathlib import Path

from chargpt.model.config import ModelConfig
from chargpt.model.gpt import count_parameters

# A model is built in float32 on the CPU, whatever the precision it then trains in or was saved in.
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


def machine_memory() -> int | None:
    """This machine's memory, swap included, in bytes; None where the system does not say."""
    try:
        return physical_memory() + swap_memory()
    except (OSError, ValueError):
        return None


def too_large_to_build(config: ModelConfig, vocab_size: int) -> tuple[str, ModelSize] | None:
    """Where a model's float32 weights alone are more than this machine's memory, swap included:
    what it needs against what the machine has, naming the settings that make it so large (with
    them, for the caller's fix). None where it fits, or where the system does not say its memory.
    Such a model cannot be built: built, it took the memory layer by layer, no single allocation
    refused, until the kernel's out-of-memory killer ended the command without a word."""
    if (memory := machine_memory()) is None:
        return None
    needed = count_parameters(config, vocab_size) * BUILT_BYTES_PER_PARAMETER
    if needed <= memory:
        return None
    size = ModelSize.of(config, vocab_size)
    return (f"{size.said()}, {needed / 2**30:,.0f} GiB of weights alone where this machine has "
            f"{memory / 2**30:,.0f} GiB of memory (swap included)", size)
