"""`model.compile=true` on this machine: what the compiles cost and what a training step gains,
side by side.

A run composed from the project's configs (default: `experiment=cpu_100s`, its model and
optimizer) is timed in two fresh processes sharing one new, empty inductor cache: the first
compiles cold (as a user's first compiled run does), the second finds the cache warm (as every
later run of the same shape does). Each process times the compiles a budgeted training run pays
(the first training step; validation's forward in eval mode, on a full batch and on a smaller
last one), then alternates repetitions of eager and compiled training steps (forward, backward,
clipping, optimizer step) on the same batch. Both run in the precision the run resolves
(trainer.precision, `auto` included: bf16 autocast on a CPU with AVX-512 BF16 and no AMX) and with
the float32 products' precision each would get (matmul_precision=auto: `medium` for the eager
model on a CPU with AMX, `highest` for a compiled one). The last line is a JSON object.

    python scripts/bench_compile.py
    python scripts/bench_compile.py --override model.n_layer=4 --override model.n_embd=160 \
        --override model.n_head=5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

import torch
from hydra import compose, initialize_config_dir

from chargpt.cli import CONFIG_PATH
from chargpt.hydra_run import plain
from chargpt.model import ModelConfig, build_model
from chargpt.training.optim import build_optimizer
from chargpt.training.precision import matmul_precision_for_device, precision_for_device, precision_plugin
from script_cli import ScriptParser, positive, run_script

VOCAB = 65  # Tiny Shakespeare's characters
COMPILES = ("first_training_step_s", "validation_compile_s", "last_batch_compile_s")  # what a run pays


def parse_args() -> argparse.Namespace:
    p = ScriptParser(description=__doc__.splitlines()[0])
    p.add_argument("--experiment", default="cpu_100s", help="configs/experiment preset")
    p.add_argument("--override", action="append", default=[], help="extra Hydra override (repeatable)")
    p.add_argument("--steps", type=positive, default=20, help="timed steps per repetition")
    p.add_argument("--reps", type=positive, default=5, help="alternating repetitions of eager and compiled")
    p.add_argument("--worker", choices=("cold", "warm"), help=argparse.SUPPRESS)
    return p.parse_args()


def windows(rows: int, block: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and targets as the data module makes them: two views of (rows, block + 1) windows."""
    w = torch.randint(0, VOCAB, (rows, block + 1))
    return w[:, :-1], w[:, 1:]


def timed(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def worker(args: argparse.Namespace) -> None:
    """One process: the compiles' seconds, then eager against compiled steps; prints JSON."""
    with initialize_config_dir(config_dir=CONFIG_PATH, version_base="1.3"):
        cfg = compose("train", overrides=[f"experiment={args.experiment}", *args.override])
    torch.manual_seed(0)
    config = ModelConfig.from_dict(plain(cfg.model) | {"compile": False})  # compiled by hand below
    model = build_model(config, VOCAB).train()
    compiled = torch.compile(model)
    optimizer = build_optimizer(model, plain(cfg.optimizer))
    clip = cfg.trainer.gradient_clip_val
    x, y = windows(cfg.data.batch_size, config.block_size)
    cpu = torch.device("cpu")
    precision = precision_for_device(cfg.trainer.precision, cpu)
    autocast = precision_plugin(precision, cpu).forward_context  # what the Trainer runs the forward in
    matmul = {forward: matmul_precision_for_device(cfg.matmul_precision, cpu, compiled=forward is compiled)
              for forward in (model, compiled)}

    def step(forward: Callable) -> None:
        torch.set_float32_matmul_precision(matmul[forward])
        with autocast():
            loss = forward(x, y)[1]
        loss.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    result: dict[str, object] = {"cache": args.worker, "threads": torch.get_num_threads(),
                                 "precision": precision, "matmul_eager": matmul[model],
                                 "matmul_compiled": matmul[compiled]}
    result["first_training_step_s"] = timed(lambda: step(compiled))
    model.eval()
    with torch.no_grad(), autocast():
        result["validation_compile_s"] = timed(lambda: compiled(*windows(64, config.block_size)))
        result["last_batch_compile_s"] = timed(lambda: compiled(*windows(17, config.block_size)))
    model.train()
    for _ in range(3):  # warm-up: allocation, lazy init
        step(model)
        step(compiled)
    times: dict[str, list[float]] = {"eager": [], "compiled": []}
    for _ in range(args.reps):
        for name, forward in (("eager", model), ("compiled", compiled)):
            times[name].append(timed(lambda f=forward: [step(f) for _ in range(args.steps)]) / args.steps)
    for name, values in times.items():
        result[f"{name}_ms"] = round(1000 * min(values), 2)
        result[f"{name}_median_ms"] = round(1000 * statistics.median(values), 2)
    print(json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in result.items()}))


def main() -> None:
    args = parse_args()
    if args.worker:
        worker(args)
        return
    rows = []
    with tempfile.TemporaryDirectory(prefix="inductor-cache-") as cache:
        env = dict(os.environ, TORCHINDUCTOR_CACHE_DIR=cache)
        for cache_state in ("cold", "warm"):
            command = [sys.executable, __file__, "--worker", cache_state, "--experiment", args.experiment,
                       "--steps", str(args.steps), "--reps", str(args.reps)]
            command += [f"--override={o}" for o in args.override]
            out = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
            rows.append(json.loads(out.strip().splitlines()[-1]))
    first = rows[0]
    print(f"experiment={args.experiment} {' '.join(args.override)}; {torch.get_num_threads()} threads; "
          f"trainer.precision {first['precision']}; float32 products {first['matmul_eager']} (eager), "
          f"{first['matmul_compiled']} (compiled)")
    print("| inductor cache | first training step (s) | validation compile (s) | last-batch recompile (s) "
          "| eager ms/step | compiled ms/step | speed-up |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        compiles = " | ".join(f"{r[k]:.1f}" for k in COMPILES)
        steps = f"{r['eager_ms']:.1f} | {r['compiled_ms']:.1f} | {r['eager_ms'] / r['compiled_ms']:.2f}x"
        print(f"| {r['cache']} | {compiles} | {steps} |")
    for r in rows:  # each process's own figures: the host's speed drifts between the two
        cost, saved = sum(r[k] for k in COMPILES), (r["eager_ms"] - r["compiled_ms"]) / 1000
        after = "never (no step gain)"
        if saved > 0:
            steps = cost / saved
            after = f"{steps:.0f} steps, ~{steps * r['compiled_ms'] / 1000:.0f} s of compiled training"
        print(f"{r['cache']} cache: the compiles ({cost:.1f} s) pay back after {after}")
    print(json.dumps({"experiment": args.experiment, "overrides": args.override, "runs": rows}))


if __name__ == "__main__":
    run_script(main)
