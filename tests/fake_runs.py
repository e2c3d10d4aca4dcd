"""A run folder as training leaves it, written without training: for the report's tests."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from chargpt import file_locks
from chargpt.run_layout import LOCK_FILE


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


@contextlib.contextmanager
def lock_held(run: Path) -> Iterator[None]:
    """`run`'s folder locked by this process, as its run holds it for as long as it trains
    (runs/claims.py): a status.json "running" that names a live process is then believed."""
    fd = os.open(run / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if file_locks.LOCKING:
            file_locks.lock(fd, wait=False)
        yield
    finally:
        os.close(fd)
