"""Training step time when several runs share one machine, with and without limiting each run's
threads, side by side.

Each scenario starts its runs at once as separate processes (as two `chargpt-train` commands in
two terminals would be) and reports every run's median step time: one run alone with torch's
default threads, then N runs at once with the default threads, then N runs with the cores shared
out (`OMP_NUM_THREADS` = cores // N; `chargpt-train threads=N` sets the same). A run here is the
model and optimizer of `experiment=cpu_100s` (3 layers × 128, context 128, batch 8, Muon + AdamW) taking
full steps on random tokens. The last line is a JSON object.

    python scripts/bench_concurrent_runs.py               # 2 runs at once
    python scripts/bench_concurrent_runs.py --runs 3 --steps 20
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import torch

from chargpt.model import ModelConfig, build_model
from script_cli import ScriptParser, positive, run_script
from step_benchmarks import preset_optimizer


def worker(steps: int, start_at: float) -> None:
    """One run: the model and optimizer of experiment=cpu_100s taking full steps; prints the step
    times (s) as JSON."""
    torch.manual_seed(0)
    model = build_model(ModelConfig(n_layer=3, n_embd=128, n_head=4, block_size=128, pos_encoding="rope"), 65)
    opt = preset_optimizer(model)
    x = torch.randint(0, 65, (8, 128))

    def step() -> None:
        model(x, x)[1].backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(3):
        step()  # warm-up: allocation, lazy init
    while time.time() < start_at:  # every run of a scenario starts its timed steps together
        time.sleep(0.01)
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    print(json.dumps({"threads": torch.get_num_threads(), "times": times}))


def run_scenario(runs: int, threads: int | None, steps: int) -> list[dict]:
    """Start `runs` processes together; each one's thread count and median step time (ms)."""
    env = dict(os.environ)
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    start_at = time.time() + 8.0  # after every process has imported torch and warmed up
    procs = [
        subprocess.Popen([sys.executable, __file__, "--worker", str(steps), str(start_at)], env=env,
                         stdout=subprocess.PIPE, text=True)
        for _ in range(runs)
    ]
    results = []
    for proc in procs:
        out, _ = proc.communicate()
        if proc.returncode:
            for other in procs:
                other.kill()  # no stray run left timing steps on the machine
            raise SystemExit(f"error: a benchmark run exited with {proc.returncode}")
        record = json.loads(out.strip().splitlines()[-1])
        results.append({"threads": record["threads"],
                        "median_ms": round(statistics.median(record["times"]) * 1e3, 1)})
    return results


def main() -> None:
    p = ScriptParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=positive, default=2, help="runs sharing the machine")
    p.add_argument("--steps", type=positive, default=30, help="timed steps per run")
    p.add_argument("--worker", nargs=2, metavar=("STEPS", "START_AT"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:  # one of the runs this script starts
        worker(int(args.worker[0]), float(args.worker[1]))
        return
    cores = os.cpu_count() or 1
    shared = max(1, cores // args.runs)
    scenarios = [
        ("1 run, default threads", 1, None),
        (f"{args.runs} runs, default threads", args.runs, None),
        (f"{args.runs} runs, OMP_NUM_THREADS={shared}", args.runs, shared),
    ]
    print(f"{cores} cores; model of experiment=cpu_100s; median of {args.steps} steps per run")
    print("| scenario | threads per run | ms/step of each run | steps/s, all runs |")
    print("| --- | --- | --- | --- |")
    summary = {}
    for name, runs, threads in scenarios:
        results = run_scenario(runs, threads, args.steps)
        per_run = ", ".join(f"{r['median_ms']:.1f}" for r in results)
        throughput = sum(1e3 / r["median_ms"] for r in results)
        print(f"| {name} | {results[0]['threads']} | {per_run} | {throughput:.1f} |")
        summary[name] = {"threads": results[0]["threads"], "ms_per_step": [r["median_ms"] for r in results],
                         "steps_per_second": round(throughput, 2)}
    print(json.dumps({"cores": cores, "runs": args.runs, "scenarios": summary}))


if __name__ == "__main__":
    run_script(main)
