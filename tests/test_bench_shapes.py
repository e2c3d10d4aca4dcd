"""scripts/bench_shapes.py: one row and one JSON entry per batch shape (and precisions), the first
the reference; a shape it cannot read is an argparse error (exit 2)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # an interpreter start (~3-10 s) per call

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bench_shapes.py"


def bench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=300)


def test_each_shape_is_timed_against_the_first() -> None:
    done = bench("--shapes", "4x16", "2x16", "8X8", "--layers", "1", "--width", "32", "--heads", "2",
                 "--steps", "2", "--rounds", "1")
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert list(figures["ms_per_step"]) == ["4x16", "2x16", "8x8"]
    ms = figures["ms_per_step"]
    # Within 1%: the ratio is of unrounded times, the ms of times rounded to 0.01 ms (~2 ms steps
    # on a fast CPU).
    assert figures["relative"]["2x16"] == pytest.approx(ms["2x16"] / ms["4x16"], rel=0.01)
    assert all(ms > 0 for ms in figures["ms_per_step"].values())


def test_each_shape_is_timed_in_each_precision() -> None:
    done = bench("--shapes", "4x16", "2x16", "--precisions", "32-true", "bf16-mixed", "--layers", "1",
                 "--width", "32", "--heads", "2", "--steps", "2", "--rounds", "1")
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    arms = ["4x16 32-true", "4x16 bf16-mixed", "2x16 32-true", "2x16 bf16-mixed"]
    assert list(figures["ms_per_step"]) == arms
    assert figures["relative"]["4x16 32-true"] == 1.0 and "bf16-mixed" in done.stdout


def test_each_shape_is_timed_in_each_matmul_precision() -> None:
    done = bench("--shapes", "4x16", "--matmul-precisions", "highest", "medium", "--layers", "1",
                 "--width", "32", "--heads", "2", "--steps", "2", "--rounds", "1")
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert list(figures["ms_per_step"]) == ["4x16 highest", "4x16 medium"]
    assert " medium " in done.stdout
    done = bench("--matmul-precisions", "low")
    assert done.returncode == 2 and "invalid choice: 'low'" in done.stderr


def test_a_shape_or_count_it_cannot_read_exits_2() -> None:
    done = bench("--shapes", "8x128", "8 by 64")
    assert done.returncode == 2 and "'8 by 64' is not SEQUENCESxCONTEXT" in done.stderr
    done = bench("--rounds", "0")
    assert done.returncode == 2 and "'0' is not a whole number of at least 1" in done.stderr


def test_each_shape_is_timed_with_and_without_clipping() -> None:
    done = bench("--shapes", "4x16", "--clips", "1.0", "none", "--layers", "1", "--width", "32",
                 "--heads", "2", "--steps", "2", "--rounds", "1")
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert list(figures["ms_per_step"]) == ["4x16 clip 1.0", "4x16 clip none"]
    assert "clip none" in done.stdout
    done = bench("--clips", "0")
    assert done.returncode == 2 and "'0': a clipping norm must be above 0" in done.stderr
    done = bench("--clips", "big")
    assert done.returncode == 2 and "'big' is not a clipping norm" in done.stderr
