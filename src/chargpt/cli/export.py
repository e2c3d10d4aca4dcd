"""chargpt-export: write a model as safetensors (no pickle) or ONNX (no PyTorch) with its config and
its model card (README.md)."""

from __future__ import annotations

if __name__ == "__main__":  # python -m chargpt.cli.export: as its console script runs it, whose
    from chargpt.cli.launch import run_as_main  # handling of a Ctrl-C covers the imports below

    run_as_main("export")

import os
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from chargpt.checks import utf8_text, yes_no
from chargpt.cli import CONFIG_PATH
from chargpt.cli.common import MODEL_FROM_CHECKPOINT, cli_task, quiet_known_warnings, run_main
from chargpt.cli.held_weights import EXPORT_HOLDS, held, held_weights_note, training_run
from chargpt.cli.sweep_jobs import job_folder, job_heading, sweep_folder_removed, whole_in_parallel_sweeps
from chargpt.errors import ConfigError, exit_on_user_error, no_checkpoint_given
from chargpt.export import check_destination, check_exportable, check_format, export_model
from chargpt.export_layout import EXPORT_FILES, README_FILE, export_folder_of
from chargpt.hydra_run import is_multirun
from chargpt.inference import load_with_checkpoint
from chargpt.model_card import card_for

CONFIG_NAME = "export"  # configs/export.yaml


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name=CONFIG_NAME)
@cli_task
@whole_in_parallel_sweeps
@exit_on_user_error
def _hydra_main(cfg: DictConfig) -> None:
    if heading := job_heading():  # a sweep's job, first: on stdout, where its `exported` line goes
        print(heading, flush=True)
    quiet_known_warnings()
    if not cfg.ckpt_path:
        raise no_checkpoint_given("chargpt-export", " out=DIR")
    check_format(cfg.format)  # before reading the model: a quick refusal
    if not cfg.out:
        raise ConfigError("out is required: the folder to write, e.g. out=exports/my_model")
    utf8_text("name", cfg.name)  # written into config.json
    # A sweep's jobs each write their own folder inside out: one out for all would be replaced by
    # each job in turn (overwrite=true), or refuse every job after the first.
    out = job_folder(Path(os.path.expanduser(str(cfg.out))))
    source = export_folder_of(str(cfg.ckpt_path))
    if source is not None and out.exists() and source.resolve() == out.resolve():
        raise ConfigError(
            f"out={out if is_multirun() else cfg.out} is the export being read (ckpt_path={cfg.ckpt_path}): "
            "writing there would replace the model it is made from; write to another folder"
        )
    check_destination(out, yes_no("overwrite", cfg.overwrite))  # before reading the model: a quick refusal
    # Asked before the checkpoint is read: a run that ends while it is read (its last weights written
    # meanwhile) read as ended, and nothing said that the export held older ones.
    training = training_run(str(cfg.ckpt_path))
    # (A `kill` unwinds the export as Ctrl-C does, run_main raising it: no staged files are left behind.)
    trained, ckpt, file = load_with_checkpoint(cfg.ckpt_path, "cpu")
    check_exportable(trained.model.config, cfg.format)
    card = card_for(cfg.ckpt_path, trained, cfg.name, ckpt)
    note = held_weights_note(training, ckpt, Path(file), card.step, EXPORT_HOLDS)
    export_model(trained, card, cfg.format, out, overwrite=cfg.overwrite)
    # What the export holds (a killed export's hidden staging folder, left by a kill -9, is not it).
    files = ", ".join(sorted(p.name for p in out.iterdir() if p.name in EXPORT_FILES | {README_FILE}))
    print(f"exported {card.name} ({held(card)}) as {cfg.format} to {out}: {files}")
    if note is not None:
        print(f"note: {note}", file=sys.stderr)


def main() -> None:
    with sweep_folder_removed() as prepare:
        run_main(_hydra_main, prepare=prepare, checkpoint_sweeps=True, config_name=CONFIG_NAME,
                 unused=MODEL_FROM_CHECKPOINT)
