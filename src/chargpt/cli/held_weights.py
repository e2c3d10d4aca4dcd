"""Which weights of a run a command holds (an export, a server, a fine-tune's start): their training
step, and a note when they are not the run's trained ones: it still trains, it ended while they were
read, or it stopped before it finished."""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chargpt.files import read_json_object
from chargpt.model_card import ModelCard
from chargpt.run_layout import LAST, METRICS_FILE, last_checkpoint, run_dir_of
from chargpt.run_state import how_it_stopped, read_status, state_of


@dataclass(frozen=True)
class Holder:
    """How a command's notes name what it holds and what to do again."""
    name: str  # "this export"
    holds: str  # "holds"
    again: str  # "export again"


EXPORT_HOLDS = Holder("this export", "holds", "export again")
SERVER_HOLDS = Holder("this server", "serves", "restart the server")
FINETUNE_HOLDS = Holder("this fine-tune", "starts from", "fine-tune again")


def held(card: ModelCard) -> str:
    """Which weights are held, as chargpt-sample names them: their size and training step."""
    return f"{card.params:,} parameters" + (f", step {card.step:,}" if card.step is not None else "")


def training_run(ckpt_path: str) -> Path | None:
    """The run directory `ckpt_path` names (itself, its checkpoints/ folder, or the checkpoint it
    goes on from), when that run is training. Asked before the read: a validation writes its new
    best-<step>.ckpt, then last.ckpt, and the file read may no longer be the latest afterwards."""
    path = Path(os.path.expanduser(ckpt_path))
    run_dir = run_dir_of(path / LAST if path.is_dir() else path)
    if state_of(read_status(run_dir), run_dir) != "running":
        return None
    if path.is_dir():  # what is read from a run's folder is its latest checkpoint then
        return run_dir
    latest = last_checkpoint(run_dir)  # an earlier checkpoint picked by name: no note
    return run_dir if latest is not None and latest.resolve() == path.resolve() else None


def held_weights_note(training: Path | None, ckpt: dict[str, Any] | None, file: Path, step: int | None,
                      holder: Holder) -> str | None:
    """The note on weights read from `file`, or None when they are a run's trained ones (or an
    export's, or an earlier checkpoint picked by name)."""
    return newer_weights_note(training, ckpt, step, holder) or unfinished_run_note(file, step, holder)


def newer_weights_note(training: Path | None, ckpt: dict[str, Any] | None, step: int | None,
                       holder: Holder) -> str | None:
    """What to say of weights read from the latest checkpoint (what ckpt_path=RUN_DIR reads) of
    `training`, a run that trained as the command began (training_run): it still trains, or it ended
    while they were read, with newer ones. None for anything else (an export, a run that had ended,
    or one whose last weights these are)."""
    if training is None or ckpt is None or step is None:
        return None
    held_ = f"{holder.name} {holder.holds} its weights at step {step:,}"
    if state_of(read_status(training), training) == "running":
        return f"{training} is still training: {held_}; {holder.again} once it has ended for its last ones"
    if read_json_object(training / METRICS_FILE).get("step") == step:
        return None
    return (f"{training} ended while {holder.name} read it: {held_}, not its last ones; "
            f"{holder.again} for them")


def unfinished_run_note(file: Path, step: int | None, holder: Holder) -> str | None:
    """What to say of weights read from `file`, a checkpoint of a run that stopped before it finished
    (Ctrl-C or a signal, kill -9, an error): they are those it had then, not its whole training's.
    None for anything else (an export, a run that finished or still trains)."""
    run_dir = run_dir_of(file)
    if (how := how_it_stopped(run_dir)) is None:
        return None
    at = f" at step {step:,}" if step is not None else ""
    return (f"{run_dir} {how} before it finished: {holder.name} {holder.holds} its weights{at}; "
            f"resume it (its chargpt-train command with {shlex.quote(f'ckpt_path={run_dir}')}) and "
            f"{holder.again} for a trained model")
