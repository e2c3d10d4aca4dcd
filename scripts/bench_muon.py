"""Training step time with torch.optim.Muon and with chargpt's Muon, orthogonalising in bfloat16
and in float32, side by side; and with AdamW's per-tensor loop instead of its fused kernel.

Four copies of the same model take full training steps (forward, backward, Muon + AdamW) in
alternating repetitions on random tokens: one with torch.optim.Muon (one Newton–Schulz product per
matrix, in bfloat16), one per dtype of chargpt's `optimizer.ns_dtype` (matrices of one shape
orthogonalised together), and one as `ns_dtype=auto` but with `optimizer.adamw.fused=false` (torch's
default on a CPU) for the embeddings, norms and biases. The faster of the repetitions of each is
reported, with the time of the optimizer step alone. The last line is a JSON object. Whether this
CPU multiplies bf16 natively decides what `ns_dtype=auto` picks.

    python scripts/bench_muon.py                                   # the cpu_100s shape
    python scripts/bench_muon.py --layers 4 --width 160 --heads 5  # a larger rung of model=auto
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from chargpt.training.muon import native_bf16
from chargpt.training.optim import MuonWithAdamW
from script_cli import run_script
from step_benchmarks import VOCAB, preset_model, preset_optimizer, step_benchmark_parser

ARMS = ("torch", "bfloat16", "float32", "unfused")  # torch.optim.Muon, chargpt's ns_dtype, per-tensor AdamW


def parse_args() -> argparse.Namespace:
    return step_benchmark_parser(__doc__.splitlines()[0], reps=4, arm="dtype").parse_args()


def timed_steps(
    model: torch.nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, steps: int
) -> tuple[float, float]:
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


def adamw_step_ms(arms: dict, names: tuple[str, ...], rounds: int = 200) -> dict[str, float]:
    """Median ms of the AdamW part's step alone (embeddings, norms, biases), the arms interleaved
    step by step: a difference of ~1 ms that whole steps on a shared host cannot resolve."""
    adams = {}
    for name in names:
        model, opt = arms[name]
        model(x := torch.randint(0, VOCAB, (1, 8)), x)[1].backward()  # gradients for it to apply
        adams[name] = opt.optimizers[1]
    times: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(rounds):
        for name, adam in adams.items():
            start = time.perf_counter()
            adam.step()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) * 1e3 for name, t in times.items()}


def main() -> None:
    args = parse_args()
    x = torch.randint(0, VOCAB, (args.batch, args.block))
    auto = "bfloat16" if native_bf16(torch.device("cpu")) else "float32"
    arms = {}
    for arm in ARMS:
        model = preset_model(args)
        if arm == "unfused":
            opt = preset_optimizer(model, auto, fused=False)
        else:
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
             "float32": "chargpt ns_dtype=float32", "unfused": f"chargpt ns_dtype={auto}, per-tensor AdamW"}
    for arm, (full, optimizer) in best.items():
        print(f"{names[arm]}: {full * 1e3:.1f} ms/step, of which the optimizer {optimizer * 1e3:.1f} ms")
    speedup = best["torch"][0] / best[auto][0]
    print(f"ns_dtype=auto picks {auto} on this CPU: its steps {speedup:.2f}x as fast as torch.optim.Muon's")
    adamw_ms = adamw_step_ms(arms, (auto, "unfused"))
    fused_saves = adamw_ms["unfused"] - adamw_ms[auto]
    print(f"AdamW's part of the optimizer step alone: {adamw_ms[auto]:.2f} ms fused "
          f"(optimizer.adamw.fused=true), {adamw_ms['unfused']:.2f} ms per tensor: fused saves "
          f"{fused_saves:.2f} ms a step")
    print(json.dumps({
        "shape": f"{args.layers}x{args.width} h{args.heads} ctx{args.block} b{args.batch}",
        "threads": torch.get_num_threads(), "auto": auto, "speedup_auto_vs_torch": round(speedup, 3),
        "adamw_fused_ms": round(adamw_ms[auto], 3), "adamw_per_tensor_ms": round(adamw_ms["unfused"], 3),
        "fused_adamw_saves_ms": round(fused_saves, 3),
        **{f"{arm}_ms_per_step": round(best[arm][0] * 1e3, 2) for arm in ARMS},
        **{f"{arm}_optimizer_ms": round(best[arm][1] * 1e3, 2) for arm in ARMS},
    }))


if __name__ == "__main__":
    run_script(main)
