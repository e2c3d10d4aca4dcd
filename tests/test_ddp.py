"""trainer=ddp_cpu: 2 processes (gloo) with batch B train like 1 process with batch 2B, and only
rank 0 writes."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
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


def _child_processes(pid: int) -> list[int]:
    """The processes `pid` started (Linux's /proc: each process's stat names its parent)."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError):
            # (pid (comm) state ppid ...: comm may hold spaces and parentheses, so read after its last ')')
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                children.append(int(stat.parent.name))
    return children


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds the second process through /proc")
def test_a_ctrl_c_sent_to_the_second_process_alone_stops_the_run_as_a_ctrl_c(tmp_path) -> None:
    # Rank 0 said "stopped by SIGTERM" and exited 143: the ranks agreed to stop, not on the signal.
    write_corpus(tmp_path / "corpus.txt")
    run = tmp_path / "run"
    args = bare_train_args(tmp_path / "corpus.txt", run, "trainer=ddp_cpu", "trainer.max_steps=1000000",
                           "trainer.val_check_interval=5")
    args = [a for a in args if not a.startswith("data.batch_size")] + ["data.batch_size=4"]
    env = {**os.environ, "CHARGPT_CACHE_DIR": str(tmp_path / "cache"),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")]))}
    with (tmp_path / "err.txt").open("w") as err_file:
        proc = subprocess.Popen([sys.executable, "-m", "chargpt.cli.train", *args],
                                stdout=subprocess.DEVNULL, stderr=err_file, env=env)
        deadline = time.monotonic() + 240
        while not (run / "checkpoints" / "last.ckpt").exists() and proc.poll() is None \
                and time.monotonic() < deadline:
            time.sleep(0.2)
        assert proc.poll() is None, (tmp_path / "err.txt").read_text()
        [second] = _child_processes(proc.pid)  # training: both ranks are in the loop
        os.kill(second, signal.SIGINT)
        proc.wait(timeout=120)
    err = (tmp_path / "err.txt").read_text()
    assert proc.returncode == 130, err
    assert re.search(r"stopped by SIGINT after step \d+: checkpoint written to ", err), err
    assert "SIGTERM" not in err
    assert json.loads((run / "status.json").read_text())["status"] == "interrupted"
