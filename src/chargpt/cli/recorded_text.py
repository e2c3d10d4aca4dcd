"""The text a checkpoint was trained on, as its run recorded it: found, checked unchanged, and split
as that run split it (chargpt-eval scores it; chargpt-sample check_copy=true compares samples
with its training part)."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import numpy as np

from chargpt.checkpoints import stored_corpus, stored_split
from chargpt.data.corpus import sha256_of
from chargpt.data.sources import expand_path
from chargpt.errors import ConfigError, DataError


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
            f"{str(recorded_sha)[:12]}); {how} ({shlex.quote(f'data.path={path}')} takes it as it is now)"
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


# Training's own default, for a text whose run recorded no split.
DEFAULT_TRAIN_FRACTION = 0.9


def training_text(
    ckpt: dict[str, Any] | None, source: str, path: str | None, train_fraction: float | None
) -> tuple[str, Path]:
    """The training part of the text a model learned from, and its file: the text the checkpoint
    records (checked unchanged), or `path` when given; cut at `train_fraction`, else at the
    checkpoint's recorded split, else at training's default 0.9. `ckpt` is None for a model
    without a checkpoint (an export), which needs `path`."""
    how = "pass the training text as data.path=FILE"
    if path:
        file = Path(expand_path(path))
    elif ckpt is None:
        raise DataError(f"{source} is an export, which does not record the text it was trained on; {how}")
    else:
        file = Path(recorded_data(ckpt, source, set(), how)["path"])
    if train_fraction is None:
        recorded = stored_split(ckpt).get("train_fraction") if ckpt is not None else None
        train_fraction = recorded if isinstance(recorded, float) else DEFAULT_TRAIN_FRACTION
    if isinstance(train_fraction, bool) or not isinstance(train_fraction, (int, float)) \
            or not 0.0 < train_fraction <= 1.0:
        raise ConfigError(f"data.train_fraction={train_fraction} must be above 0 and at most 1 (1: the "
                          "whole text), e.g. 0.9")
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        reason = getattr(err, "strerror", None) or str(err)
        raise DataError(f"cannot read {file} ({reason}); {how} (a UTF-8 text file)") from None
    # One plain file encodes one id per character, so the characters cut where training cut the ids.
    return text[: int(len(text) * train_fraction)], file
