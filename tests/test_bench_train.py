"""scripts/bench_train.py against nanoGPT: both sides compute float32 products on a CPU (no runs)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest

from chargpt.errors import ConfigError
from conftest import load_script


def bench_args(**given: object) -> argparse.Namespace:
    defaults = dict(model="tiny", batch=12, block=None, precision="32-true", compile=False, device="cpu",
                    steps=5, warmup=1, reps=1, override=[], nanogpt=None)
    return argparse.Namespace(**{**defaults, **given})


def test_against_nanogpt_chargpt_keeps_float32_products(tmp_path: Path) -> None:
    # matmul_precision=auto is bf16 products on a CPU with AMX; nanoGPT's are float32 there.
    bench = load_script("bench_train")
    assert bench.compose_config(bench_args(), str(tmp_path)).matmul_precision == "auto"
    cfg = bench.compose_config(bench_args(nanogpt="nanoGPT"), str(tmp_path))
    assert cfg.matmul_precision == "highest"
    assert bench.nanogpt_command(cfg, bench_args(nanogpt="nanoGPT"), str(tmp_path))[0] == sys.executable


def test_bf16_products_asked_for_against_nanogpt_are_refused(tmp_path: Path) -> None:
    bench = load_script("bench_train")
    for asked in ("medium", "high"):  # high may be TF32-like on a CPU (AMX-FP16)
        args = bench_args(nanogpt="nanoGPT", override=[f"matmul_precision={asked}"])
        cfg = bench.compose_config(args, str(tmp_path))
        with pytest.raises(ConfigError, match=f"matmul_precision={asked}"):
            bench.nanogpt_command(cfg, args, str(tmp_path))
