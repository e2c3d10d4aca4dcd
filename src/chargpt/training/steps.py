"""Where a run is in its optimizer steps: the one place that says "this is the last step".

Training is counted in optimizer steps (trainer.max_steps); a time budget may lower that count
during the run, so it is read from the trainer each time, never cached.
"""

from __future__ import annotations

import lightning as L


def is_last_step(trainer: L.Trainer, pending: int = 0) -> bool:
    """True once the run has taken its last optimizer step. `pending=1` asks it from inside a
    training step, before Lightning counts the step being taken."""
    return 0 < trainer.max_steps <= trainer.global_step + pending
