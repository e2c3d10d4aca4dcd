"""What a run logs is what TensorBoard serves: a tiny run, then a real `tensorboard` server on
127.0.0.1, queried through the HTTP API its own front end uses."""

from __future__ import annotations

import json
import math
import os
import struct
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from conftest import free_port

# A training subprocess and a real TensorBoard server; tests/test_logged_events.py reads the same
# story from the event files in-process.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
RUN = "tensorboard"  # the logger's sub-directory: TensorBoard's run name
SCALARS = [
    "train/loss", "train/lr", "train/grad_norm", "train/tokens_per_sec", "train/step_time_ms",
    "val/loss", "val/bpc", "hparams/best_val_loss", "hparams/last_val_loss",
]


def train_tiny(tmp_path: Path, *overrides: str) -> Path:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("First Citizen:\nBefore we proceed any further, hear me speak.\n" * 40)
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "CHARGPT_CACHE_DIR": str(tmp_path / "cache")}
    result = subprocess.run(
        [
            sys.executable, "-m", "chargpt.cli.train", "data=text", f"data.path={corpus}",
            f"hydra.run.dir={run}",
            "model.n_layer=2", "model.n_head=2", "model.n_embd=32", "model.block_size=16",
            "data.batch_size=4",
            "trainer.max_steps=8", "trainer.val_check_interval=4", "+trainer.limit_val_batches=2",
            "trainer.log_every_n_steps=2", "sample.max_new_tokens=0", "callbacks.progress_bar=null",
            "trainer.enable_model_summary=false", "callbacks.sample_text.max_new_tokens=40", *overrides,
        ],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return run  # as `tensorboard --logdir outputs/...`: the logger's folder is the run name


class Board:
    def __init__(self, url: str) -> None:
        self.url = url

    def read(self, path: str, **query: Any) -> bytes:
        url = f"{self.url}/{path}" + (f"?{urllib.parse.urlencode(query)}" if query else "")
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.read()

    def get(self, path: str, **query: Any) -> Any:
        return json.loads(self.read(path, **query))

    def post(self, path: str, body: dict) -> Any:
        request = urllib.request.Request(
            f"{self.url}/{path}", json.dumps(body).encode(), {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())


@pytest.fixture
def tensorboard(tmp_path: Path) -> Iterator[Any]:
    """Start `tensorboard --logdir DIR` on a free local port; always stopped afterwards."""
    processes: list[subprocess.Popen] = []

    def start(logdir: Path, expected_tag: str) -> Board:
        port = free_port()
        log = (tmp_path / "tensorboard.log").open("w")
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir), "--host", "127.0.0.1",
             "--port", str(port), "--load_fast", "false", "--reload_interval", "1"],
            stdout=log, stderr=subprocess.STDOUT,
        ))
        board = Board(f"http://127.0.0.1:{port}")
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:  # up, and the run's events loaded
            if processes[-1].poll() is not None:
                pytest.fail(f"tensorboard exited: {(tmp_path / 'tensorboard.log').read_text()[-2000:]}")
            try:
                if expected_tag in board.get("data/plugin/scalars/tags").get(RUN, {}):
                    return board
            except OSError:
                pass
            time.sleep(0.5)
        pytest.fail("tensorboard did not serve the run within 90 s")

    yield start
    for process in processes:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_logged_story_comes_back_through_the_tensorboard_api(tmp_path: Path, tensorboard: Any) -> None:
    board = tensorboard(train_tiny(tmp_path), "hparams/last_val_loss")

    # Scalars: every stable name, finite values, at the logging interval (every 2 steps).
    tags = board.get("data/plugin/scalars/tags")[RUN]
    assert set(SCALARS) <= set(tags)
    series = {tag: board.get("data/plugin/scalars/scalars", run=RUN, tag=tag) for tag in SCALARS}
    assert all(math.isfinite(v) for points in series.values() for _, _, v in points)
    assert [step for _, step, _ in series["train/grad_norm"]] == [2, 4, 6, 8]
    assert [step for _, step, _ in series["train/tokens_per_sec"]] == [2, 4, 6, 8]
    assert all(v > 0 for _, _, v in series["train/step_time_ms"])
    val_steps = [step for _, step, _ in series["val/loss"]]
    assert val_steps == [4, 8]  # the steps taken, as the checkpoint names and metrics.json say
    for (_, _, loss), (_, _, bpc) in zip(series["val/loss"], series["val/bpc"], strict=True):
        assert bpc == pytest.approx(loss / math.log(2), rel=1e-5)
    best = min(v for _, _, v in series["val/loss"])
    assert series["hparams/best_val_loss"][-1][2] == pytest.approx(best)

    # Text: a sample at each validation, at the same steps as val/loss.
    text_tags = board.get("data/plugin/text/tags")[RUN]
    assert "samples/text/text_summary" in text_tags
    samples = board.get("data/plugin/text/text", run=RUN, tag="samples/text/text_summary")
    assert [s["step"] for s in samples] == val_steps
    assert all("<pre><code>" in s["text"] and len(s["text"]) > 40 for s in samples)

    # Images: one labelled picture per validation, 2 layers x 2 heads of 16 x 16 characters.
    images = board.get("data/plugin/images/images", run=RUN, tag="attention/maps", sample=0)
    assert [i["step"] for i in images] == val_steps
    png = board.read("data/plugin/images/individualImage?" + images[-1]["query"])
    from chargpt.training.callbacks.attention_maps import render_attention

    height, width, _ = render_attention(torch.zeros(2, 2, 16, 16), "x" * 16, "a title").shape
    assert png_size(png) == (width, height)

    # HParams: the hyperparameters and both metrics, with values, in the HParams view.
    experiment = board.post("data/plugin/hparams/experiment", {"experimentName": ""})
    names = {h["name"] for h in experiment["hparamInfos"]}
    expected = {"optimizer.lr", "optimizer.name", "model.n_layer", "model.n_embd", "model.dropout",
                "data.batch_size", "seed", "vocab_size"}  # vocab_size as the other trackers get it
    assert expected <= names
    groups = board.post("data/plugin/hparams/session_groups", {
        "experimentName": "", "startIndex": 0, "sliceSize": 10,
        "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"],
        "colParams": [{"hparam": "optimizer.lr", "includeInResult": True},
                      {"hparam": "model.n_embd", "includeInResult": True},
                      {"metric": {"group": "", "tag": "hparams/best_val_loss"}, "includeInResult": True}],
    })["sessionGroups"]
    assert len(groups) == 1
    assert groups[0]["hparams"]["optimizer.lr"] == pytest.approx(1e-3)
    assert groups[0]["hparams"]["model.n_embd"] == 32
    metric = {m["name"]["tag"]: m["value"] for m in groups[0]["metricValues"]}
    assert metric["hparams/best_val_loss"] == pytest.approx(best)


def test_attention_maps_switch_off(tmp_path: Path, tensorboard: Any) -> None:
    board = tensorboard(train_tiny(tmp_path, "callbacks.attention_maps=null"), "val/loss")
    assert board.get("data/plugin/images/tags").get(RUN, {}) == {}
    assert "samples/text/text_summary" in board.get("data/plugin/text/tags")[RUN]
