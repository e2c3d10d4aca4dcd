"""Text drawn in a picture. matplotlib (3.6 and later) draws each character with the first font of
a family list that has its glyph: text is drawn with `families(text)`, its family's font then an
installed font for each character that font lacks (a CJK font for `数据.txt`). A character no
installed font draws (an emoji with no outline emoji font) is named by its code point, `U+1F389`,
where matplotlib would draw an empty box and warn."""

from __future__ import annotations

import functools
from typing import Any


def has_glyph(char: str, family: str = "sans-serif") -> bool:
    """Whether `family`'s font, or an installed font after it, draws `char`."""
    return ord(char) in _code_points(_family_file(family)) or _fallback(char) is not None


def families(text: str, family: str = "sans-serif") -> list[str]:
    """The family list to draw `text` with: `family`, then the installed fonts that draw its
    characters `family`'s font lacks, each once, in the order the text needs them."""
    own = _code_points(_family_file(family))
    found = dict.fromkeys(name for c in text if ord(c) not in own and (name := _fallback(c)))
    return [family, *found]


def code_point(char: str) -> str:
    return f"U+{ord(char):04X}"


def drawable(text: str, family: str = "sans-serif") -> str:
    """`text` with each printable character no installed font draws written as its code point,
    two in a row apart (`U+1F3AD U+1F389`, not `U+1F3ADU+1F389`); spaces and controls are left as
    they are."""
    return "".join(_drawn_characters(text, family))


def drawable_cut(text: str, limit: int, family: str = "sans-serif") -> str:
    """drawable(`text`) in at most `limit` characters: cut with an ellipsis between two of `text`'s
    characters, so a code point is never cut in two. Cut before the conversion, eight characters
    named by code point came out as 55 characters."""
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
def _fallback(char: str) -> str | None:
    """The family of the first installed font that draws `char`: regular upright faces first, then
    by name, so a picture draws the same on every run."""
    code = ord(char)
    return next((entry.name for entry in _installed_fonts() if code in _code_points(entry.fname)), None)


@functools.cache
def _installed_fonts() -> list[Any]:
    """The fonts matplotlib knows (scalable ones: it leaves out a bitmap emoji font), but Last
    Resort (matplotlib's own since 3.10): it has every code point, as a box that names the
    character's script, not the character."""
    from matplotlib import font_manager

    return sorted((e for e in font_manager.fontManager.ttflist if not e.name.startswith("Last Resort")),
                  key=lambda e: (e.style != "normal", abs(_weight(e.weight) - 400), e.name, e.fname))


def _weight(weight: int | str) -> int:
    from matplotlib import font_manager

    return weight if isinstance(weight, int) else font_manager.weight_dict.get(weight, 400)


@functools.cache
def _family_file(family: str) -> str:
    from matplotlib import font_manager

    return str(font_manager.findfont(font_manager.FontProperties(family=[family])))


@functools.cache
def _code_points(path: str) -> frozenset[int]:
    """The characters the font at `path` has a glyph for. The font itself is not kept: a machine
    with hundreds of fonts would hold each one open."""
    from matplotlib import ft2font

    return frozenset(ft2font.FT2Font(path).get_charmap())
