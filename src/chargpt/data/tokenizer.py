"""Character-level tokenizer: the vocabulary is the sorted set of characters of the corpus."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence

import numpy as np

from chargpt.errors import DataError


def dtype_for_vocab(vocab_size: int) -> np.dtype:
    """Smallest unsigned dtype that holds every id (uint8 for Tiny Shakespeare's 65 symbols)."""
    for dtype in (np.uint8, np.uint16):
        if vocab_size <= np.iinfo(dtype).max + 1:
            return np.dtype(dtype)
    return np.dtype(np.uint32)


# Letters NFC can put an accent on: a mark that composes with none of them (a Devanagari vowel
# sign) is a character of its own, which data.normalize=NFC would not remove.
_ACCENTED_LETTERS = "aeiouycnszrgklmdtwhjxAEIOUYCNSZRGKLMDTWHJXαεηιουωΑΕΗΙΟΥΩаеиоуАЕИОУ"


def is_combining(char: str) -> bool:
    """A combining mark (an accent written after its letter, as decomposed NFD text has them)."""
    return unicodedata.category(char).startswith("M")


def _composes(mark: str) -> bool:
    return any(len(unicodedata.normalize("NFC", letter + mark)) == 1 for letter in _ACCENTED_LETTERS)


def shown_char(char: str) -> str:
    """A character as a message quotes it: as repr writes it, but a combining mark, which printed
    alone joins the quote before it, named by its code point."""
    return f"'\\u{ord(char):04x}'" if is_combining(char) else repr(char)


def describe_chars(chars: Iterable[str], limit: int = 10) -> str:
    chars = sorted(set(chars))
    shown = ", ".join(shown_char(c) for c in chars[:limit])
    more = f" and {len(chars) - limit} more" if len(chars) > limit else ""
    return f"{shown}{more}"


def reading_fix(unknown: Iterable[str], normalize: str | None = None) -> str:
    """The fixes to name first for characters a vocabulary lacks that another reading of the same
    text would not have ("" else): '\r' from Windows line endings, which data.newline=normalize reads
    as the new lines the model knows; accents written as combining marks, which data.normalize=NFC
    composes (unless the text is read so already: `normalize`)."""
    unknown = set(unknown)
    fixes = "pass data.newline=normalize to read '\\r\\n' as '\\n', " if "\r" in unknown else ""
    if normalize not in ("NFC", "NFKC") and any(is_combining(c) and _composes(c) for c in unknown):
        fixes += "pass data.normalize=NFC to compose accents written as combining marks, "
    return fixes


def _continues_a_character(char: str) -> bool:
    """A combining mark, or a Hangul vowel or final consonant written as a jamo of its own (NFD
    Korean): part of the character before it."""
    return is_combining(char) or 0x1160 <= ord(char) <= 0x11FF


class CharTokenizer:
    """Maps each character to its index in a fixed, ordered vocabulary."""

    def __init__(self, chars: Sequence[str]) -> None:
        if not chars:
            raise DataError("the vocabulary is empty: the corpus has no characters")
        if len(set(chars)) != len(chars) or any(len(c) != 1 for c in chars):
            raise DataError("a vocabulary must be a list of distinct single characters")
        self.chars: list[str] = list(chars)
        self.stoi: dict[str, int] = {c: i for i, c in enumerate(self.chars)}

    @classmethod
    def from_text(cls, text: str) -> CharTokenizer:
        return cls(sorted(set(text)))

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    @property
    def dtype(self) -> np.dtype:
        return dtype_for_vocab(self.vocab_size)

    def unknown_chars(self, text: str) -> set[str]:
        return set(text) - self.stoi.keys()

    def as_written_here(self, text: str) -> tuple[str, list[str]]:
        """The text with what this vocabulary lacks but writes otherwise rewritten its way: Windows
        line endings as '\\n', an accented letter or a Korean syllable given as separate code points
        composed (NFC; only where a character is unknown, so the known ones stay as they are).
        Returns the text and what was done, in words (empty when nothing was)."""
        unknown, done = self.unknown_chars(text), []
        if "\r" in unknown and "\n" in self.stoi:
            text = text.replace("\r\n", "\n").replace("\r", "\n")
            done.append("its line endings as '\\n'")
        if any(_continues_a_character(c) for c in unknown):
            clusters: list[str] = []
            for char in text:
                if clusters and _continues_a_character(char):
                    clusters[-1] += char
                else:
                    clusters.append(char)
            composed = [unicodedata.normalize("NFC", c) if self.unknown_chars(c) else c for c in clusters]
            if composed != clusters:
                text = "".join(composed)
                done.append("its accents and syllables composed (NFC)")
        return text, done

    def encode(self, text: str) -> list[int]:
        unknown = self.unknown_chars(text)
        if unknown:
            raise DataError(
                f"characters not in the vocabulary: {describe_chars(unknown)}; "
                "remove them from the text or use a model trained on text that has them"
            )
        return [self.stoi[c] for c in text]

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(self.chars[int(i)] for i in ids)

    def to_list(self) -> list[str]:
        """Plain, JSON-able form (stored in checkpoints and the encoding cache)."""
        return list(self.chars)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CharTokenizer) and self.chars == other.chars

    def __repr__(self) -> str:
        return f"CharTokenizer(vocab_size={self.vocab_size})"
