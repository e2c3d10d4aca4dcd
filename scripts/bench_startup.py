"""Start-up: the seconds each command spends importing its code, in fresh processes.

Each command's module is imported in a new Python process, `--repeats` times, the commands taking
turns so that a busy spell on the host falls on all of them alike; the table gives the median and
whether the import brought in Lightning. torch alone and Lightning alone are the reference rows.
`--against SRC` times the same commands from another source tree too (the `src` folder of an
older checkout: `git worktree add ../old COMMIT`), in the same turns; a command that tree lacks
(an older one may) is shown as absent. `--collector` adds a second table, in the same turns:
chargpt-train's training import (Lightning: chargpt.training.build) and the process's exit after
it, with Python's garbage collector left on and as a command imports it (off during the import,
whose objects are then frozen out of its passes: chargpt.cli.launch). The last line is a JSON object.

    python scripts/bench_startup.py
    python scripts/bench_startup.py --repeats 9 --against ../old/src
    python scripts/bench_startup.py --collector
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from typing import NoReturn

MODULES = {
    "torch (reference)": "torch",
    "lightning (reference)": "lightning",
    "import chargpt": "chargpt",
    "chargpt.load (Python API)": "chargpt.inference",
    "chargpt-train": "chargpt.cli.train",  # what --help and a refused setting pay
    "chargpt-train, training": "chargpt.training.build",  # what a run then imports (Lightning)
    "chargpt-sample": "chargpt.cli.sample",
    "chargpt-eval": "chargpt.cli.eval",
    "chargpt-serve": "chargpt.cli.serve",
    "chargpt-export": "chargpt.cli.export",
    "chargpt-report": "chargpt.cli.report",
}

PROBE = (
    "import sys, time; t = time.perf_counter(); import {module}; "
    "print(time.perf_counter() - t, 'lightning' in sys.modules)"
)


def import_once(module: str, src: str | None) -> tuple[float, bool] | None:
    """(seconds, whether Lightning came in), or None where the module cannot be imported."""
    env = dict(os.environ)
    if src is not None:  # ahead of the installed chargpt on sys.path
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [src, env.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(module=module)], capture_output=True, text=True, env=env,
    )
    if done.returncode != 0:
        return None
    out = done.stdout.split()
    return float(out[0]), out[1] == "True"


COLLECTOR_MODULE = "chargpt.training.build"  # chargpt-train's training import (Lightning)
COLLECTOR_MODES = {"left on": "on", "as launched": "launched"}
# Prints the import's seconds and the wall-clock time at the end of the script: the parent takes
# the process's exit from there to its end.
COLLECTOR_PROBE = (
    "import contextlib, sys, time; from chargpt.cli.launch import collector_off_then_frozen; "
    "launched = sys.argv[1] == 'launched'; t = time.perf_counter()\n"
    "with collector_off_then_frozen() if launched else contextlib.nullcontext(): import {module}\n"
    "print(time.perf_counter() - t, time.time(), flush=True)"
)


def import_and_exit(mode: str) -> tuple[float, float]:
    """(import seconds, exit seconds) of chargpt-train's module with the collector in `mode`."""
    done = subprocess.run([sys.executable, "-c", COLLECTOR_PROBE.format(module=COLLECTOR_MODULE), mode],
                          capture_output=True, text=True)
    ended = time.time()
    if done.returncode != 0:
        fail(f"{COLLECTOR_MODULE} cannot be imported here; install chargpt first (make install)")
    took, script_end = (float(x) for x in done.stdout.split())
    return took, ended - script_end


def fail(message: str) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--against", default=None, help="another chargpt source tree to time beside this one")
    p.add_argument("--collector", action="store_true",
                   help="also time chargpt-train's import and exit, the collector left on and as launched")
    args = p.parse_args()
    if args.repeats < 1:
        fail(f"--repeats {args.repeats}: give a whole number of at least 1")
    if args.against and not os.path.isdir(os.path.join(args.against, "chargpt")):
        fail(f"{args.against} holds no chargpt package; pass the src folder of a checkout "
             "(git worktree add ../old COMMIT, then --against ../old/src)")
    trees = {"this": None} | ({"against": os.path.abspath(args.against)} if args.against else {})
    rows = [(name, tree) for name in MODULES for tree in trees
            if tree == "this" or MODULES[name].startswith("chargpt")]
    times: dict[tuple[str, str], list[float]] = {row: [] for row in rows}
    lightning: dict[tuple[str, str], bool] = {}
    collector: dict[str, list[tuple[float, float]]] = {name: [] for name in COLLECTOR_MODES if args.collector}
    for _ in range(args.repeats):
        for name in collector:
            collector[name].append(import_and_exit(COLLECTOR_MODES[name]))
        for name, tree in list(rows):
            if (timed := import_once(MODULES[name], trees[tree])) is None:
                if tree == "this":
                    fail(f"{MODULES[name]} cannot be imported here; install chargpt first (make install)")
                rows.remove((name, tree))  # absent from the older tree
                del times[name, tree]
                continue
            times[name, tree].append(timed[0])
            lightning[name, tree] = timed[1]
    medians = {row: statistics.median(values) for row, values in times.items()}
    heads = "".join(f" {tree + ' (s)':>12}" for tree in trees)
    width = max(map(len, MODULES)) + 1
    print(f"{'command':<{width}}{heads}  imports Lightning ({', '.join(trees)})")
    for name in MODULES:
        absent = "absent" if MODULES[name].startswith("chargpt") else ""  # not timed: a reference row
        cells = "".join(f" {medians[name, t]:>12.2f}" if (name, t) in medians else f" {absent:>12}"
                        for t in trees)
        said = ", ".join("yes" if lightning[name, t] else "no" for t in trees if (name, t) in lightning)
        print(f"{name:<{width}}{cells}  {said}")

    gc_medians = {name: {"import_s": round(statistics.median(t for t, _ in runs), 3),
                         "exit_s": round(statistics.median(e for _, e in runs), 3)}
                  for name, runs in collector.items()}
    if gc_medians:
        head = "chargpt-train, garbage collector"
        print(f"\n{head:<34} {'import (s)':>10} {'exit (s)':>9} {'both (s)':>9}")
        for name, m in gc_medians.items():
            both = m["import_s"] + m["exit_s"]
            print(f"{name:<34} {m['import_s']:>10.2f} {m['exit_s']:>9.2f} {both:>9.2f}")

    def per_tree(values: dict[tuple[str, str], float | bool], tree: str) -> dict[str, float | bool]:
        return {name: round(v, 3) if isinstance(v, float) else v
                for (name, t), v in values.items() if t == tree}

    print(json.dumps({
        "repeats": args.repeats, "against": trees.get("against"),
        "median_s": per_tree(medians, "this"), "imports_lightning": per_tree(lightning, "this"),
        **({"against_median_s": per_tree(medians, "against"),
            "against_imports_lightning": per_tree(lightning, "against")} if args.against else {}),
        **({"collector": gc_medians} if gc_medians else {}),
    }))


if __name__ == "__main__":
    main()
