"""Text -> tokenizer -> cached ids -> windows."""

from chargpt.data.datamodule import CharDataModule
from chargpt.data.tokenizer import CharTokenizer

__all__ = ["CharDataModule", "CharTokenizer"]
