"""Text -> tokenizer -> cached ids -> windows."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chargpt.data.tokenizer import CharTokenizer

if TYPE_CHECKING:
    from chargpt.data.datamodule import CharDataModule

__all__ = ["CharDataModule", "CharTokenizer"]


def __getattr__(name: str) -> Any:
    # The data module is a LightningDataModule: importing Lightning takes seconds, which sampling,
    # serving and `import chargpt` (none of which trains) need not pay.
    if name == "CharDataModule":
        from chargpt.data.datamodule import CharDataModule

        return CharDataModule
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
