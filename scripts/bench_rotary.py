"""Rotary positions: the real form (strided pairs, six products and a stack) against one complex
product, side by side.

First the rotation alone, forward and backward, on the queries and keys of one attention layer
(strided views of the qkv projection, as the model has them); then full training steps (forward,
backward, Muon + AdamW) of two copies of one model, one per form, on random tokens. Each is timed in
alternating repetitions and the best repetition reported. chargpt takes the complex form in float32
in eager mode, and the real form in compiled graphs and in ONNX. With `--precision bf16-mixed` the
step runs under bf16 autocast as the Trainer runs it: the real form then rotates the projection's
bf16 output (as chargpt did before 2026-12-04), the complex form its float32 copy (as chargpt does
now, attention computing in float32 on a CPU anyway). The last line is a JSON object.

    python scripts/bench_rotary.py                               # the cpu_100s shape, 3 x 128
    python scripts/bench_rotary.py --layers 4 --width 192 --heads 6
    python scripts/bench_rotary.py --precision bf16-mixed
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

import torch

from chargpt.model import blocks
from chargpt.model.positional import Rotary
from chargpt.training.precision import precision_plugin
from script_cli import run_script
from step_benchmarks import VOCAB, preset_model, preset_optimizer, step_benchmark_parser

FORMS = ("real", "complex")


def parse_args() -> argparse.Namespace:
    p = step_benchmark_parser(__doc__.splitlines()[0], reps=5, arm="form")
    p.add_argument("--precision", choices=("32-true", "bf16-mixed"), default="32-true",
                   help="trainer.precision to run the rotation and the steps in")
    return p.parse_args()


def best_of(arms: dict[str, Callable[[], None]], reps: int, steps: int) -> dict[str, float]:
    """Milliseconds per call of each arm: the best of `reps` alternating repetitions."""
    for run in arms.values():  # warm-up
        run()
    best = dict.fromkeys(arms, float("inf"))
    for _ in range(reps):
        for name, run in arms.items():
            start = time.perf_counter()
            for _ in range(steps):
                run()
            best[name] = min(best[name], (time.perf_counter() - start) / steps * 1e3)
    return best


def rotation_arms(args: argparse.Namespace) -> dict[str, Callable[[], None]]:
    width, head_dim = args.width, args.width // args.heads
    rotary = Rotary(args.block, head_dim)
    bf16 = args.precision == "bf16-mixed"  # the projection's output, as autocast leaves it
    qkv = torch.randn(args.batch, args.block, 3 * width, dtype=torch.bfloat16 if bf16 else torch.float32,
                      requires_grad=True)

    def arm(rotate: Callable[[torch.Tensor], torch.Tensor], form: str) -> Callable[[], None]:
        def run() -> None:
            projected = qkv.float() if form == "complex" else qkv  # no complex bf16: float32 first
            q, k = (  # each (B, heads, T, head_dim), strided
                z.unflatten(-1, (args.heads, head_dim)).transpose(1, 2)
                for z in projected[..., : 2 * width].chunk(2, -1)
            )
            torch.autograd.backward((rotate(q), rotate(k)), (torch.ones_like(q), torch.ones_like(k)))
        return run

    return {form: arm(getattr(rotary, f"rotate_{form}"), form) for form in FORMS}


def step_arms(args: argparse.Namespace) -> dict[str, Callable[[], None]]:
    x = torch.randint(0, VOCAB, (args.batch, args.block))
    autocast = precision_plugin(args.precision, torch.device("cpu")).forward_context
    to_float32 = blocks.float32_under_cpu_autocast
    arms = {}
    for form in FORMS:
        model = preset_model(args)
        model.rotary.forward = getattr(model.rotary, f"rotate_{form}")  # this copy takes one form only
        opt = preset_optimizer(model)
        # Under autocast the real form rotates the projection's bf16 output: the copy skips the
        # float32 cast (attention casts its inputs itself).
        cast = to_float32 if form == "complex" else (lambda qkv: qkv)

        def run(model: torch.nn.Module = model, opt: torch.optim.Optimizer = opt,
                cast: Callable[[torch.Tensor], torch.Tensor] = cast) -> None:
            blocks.float32_under_cpu_autocast = cast
            with autocast():
                loss = model(x, x)[1]
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        arms[form] = run
    return arms


def main() -> None:
    args = parse_args()
    shape = f"{args.layers}x{args.width} h{args.heads} ctx{args.block} b{args.batch} {args.precision}"
    rotation = best_of(rotation_arms(args), args.reps, 50)
    step = best_of(step_arms(args), args.reps, args.steps)
    for form in FORMS:
        print(f"{form}: rotation of one layer's q and k, forward and backward {rotation[form]:.3f} ms; "
              f"training step {step[form]:.1f} ms")
    print(f"the complex form: rotation {rotation['real'] / rotation['complex']:.2f}x, training step "
          f"{step['real'] / step['complex']:.2f}x as fast ({shape}, {torch.get_num_threads()} threads)")
    print(json.dumps({
        "shape": shape, "threads": torch.get_num_threads(),
        "rotation_ms": {f: round(rotation[f], 3) for f in FORMS},
        "step_ms": {f: round(step[f], 2) for f in FORMS},
        "step_speedup": round(step["real"] / step["complex"], 3),
    }))


if __name__ == "__main__":
    run_script(main)
