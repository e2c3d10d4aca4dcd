"""scripts/gpu_check.py: without a GPU it says one is needed (and that --dry-run exists); its
--dry-run runs every step at toy sizes on the CPU and prints one JSON line of finite figures."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "gpu_check.py"


def gpu_check():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def test_without_a_gpu_it_exits_2_with_one_error_line(monkeypatch, capsys) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu_check().main([]) == 2
    captured = capsys.readouterr()
    [line] = captured.err.splitlines()
    assert line.startswith("error: this check needs a CUDA GPU") and "--dry-run" in line
    assert captured.out == ""  # no JSON figures from a check that did not run


@pytest.mark.parametrize(("name", "peak"), [
    ("NVIDIA H100 80GB HBM3", 989e12), ("NVIDIA H100 PCIe", 756e12), ("NVIDIA H200", 989e12),
    ("NVIDIA A100-SXM4-80GB", 312e12), ("NVIDIA L4", 121e12), ("NVIDIA L40S", 362e12),
    ("NVIDIA A10", 125e12), ("NVIDIA A10G", None), ("Tesla V100-SXM2-16GB", None),
])
def test_mfu_uses_the_peak_of_the_gpu_by_name_or_none(name: str, peak: float | None) -> None:
    assert gpu_check().peak_bf16(name) == peak


@pytest.mark.slow  # a minute: two chargpt-train processes and sampling on the CPU
def test_dry_run_prints_one_json_line_with_finite_figures(tmp_path: Path, shakespeare: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "CHARGPT_DATA_DIR": str(shakespeare.parents[1])}
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--dry-run", "--out", str(tmp_path / "out")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert {"dry_run", "device", "train", "sample", "auto", "syncs", "total_s", "ok"} <= set(figures)
    assert figures["dry_run"] is True and figures["ok"] is True
    train = figures["train"]
    assert train["ok"] and train["steps"] == 20
    assert math.isfinite(train["best_val_loss"]) and 0 < train["best_val_loss"] < math.log(65) + 1
    assert train["tokens_per_s"] > 0 and train["wall_s"] > 0 and train["flops_per_token"] > 0
    assert train["mfu"] is None  # no GPU: no peak to divide by
    sample = figures["sample"]
    assert sample["uncached"]["tokens_per_s"] > 0 and sample["cached"]["tokens_per_s"] > 0
    assert "skipped" in sample["cached_compiled"] and "skipped" in sample["uncached_compiled"]
    auto = figures["auto"]
    if (ROOT / "configs" / "model" / "auto.yaml").exists():
        assert auto["ok"] and math.isfinite(auto["best_val_loss"])
    else:
        assert "auto.yaml" in auto["skipped"]
    syncs = figures["syncs"]  # the counting callback ran inside chargpt-train; no CUDA, no syncs
    assert syncs["ok"] and syncs["cuda"] is False and syncs["steps"] == 20 and syncs["syncs"] == 0
    for run in ("train", "auto", "syncs"):  # each run's console output is kept
        assert "val loss" in (tmp_path / "out" / run / "console.log").read_text()


def test_count_syncs_charges_each_sync_to_the_step_that_made_it(tmp_path: Path) -> None:
    class Trainer:
        global_step = 0

    record = tmp_path / "syncs.json"
    counter, trainer = gpu_check().CountSyncs(str(record)), Trainer()
    counter.on_train_start(trainer, None)  # type: ignore[arg-type]
    for step, syncs in enumerate([1, 0, 2, 0]):
        trainer.global_step = step
        counter.on_train_batch_start(trainer, None, None, step)  # type: ignore[arg-type]
        for _ in range(syncs):
            warnings.warn("called a synchronizing CUDA operation", UserWarning, stacklevel=1)
        warnings.warn("an unrelated warning", UserWarning, stacklevel=1)  # recorded, not counted
    trainer.global_step = 4
    counter.on_train_end(trainer, None)  # type: ignore[arg-type]
    counts = json.loads(record.read_text())
    assert counts["syncs"] == 3 and counts["steps"] == 4
    assert counts["steps_with_syncs"] == [0, 2] and counts["syncs_per_step"] == {"0": 1, "2": 2}
    [(source, n)] = counts["sources"].items()  # the line that synchronised, by file and line number
    assert source.startswith(f"{Path(__file__).name}:") and n == 3
