"""model=auto's choice: what the budget buys with one shape (an Estimate), the rule's result and
why (a Choice), and its record: `Choice.summary` is what the checkpoint and budget.json keep,
`from_record` what a resumed run reads back (no new calibration)."""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from chargpt import shell_words
from chargpt.training.auto_size.ladder import Shape, non_embedding_params, target_tokens_per_param


@dataclass
class Estimate:
    """What the budget buys with one shape at its measured speed."""

    shape: Shape
    step_ms: float
    steps: int
    tokens_per_param: float
    epochs: float

    def row(self) -> dict[str, Any]:
        return {
            "shape": self.shape.name, **asdict(self.shape),
            "non_embedding_params": non_embedding_params(self.shape),
            "step_ms": round(self.step_ms, 2), "steps": self.steps,
            "tokens_per_param": round(self.tokens_per_param, 3), "epochs": round(self.epochs, 2),
        }


@dataclass
class Choice:
    """The rule's result and why."""

    shape: Shape
    dropout: float
    adamw_lr: float
    weight_decay: float
    measured: list[Estimate]
    target: float
    reason: str
    calibration_seconds: float = 0.0
    overrides: list[str] = field(default_factory=list)  # filled in by apply_choice
    momentum: float | None = None  # Muon's; None: the config's (an older record, or no Muon)
    planned: Estimate | None = None  # what the rates were set for (set by `settle` and `from_record`)
    dropout_timing: Estimate | None = None  # the chosen shape timed again with the rule's dropout

    def summary(self) -> dict[str, Any]:
        chosen = self.planned
        assert chosen is not None
        return {
            "chosen": {**chosen.row(), "dropout": self.dropout, "adamw_lr": self.adamw_lr,
                       "weight_decay": self.weight_decay, "momentum": self.momentum},
            "timed_with_dropout": self.dropout_timing.row() if self.dropout_timing else None,
            "reason": self.reason,
            "target_tokens_per_param": round(self.target, 3),
            "candidates": [e.row() for e in self.measured],
            "calibration_seconds": round(self.calibration_seconds, 2),
            "rerun_with": shell_words.join(self.overrides) if self.overrides else None,
            "rerun_words": list(self.overrides) if self.overrides else None,  # read by rerun_words
        }


def rerun_words(record: Mapping[str, Any]) -> list[str]:
    """The words of a choice record's `rerun_with` command. Read from its list: the command quotes a
    control character as `$'...'`, which `shlex` cannot read back. A record from before the list
    has a command `shlex` quoted, and reads back with it."""
    if isinstance(words := record.get("rerun_words"), list):
        return [str(word) for word in words]
    return shlex.split(record.get("rerun_with") or "")


# The reason of a choice read back from its record starts with this.
KEPT = "kept from the checkpoint"


def from_record(record: dict[str, Any]) -> Choice:
    """The choice a checkpoint recorded (a resumed run keeps it: no new calibration)."""
    chosen, reason = record["chosen"], str(record.get("reason", "n/a"))
    planned = _estimate_from_row(chosen)
    measured = [_estimate_from_row(r) for r in record.get("candidates", [])] or [planned]
    timed = record.get("timed_with_dropout")
    return Choice(
        planned.shape, float(chosen["dropout"]), float(chosen["adamw_lr"]),
        float(chosen.get("weight_decay", 0.0)),  # recorded since the weight decay rule
        measured,
        float(record.get("target_tokens_per_param", target_tokens_per_param())),
        reason if reason.startswith(KEPT) else f"{KEPT} (first run: {reason})",
        float(record.get("calibration_seconds", 0.0)),
        momentum=None if chosen.get("momentum") is None else float(chosen["momentum"]),  # since the rule
        planned=planned,
        dropout_timing=_estimate_from_row(timed) if isinstance(timed, dict) else None,
    )


def _estimate_from_row(row: Mapping[str, Any]) -> Estimate:
    shape = Shape(*(int(row[k]) for k in ("n_layer", "n_embd", "n_head", "block_size", "batch_size")))
    return Estimate(
        shape, float(row["step_ms"]), int(row["steps"]), float(row["tokens_per_param"]), float(row["epochs"])
    )
