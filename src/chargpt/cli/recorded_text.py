"""The text a checkpoint was trained on, as its run recorded it: found, checked unchanged, and split
as that run split it (chargpt-eval scores it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from chargpt.checkpoints import stored_corpus, stored_split
from chargpt.data.corpus import sha256_of
from chargpt.errors import DataError


def recorded_data(
    ckpt: dict[str, Any], source: str, overrides: dict[str, str] | set[str],
    how: str = "pass the text to evaluate as data.path=FILE",
) -> dict[str, Any]:
    """The data settings of the run that wrote `ckpt`: its corpus, checked unchanged, and its split
    (unless data.train_fraction is among the `overrides`). `how` ends each error: what to pass."""
    corpus = stored_corpus(ckpt) or {}
    if not corpus.get("path"):
        raise DataError(f"{source} does not record the text it was trained on; {how}")
    path = Path(str(corpus["path"]))
    if not path.is_file():
        raise DataError(f"{source} was trained on {path}, which is no longer there; {how}")
    recorded_sha = corpus.get("sha256")
    if recorded_sha and (sha := sha256_of(path)) != recorded_sha:
        raise DataError(
            f"{path} has changed since {source} was trained on it (sha256 {sha[:12]}, then "
            f"{str(recorded_sha)[:12]}); {how} (data.path={path} takes it as it is now)"
        )
    settings: dict[str, Any] = {"path": str(path), "url": None, "sha256": None}
    fraction = stored_split(ckpt).get("train_fraction")
    if "data.train_fraction" not in overrides and isinstance(fraction, float):
        settings["train_fraction"] = fraction
    return settings


def split_ids(ids: np.ndarray, split: str, train_fraction: float, path: str) -> np.ndarray:
    """One split of the ids, cut where CharDataModule.setup cuts it."""
    cut = int(len(ids) * train_fraction)
    part = {"val": ids[cut:], "train": ids[:cut], "all": ids}[split]
    if len(part) < 2:
        raise DataError(
            f"the {split} split of {path} has {len(part)} character(s), no target to score; "
            "use split=all, a longer text or another data.train_fraction"
        )
    return part

