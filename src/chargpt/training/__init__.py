"""From a config to a trained model: the LightningModule (CharLM), its optimizers and schedules, the
run built and checked (build.py), model=auto (auto_size/) and the callbacks (callbacks/)."""

from __future__ import annotations

from typing import Any

__all__ = ["CharLM"]


def __getattr__(name: str) -> Any:
    # CharLM imports Lightning (seconds on a 2-core CPU): loaded when asked for, so that commands that
    # train nothing can use this package's Lightning-free modules (chargpt-eval: its precision names).
    if name == "CharLM":
        from chargpt.training.module import CharLM

        return CharLM
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
