"""scripts/bench_muon.py and scripts/bench_rotary.py: each arm timed, figures consistent with the
rows they print."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # an interpreter start (~3-10 s) per call

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
TINY = ("--layers", "1", "--width", "32", "--heads", "2", "--block", "16", "--batch", "2", "--steps", "2",
        "--reps", "1")


def run(script: str) -> tuple[str, dict]:
    done = subprocess.run([sys.executable, str(SCRIPTS / script), *TINY], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout, json.loads(done.stdout.strip().splitlines()[-1])


def test_bench_muon_times_torchs_muon_beside_chargpts_in_each_dtype_and_unfused_adamw() -> None:
    out, figures = run("bench_muon.py")
    arms = ("torch", "bfloat16", "float32", "unfused")
    assert all(figures[f"{arm}_optimizer_ms"] < figures[f"{arm}_ms_per_step"] for arm in arms)
    auto = figures["auto"]
    assert auto in ("bfloat16", "float32")
    expected = figures["torch_ms_per_step"] / figures[f"{auto}_ms_per_step"]
    assert figures["speedup_auto_vs_torch"] == pytest.approx(expected, rel=0.02)  # of unrounded times
    assert "torch.optim.Muon (bfloat16):" in out and "chargpt ns_dtype=float32:" in out
    saves = figures["adamw_per_tensor_ms"] - figures["adamw_fused_ms"]
    assert figures["fused_adamw_saves_ms"] == pytest.approx(saves, abs=0.002)  # of unrounded times
    # Timed apart from the whole optimizer step: compared with it, the two timings flipped under load.
    assert figures["adamw_fused_ms"] > 0 and figures["adamw_per_tensor_ms"] > 0
    assert f"chargpt ns_dtype={auto}, per-tensor AdamW:" in out


def test_the_benchmarks_optimizer_is_the_configs_and_its_unfused_arm_is_not_fused() -> None:
    sys.path.insert(0, str(SCRIPTS))
    try:
        from step_benchmarks import add_model_shape, preset_model, preset_optimizer
    finally:
        sys.path.remove(str(SCRIPTS))
    parser = argparse.ArgumentParser()
    add_model_shape(parser)
    parser.add_argument("--block", type=int, default=16)
    model = preset_model(parser.parse_args(["--layers", "1", "--width", "32", "--heads", "2"]))
    assert preset_optimizer(model).optimizers[1].defaults["fused"] is True  # configs/optimizer/muon.yaml
    assert preset_optimizer(model, fused=False).optimizers[1].defaults["fused"] is False


def test_bench_rotary_times_both_forms() -> None:
    out, figures = run("bench_rotary.py")
    assert set(figures["rotation_ms"]) == set(figures["step_ms"]) == {"real", "complex"}
    steps = figures["step_ms"]
    assert figures["step_speedup"] == pytest.approx(steps["real"] / steps["complex"], rel=0.02)
    assert all(figures["rotation_ms"][f] < steps[f] for f in ("real", "complex"))
    assert out.startswith("real: rotation of one layer's q and k")


def test_profile_step_splits_the_step_into_its_phases_and_lists_the_costliest_operators() -> None:
    args = [*TINY, "--profiled", "2", "--top", "4", "--precision", "32-true"]
    done = subprocess.run([sys.executable, str(SCRIPTS / "profile_step.py"), *args], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["precision"] == "32-true"
    assert set(figures["phase_ms"]) == {"forward", "backward", "optimizer"}
    assert figures["step_ms"] == pytest.approx(sum(figures["phase_ms"].values()), abs=0.03)
    listed = [op["ms"] for op in figures["top_ops"]]
    assert len(listed) == 4 and listed == sorted(listed, reverse=True)
    assert sum(listed) <= figures["profiled_step_ms"]
    assert "optimizer" in done.stdout and figures["top_ops"][0]["op"] in done.stdout
