"""chargpt-export: write a model as safetensors (no pickle) or ONNX (no PyTorch) with its config and
its model card (README.md)."""

from __future__ import annotations

if __name__ == "__main__":  # python -m chargpt.cli.export: as its console script runs it, whose
    from chargpt.cli.launch import run_as_main  # handling of a Ctrl-C covers the imports below

    run_as_main("export")

import sys
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

from chargpt.checks import utf8_text, yes_no
from chargpt.cli import CONFIG_PATH
from chargpt.cli.common import MODEL_FROM_CHECKPOINT, cli_task, quiet_known_warnings, run_main
from chargpt.errors import ConfigError, exit_on_user_error
from chargpt.export import check_destination, check_exportable, export_model
from chargpt.export_layout import EXPORT_FILES, README_FILE, WEIGHTS, export_folder_of
from chargpt.inference import load_with_checkpoint
from chargpt.model_card import ModelCard, card_for
from chargpt.run_layout import last_checkpoint, read_status, run_dir_of, state_of

CONFIG_NAME = "export"  # configs/export.yaml


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name=CONFIG_NAME)
@cli_task
@exit_on_user_error
def _hydra_main(cfg: DictConfig) -> None:
    quiet_known_warnings()
    if not cfg.ckpt_path:
        raise ConfigError("ckpt_path is required: chargpt-export ckpt_path=RUN_DIR_OR_CKPT out=DIR")
    if cfg.format not in WEIGHTS:
        raise ConfigError(f"format={cfg.format!r} is not one of {', '.join(WEIGHTS)}")
    if not cfg.out:
        raise ConfigError("out is required: the folder to write, e.g. out=exports/my_model")
    utf8_text("name", cfg.name)  # written into config.json
    out = Path(str(cfg.out)).expanduser()
    source = export_folder_of(str(cfg.ckpt_path))
    if source is not None and out.exists() and source.resolve() == out.resolve():
        raise ConfigError(
            f"out={cfg.out} is the export being read (ckpt_path={cfg.ckpt_path}): writing there would "
            "replace the model it is made from; write to another folder"
        )
    check_destination(out, yes_no("overwrite", cfg.overwrite))  # before reading the model: a quick refusal
    # (A `kill` unwinds the export as Ctrl-C does, run_main raising it: no staged files are left behind.)
    trained, ckpt, file = load_with_checkpoint(cfg.ckpt_path, "cpu")
    check_exportable(trained.model.config, cfg.format)
    card = card_for(cfg.ckpt_path, trained, cfg.name, ckpt)
    training = still_training(ckpt, Path(file))
    del ckpt  # its optimizer states: not kept while exporting
    export_model(trained, card, cfg.format, out, overwrite=cfg.overwrite)
    # What the export holds (a killed export's hidden staging folder, left by a kill -9, is not it).
    files = ", ".join(sorted(p.name for p in out.iterdir() if p.name in EXPORT_FILES | {README_FILE}))
    print(f"exported {card.name} ({held(card)}) as {cfg.format} to {out}: {files}")
    if training is not None and card.step is not None:
        print(f"note: {training} is still training: this export holds its weights at step {card.step:,}; "
              "export again once it has ended for its last ones", file=sys.stderr)


def still_training(ckpt: dict[str, Any] | None, file: Path) -> Path | None:
    """The run directory whose latest checkpoint `file` is (what ckpt_path=RUN_DIR reads), when that
    run is still training and so writes newer weights; None for anything else (an export, an
    earlier checkpoint picked by name, a run that has ended)."""
    if ckpt is None:
        return None
    run_dir = run_dir_of(file)
    latest = last_checkpoint(run_dir)
    if latest is None or latest.resolve() != file.resolve() or state_of(read_status(run_dir)) != "running":
        return None
    return run_dir


def held(card: ModelCard) -> str:
    """Which weights were exported, as chargpt-sample names them: their size and training step."""
    return f"{card.params:,} parameters" + (f", step {card.step:,}" if card.step is not None else "")


def main() -> None:
    run_main(_hydra_main, config_name=CONFIG_NAME, unused=MODEL_FROM_CHECKPOINT)
