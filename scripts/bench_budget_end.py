"""How close a budgeted command ends to its budget: one git revision's code against this tree's.

Runs the same `chargpt-train ... budget_seconds=N` commands with the code of `--before` (a git
revision, its src/ and configs/ extracted into the output folder) and with this tree's, in turns
(before, after, before, after, ...), each its own process, so both meet the same load. Reads each
run's budget.json and prints one table: the one-minute load average as the command started, the
steps planned, when training and its final validation ended, when the command's work ended and when
its process exited (timed around it), and the end's estimate against what it took (the final
validation's loop, and what followed it until training ended: the text sample, the pictures, the
checkpoints), and the exit's price (from the run's start-up) against what it took, also written as
JSON. The end, as the last plan priced it and as it took, includes the closing
sample (a cut sample took what it was left).

    python scripts/bench_budget_end.py --before main --budget 60 --samples 300 2000
    python scripts/bench_budget_end.py --before HEAD~1 --rounds 2 --extra model=tiny

Each run takes its budget: --rounds 1 with two sample lengths is four runs.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shlex
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

from chargpt.errors import exit_usage
from script_cli import ScriptParser, positive, whole_number

REPO = Path(__file__).resolve().parent.parent


def code_of(revision: str, out: Path) -> Path:
    """src/ and configs/ of `revision`, extracted once into `out` (its PYTHONPATH is out/src)."""
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--verify", f"{revision}^{{commit}}"],
                            capture_output=True, text=True)
    if commit.returncode != 0:
        exit_usage(f"--before {revision} is not a git revision of this repository; give a commit or a branch")
    where = out / f"code-{commit.stdout.strip()[:12]}"
    if not (where / "src").is_dir():
        archive = subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", commit.stdout.strip(),
                                  "src", "configs"], capture_output=True, check=True)
        with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
            tar.extractall(where, filter="data")
    return where


def read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def run_one(code: str, src: Path, budget: int, tokens: int, extra: list[str], where: Path) -> dict[str, Any]:
    """One budgeted command with the code in `src`; its wall time measured around the process."""
    if where.exists():
        shutil.rmtree(where)
    cmd = [sys.executable, "-c", "from chargpt.cli.launch import train; train()", *extra,
           f"budget_seconds={budget}", f"sample.max_new_tokens={tokens}", f"hydra.run.dir={where}"]
    env = os.environ | {"PYTHONPATH": str(src)}
    load = os.getloadavg()[0]
    print(f"$ PYTHONPATH={shlex.quote(str(src))} {shlex.join(cmd)}  (load {load:.1f})", flush=True)
    start = time.monotonic()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.monotonic() - start
    where.mkdir(parents=True, exist_ok=True)
    (where / "stdout.txt").write_text(done.stdout)
    (where / "stderr.txt").write_text(done.stderr)
    plan = read_json(where / "budget.json")
    parts = plan.get("final_seconds_parts") or {}
    measured = plan.get("final_seconds_measured") or {}
    warned = [line for line in done.stderr.splitlines() if "time budget exceeded" in line]
    record = {
        "code": code, "sample_tokens": tokens, "load": round(load, 1), "rc": done.returncode,
        "steps": plan.get("planned_steps"), "train_end": plan.get("train_end_seconds"),
        "work_end": plan.get("work_end_seconds"), "exit": round(wall, 2),
        # The process's exit as priced (from its start-up) and as it took, timed around the process.
        "startup": plan.get("startup_seconds"), "exit_estimate": plan.get("exit_seconds_estimate"),
        "exit_took": round(wall - plan["work_end_seconds"], 2) if plan.get("work_end_seconds") else None,
        # The end as the last plan priced it (the closing sample's share included) and as it took.
        "end_estimate": plan.get("final_seconds_at_last_plan"),
        "end_measured": round(sum(measured.values()), 2) if measured else None,
        "validation_mean": plan.get("validation_seconds_measured"),
        "sample_estimate": parts.get("closing_sample"), "sample_measured": measured.get("closing_sample"),
        "sample_cut": bool(plan.get("closing_sample_cut")), "warned": bool(warned),
        "parts": parts, "measured": measured, "command": shlex.join(cmd),
    }
    print(f"  exit at {wall:.1f} s, {record['steps']} steps, end {record['end_measured']} s "
          f"(estimated {record['end_estimate']} s)", flush=True)
    return record


def table(records: list[dict[str, Any]]) -> str:
    lines = ["| Code | Sample chars | Load | Steps | Training ended (s) | Work ended (s) | Exit (s) "
             "| End priced at last plan (s) | End took (s) "
             "| Closing sample: priced / took (s) | Start-up (s) | Exit after the work: priced / took (s) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in records:
        cut = ", cut" if r["sample_cut"] else ""
        warned = " (warned)" if r["warned"] else ""
        lines.append(f"| {r['code']} | {r['sample_tokens']} | {r['load']} | {r['steps']} | "
                     f"{r['train_end']} | {r['work_end']} | {r['exit']}{warned} | "
                     f"{r['end_estimate']} | {r['end_measured']} | "
                     f"{r['sample_estimate']} / {r['sample_measured']}{cut} | {r['startup']} | "
                     f"{r['exit_estimate']} / {r['exit_took']} |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = ScriptParser(description=__doc__.splitlines()[0])
    p.add_argument("--before", default="main", help="git revision whose code runs first in each turn")
    p.add_argument("--budget", type=positive, default=60, help="budget_seconds of every run")
    p.add_argument("--samples", type=whole_number, nargs="+", default=[300, 2000],
                   help="sample.max_new_tokens of the runs (one run each per code and round)")
    p.add_argument("--rounds", type=positive, default=1)
    p.add_argument("--extra", nargs="+", default=["model=tiny"], metavar="OVERRIDE",
                   help="overrides of every run (default: model=tiny)")
    p.add_argument("--out", type=Path, default=Path("bench_budget_end"),
                   help="the code of --before, the runs and the results go here")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    out = args.out.resolve()
    codes = {f"before ({args.before})": code_of(args.before, out) / "src", "after (this tree)": REPO / "src"}
    records = []
    for round_ in range(args.rounds):
        for tokens in args.samples:
            for i, (code, src) in enumerate(codes.items()):
                where = out / "runs" / f"round{round_}-{tokens}-{'before' if i == 0 else 'after'}"
                records.append(run_one(code, src, args.budget, tokens, args.extra, where))
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(records, indent=2))
    print(f"\nbudget_seconds={args.budget}, {' '.join(args.extra)}; {os.cpu_count()} CPUs")
    print(table(records))
    print(f"\nresults: {out / 'results.json'}")


if __name__ == "__main__":
    main()
