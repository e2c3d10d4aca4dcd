"""The block a model=auto run prints before training: the candidates, the choice, why, and the
command that runs it again without model=auto."""

from __future__ import annotations

from collections.abc import Sequence

from chargpt import shell_words
from chargpt.training.auto_size.choice import KEPT, Choice
from chargpt.training.auto_size.ladder import non_embedding_params


def report(choice: Choice, budget_seconds: float, train_chars: int) -> str:
    """The one block model=auto prints: candidates, the choice, why, and how to re-run it."""
    header = ("shape", "non-emb params", "ms/step", "steps", "tok/param", "epochs")
    rows = [
        (e.shape.name, f"{non_embedding_params(e.shape):,}", f"{e.step_ms:.1f}", f"{e.steps:,}",
         f"{e.tokens_per_param:.2f}", f"{e.epochs:.2f}")
        for e in choice.measured
    ]
    # Each column as wide as its widest cell: a long budget's steps and epochs run to many digits.
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]

    def line(mark: str, cells: Sequence[str]) -> str:
        return f"{mark} {cells[0]:<{widths[0]}}" + "".join(
            f" {cell:>{width}}" for cell, width in zip(cells[1:], widths[1:], strict=True)
        )

    lines = [
        f"model=auto: {budget_seconds:g} s budget, {train_chars:,} training characters; "
        f"{len(choice.measured)} shape(s) timed in {choice.calibration_seconds:.1f} s "
        + ("by the first run " if choice.reason.startswith(KEPT) else "")
        + f"(target {choice.target:.2f} tokens per non-embedding parameter)",
        line(" ", header),
        *(line("*" if e.shape == choice.shape else " ", row)
          for e, row in zip(choice.measured, rows, strict=True)),
    ]
    if (timed := choice.dropout_timing) is not None:
        lines.append(
            f"  the chosen shape with dropout: {timed.step_ms:.1f} ms/step, {timed.steps:,} steps, "
            f"{timed.epochs:.2f} epochs"
        )
    lines.append(
        f"chosen: {choice.shape.name}, dropout {choice.dropout:g}, AdamW lr {choice.adamw_lr:g}, "
        f"weight decay {choice.weight_decay:g}"
        + (f", momentum {choice.momentum:g}" if choice.momentum is not None else "")
    )
    lines.append(f"why: {choice.reason}")
    if choice.overrides:
        lines.append(f"same run without model=auto: {shell_words.join(choice.overrides)}")
    return "\n".join(lines)
