"""Seconds to draw the attention-map picture that the AttentionMaps callback logs at every
validation, for model shapes of the presets.

The picture is drawn from random causal weights on the callback's default prompt (32
characters), `--reps` times per shape; the fastest and the median are reported: whole, and (where
the code has it) the maps alone on the picture's kept frame, as every validation after the first
draws them. The drawing runs inside validation, so a budgeted run pays it at its end
(docs/training.md). The last line is a JSON object. Run it at two commits to compare two versions
of the drawing on one machine.

    python scripts/bench_attention_maps.py
    python scripts/bench_attention_maps.py --shapes 6x6 --prompt-chars 64
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from chargpt.training.callbacks import attention_maps
from chargpt.training.callbacks.attention_maps import render_attention
from script_cli import ScriptParser, positive, run_script

PROMPT = "First Citizen:\nBefore we proceed"  # configs/callbacks/attention_maps.yaml


def parse_args() -> argparse.Namespace:
    p = ScriptParser(description=__doc__.splitlines()[0])
    p.add_argument("--shapes", nargs="+", default=["2x3", "3x4", "4x4", "6x6"],
                   help="LAYERSxHEADS, e.g. 3x4 (cpu_100s), 6x6 (shakespeare_char)")
    p.add_argument("--prompt-chars", type=positive, default=len(PROMPT),
                   help="characters in the prompt (the default prompt, repeated)")
    p.add_argument("--reps", type=positive, default=3)
    return p.parse_args()


def causal_maps(layers: int, heads: int, t: int) -> torch.Tensor:
    """(layers, heads, t, t) random attention weights, NaN above the diagonal (as the callback's)."""
    hidden = torch.ones(t, t, dtype=torch.bool).triu(1)
    weights = (2 * torch.randn(layers, heads, t, t)).masked_fill(hidden, float("-inf")).softmax(-1)
    return weights.masked_fill(hidden, float("nan"))


def main() -> None:
    args = parse_args()
    torch.manual_seed(0)
    prompt = (PROMPT * (1 + args.prompt_chars // len(PROMPT)))[: args.prompt_chars]
    render_attention(causal_maps(1, 1, 8), prompt[:8], "warm-up")  # fonts, caches
    rows = []
    for shape in args.shapes:
        layers, heads = (int(n) for n in shape.split("x"))
        maps = causal_maps(layers, heads, len(prompt))
        seconds = []
        for _ in range(args.reps):
            t0 = time.perf_counter()
            picture = render_attention(maps, prompt, "attention at step 1000")
            seconds.append(time.perf_counter() - t0)
        row = {"shape": shape, "maps": layers * heads, "pixels": list(picture.shape[:2]),
               "best_s": round(min(seconds), 3), "median_s": round(statistics.median(seconds), 3)}
        kept = ""
        if hasattr(attention_maps, "AttentionPicture"):  # (an older version draws it whole every time)
            frame = attention_maps.AttentionPicture(layers, heads, prompt, titled=True)
            on_frame = []
            for _ in range(args.reps):
                t0 = time.perf_counter()
                frame.draw(maps, "attention at step 1000")
                on_frame.append(time.perf_counter() - t0)
            row |= {"on_kept_frame_best_s": round(min(on_frame), 4),
                    "on_kept_frame_median_s": round(statistics.median(on_frame), 4)}
            kept = (f"; on its kept frame best {min(on_frame):.3f} s, "
                    f"median {statistics.median(on_frame):.3f} s")
        rows.append(row)
        print(f"{shape:>5} ({layers * heads:2d} maps, {picture.shape[1]}x{picture.shape[0]} px): "
              f"best {min(seconds):.2f} s, median {statistics.median(seconds):.2f} s{kept}")
    print(json.dumps({"prompt_chars": len(prompt), "reps": args.reps, "rows": rows}))


if __name__ == "__main__":
    run_script(main)
