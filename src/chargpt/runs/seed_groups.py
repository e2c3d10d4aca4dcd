"""chargpt-report's table of settings: runs that differ only in `seed` are one setting measured
several times, so they are grouped, their figures given as mean ± std over the seeds, and each
setting compared with the best one (group_runs says the rule)."""

from __future__ import annotations

import math
from typing import Any

from chargpt.runs.report_figures import GROUP_METRICS, HIGHER_IS_BETTER, PER_TEXT
from chargpt.runs.run_rows import SEED, TEXT, TEXT_SETTINGS, given_value, natural_order
from chargpt.runs.same_text import best_of_each_text, each_text_together

UNKNOWN_TEXT = "unknown (no saved config)"  # text_labels' of a run without .hydra/config.yaml
BEST, NOISE, NO_SPREAD, APART = "best", "≈ noise", "≈ n=1", "apart"  # vs_best: a setting against the best


def _stats(values: list[float]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (n-1: the seeds are a sample); None where undefined."""
    if not values:
        return None, None
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, None
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _as_compared(value: str) -> tuple[str, Any]:
    try:
        return ("number", float(value))
    except ValueError:
        return ("text", value)


def setting_of(overrides: dict[str, str]) -> tuple[tuple[str, Any], ...]:
    """What a run's overrides set, `seed` left out: equal for the runs of one setting, in any order
    on the command line, and with 1e-3 typed as a sweep records it (0.001)."""
    return tuple(sorted((k, _as_compared(v)) for k, v in overrides.items() if k != SEED))


def group_runs(rows: list[dict[str, Any]], metric: str = "best_val_loss") -> list[dict[str, Any]]:
    """One row per setting: runs whose overrides are the same once `seed` is left out, trained on
    the same text (run_rows.validation_text).

    Each figure is the mean and sample std over the group's seeds with a finished run (n of them;
    failed, interrupted and incomplete runs stopped early and are left out). Runs of one seed are
    one measurement, repeated (on a CPU, a copy of it): their mean counts once, and the seeds
    column shows the repeats (`3×2`). Groups are ranked by the mean
    of `metric`, best first, and each is compared with the best one: `≈ noise` when the means are
    closer than the sum of the two stds (the difference is smaller than the seeds' spread), `≈ n=1`
    when either has a single seed (no spread known, so it cannot be told apart), `apart` otherwise.
    A loss is compared only with the best of the settings trained on the same text (several texts in
    one sweep: `data.path=choice(a.txt, b.txt)`), and ranked among those (each text's settings
    together, the texts in the order of their best); a setting alone on its text is compared with none.
    """
    groups: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in rows:
        settings = {k: v for k, v in row["overrides"].items() if k != SEED}
        # Runs of the same settings on two texts (two launches from configs naming other files) are
        # two settings: their losses averaged as one measured neither.
        key = (setting_of(row["overrides"]), row.get("text"))
        group = groups.setdefault(key, {"settings": settings, "runs": []})
        group["runs"].append(row)
    result = []
    for group in groups.values():
        by_seed: dict[tuple[str, int], list[dict[str, Any]]] = {}
        for i, r in enumerate(group["runs"]):
            by_seed.setdefault(_seed_key(r, i), []).append(r)
        seeds = sorted(by_seed, key=lambda key: (natural_order(key[0]), key[1]))
        finished = [[r for r in by_seed[s] if r["status"] == "finished"] for s in seeds]
        out: dict[str, Any] = {
            "settings": group["settings"],
            "text": group["runs"][0].get("text"),
            "seeds": ",".join(_seed_label(s, len(by_seed[s])) for s in seeds),
            "runs": len(group["runs"]),
            "n": sum(any(_finite(r.get(metric)) for r in runs) for runs in finished),
            "seed_count": len(seeds),  # on screen: n of these, "2/3"
        }
        for column in GROUP_METRICS:
            out[f"{column}_mean"], out[f"{column}_std"] = _stats(_per_seed(finished, column))
        result.append(out)
    higher_is_better = metric in HIGHER_IS_BETTER
    key = f"{metric}_mean"

    def rank(group: dict[str, Any]) -> tuple[bool, float]:
        mean = group[key]
        return (mean is None, 0.0 if mean is None else (-mean if higher_is_better else mean))

    result.sort(key=rank)
    # A loss compares only with one on the same text: each setting ranked among, and compared with
    # the best of, those of its text.
    texts = [group["text"] if metric in PER_TEXT else None for group in result]
    order = each_text_together(texts)
    result, texts = [result[i] for i in order], [texts[i] for i in order]
    best_of = best_of_each_text([group[key] for group in result], texts, higher_is_better)
    for group, text in zip(result, texts, strict=True):
        best = result[best_of[text]] if text in best_of else None
        group["vs_best"] = None if best is None else _versus(group, best, metric)
        group["delta"] = None if best is None or group[key] is None else group[key] - best[key]
    return result


def several_texts(groups: list[dict[str, Any]], metric: str) -> bool:
    """Whether the settings were compared text by text (best_of_each_text): trained on several."""
    return metric in PER_TEXT and len({group["text"] for group in groups}) > 1


def _seed_key(row: dict[str, Any], index: int) -> tuple[str, int]:
    """The run's seed as a number is written (`01` is 1), or, unknown, its own: ("-", its index)."""
    seed = row["overrides"].get(SEED) or row.get("recorded_seed")
    if seed is None or seed == "":
        return "-", index
    try:
        return str(int(seed)), -1
    except ValueError:
        return str(seed), -1


def _seed_label(key: tuple[str, int], repeats: int) -> str:
    return key[0] + (f"×{repeats}" if repeats > 1 else "")


def _per_seed(finished: list[list[dict[str, Any]]], column: str) -> list[float]:
    """Each seed's figure (its finished runs in `finished`): the mean of its repeats, if any."""
    means = (_stats([r[column] for r in runs if _finite(r.get(column))])[0] for runs in finished)
    return [m for m in means if m is not None]


def _versus(group: dict[str, Any], best: dict[str, Any], metric: str) -> str | None:
    mean, std = group[f"{metric}_mean"], group[f"{metric}_std"]
    if mean is None:
        return None  # no finished run: nothing to compare
    if group is best:
        return BEST
    if std is None or best[f"{metric}_std"] is None:
        return NO_SPREAD
    if abs(mean - best[f"{metric}_mean"]) < std + best[f"{metric}_std"]:
        return NOISE
    return APART


def group_columns(groups: list[dict[str, Any]]) -> list[str]:
    keys: list[str] = []
    for group in groups:
        keys += [k for k in group["settings"] if k not in keys]
    if text_labels([group["settings"] for group in groups], [group["text"] for group in groups]):
        keys.insert(0, TEXT)  # first: the last left out of a narrow table (it alone tells these apart)
    figures = [f"{c}_{s}" for c in GROUP_METRICS for s in ("mean", "std")]
    return [*keys, "seeds", "runs", "n", "seed_count", *figures, "delta", "vs_best"]


def flat_groups(groups: list[dict[str, Any]]) -> tuple[list[str], list[dict[str, Any]]]:
    """The CSV's rows: one column per setting (and TEXT where text_labels gives it), then the seeds,
    counts and figures."""
    columns = group_columns(groups)
    settings = [c for c in columns[: columns.index("seeds")] if c != TEXT]
    figures = columns[columns.index("seeds"):]
    texts = text_labels([g["settings"] for g in groups], [g["text"] for g in groups]) or [None] * len(groups)
    return columns, [{**{c: given_value(g["settings"], c) for c in settings},
                      **({TEXT: text} if TEXT in columns else {}), **{c: g[c] for c in figures}}
                     for g, text in zip(groups, texts, strict=True)]


def text_labels(settings: list[dict[str, str]], texts: list[Any]) -> list[str] | None:
    """Each row's text (run_rows.validation_text's), as the data settings that tell the rows' texts
    apart (`data.path=b.txt`), where two rows of the same `settings` (`seed` left out) were trained
    on different texts: their settings alone read as one setting. None where the settings tell the
    texts apart (a sweep of `data.path=choice(...)`), or all rows share one text."""
    told = text_settings(settings, texts)
    if told is None:
        return None
    return [" ".join(f"{key}={value}" for key, value in text.items()) or UNKNOWN_TEXT for text in told]


def text_settings(settings: list[dict[str, str]], texts: list[Any]) -> list[dict[str, str]] | None:
    """text_labels' data settings of each row, {"data.path": "b.txt"}; {} where not known."""
    texts_of: dict[tuple[tuple[str, Any], ...], set[Any]] = {}
    for overrides, text in zip(settings, texts, strict=True):
        texts_of.setdefault(setting_of(overrides), set()).add(text)
    if all(len(alike) == 1 for alike in texts_of.values()):
        return None
    # A run with no saved config (hydra.output_subdir=null, or deleted) has no data settings known.
    known = [text for text in texts if text and set(text) != {"None"}]
    differing = ([i for i, _ in enumerate(TEXT_SETTINGS) if len({text[i] for text in known}) > 1]
                 or [TEXT_SETTINGS.index("path")])  # one text known, beside unknown ones: its file
    return [{f"data.{TEXT_SETTINGS[i]}": text[i] for i in differing} if text in known else {}
            for text in texts]
