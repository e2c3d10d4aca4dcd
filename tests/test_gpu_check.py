"""scripts/gpu_check.py: without a GPU it says one is needed (and that --dry-run exists); its
--dry-run runs every step at toy sizes on the CPU and prints one JSON line of finite figures."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from conftest import load_script

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "gpu_check.py"


def gpu_check():  # type: ignore[no-untyped-def]
    return load_script("gpu_check")


def count_syncs():  # type: ignore[no-untyped-def]
    return load_script("count_syncs")


def test_without_a_gpu_it_exits_2_with_one_error_line(monkeypatch, capsys) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu_check().main([]) == 2
    captured = capsys.readouterr()
    [line] = captured.err.splitlines()
    assert line.startswith("error: this check needs a CUDA GPU") and "--dry-run" in line
    assert captured.out == ""  # no JSON figures from a check that did not run


def test_an_out_folder_holding_a_run_is_refused_before_anything_runs(tmp_path: Path, capsys) -> None:
    out = tmp_path / "out é"
    (out / "syncs").mkdir(parents=True)  # an earlier check's run
    assert gpu_check().main(["--dry-run", "--out", str(out), "--steps", "train,syncs"]) == 2
    captured = capsys.readouterr()
    [line] = captured.err.splitlines()
    assert line.startswith("error: --out") and "'syncs' run" in line and "new --out folder" in line
    assert captured.out == "" and not (out / "train").exists()  # nothing ran


@pytest.mark.parametrize(("name", "peak"), [
    ("NVIDIA H100 80GB HBM3", 989e12), ("NVIDIA H100 PCIe", 756e12), ("NVIDIA H200", 989e12),
    ("NVIDIA A100-SXM4-80GB", 312e12), ("NVIDIA L4", 121e12), ("NVIDIA L40S", 362e12),
    ("NVIDIA A10", 125e12), ("NVIDIA A10G", None), ("Tesla V100-SXM2-16GB", None),
])
def test_mfu_uses_the_peak_of_the_gpu_by_name_or_none(name: str, peak: float | None) -> None:
    assert gpu_check().peak_bf16(name) == peak


@pytest.mark.slow  # a minute: three chargpt-train processes and sampling on the CPU
def test_dry_run_prints_one_json_line_with_finite_figures(tmp_path: Path, shakespeare: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "CHARGPT_DATA_DIR": str(shakespeare.parents[1])}
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--dry-run", "--out", str(tmp_path / "out")],
        # Only a hang guard: each step's own limit, for the three runs and sampling.
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=4 * gpu_check().DRY_RUN_TIMEOUT_S,
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
        assert auto["chosen"] in [shape for shape, _ in auto["timed"]] and auto["calibration_s"] > 0
        assert auto["steps"] == 20 and len(auto["timed"]) == 1  # capped: the same run on any machine
    else:
        assert "auto.yaml" in auto["skipped"]
    syncs = figures["syncs"]  # the counting callback ran inside chargpt-train; no CUDA, no syncs
    assert syncs["ok"] and syncs["cuda"] is False and syncs["steps"] == 20 and syncs["syncs"] == 0
    for run in ("train", "auto", "syncs"):  # each run's console output is kept
        if "skipped" not in figures[run]:
            assert "val loss" in (tmp_path / "out" / run / "console.log").read_text()


def test_count_syncs_charges_each_sync_to_the_step_that_made_it(tmp_path: Path, recwarn) -> None:
    # Logs every 3 steps and validates every 100: steps 2 and 5, the first (0) and the last (7) may
    # synchronise; step 4 may not.
    trainer = SimpleNamespace(global_step=0, log_every_n_steps=3, val_check_batch=100, callbacks=[])
    module = SimpleNamespace(device=torch.device("cpu"))
    record = tmp_path / "syncs.json"
    counter = count_syncs().CountSyncs(str(record))
    counter.on_train_start(trainer, module)  # type: ignore[arg-type]
    for step, syncs in enumerate([1, 0, 2, 0, 1, 0, 0, 0]):
        trainer.global_step = step
        counter.on_train_batch_start(trainer, None, None, step)  # type: ignore[arg-type]
        for _ in range(syncs):
            warnings.warn("called a synchronizing CUDA operation", UserWarning, stacklevel=1)
        warnings.warn("an unrelated warning", UserWarning, stacklevel=1)  # recorded, not counted
    trainer.global_step = 8
    counter.on_train_end(trainer, module)  # type: ignore[arg-type]
    counts = json.loads(record.read_text())
    assert counts["syncs"] == 4 and counts["steps"] == 8 and counts["cuda"] is False
    assert counts["syncs_per_step"] == {"0": 1, "2": 2, "4": 1} and counts["unexpected_steps"] == [4]
    [(source, n)] = counts["sources"].items()  # the line that synchronised, by file and line number
    assert source.startswith(f"{Path(__file__).name}:") and n == 4
    # The run's other warnings are shown once each when counting ends.
    assert [str(w.message) for w in recwarn] == ["an unrelated warning"]


def test_syncs_step_fails_on_a_step_that_synchronised_between_logs(tmp_path: Path, monkeypatch) -> None:
    module = gpu_check()

    def run(run_dir: Path, overrides: list[str], timeout_s: float, path: Path | None = None) -> dict:
        record = tmp_path / "syncs.json"
        assert f"+callbacks.count_syncs.path='{record}'" in overrides  # quoted for Hydra
        record.write_text(json.dumps({"cuda": True, "syncs": 5, "unexpected_steps": [12, 13]}))
        assert path is not None and (path / "count_syncs.py").exists()  # the callback is importable
        return {"ok": True, "best_val_loss": 2.0}

    monkeypatch.setattr(module, "chargpt_train", run)
    result = module.syncs_step(tmp_path, dry_run=True)
    assert result["ok"] is False and "[12, 13]" in result["error"]
    assert module._step_ok(result) is False


def test_an_unknown_step_is_refused_with_the_choices(capsys) -> None:
    assert gpu_check().main(["--dry-run", "--steps", "train,smaple"]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line == "error: unknown step 'smaple' in --steps; choose from train,sample,auto,syncs"


@pytest.mark.parametrize("step_seconds", [0.005, 0.9, 5.0])  # a GPU, a loaded 2-core CPU, far slower
def test_dry_run_model_auto_chooses_whatever_the_machine_speed(
    tmp_path: Path, monkeypatch, step_seconds: float
) -> None:
    # The dry run's model=auto settings, fed to the sizing rule at a step time and a start-up of
    # any machine: never refused as too small a budget, one shape timed, the run's steps capped.
    from chargpt.training.auto_size.ladder import LADDER
    from chargpt.training.auto_size.rule import StepCaps, climb

    module = gpu_check()
    runs: list[list[str]] = []
    monkeypatch.setattr(module, "chargpt_train", lambda run_dir, overrides, timeout_s: runs.append(overrides)
                        or {"ok": False})
    module.auto_step(tmp_path, dry_run=True)
    [overrides] = runs
    settings = dict(o.split("=", 1) for o in overrides if "=" in o)
    clock = [20 * step_seconds + 15.0]  # start-up, then each timing's steps

    def measure(shape, dropout=None) -> float:  # type: ignore[no-untyped-def]
        clock[0] += 8 * step_seconds
        return step_seconds

    max_steps = int(settings["trainer.max_steps"]) if "trainer.max_steps" in settings else None
    choice = climb(LADDER, measure, float(settings["budget_seconds"]), lambda: clock[0], 1_003_854, 20_000,
                   caps=StepCaps(max_steps=max_steps))
    assert len(choice.measured) == 1 and choice.shape == LADDER[0]
    assert choice.planned is not None and choice.planned.steps == 20
