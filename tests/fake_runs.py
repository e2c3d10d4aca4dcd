"""A run folder as training leaves it, written without training: for the report's tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml


def fake_run(
    sweep: Path, name: str, overrides: list[str], metrics: dict[str, Any] | None = None,
    status: dict[str, Any] | None = None,
) -> Path:
    """`sweep/name` with its .hydra/overrides.yaml (as Hydra writes it: any text, an emoji or a
    comma, read back as given), and its metrics.json and status.json where given; returns it."""
    run = sweep / name
    (run / ".hydra").mkdir(parents=True)
    recorded = yaml.safe_dump(overrides, allow_unicode=True, default_flow_style=False)
    (run / ".hydra" / "overrides.yaml").write_text(recorded, encoding="utf-8")
    if metrics is not None:
        (run / "metrics.json").write_text(json.dumps(metrics))
    if status is not None:
        (run / "status.json").write_text(json.dumps(status))
    return run
