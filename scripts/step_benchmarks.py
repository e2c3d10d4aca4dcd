"""What the training-step benchmarks (bench_muon.py, bench_rotary.py, bench_shapes.py) share: the
model's shape and batch on the command line, experiment=cpu_100s's by default, and that preset's
model and optimizer built from them."""

from __future__ import annotations

import argparse
import functools
from typing import Any

import torch
from hydra import compose, initialize_config_dir

from chargpt.cli import CONFIG_PATH
from chargpt.hydra_run import plain
from chargpt.model import ModelConfig, build_model
from chargpt.training.optim import build_optimizer
from script_cli import ScriptParser, positive

VOCAB = 65  # Tiny Shakespeare's


def add_model_shape(p: argparse.ArgumentParser) -> None:
    """The model's shape options, the preset's by default."""
    p.add_argument("--layers", type=positive, default=3)
    p.add_argument("--width", type=positive, default=128)
    p.add_argument("--heads", type=positive, default=4)


def step_benchmark_parser(description: str, reps: int, arm: str) -> argparse.ArgumentParser:
    p = ScriptParser(description=description)
    add_model_shape(p)
    p.add_argument("--block", type=positive, default=128)
    p.add_argument("--batch", type=positive, default=8)
    p.add_argument("--steps", type=positive, default=15, help="timed steps per repetition")
    p.add_argument("--reps", type=positive, default=reps, help=f"alternating repetitions of each {arm}")
    return p


def preset_model(args: argparse.Namespace) -> torch.nn.Module:
    """experiment=cpu_100s's model (RoPE, residual outputs at zero) in the shape of `args`, seeded."""
    config = ModelConfig(n_layer=args.layers, n_embd=args.width, n_head=args.heads, block_size=args.block,
                         pos_encoding="rope", zero_init_residual=True)
    torch.manual_seed(0)
    return build_model(config, VOCAB)


@functools.cache
def preset_optimizer_config() -> dict[str, Any]:
    """experiment=cpu_100s's optimizer config, composed from configs/ as chargpt-train composes it."""
    with initialize_config_dir(config_dir=CONFIG_PATH, version_base="1.3"):
        return plain(compose(config_name="train", overrides=["experiment=cpu_100s"]).optimizer)


def preset_optimizer(model: torch.nn.Module, ns_dtype: str = "auto", **adamw: Any) -> torch.optim.Optimizer:
    """experiment=cpu_100s's optimizer (optimizer=muon_short): Muon on the hidden matrices, AdamW on
    the rest; `adamw` overrides the AdamW settings (e.g. fused=False)."""
    config = preset_optimizer_config()
    return build_optimizer(model, {**config, "ns_dtype": ns_dtype, "adamw": {**config["adamw"], **adamw}})
