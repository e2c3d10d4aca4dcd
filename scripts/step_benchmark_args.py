"""Command-line options shared by the training-step benchmarks (bench_muon.py, bench_rotary.py):
the model's shape and batch, experiment=cpu_100s's by default, and how long to time each arm."""

from __future__ import annotations

import argparse


def step_benchmark_parser(description: str, reps: int, arm: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--layers", type=int, default=3)
    p.add_argument("--width", type=int, default=128)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--block", type=int, default=128)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--steps", type=int, default=15, help="timed steps per repetition")
    p.add_argument("--reps", type=int, default=reps, help=f"alternating repetitions of each {arm}")
    return p
