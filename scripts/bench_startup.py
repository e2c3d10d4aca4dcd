"""Start-up: the seconds each command spends importing its code, in fresh processes.

Each command's module is imported in a new Python process, `--repeats` times, the commands taking
turns so that a busy spell on the host falls on all of them alike; the table gives the median and
whether the import brought in Lightning. torch alone and Lightning alone are the reference rows.
The last line is a JSON object.

    python scripts/bench_startup.py
    python scripts/bench_startup.py --repeats 9
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

MODULES = {
    "torch (reference)": "torch",
    "lightning (reference)": "lightning",
    "import chargpt": "chargpt",
    "chargpt-train": "chargpt.cli.train",
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


def import_once(module: str) -> tuple[float, bool]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(module=module)], capture_output=True, text=True, check=True
    ).stdout.split()
    return float(out[0]), out[1] == "True"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    times: dict[str, list[float]] = {name: [] for name in MODULES}
    lightning: dict[str, bool] = {}
    for _ in range(args.repeats):
        for name, module in MODULES.items():
            seconds, lightning[name] = import_once(module)
            times[name].append(seconds)
    medians = {name: statistics.median(values) for name, values in times.items()}
    print(f"{'command':<24} {'import (s)':>10}  imports Lightning")
    for name in MODULES:
        print(f"{name:<24} {medians[name]:>10.2f}  {'yes' if lightning[name] else 'no'}")
    print(json.dumps({"repeats": args.repeats, "median_s": {k: round(v, 3) for k, v in medians.items()},
                      "imports_lightning": lightning}))


if __name__ == "__main__":
    main()
