"""chargpt: train and sample character-level GPT models with Lightning and Hydra."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from chargpt.errors import CheckpointError
    from chargpt.inference import TrainedModel, load

__version__ = "0.1.0"  # the package's one version: pyproject.toml reads it from here
__all__ = ["CheckpointError", "TrainedModel", "__version__", "load"]


def __getattr__(name: str) -> Any:
    # The Python API brings in torch on first use, not on `import chargpt`: the console scripts
    # import this package before they can catch a Ctrl-C, and must do so in a blink.
    if name in ("TrainedModel", "load"):
        from chargpt import inference

        return getattr(inference, name)
    if name == "CheckpointError":  # what load raises for a path that leads to no model
        from chargpt.errors import CheckpointError

        return CheckpointError
    raise AttributeError(f"module 'chargpt' has no attribute {name!r}")
