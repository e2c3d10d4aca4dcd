"""Training step time with Muon orthogonalising in bfloat16 (torch.optim.Muon's choice) and in
float32, side by side.

Two copies of the same model, one per dtype of `optimizer.ns_dtype`, take full training steps
(forward, backward, Muon + AdamW) in alternating repetitions on random tokens; the faster of the
repetitions of each is reported, with the time of the optimizer step alone. The last line is a JSON
object. Whether this CPU multiplies bf16 natively decides what `ns_dtype=auto` picks.

    python scripts/bench_muon.py                                   # the cpu_100s shape
    python scripts/bench_muon.py --layers 4 --width 160 --heads 5  # a larger rung of model=auto
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from chargpt.model import ModelConfig, build_model
from chargpt.training.muon import native_bf16
from chargpt.training.optim import build_optimizer

VOCAB = 65  # Tiny Shakespeare's
DTYPES = ("bfloat16", "float32")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--layers", type=int, default=3)
    p.add_argument("--width", type=int, default=128)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--block", type=int, default=128)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--steps", type=int, default=15, help="timed steps per repetition")
    p.add_argument("--reps", type=int, default=4, help="alternating repetitions of each dtype")
    return p.parse_args()


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
    config = ModelConfig(n_layer=args.layers, n_embd=args.width, n_head=args.heads, block_size=args.block,
                         pos_encoding="rope")
    x = torch.randint(0, VOCAB, (args.batch, args.block))
    pairs = {}
    for dtype in DTYPES:
        torch.manual_seed(0)
        model = build_model(config, VOCAB)
        opt = build_optimizer(model, {"_target_": "chargpt.training.optim.muon_adamw", "lr": 0.01,
                                      "ns_dtype": dtype, "adamw": {"lr": 3e-3}})
        timed_steps(model, opt, x, 3)  # warm-up
        pairs[dtype] = (model, opt)
    best = {dtype: (float("inf"), float("inf")) for dtype in DTYPES}
    for _ in range(args.reps):
        for dtype, (model, opt) in pairs.items():
            best[dtype] = min(best[dtype], timed_steps(model, opt, x, args.steps))
    for dtype, (full, optimizer) in best.items():
        print(f"ns_dtype={dtype}: {full * 1e3:.1f} ms/step, of which the optimizer {optimizer * 1e3:.1f} ms")
    speedup = best["bfloat16"][0] / best["float32"][0]
    auto = "bfloat16" if native_bf16(torch.device("cpu")) else "float32"
    print(f"float32 steps {speedup:.2f}x as fast; ns_dtype=auto picks {auto} on this CPU")
    print(json.dumps({
        "shape": f"{args.layers}x{args.width} h{args.heads} ctx{args.block} b{args.batch}",
        "threads": torch.get_num_threads(), "auto": auto, "speedup_float32": round(speedup, 3),
        **{f"{d}_ms_per_step": round(best[d][0] * 1e3, 2) for d in DTYPES},
        **{f"{d}_optimizer_ms": round(best[d][1] * 1e3, 2) for d in DTYPES},
    }))


if __name__ == "__main__":
    main()
