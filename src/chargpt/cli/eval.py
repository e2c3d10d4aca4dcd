"""chargpt-eval: full-split loss and bits per character of a checkpoint, as one JSON line.

By default it scores the text the checkpoint was trained on, split as that run split it; another
text only when asked for (data.path=FILE, or data=tinyshakespeare).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import hydra
import numpy as np
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.utils import instantiate
from omegaconf import DictConfig

from chargpt.checkpoints import read_checkpoint, resolve_checkpoint, stored_corpus, stored_split
from chargpt.cli.common import CONFIG_PATH, cli_task, pick_device, quiet_known_warnings, run_main
from chargpt.data.corpus import sha256_of
from chargpt.errors import ConfigError, DataError, exit_on_user_error
from chargpt.inference import evaluate, model_from_checkpoint

SPLITS = ("val", "train", "all")
# Settings chargpt-eval does not use (the model comes from the checkpoint; scoring draws no random
# numbers): passing one would silently do nothing, so it is refused with what to do instead.
UNUSED = {
    "model": "the model and its context length come from the checkpoint",
    "data.block_size": "the context length comes from the checkpoint",
    "data.batch_size": "the evaluation batch is batch_size=N",
    "data.val_batch_size": "the evaluation batch is batch_size=N",
    "data.num_workers": "the evaluation reads the text in this process",
    "data.seed": "the evaluation draws no random numbers",
    "seed": "the evaluation draws no random numbers",
}


def overridden_keys() -> dict[str, str]:
    """The keys (and groups) set on the command line, each with the override as typed."""
    typed = list(HydraConfig.get().overrides.task)
    parsed = OverridesParser.create().parse_overrides(typed)
    return {o.key_or_group: text for o, text in zip(parsed, typed, strict=True)}


def refuse_unused(overrides: dict[str, str]) -> None:
    for key, typed in overrides.items():
        for unused, why in UNUSED.items():
            if key == unused or key.startswith(unused + "."):
                raise ConfigError(f"{typed} does nothing in chargpt-eval ({why}); drop it")


def recorded_data(ckpt: dict[str, Any], source: str, overrides: dict[str, str]) -> dict[str, Any]:
    """The data settings of the run that wrote `ckpt`: its corpus, checked unchanged, and its split."""
    corpus = stored_corpus(ckpt) or {}
    how = "pass the text to evaluate as data.path=FILE"
    if not corpus.get("path"):
        raise DataError(f"{source} does not record the text it was trained on; {how}")
    path = Path(str(corpus["path"]))
    if not path.is_file():
        raise DataError(f"{source} was trained on {path}, which is no longer there; {how}")
    recorded_sha = corpus.get("sha256")
    if recorded_sha and (sha := sha256_of(path)) != recorded_sha:
        raise DataError(
            f"{path} has changed since {source} was trained on it (sha256 {sha[:12]}, then "
            f"{str(recorded_sha)[:12]}); {how} (data.path={path} scores it as it is now)"
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


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="eval")
@cli_task
@exit_on_user_error
def _hydra_main(cfg: DictConfig) -> None:
    quiet_known_warnings()
    overrides = overridden_keys()
    refuse_unused(overrides)
    if not cfg.ckpt_path:
        raise ConfigError("ckpt_path is required: chargpt-eval ckpt_path=RUN_DIR_OR_CKPT_FILE")
    if cfg.split not in SPLITS:
        raise ConfigError(f"split={cfg.split!r} is not one of {', '.join(SPLITS)}")
    file = resolve_checkpoint(cfg.ckpt_path)
    ckpt = read_checkpoint(file)
    trained = model_from_checkpoint(ckpt, str(file))
    trained.model.to(pick_device(cfg.device))
    if cfg.data.path:
        data: dict[str, Any] = {}  # another text, asked for by name
    else:
        data = recorded_data(ckpt, str(file), overrides)
        if cfg.split != "all" and "train_fraction" not in data and "data.train_fraction" not in overrides:
            print(
                f"note: {file} does not record how its text was split; splitting at "
                f"data.train_fraction={cfg.data.train_fraction}", file=sys.stderr,
            )
    # The checkpoint's vocabulary encodes the text; characters it never saw are an error.
    datamodule = instantiate(
        cfg.data, **data, block_size=trained.model.block_size, vocab=trained.tokenizer.to_list()
    )
    ids = split_ids(datamodule.encoded().ids, cfg.split, datamodule.train_fraction, str(datamodule.path))
    result = evaluate(trained.model, ids, cfg.batch_size)
    print(json.dumps({
        "loss": round(result["loss"], 5),
        "bpc": round(result["bpc"], 5),
        "tokens": result["tokens"],
        "split": cfg.split,
        "data": str(datamodule.path),
        "checkpoint": str(file),
    }))


def main() -> None:
    run_main(_hydra_main)


if __name__ == "__main__":
    main()
