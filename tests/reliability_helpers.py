"""Shared by the reliability tests: a small generated corpus, and the CLIs called in-process."""

from __future__ import annotations

import os
import random
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from chargpt.training import CharLM

TINY_MODEL = ["model.n_layer=1", "model.n_embd=32", "model.n_head=2", "model.block_size=16"]


def write_corpus(path: Path, n_chars: int = 4000, seed: int = 0, alphabet: str = "abcdefgh ijk\n") -> Path:
    rng = random.Random(seed)
    path.write_text("".join(rng.choice(alphabet) for _ in range(n_chars)), encoding="utf-8")
    return path


def train_args(corpus: Path, run_dir: Path | None, *extra: str) -> list[str]:
    args = [
        "data=text",
        f"data.path={corpus}",
        "data.batch_size=4",
        "data.val_batch_size=32",
        *TINY_MODEL,
        "trainer.enable_model_summary=false",
        "~callbacks.progress_bar",
        "logger=none",
        "sample.max_new_tokens=0",
        "trainer.log_every_n_steps=1",
    ]
    if run_dir is not None:
        args.append(f"hydra.run.dir={run_dir}")
    return [*args, *extra]


def run_main(
    main: Callable[[], None], argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> tuple[int, str, str]:
    """Run a CLI entry point as `prog *argv` in this process: (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["chargpt", *argv])
    code = 0
    try:
        main()
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


class StepHook:
    """Wraps CharLM.training_step: records (step, loss) and can act at a given step."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.losses: list[tuple[int, float]] = []
        self.actions: dict[int, Callable[[CharLM], None]] = {}
        original = CharLM.training_step

        def training_step(module: CharLM, batch, batch_idx):  # type: ignore[no-untyped-def]
            step = module.trainer.global_step + 1
            if step in self.actions:
                self.actions.pop(step)(module)
            loss = original(module, batch, batch_idx)
            self.losses.append((step, loss.item()))
            return loss

        monkeypatch.setattr(CharLM, "training_step", training_step)

    def take(self) -> list[tuple[int, float]]:
        losses, self.losses = self.losses, []
        return losses

    def send_signal_at(self, step: int, signum: int = signal.SIGINT) -> None:
        self.actions[step] = lambda module: os.kill(os.getpid(), signum)


def make_checkpoint(path: Path, chars: str = "\n abcdefghijk") -> Path:
    """A minimal chargpt checkpoint (untrained weights), written without training."""
    import torch

    from chargpt.model import ModelConfig, build_model

    config = ModelConfig(n_layer=1, n_embd=32, n_head=2, block_size=16)
    vocab = sorted(set(chars))
    model = build_model(config, len(vocab))
    torch.save(
        {
            "hyper_parameters": {"model": config.to_dict(), "vocab": vocab},
            "state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
        },
        path,
    )
    return path
