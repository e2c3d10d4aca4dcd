"""Training step time by batch shape (sequences × context) and precision, side by side.

One model (the cpu_100s shape by default: 3 × 128, RoPE, Muon + AdamW) takes full training steps
(forward, backward, optimizer) on random tokens, for each batch shape and precision in turn, in
alternating rounds; the median step of each is reported, and its time relative to the first.
This is what a batch-size or context schedule would save per step (docs/EXPERIMENTS.md, "Ablations
at a fixed step count"), and what bf16 autocast saves on a CPU with bf16 units (the forward under
Lightning's bf16 autocast, as `trainer.precision=bf16-mixed` runs it), and what the float32
products' precision (`matmul_precision`, torch.set_float32_matmul_precision) does: on a CPU with
bf16 units, `medium` lets oneDNN compute them in bf16; and what gradient clipping costs (`--clips`:
trainer.gradient_clip_val values, `none` for no clipping, the default). The last line is a JSON
object.

    python scripts/bench_shapes.py                              # 8x128 (the preset), 4x128, 16x64, 32x32
    python scripts/bench_shapes.py --shapes 8x128 2x128 --layers 2 --width 96 --heads 3
    python scripts/bench_shapes.py --shapes 8x128 --precisions 32-true bf16-mixed
    python scripts/bench_shapes.py --shapes 8x128 --matmul-precisions high medium
    python scripts/bench_shapes.py --shapes 8x128 --matmul-precisions medium --clips 1.0 none
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from chargpt.training.precision import precision_plugin
from script_cli import ScriptParser, positive, run_script
from step_benchmarks import VOCAB, add_model_shape, preset_model, preset_optimizer

PRECISIONS = ("32-true", "bf16-mixed")
MATMUL_PRECISIONS = ("highest", "high", "medium")


def clip_value(text: str) -> float | None:
    if text.lower() in ("none", "null"):
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a clipping norm (e.g. 1.0) or none") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r}: a clipping norm must be above 0 (none: no clipping)")
    return value


def batch_shape(text: str) -> tuple[int, int]:
    try:
        sequences, context = (int(n) for n in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not SEQUENCESxCONTEXT, e.g. 8x128") from None
    if sequences < 1 or context < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: both sizes must be at least 1")
    return sequences, context


def parse_args() -> argparse.Namespace:
    p = ScriptParser(description=__doc__.splitlines()[0])
    p.add_argument("--shapes", nargs="+", type=batch_shape, default=[(8, 128), (4, 128), (16, 64), (32, 32)],
                   metavar="BxT", help="batch shapes, sequences x context; the first is the reference")
    p.add_argument("--precisions", nargs="+", choices=PRECISIONS, default=["32-true"],
                   help="trainer.precision values to time each shape in")
    p.add_argument("--matmul-precisions", nargs="+", choices=MATMUL_PRECISIONS, default=["high"],
                   help="matmul_precision values to time each shape in (chargpt's default, auto, is medium "
                        "on a CPU with AMX, highest on other CPUs)")
    p.add_argument("--clips", nargs="+", type=clip_value, default=[None], metavar="NORM",
                   help="gradient clipping norms to time each shape with (none: no clipping, the default)")
    add_model_shape(p)
    p.add_argument("--steps", type=positive, default=20, help="timed steps per shape and round")
    p.add_argument("--rounds", type=positive, default=6, help="alternating rounds over the shapes")
    args = p.parse_args()
    if args.width % args.heads:
        p.error(f"--width {args.width} is not a multiple of --heads {args.heads}")
    args.block = max(t for _, t in args.shapes)  # one model serves every context up to this
    return args


def main() -> None:
    args = parse_args()
    model = preset_model(args)
    opt = preset_optimizer(model)
    batches = {shape: torch.randint(0, VOCAB, shape) for shape in args.shapes}
    # Each arm's name: the shape, and its precisions and clipping where several are timed.
    arms = {
        " ".join([f"{b}x{t}"] + ([precision] if len(args.precisions) > 1 else [])
                 + ([matmul] if len(args.matmul_precisions) > 1 else [])
                 + ([f"clip {clip or 'none'}"] if len(args.clips) > 1 else [])):
        ((b, t), precision, matmul, clip)
        for (b, t) in args.shapes for precision in args.precisions for matmul in args.matmul_precisions
        for clip in args.clips
    }
    # Without --clips, no gradient clipping: a fixed cost per step, so the ratios between shapes
    # are slightly further from 1.0 than those of a run that clips.
    times: dict[str, list[float]] = {name: [] for name in arms}
    contexts = {p: precision_plugin(p, torch.device("cpu")) for p in args.precisions}
    for round_ in range(args.rounds + 1):  # round 0 warms every arm up and is not counted
        for name, (shape, precision, matmul, clip) in arms.items():
            x = batches[shape]
            torch.set_float32_matmul_precision(matmul)  # read by each product as it runs
            for _ in range(args.steps):
                start = time.perf_counter()
                with contexts[precision].forward_context():  # what the Trainer runs the forward in
                    loss = model(x, x)[1]
                loss.backward()
                if clip is not None:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), clip)  # as the module clips
                opt.step()
                opt.zero_grad(set_to_none=True)
                if round_:
                    times[name].append(time.perf_counter() - start)
    median = {name: statistics.median(t) for name, t in times.items()}
    reference = next(iter(arms))
    print(f"{args.layers}x{args.width}, {torch.get_num_threads()} threads, median of "
          f"{args.rounds} x {args.steps} steps each")
    for name, m in median.items():
        (b, t), precision, matmul, clip = arms[name]
        print(f"  {b:4d} x {t:<5d} {precision:>10} {matmul:>7} {'clip ' + str(clip or 'none'):>10}  "
              f"{b * t:6d} tokens  {m * 1e3:7.1f} ms/step  {m / median[reference]:.2f}x")
    print(json.dumps({
        "model": f"{args.layers}x{args.width} h{args.heads}", "threads": torch.get_num_threads(),
        "ms_per_step": {name: round(m * 1e3, 2) for name, m in median.items()},
        "relative": {name: round(m / median[reference], 3) for name, m in median.items()},
    }))


if __name__ == "__main__":
    run_script(main)
