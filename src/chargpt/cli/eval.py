"""chargpt-eval: full-split loss and bits per character of a checkpoint, as one JSON line."""

from __future__ import annotations

import json

import hydra
from hydra.utils import instantiate
from omegaconf import DictConfig

from chargpt.checkpoints import read_checkpoint, resolve_checkpoint
from chargpt.cli.common import CONFIG_PATH, cli_task, pick_device, quiet_known_warnings, run_main
from chargpt.errors import ConfigError, exit_on_user_error
from chargpt.inference import evaluate, model_from_checkpoint

SPLITS = ("val", "train", "all")


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="eval")
@cli_task
@exit_on_user_error
def _hydra_main(cfg: DictConfig) -> None:
    quiet_known_warnings()
    if not cfg.ckpt_path:
        raise ConfigError("ckpt_path is required: chargpt-eval ckpt_path=RUN_DIR_OR_CKPT_FILE")
    if cfg.split not in SPLITS:
        raise ConfigError(f"split={cfg.split!r} is not one of {', '.join(SPLITS)}")
    file = resolve_checkpoint(cfg.ckpt_path)
    trained = model_from_checkpoint(read_checkpoint(file), str(file))
    trained.model.to(pick_device(cfg.device))
    # The checkpoint's vocabulary encodes the text; characters it never saw are an error.
    datamodule = instantiate(
        cfg.data, block_size=trained.model.block_size, vocab=trained.tokenizer.to_list()
    )
    datamodule.setup("validate")
    ids = {"val": datamodule.val_ids, "train": datamodule.train_ids, "all": datamodule.ids}[cfg.split]
    result = evaluate(trained.model, ids, cfg.batch_size)
    print(json.dumps({
        f"{cfg.split}_loss": round(result["loss"], 5),
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
