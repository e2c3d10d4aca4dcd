"""Shared fixtures: a small generated corpus, an isolated cache, and in-process CLI runs."""

from __future__ import annotations

import os
import random
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

# Small enough to train in seconds; every test model uses it unless it needs Tiny Shakespeare.
TINY_MODEL = ["model.n_layer=1", "model.n_head=2", "model.n_embd=32", "model.block_size=16"]


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHARGPT_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 90 kB of pseudo-English with a 20-odd character vocabulary."""
    rng = random.Random(0)
    words = "the king queen lord of and to my thy thou art love death night day sweet fair good".split()
    lines = [
        " ".join(rng.choice(words) for _ in range(rng.randint(3, 10))).capitalize() + "."
        for _ in range(3000)
    ]
    path = tmp_path_factory.mktemp("corpus") / "tiny.txt"
    path.write_text("\n".join(lines))
    return path


@pytest.fixture(scope="session")
def shakespeare() -> Path:
    """Tiny Shakespeare from the data directory (CHARGPT_DATA_DIR, else ./data); downloaded if absent."""
    from chargpt.data.corpus import default_data_dir, resolve_corpus

    url = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
    sha = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
    return resolve_corpus(Path(default_data_dir()) / "tinyshakespeare" / "input.txt", url, sha)


def run_cli(main: Callable[[], None], *args: str) -> int:
    """Run a console-script entry point in this process; returns its exit code."""
    saved = sys.argv
    sys.argv = ["chargpt", *args]
    try:
        main()
        return 0
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else 1
    finally:
        sys.argv = saved


def train_args(corpus: Path, run_dir: Path, *extra: str) -> list[str]:
    return [
        "data=text", f"data.path={corpus}", f"hydra.run.dir={run_dir}", *TINY_MODEL,
        "trainer.max_steps=20", "trainer.val_check_interval=10", "trainer.log_every_n_steps=5",
        "scheduler.warmup_steps=2", "optimizer.lr=1e-2", "sample.max_new_tokens=20", *extra,
    ]


os.environ.setdefault("HYDRA_FULL_ERROR", "0")
