"""The language models: GPT and the bigram baseline."""

from chargpt.model.config import ModelConfig
from chargpt.model.gpt import GPT, BigramLM, build_model, count_parameters

__all__ = ["GPT", "BigramLM", "ModelConfig", "build_model", "count_parameters"]
