"""Character classes for reading a loss per kind of character (chargpt-eval's `by_class`).

Each character belongs to exactly one class, tested in this order:

- "newline": "\\n" or "\\r"
- "space": the space " " only (tabs and other spaces are "other")
- "digit": str.isdecimal, decimal digits of any script ("7", "٣"; not "²" or "½")
- "upper": str.isupper, upper-case letters of any script ("A", "É", "Ω")
- "letter": any other str.isalpha: lower-case letters ("a", "é", "ß") and letters of scripts
  without case ("中", "あ")
- "punctuation": Unicode category P* (".", ",", "'", "-", "«", "¿", "…")
- "other": everything else: symbols and emoji ("$", "+", "©", "😀"), tabs and other spaces,
  combining marks, control characters, other numbers ("²")
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

import torch

CHAR_CLASSES = ("letter", "upper", "digit", "space", "newline", "punctuation", "other")


def char_class(ch: str) -> str:
    """The class of one character (see the module docstring for the exact rules)."""
    if ch in ("\n", "\r"):
        return "newline"
    if ch == " ":
        return "space"
    if ch.isdecimal():
        return "digit"
    if ch.isupper():
        return "upper"
    if ch.isalpha():
        return "letter"
    if unicodedata.category(ch).startswith("P"):
        return "punctuation"
    return "other"


def class_table(chars: Sequence[str]) -> torch.Tensor:
    """Vocabulary id -> index into CHAR_CLASSES, so the ids of a whole batch are classified by
    one tensor index instead of one Python call per character."""
    return torch.tensor([CHAR_CLASSES.index(char_class(c)) for c in chars], dtype=torch.long)
