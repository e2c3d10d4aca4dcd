"""A loss is measured on a text, and losses on two texts do not compare (an easier text scores
lower whatever the model): the best is picked only among results on the same text. chargpt-eval
-m's table marks it so, and chargpt-report's settings' table compares each setting with it."""

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
