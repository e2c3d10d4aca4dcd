"""trainer=ddp_cpu: 2 processes (gloo) with batch B train like 1 process with batch 2B, and only
rank 0 writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import bare_train_args, write_corpus

SRC = Path(__file__).resolve().parents[1] / "src"


def _train(tmp_path: Path, run: Path, *extra: str) -> None:
    corpus = tmp_path / "corpus.txt"
    env = {
        **os.environ,
        "CHARGPT_CACHE_DIR": str(tmp_path / "cache"),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")])),
    }
    args = [
        a
        for a in bare_train_args(
            corpus,
            run,
            "logger=tensorboard",
            "trainer.max_steps=6",
            "trainer.val_check_interval=3",
            "model.dropout=0.0",
        )
        if not a.startswith("data.batch_size")
    ]
    result = subprocess.run(
        [sys.executable, "-m", "chargpt.cli.train", *args, *extra],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.slow
def test_two_processes_with_batch_b_match_one_with_batch_2b(tmp_path):
    write_corpus(tmp_path / "corpus.txt")
    one, two = tmp_path / "one", tmp_path / "two"
    _train(tmp_path, one, "trainer=cpu", "data.batch_size=8")
    _train(tmp_path, two, "trainer=ddp_cpu", "data.batch_size=4")

    a = torch.load(one / "checkpoints" / "last.ckpt", weights_only=True)
    b = torch.load(two / "checkpoints" / "last.ckpt", weights_only=True)
    assert a["global_step"] == b["global_step"] == 6
    for key, value in a["state_dict"].items():
        torch.testing.assert_close(b["state_dict"][key], value, rtol=1e-4, atol=1e-5)
    ma, mb = (json.loads((d / "metrics.json").read_text()) for d in (one, two))
    assert mb["val_loss"] == pytest.approx(ma["val_loss"], abs=1e-4)
    assert mb["tokens"] == ma["tokens"] == 6 * 8 * 16  # both ranks' windows are counted

    # Only rank 0 wrote: one run's event files (the logger's, the HParams summary's and how the run
    # ended), the usual checkpoints, one config, no per-rank folders.
    events = sorted(p.name for p in (two / "tensorboard").glob("events.out.tfevents.*"))
    assert len(events) == 3 and sum(e.endswith(".session_end") for e in events) == 1, events
    assert sorted(p.name for p in (two / "checkpoints").iterdir()) == ["best-000006.ckpt", "last.ckpt"]
    assert sorted(p.name for p in two.iterdir() if p.name != "train.log") == sorted(
        p.name for p in one.iterdir() if p.name != "train.log"
    )
