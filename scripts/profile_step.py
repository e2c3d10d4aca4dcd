"""Where a training step's time goes: its forward, backward and optimizer step timed apart, and
the operators that take the most of it (torch.profiler, self time per step).

The model and optimizer are experiment=cpu_100s's (Muon + AdamW, RoPE) in the shape asked for, on
random tokens, in the precision asked for (as the Trainer runs its forward: `auto` resolved for
this machine, as the preset asks for it). No gradient clipping, as the preset. The last line is a
JSON object.

    python scripts/profile_step.py                                    # the preset's 3 x 128
    python scripts/profile_step.py --layers 4 --width 192 --heads 6   # model=auto's 600 s shape
    python scripts/profile_step.py --precision 32-true --top 20
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from torch.profiler import ProfilerActivity, profile

from chargpt.training.precision import precision_for_device, precision_plugin
from script_cli import positive, run_script
from step_benchmarks import VOCAB, preset_model, preset_optimizer, step_benchmark_parser

PHASES = ("forward", "backward", "optimizer")


def parse_args() -> argparse.Namespace:
    p = step_benchmark_parser(__doc__.splitlines()[0], reps=1, arm="phase")
    p.add_argument("--precision", default="auto", help="trainer.precision: auto, 32-true or bf16-mixed")
    p.add_argument("--profiled", type=positive, default=10, help="steps under the profiler")
    p.add_argument("--top", type=positive, default=12, help="operators listed, by self time")
    args = p.parse_args()
    if args.width % args.heads:
        p.error(f"--width {args.width} is not a multiple of --heads {args.heads}")
    return args


def main() -> None:
    args = parse_args()
    device = torch.device("cpu")
    precision = precision_for_device(args.precision, device)
    context = precision_plugin(precision, device)
    model = context.convert_module(preset_model(args)).train()
    opt = preset_optimizer(model)
    x = torch.randint(0, VOCAB, (args.batch, args.block))

    def step(clock: dict[str, list[float]] | None = None) -> None:
        marks = [time.perf_counter()]
        with context.forward_context():
            loss = model(x, x)[1]
        marks.append(time.perf_counter())
        loss.backward()
        marks.append(time.perf_counter())
        opt.step()
        opt.zero_grad(set_to_none=True)
        marks.append(time.perf_counter())
        if clock is not None:
            for phase, start, end in zip(PHASES, marks, marks[1:], strict=False):
                clock[phase].append(end - start)

    for _ in range(3):  # allocations and first calls: not timed
        step()
    clock: dict[str, list[float]] = {phase: [] for phase in PHASES}
    for _ in range(args.steps * args.reps):
        step(clock)
    phases = {phase: 1e3 * statistics.median(times) for phase, times in clock.items()}
    whole = sum(phases.values())
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(args.profiled):
            step()
    ops = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    profiled = sum(e.self_cpu_time_total for e in ops) / 1e3 / args.profiled  # ms a step
    top = [(e.key, e.self_cpu_time_total / 1e3 / args.profiled, e.count // args.profiled)
           for e in ops[: args.top]]

    print(f"{args.layers}x{args.width} h{args.heads}, context {args.block}, batch {args.batch}, {precision}, "
          f"{torch.get_num_threads()} threads: median of {args.steps * args.reps} steps")
    for phase, ms in phases.items():
        print(f"  {phase:<10} {ms:7.1f} ms  {100 * ms / whole:5.1f}%")
    print(f"  {'step':<10} {whole:7.1f} ms")
    print(f"operators by self time, {args.profiled} profiled steps ({profiled:.1f} ms a step under the "
          "profiler):")
    for name, ms, calls in top:
        print(f"  {ms:7.2f} ms  {100 * ms / profiled:5.1f}%  {calls:4d} calls  {name[:70]}")
    print(json.dumps({
        "shape": f"{args.layers}x{args.width} h{args.heads} ctx{args.block} b{args.batch}",
        "precision": precision,
        "threads": torch.get_num_threads(), "phase_ms": {k: round(v, 2) for k, v in phases.items()},
        "step_ms": round(whole, 2), "profiled_step_ms": round(profiled, 2),
        "top_ops": [{"op": name, "ms": round(ms, 3), "calls": calls} for name, ms, calls in top],
    }))


if __name__ == "__main__":
    run_script(main)
