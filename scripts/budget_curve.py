"""Validation loss against wall-clock budget: model=auto, the cpu_100s preset and nanoGPT's CPU recipe.

Runs a grid of `chargpt-train` commands one after another, each its own process (so each pays its
own start-up, as a user's command does): budgets x texts x configs x seeds. Reads every run's
metrics.json and budget.json, and prints one table (mean ± std of the full-split validation loss
per budget, text and config, with the steps taken, model=auto's chosen shapes and the whole
command's wall time from start to exit), also written as JSON. Runs that already have a
metrics.json in the output folder are read, not repeated (--rerun repeats them), so an interrupted
grid continues where it stopped.

Texts: `shakespeare` (Tiny Shakespeare, from the data directory as usual) and `stdlib` (this
Python's standard library top-level modules concatenated in file-name order, cut to the size of
Tiny Shakespeare: source code, a different kind of text; built once into the output folder).

    python scripts/budget_curve.py                                  # the whole grid (~3.5 h)
    python scripts/budget_curve.py --budgets 30 100 --texts shakespeare --seeds 1 --configs auto
    python scripts/budget_curve.py --dry-run                        # the commands only
    python scripts/budget_curve.py --out old_init --extra model.zero_init_residual=false  # older rows
    python scripts/budget_curve.py --configs cpu_100s --out old --extra optimizer=muon  # preset's old rates
    python scripts/budget_curve.py --report-only                    # the table from finished runs

Run it on a quiet machine: a busy one slows steps, and the budget then buys fewer of them.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from chargpt.errors import exit_usage
from script_cli import ScriptParser, positive, whole_number

# Each config's overrides; BUDGET is replaced by the run's budget in seconds.
CONFIGS: dict[str, list[str]] = {
    "auto": ["model=auto", "budget_seconds=BUDGET"],
    "cpu_100s": ["experiment=cpu_100s", "budget_seconds=BUDGET"],
    # nanoGPT's CPU recipe, row R0 of docs/EXPERIMENTS.md (AdamW 1e-3 with weight decay 0.1,
    # warmup + cosine to 0.1x, learned positions, context 64, batch 12, 4 layers x 128, GPT-2 init).
    "r0": [
        "experiment=cpu_100s", "model.n_layer=4", "optimizer=adamw", "optimizer.lr=1e-3", "scheduler=cosine",
        "model.pos_encoding=learned", "model.block_size=64", "data.batch_size=12",
        "model.zero_init_residual=false", "budget_seconds=BUDGET",
    ],
}
TEXTS = ("shakespeare", "stdlib")
SHAKESPEARE_CHARS = 1_115_394


def stdlib_text(out: Path) -> Path:
    """This Python's standard library top-level modules, concatenated in file-name order and cut
    to the size of Tiny Shakespeare (built once)."""
    path = out / "stdlib.txt"
    if not path.exists():
        lib = Path(sys.base_prefix, "lib", f"python{sys.version_info[0]}.{sys.version_info[1]}")
        files = sorted(lib.glob("*.py"))
        if not files:
            exit_usage(f"no standard library sources under {lib}; run with a CPython that has them")
        text = "".join(f.read_text(encoding="utf-8", errors="replace") for f in files)
        out.mkdir(parents=True, exist_ok=True)
        path.write_text(text[:SHAKESPEARE_CHARS], encoding="utf-8")
    return path


def train_command() -> list[str]:
    """chargpt-train of this environment (beside this Python), else the module."""
    script = Path(sys.executable).with_name("chargpt-train")
    return [str(script)] if script.exists() else [sys.executable, "-m", "chargpt.cli.train"]


def run_dir(out: Path, budget: int, text: str, config: str, seed: int) -> Path:
    return out / "runs" / f"{text}-{config}-{budget}s-seed{seed}"


def command(
    out: Path, budget: int, text: str, config: str, seed: int, extra: Sequence[str] = ()
) -> list[str]:
    overrides = [o.replace("BUDGET", str(budget)) for o in CONFIGS[config]]
    data = ["data=text", f"data.path={stdlib_text(out)}"] if text == "stdlib" else []
    where = f"hydra.run.dir={run_dir(out, budget, text, config, seed)}"
    return [*train_command(), *overrides, *data, *extra, f"seed={seed}", where]


def read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def run_one(
    out: Path, budget: int, text: str, config: str, seed: int, rerun: bool, extra: Sequence[str] = ()
) -> dict[str, Any]:
    """Run (or read) one grid cell; the whole command's wall time is measured around the process."""
    where = run_dir(out, budget, text, config, seed)
    record_path = where / "budget_curve.json"
    if not rerun and (where / "metrics.json").exists() and record_path.exists():
        return read_json(record_path)
    if where.exists():
        shutil.rmtree(where)  # a new run needs a fresh directory
    cmd = command(out, budget, text, config, seed, extra)
    print(f"$ {shlex.join(cmd)}", flush=True)
    start = time.monotonic()
    done = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.monotonic() - start
    metrics, plan = read_json(where / "metrics.json"), read_json(where / "budget.json")
    chosen = (plan.get("auto") or {}).get("chosen") or {}
    record = {
        "budget": budget, "text": text, "config": config, "seed": seed, "rc": done.returncode,
        "wall_seconds": round(wall, 2), "val_loss": metrics.get("val_loss"), "steps": metrics.get("step"),
        "step_ms": plan.get("step_ms"), "shape": chosen.get("shape"), "dropout": chosen.get("dropout"),
        "auto": plan.get("auto"), "command": shlex.join(cmd),
        "error": None if done.returncode == 0 else (done.stderr.strip().splitlines() or ["?"])[-1],
    }
    where.mkdir(parents=True, exist_ok=True)
    record_path.write_text(json.dumps(record, indent=2))
    (where / "stdout.txt").write_text(done.stdout)
    (where / "stderr.txt").write_text(done.stderr)
    loss = record["val_loss"]
    status = f"failed: {record['error']}" if loss is None else f"val loss {loss:.4f}, {record['steps']} steps"
    print(f"  {status}; {wall:.1f} s wall", flush=True)
    return record


def mean_std(values: list[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"


def summarise(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per budget, text and config."""
    rows = []
    keys = sorted({(r["budget"], r["text"], r["config"]) for r in records},
                  key=lambda k: (k[0], TEXTS.index(k[1]) if k[1] in TEXTS else 9, list(CONFIGS).index(k[2])))
    for budget, text, config in keys:
        cell = [r for r in records if (r["budget"], r["text"], r["config"]) == (budget, text, config)]
        losses = [r["val_loss"] for r in cell if r.get("val_loss") is not None]
        steps = [r["steps"] for r in cell if r.get("steps")]
        walls = [r["wall_seconds"] for r in cell]
        shapes = sorted({f"{r['shape']} d{r['dropout']:g}" for r in cell if r.get("shape")})
        rows.append({
            "budget": budget, "text": text, "config": config,
            "runs": len(cell), "failed": len(cell) - len(losses),
            "val_loss_mean": statistics.mean(losses) if losses else None,
            "val_loss_std": statistics.stdev(losses) if len(losses) > 1 else None,
            "val_loss": mean_std(losses), "steps_mean": round(statistics.mean(steps)) if steps else None,
            "wall_seconds_mean": round(statistics.mean(walls), 1) if walls else None,
            "wall_seconds_max": round(max(walls), 1) if walls else None, "shapes": shapes,
        })
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| Budget (s) | Text | Config | Runs | Val loss (mean ± std) | Steps | Wall s (mean / max) "
        "| Shape (auto) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        failed = f" ({r['failed']} failed)" if r["failed"] else ""
        lines.append(
            f"| {r['budget']} | {r['text']} | {r['config']} | {r['runs']}{failed} | {r['val_loss']} | "
            f"{r['steps_mean'] if r['steps_mean'] is not None else '-'} | "
            f"{r['wall_seconds_mean']} / {r['wall_seconds_max']} | {', '.join(r['shapes']) or '-'} |"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = ScriptParser(description=__doc__.splitlines()[0])
    p.add_argument("--budgets", type=positive, nargs="+", default=[30, 100, 300, 600], help="seconds")
    p.add_argument("--texts", nargs="+", choices=TEXTS, default=list(TEXTS))
    p.add_argument("--seeds", type=whole_number, nargs="+", default=[1, 2])
    p.add_argument("--configs", nargs="+", choices=list(CONFIGS), default=list(CONFIGS))
    p.add_argument("--out", type=Path, default=Path("budget_curve"), help="runs, texts and results go here")
    p.add_argument("--extra", nargs="+", default=[], metavar="OVERRIDE",
                   help="overrides added to every run, e.g. model.zero_init_residual=false (use a new --out)")
    p.add_argument("--rerun", action="store_true", help="repeat runs that already finished")
    p.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    p.add_argument("--report-only", action="store_true", help="the table from the runs already in --out")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    out = args.out.resolve()
    grid = [(b, t, c, s) for b in args.budgets for t in args.texts for c in args.configs for s in args.seeds]
    if args.dry_run:
        for cell in grid:
            print(shlex.join(command(out, *cell, args.extra)))
        return
    print(f"{len(grid)} runs, {sum(b for b, *_ in grid) / 60:.0f} min of budgets; "
          f"CHARGPT_DATA_DIR={os.environ.get('CHARGPT_DATA_DIR', '(default)')}", flush=True)
    records = []
    for budget, text, config, seed in grid:
        where = run_dir(out, budget, text, config, seed)
        if args.report_only:
            record = read_json(where / "budget_curve.json")
            if record:
                records.append(record)
            continue
        records.append(run_one(out, budget, text, config, seed, args.rerun, args.extra))
    rows = summarise(records)
    (out / "results.json").parent.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({"rows": rows, "runs": records}, indent=2))
    print(table(rows))
    print(f"\nresults: {out / 'results.json'}")


if __name__ == "__main__":
    main()
