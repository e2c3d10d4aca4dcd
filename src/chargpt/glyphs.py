"""Text drawn in a picture: a character the font has no glyph for (CJK, emoji in DejaVu) is named
by its code point, `U+1F389`, where matplotlib would draw an empty box."""

from __future__ import annotations

import functools
from typing import Any


def has_glyph(char: str, family: str = "sans-serif") -> bool:
    return _font(family).get_char_index(ord(char)) != 0


def code_point(char: str) -> str:
    return f"U+{ord(char):04X}"


def drawable(text: str, family: str = "sans-serif") -> str:
    """`text` with each printable character the `family`'s font lacks written as its code point,
    two in a row apart (`U+65E5 U+672C`, not `U+65E5U+672C`); spaces and controls are left as they are."""
    return "".join(_drawn_characters(text, family))


def drawable_cut(text: str, limit: int, family: str = "sans-serif") -> str:
    """drawable(`text`) in at most `limit` characters: cut with an ellipsis between two of `text`'s
    characters, so a code point is never cut in two. Cut before the conversion, eight CJK characters
    came out as 55 characters of code points."""
    drawn = _drawn_characters(text, family)
    if sum(map(len, drawn)) <= limit:
        return "".join(drawn)
    kept, length = [], 1  # the ellipsis
    for part in drawn:
        if length + len(part) > limit:
            break
        kept.append(part)
        length += len(part)
    return "".join(kept).rstrip(", ") + "…"


def _drawn_characters(text: str, family: str) -> list[str]:
    """How each character of `text` is drawn: itself, or its code point (after a space where the
    one before it is a code point too)."""
    parts: list[str] = []
    named = False  # whether the last part was a code point
    for c in text:
        lacking = c.isprintable() and not c.isspace() and not has_glyph(c, family)
        parts.append((" " if named and lacking else "") + (code_point(c) if lacking else c))
        named = lacking
    return parts


@functools.cache
def _font(family: str) -> Any:
    from matplotlib import font_manager, ft2font

    return ft2font.FT2Font(font_manager.findfont(font_manager.FontProperties(family=[family])))
