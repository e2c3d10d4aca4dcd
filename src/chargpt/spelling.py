"""The name a misspelt one most likely meant, for an error's "did you mean".

difflib ranks names by the characters they share, so a name cut short lost to a shorter neighbour
that shares more of its letters (`gradient_clip_algo`: gradient_clip_val, not
gradient_clip_algorithm). Among the names difflib finds close, one that holds the typed name is
the one meant; one held in it is not preferred (`muon_shrt` meant muon_short, not muon), difflib's
first is.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def nearest_name(typed: str, names: Iterable[str]) -> str | None:
    """The name of `names` that `typed` most likely meant; None where none is close."""
    candidates = list(names)
    close = difflib.get_close_matches(typed, candidates, n=max(1, len(candidates)))
    return next((name for name in close if typed in name), close[0] if close else None)


def did_you_mean(near: str | None, parent: str = "", sign: str = "", why: str = "", below: str = "") -> str:
    """An error's ` (did you mean parent.near?)` for `near`, the name nearest_name found under
    `parent` (a setting's group, a module), `sign` before it (`~` for a removal), `why` after it,
    `below` the rest of the key typed under a misspelt group (`lr` of `optimzer.lr`); empty for none."""
    if not near:
        return ""
    named = f"{parent + '.' if parent else ''}{near}{'.' + below if below else ''}"
    return f" (did you mean {sign}{named}?{' ' + why if why else ''})"
