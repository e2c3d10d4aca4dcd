"""chargpt: train and sample character-level GPT models with Lightning and Hydra."""

from chargpt.inference import TrainedModel, load

__version__ = "0.1.0"
__all__ = ["TrainedModel", "__version__", "load"]
