"""Checkpoints cannot run code; nothing the project writes is a pickle."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import chargpt
from chargpt.checkpoints import read_checkpoint
from chargpt.cli import eval as eval_cli
from chargpt.cli import sample as sample_cli
from chargpt.cli import train as train_cli
from chargpt.errors import CheckpointError
from conftest import bare_train_args, run_main, write_corpus


class _Payload:
    """Unpickling this calls Path.touch(marker): the stand-in for arbitrary code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (Path.touch, (self.marker,))


def _crafted(path: Path, marker: Path) -> Path:
    torch.save(
        {"hyper_parameters": {"model": {}, "vocab": ["a"]}, "state_dict": {}, "extra": _Payload(marker)}, path
    )
    return path


def test_the_payload_is_real(tmp_path):
    marker = tmp_path / "ran"
    torch.load(_crafted(tmp_path / "evil.ckpt", marker), weights_only=False)  # what unsafe loading does
    assert marker.exists()


def test_crafted_checkpoint_is_refused_and_its_code_never_runs(tmp_path, monkeypatch, capsys):
    marker = tmp_path / "ran"
    evil = _crafted(tmp_path / "evil.ckpt", marker)
    with pytest.raises(CheckpointError, match="refused to load"):
        read_checkpoint(evil)
    with pytest.raises(CheckpointError, match="refused to load"):
        chargpt.load(evil)
    corpus = write_corpus(tmp_path / "corpus.txt")
    monkeypatch.setenv("CHARGPT_CACHE_DIR", str(tmp_path / "cache"))
    for main, args in (
        (sample_cli.main, [f"ckpt_path={evil}"]),
        (eval_cli.main, [f"ckpt_path={evil}", "data=text", f"data.path={corpus}"]),
        (train_cli.main, bare_train_args(corpus, tmp_path / "run", f"ckpt_path={evil}")),
    ):
        code, out, err = run_main(main, args, capsys)
        assert code == 2 and err.startswith("error: refused to load") and "Traceback" not in out + err
    assert not marker.exists()


def test_nothing_a_run_writes_is_a_pickle(tmp_path, monkeypatch, capsys):
    corpus = write_corpus(tmp_path / "corpus.txt")
    monkeypatch.setenv("CHARGPT_CACHE_DIR", str(tmp_path / "cache"))
    run = tmp_path / "run"
    code, _, err = run_main(
        train_cli.main,
        bare_train_args(corpus, run, "trainer.max_steps=2", "trainer.val_check_interval=2"),
        capsys,
    )
    assert code == 0, err
    checkpoints = list(run.rglob("*.ckpt"))
    assert checkpoints
    for file in checkpoints:
        torch.load(file, weights_only=True)  # raises on any pickled object beyond tensors and containers
    for file in (tmp_path / "cache").rglob("*.npy"):
        np.load(file, allow_pickle=False)
    for file in [*run.rglob("*.json"), *(tmp_path / "cache").rglob("*.json")]:
        json.loads(file.read_text())
