"""Training step time with torch.optim.Muon and with chargpt's Muon, orthogonalising in bfloat16
and in float32, side by side.

Three copies of the same model take full training steps (forward, backward, Muon + AdamW) in
alternating repetitions on random tokens: one with torch.optim.Muon (one Newton–Schulz product per
matrix, in bfloat16), one per dtype of chargpt's `optimizer.ns_dtype` (matrices of one shape
orthogonalised together). The faster of the repetitions of each is reported, with the time of the
optimizer step alone. The last line is a JSON object. Whether this CPU multiplies bf16 natively
decides what `ns_dtype=auto` picks.

    python scripts/bench_muon.py                                   # the cpu_100s shape
    python scripts/bench_muon.py --layers 4 --width 160 --heads 5  # a larger rung of model=auto
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from chargpt.training.muon import native_bf16
from chargpt.training.optim import MuonWithAdamW
from step_benchmarks import VOCAB, preset_model, preset_optimizer, step_benchmark_parser

ARMS = ("torch", "bfloat16", "float32")  # torch.optim.Muon, then chargpt's ns_dtype


def parse_args() -> argparse.Namespace:
    return step_benchmark_parser(__doc__.splitlines()[0], reps=4, arm="dtype").parse_args()


def timed_steps(model: torch.nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, steps: int):
    """Seconds per full step and per optimizer step."""
    full = optimizer = 0.0
    for _ in range(steps):
        start = time.perf_counter()
        model(x, x)[1].backward()
        mid = time.perf_counter()
        opt.step()
        opt.zero_grad(set_to_none=True)
        end = time.perf_counter()
        full, optimizer = full + end - start, optimizer + end - mid
    return full / steps, optimizer / steps


def main() -> None:
    args = parse_args()
    x = torch.randint(0, VOCAB, (args.batch, args.block))
    arms = {}
    for arm in ARMS:
        model = preset_model(args)
        opt = preset_optimizer(model, "bfloat16" if arm == "torch" else arm)
        if arm == "torch":  # the same parameters and settings, in torch's own optimizer
            muon, adamw = opt.optimizers
            opt = MuonWithAdamW(torch.optim.Muon(muon.param_groups), adamw)
        timed_steps(model, opt, x, 3)  # warm-up
        arms[arm] = (model, opt)
    best = {arm: (float("inf"), float("inf")) for arm in ARMS}
    for _ in range(args.reps):
        for arm, (model, opt) in arms.items():
            best[arm] = min(best[arm], timed_steps(model, opt, x, args.steps))
    names = {"torch": "torch.optim.Muon (bfloat16)", "bfloat16": "chargpt ns_dtype=bfloat16",
             "float32": "chargpt ns_dtype=float32"}
    for arm, (full, optimizer) in best.items():
        print(f"{names[arm]}: {full * 1e3:.1f} ms/step, of which the optimizer {optimizer * 1e3:.1f} ms")
    auto = "bfloat16" if native_bf16(torch.device("cpu")) else "float32"
    speedup = best["torch"][0] / best[auto][0]
    print(f"ns_dtype=auto picks {auto} on this CPU: its steps {speedup:.2f}x as fast as torch.optim.Muon's")
    print(json.dumps({
        "shape": f"{args.layers}x{args.width} h{args.heads} ctx{args.block} b{args.batch}",
        "threads": torch.get_num_threads(), "auto": auto, "speedup_auto_vs_torch": round(speedup, 3),
        **{f"{arm}_ms_per_step": round(best[arm][0] * 1e3, 2) for arm in ARMS},
        **{f"{arm}_optimizer_ms": round(best[arm][1] * 1e3, 2) for arm in ARMS},
    }))


if __name__ == "__main__":
    main()
