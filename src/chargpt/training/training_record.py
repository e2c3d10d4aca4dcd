"""What a checkpoint records of the training behind its weights, for their model card: when the
run started training and when these weights were saved (UTC), the command that launched it (and
each resume's), and the model it was fine-tuned from.

Plain strings, lists and dicts only: checkpoints are read with weights-only unpickling. The
commands are kept as typed, local paths included (a checkpoint stays on its machine); the card
that is published names files only (model_card.card_command).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from chargpt.hydra_run import task_overrides
from chargpt.overrides import as_typed

PROGRAM = "chargpt-train"


def utc_now() -> str:
    """This moment as an ISO 8601 UTC time to the second (2026-12-05T14:03:22Z)."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def this_launch() -> list[str]:
    """The command that launched this process's run, as typed (a sweep's job: its own overrides,
    the single run that trains it again)."""
    return [PROGRAM, *(as_typed(o) for o in task_overrides())]


@dataclass
class TrainingRecord:
    command: list[str] | None = None  # the first launch's (None: a resume of a run that did not record it)
    fine_tuned_from: dict[str, Any] | None = None  # the model card of init_from's model
    started: str | None = None  # when the first launch began training
    resumes: list[list[str]] = field(default_factory=list)  # the later launches' commands

    @classmethod
    def for_this_launch(cls, fine_tuned_from: dict[str, Any] | None = None) -> TrainingRecord:
        return cls(command=this_launch(), fine_tuned_from=fine_tuned_from)

    def resumed_from(self, stored: dict[str, Any]) -> TrainingRecord:
        """This launch as a resume of the run whose checkpoint recorded `stored` (empty when it
        recorded nothing: what it began with is then unknown, not this launch's)."""
        command = stored.get("command")
        resumes = [list(c) for c in stored.get("resumes") or [] if isinstance(c, list)]
        return TrainingRecord(
            command=list(command) if isinstance(command, list) else None,
            fine_tuned_from=stored.get("fine_tuned_from") if isinstance(stored.get("fine_tuned_from"), dict)
            else None,
            started=stored.get("started") if isinstance(stored.get("started"), str) else None,
            resumes=[*resumes, self.command] if self.command else resumes,
        )

    def begin(self, resumed: bool) -> None:
        """Training starts now: the start of the run, unless it is a resume (whose start, recorded
        or not, was earlier)."""
        if not resumed and self.started is None:
            self.started = utc_now()

    def saved(self) -> dict[str, Any]:
        """The record a checkpoint written now holds: these weights' training ended now."""
        return {"started": self.started, "ended": utc_now(), "command": self.command,
                "resumes": self.resumes, "fine_tuned_from": self.fine_tuned_from}

