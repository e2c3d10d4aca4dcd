"""GPU check: what one CUDA GPU does with chargpt, in at most about 8 minutes, as one JSON line.

1. train: `chargpt-train experiment=shakespeare_char trainer=gpu model.compile=true` to the end
   (bf16, compiled): best validation loss, wall time, tokens/s and MFU (model FLOPs per token x
   tokens/s over the GPU's peak dense bf16 FLOP/s, from a table of known GPUs; null if unknown);
2. sample: the trained model's tokens/s with and without the KV cache, and cached with the
   one-token step compiled (compiling needs the cache, so there is no uncached compiled mode);
3. auto: `chargpt-train model=auto budget_seconds=120`: its loss, the shape it chose and the shapes
   it timed (ms a step); skipped with the reason when configs/model/auto.yaml does not exist;
4. syncs: a short run of the same recipe (eager, with the default callbacks and logger) under
   torch's CUDA sync debug mode (scripts/count_syncs.py), counting the device-to-host
   synchronisations of each step and the source lines that caused them: steps that neither log,
   check the loss nor validate must have none (else the step fails).

Training runs as a subprocess of chargpt-train (`python -m chargpt.cli.train`) in a temporary
directory (or --out, a new folder, where each run's console output is kept in its console.log);
sampling runs in this process, on --out/train (with `--steps sample`, an earlier check's model).
The last line printed is the JSON object.

    python scripts/gpu_check.py              # needs a CUDA GPU
    python scripts/gpu_check.py --dry-run    # the same steps at toy sizes on the CPU (CI runs it)

The corpus is Tiny Shakespeare in the data directory (CHARGPT_DATA_DIR, else ./data; downloaded
there if absent).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from chargpt import load
from chargpt.cli import CONFIG_PATH
from chargpt.overrides import hydra_quoted, omegaconf_literal

# Peak dense (no sparsity) bf16 tensor FLOP/s from the vendor's data sheets; the first match wins.
PEAK_BF16 = [
    (r"H100.*PCIe", 756e12),
    (r"H100|H200|GH200", 989e12),
    (r"A100", 312e12),
    (r"L40S", 362e12),
    (r"\bL4\b", 121e12),
    (r"\bA10\b", 125e12),
]

# Per step, a limit that keeps the whole check within about 8 minutes.
TRAIN_TIMEOUT_S = 280
AUTO_TIMEOUT_S = 170
AUTO_BUDGET_S = 120
GPU_SAMPLE_TOKENS = 2000
SYNCS_TIMEOUT_S = 120
SYNCS_RUN = ["trainer.max_steps=300", "trainer.val_check_interval=100", "sample.max_new_tokens=0"]

# Toy sizes for --dry-run: a 1-layer model for a few steps on the CPU.
TOY_MODEL = ["model.n_layer=1", "model.n_head=2", "model.n_embd=32", "model.block_size=16",
             "model.dropout=0.0"]
TOY_RUN = ["data.batch_size=8", "trainer.max_steps=20", "trainer.val_check_interval=10",
           "data.val_max_chars=20000", "trainer.log_every_n_steps=5"]
# --dry-run's model=auto: a budget far beyond any machine's need (its steps are capped).
DRY_AUTO_BUDGET_S = 3600
# A --dry-run step's limit only catches a hang: its toy runs took up to 100 s each on a loaded 2-core CPU.
DRY_RUN_TIMEOUT_S = 600
QUIET = ["logger=none", "sample.max_new_tokens=0", "callbacks.progress_bar=null"]


def peak_bf16(device_name: str) -> float | None:
    return next((peak for pattern, peak in PEAK_BF16 if re.search(pattern, device_name)), None)


def _text(output: str | bytes | None) -> str:
    # TimeoutExpired carries bytes even when the run was asked for text.
    return output.decode(errors="replace") if isinstance(output, bytes) else output or ""


def chargpt_train(
    run_dir: Path, overrides: list[str], timeout_s: float, path: Path | None = None
) -> dict[str, Any]:
    """One chargpt-train run in run_dir (with `path` put first on PYTHONPATH): its exit code, wall
    time and metrics.json; its console output is kept in run_dir/console.log."""
    start = time.perf_counter()
    args = [sys.executable, "-m", "chargpt.cli.train", *overrides, f"hydra.run.dir={run_dir}"]
    env = dict(os.environ)
    if path is not None:
        env["PYTHONPATH"] = os.pathsep.join(x for x in [str(path), os.environ.get("PYTHONPATH")] if x)
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        result = subprocess.run(args, capture_output=True, text=True, timeout=timeout_s, env=env)
    except subprocess.TimeoutExpired as late:
        (run_dir / "console.log").write_text(_text(late.stdout) + _text(late.stderr))
        return {"ok": False, "error": f"did not finish within {timeout_s:.0f} s", "wall_s": timeout_s}
    wall = time.perf_counter() - start
    (run_dir / "console.log").write_text(result.stdout + result.stderr)
    if result.returncode != 0:
        lines = [x for x in result.stderr.splitlines() if x.strip()]
        error = next((x for x in reversed(lines) if x.startswith("error:")), lines[-1] if lines else "")
        return {"ok": False, "error": f"exit {result.returncode}: {error[:300]}", "wall_s": round(wall, 1)}
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return {
        "ok": True,
        "best_val_loss": metrics.get("best_val_loss"),
        "steps": metrics.get("step"),
        "tokens_per_s": metrics.get("tokens_per_second"),
        "train_s": metrics.get("train_seconds"),
        "wall_s": round(wall, 1),  # the whole process: start-up, compiling, validations
    }


def train_step(out: Path, dry_run: bool, device_name: str | None) -> dict[str, Any]:
    if dry_run:  # fp32 and eager: compiling on a CPU takes minutes
        overrides = ["experiment=shakespeare_char", "trainer=cpu", *TOY_MODEL, *TOY_RUN, *QUIET]
    else:
        overrides = ["experiment=shakespeare_char", "trainer=gpu", "model.compile=true", *QUIET]
    result = chargpt_train(out / "train", overrides, DRY_RUN_TIMEOUT_S if dry_run else TRAIN_TIMEOUT_S)
    result["overrides"] = " ".join(overrides)
    result["mfu"] = None
    if result["ok"]:
        model = load(out / "train").model
        result["params"] = model.num_params()
        result["flops_per_token"] = model.flops_per_token()
        peak = peak_bf16(device_name) if device_name else None
        if peak and result["tokens_per_s"]:
            result["mfu"] = round(result["flops_per_token"] * result["tokens_per_s"] / peak, 4)
        result["peak_bf16_flops"] = peak
    return result


def tokens_per_s(run_dir: Path, device: str, tokens: int, use_cache: bool, compile: bool) -> dict[str, Any]:
    trained = load(run_dir, device=device)
    options = {"max_new_tokens": tokens, "seed": 0, "use_cache": use_cache, "compile": compile}
    start = time.perf_counter()
    first = "".join(trained.stream(**{**options, "max_new_tokens": 20}))  # warm-up (compiles)
    warm_s = time.perf_counter() - start
    start = time.perf_counter()
    text = "".join(trained.stream(**options))  # each character is read back: synchronised
    seconds = time.perf_counter() - start
    return {"tokens_per_s": round(len(text) / seconds, 1), "warmup_s": round(warm_s, 1), "sample": first}


def sample_step(out: Path, dry_run: bool) -> dict[str, Any]:
    if not (out / "train" / "metrics.json").exists():
        return {"skipped": "training did not finish: no model to sample from"}
    device, tokens = ("cpu", 100) if dry_run else ("cuda", GPU_SAMPLE_TOKENS)
    result: dict[str, Any] = {"device": device, "tokens": tokens}
    modes = [("uncached", False, False), ("cached", True, False), ("cached_compiled", True, True)]
    for name, cache, compile in modes:
        if compile and dry_run:
            result[name] = {"skipped": "--dry-run does not compile (minutes on a CPU)"}
            continue
        try:
            result[name] = tokens_per_s(out / "train", device, tokens, cache, compile)
        except Exception as err:  # one failed mode is a figure of the check, not its end
            result[name] = {"error": f"{type(err).__name__}: {str(err)[:300]}"}
    result["uncached_compiled"] = {"skipped": "compile compiles the cached one-token step"}
    return result


def auto_step(out: Path, dry_run: bool) -> dict[str, Any]:
    if not (Path(CONFIG_PATH) / "model" / "auto.yaml").exists():
        return {"skipped": "configs/model/auto.yaml does not exist in this version (no model=auto yet)"}
    if dry_run:
        # The path the GPU run takes (time the smallest shape, choose, train, record the choice), not
        # its speed: a budget no machine's start-up and timing can use up (a loaded 2-core CPU took
        # 910 ms a step, and refused a 40 s budget), with the steps capped, so that the climb stops
        # at the first shape and the run ends after a few steps however fast this machine is.
        overrides = ["model=auto", f"budget_seconds={DRY_AUTO_BUDGET_S}", "trainer=cpu",
                     "trainer.max_steps=20", "data.val_max_chars=20000",
                     "callbacks.time_budget.skip_steps=2", "callbacks.time_budget.calibration_steps=5",
                     *QUIET]
    else:
        overrides = ["model=auto", f"budget_seconds={AUTO_BUDGET_S}", "trainer=gpu", *QUIET]
    result = chargpt_train(out / "auto", overrides, DRY_RUN_TIMEOUT_S if dry_run else AUTO_TIMEOUT_S)
    result["overrides"] = " ".join(overrides)
    record = out / "auto" / "budget.json"
    if result["ok"] and record.exists():  # what it chose, and how many shapes it timed to choose it
        auto = json.loads(record.read_text())["auto"]
        result["chosen"] = auto["chosen"]["shape"]
        result["timed"] = [(c["shape"], c["step_ms"]) for c in auto["candidates"]]
        result["calibration_s"] = auto["calibration_seconds"]
    return result


def syncs_step(out: Path, dry_run: bool) -> dict[str, Any]:
    record = out / "syncs.json"
    record.unlink(missing_ok=True)  # (a reused --out: never read an earlier run's counts)
    # Quoted for Hydra (spaces, commas, accents in --out), escaped once more since instantiate resolves it.
    quoted = hydra_quoted(omegaconf_literal(str(record)))
    counter = ["+callbacks.count_syncs._target_=count_syncs.CountSyncs",
               f"+callbacks.count_syncs.path={quoted}"]
    if dry_run:
        overrides = ["experiment=shakespeare_char", "trainer=cpu", *TOY_MODEL, *TOY_RUN, "logger=none",
                     "sample.max_new_tokens=0", *counter]
    else:
        overrides = ["experiment=shakespeare_char", "trainer=gpu", *SYNCS_RUN, *counter]
    # This folder is importable in the run, for count_syncs.py.
    result = chargpt_train(out / "syncs", overrides, DRY_RUN_TIMEOUT_S if dry_run else SYNCS_TIMEOUT_S,
                           path=Path(__file__).resolve().parent)
    result["overrides"] = " ".join(x for x in overrides if not x.startswith("+callbacks"))
    if result["ok"]:
        result.update(json.loads(record.read_text()))
        if result["unexpected_steps"]:  # the figure the step exists for
            result["ok"] = False
            steps = result["unexpected_steps"][:10]
            result["error"] = f"steps synchronised outside logging and validation: {steps}"
    return result


STEPS = ("train", "sample", "auto", "syncs")
RUN_STEPS = ("train", "auto", "syncs")  # each a chargpt-train run in --out/<step>; sample reads --out/train


def _step_ok(figures: dict[str, Any]) -> bool:
    """A step passed: it was skipped, or it ran and every training run in it scored a finite loss."""
    if "ok" not in figures:  # sampling reports per mode; a failed mode is a figure, not a failure
        return True
    loss = figures.get("best_val_loss")
    return bool(figures["ok"]) and loss is not None and math.isfinite(loss)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="the same steps at toy sizes on the CPU")
    parser.add_argument("--out", type=Path, default=None, help="keep the runs here (default: temporary)")
    parser.add_argument("--steps", default=",".join(STEPS),
                        help=f"the steps to run, a comma-separated subset of {','.join(STEPS)}")
    args = parser.parse_args(argv)
    chosen = args.steps.split(",")
    if unknown := [x for x in chosen if x not in STEPS]:
        print(f"error: unknown step {unknown[0]!r} in --steps; choose from {','.join(STEPS)}",
              file=sys.stderr)
        return 2
    if not args.dry_run and not torch.cuda.is_available():
        print("error: this check needs a CUDA GPU and none is available; run it on a machine with one, "
              "or add --dry-run for the same steps at toy sizes on the CPU", file=sys.stderr)
        return 2
    runs = [name for name in chosen if name in RUN_STEPS]
    if args.out and (held := [name for name in runs if (args.out / name).exists()]):
        # Refused before anything runs: chargpt-train never writes over a run, so the step would
        # fail after the steps before it had spent their minutes.
        print(f"error: --out {args.out} already holds a {held[0]!r} run ({args.out / held[0]}); pass a new "
              f"--out folder, or leave {held[0]} out of --steps", file=sys.stderr)
        return 2
    device_name = None if args.dry_run else torch.cuda.get_device_name(0)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
        out = args.out or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        figures: dict[str, Any] = {
            "dry_run": args.dry_run, "device": device_name or "cpu", "torch": torch.__version__,
        }
        steps = {"train": lambda: train_step(out, args.dry_run, device_name),
                 "sample": lambda: sample_step(out, args.dry_run),
                 "auto": lambda: auto_step(out, args.dry_run),
                 "syncs": lambda: syncs_step(out, args.dry_run)}
        for name, step in steps.items():
            if name not in chosen:
                continue
            step_start = time.perf_counter()
            print(f"gpu_check: {name} ...", file=sys.stderr, flush=True)
            figures[name] = step()
            took = time.perf_counter() - step_start
            # Each step's figures as they come: a check stopped from outside keeps what it measured.
            print(f"gpu_check: {name} done in {took:.0f} s: {json.dumps(figures[name])}",
                  file=sys.stderr, flush=True)
    figures["total_s"] = round(time.perf_counter() - start, 1)
    figures["ok"] = all(_step_ok(figures[name]) for name in STEPS if name in figures)
    print(json.dumps(figures))
    return 0 if figures["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
