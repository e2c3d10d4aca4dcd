"""A loss is measured on a text, and losses on two texts do not compare (an easier text scores
lower whatever the model): the best is picked only among results on the same text. chargpt-eval
-m's table marks it so, and chargpt-report's settings' table compares each setting with it;
chargpt-report ranks its runs and settings within each text."""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence


def best_of_each_text(
    values: Sequence[float | None], texts: Sequence[Hashable], higher_is_better: bool = False
) -> dict[Hashable, int]:
    """For each text that has a best, the index of its best value: a text that two or more results
    with a value share, or the only text there is (one result alone on its text, beside others on
    other texts, is compared with none)."""
    scored = [i for i, value in enumerate(values) if value is not None and not math.isnan(value)]
    by_text: dict[Hashable, list[int]] = {}
    for i in scored:
        by_text.setdefault(texts[i], []).append(i)
    sign = -1 if higher_is_better else 1
    return {text: min(rows, key=lambda i: sign * values[i])  # type: ignore[operator]
            for text, rows in by_text.items() if len(rows) > 1 or len(set(texts)) == 1}


def each_text_together(texts: Sequence[Hashable]) -> list[int]:
    """The indices of results ranked best first (`texts`: the text of each), reordered so that each
    text's results come together, still ranked within it, the texts in the order of their best: one
    ranking across texts reads as if their losses compared."""
    by_text: dict[Hashable, list[int]] = {}
    for i, text in enumerate(texts):
        by_text.setdefault(text, []).append(i)
    return [i for rows in by_text.values() for i in rows]


def text_ends(texts: Sequence[Hashable]) -> set[int]:
    """The indices of results (each_text_together's order) after which the next text's begin."""
    return {i for i in range(len(texts) - 1) if texts[i] != texts[i + 1]}
