"""Training throughput: the project's training path against a bare PyTorch loop, side by side.

In one process, alternating repetitions run (a) the real path: the config composed from the
project's configs and the data, LightningModule and Trainer built by `chargpt.training.build.build_run`
(callbacks, progress bar, TensorBoard logger and all), and (b) a minimal loop over the same model,
batches, optimizer, LR schedule and gradient clipping. Each repetition times `--steps` steps after
`--warmup` steps. Also prints achieved model FLOP/s (nanoGPT's 6N + 12LTd per token) against a
matmul peak measured in the precision the run trains with, and the loader alone in batches/s. The
last line is a JSON object.

With `--nanogpt PATH` (a clone of github.com/karpathy/nanoGPT with its Shakespeare data prepared),
each repetition also runs (c) nanoGPT's own train.py in a subprocess on the same model, batch,
steps, precision and optimizer settings, and compares its median per-iteration time (from its
"iter N: loss L, time T ms" lines) with the median step time of chargpt's path.

    python scripts/bench_train.py                       # nanoGPT's CPU recipe: tiny model, batch 12
    python scripts/bench_train.py --override model.bias=false --nanogpt ~/nanoGPT
    python scripts/bench_train.py --precision bf16-mixed --compile
"""

from __future__ import annotations

import argparse
import itertools
import json
import pickle
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra import compose, initialize_config_dir
from lightning.pytorch.callbacks import Callback
from omegaconf import DictConfig, OmegaConf

from chargpt.cli import CONFIG_PATH
from chargpt.cli.common import quiet_known_warnings
from chargpt.data.windows import TrainWindows
from chargpt.errors import ConfigError, exit_usage
from chargpt.hydra_run import plain
from chargpt.training import precision
from chargpt.training.build import build_run
from chargpt.training.optim import build_optimizer, plain_training_step
from chargpt.training.schedules import build_scheduler
from script_cli import ScriptParser, positive, run_script


def parse_args() -> argparse.Namespace:
    p = ScriptParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="tiny", help="model preset (configs/model)")
    p.add_argument("--batch", type=positive, default=12)
    p.add_argument("--block", type=positive, default=None, help="context length (default: the preset's)")
    p.add_argument("--precision", default="32-true", help="trainer.precision, e.g. bf16-mixed or auto")
    p.add_argument("--compile", action="store_true", help="model.compile=true")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--steps", type=positive, default=100, help="timed steps per repetition")
    p.add_argument("--warmup", type=positive, default=10, help="untimed steps before them")
    p.add_argument("--reps", type=positive, default=3, help="alternating repetitions of each path")
    p.add_argument("--override", action="append", default=[], help="extra Hydra override (repeatable)")
    p.add_argument(
        "--nanogpt", metavar="PATH", default=None,
        help="a nanoGPT clone: also time its train.py on the same config (data/shakespeare_char prepared)",
    )
    return p.parse_args()


def compose_config(args: argparse.Namespace, output_dir: str) -> DictConfig:
    total = args.warmup + args.steps
    overrides = [
        f"model={args.model}",
        f"data.batch_size={args.batch}",
        f"trainer.precision={args.precision}",
        f"model.compile={str(args.compile).lower()}",
        f"trainer.accelerator={'gpu' if args.device.startswith('cuda') else 'cpu'}",
        f"trainer.max_steps={total}",
        f"trainer.val_check_interval={total}",  # validation only after the timed steps
        # No time budget (a preset's, e.g. experiment=cpu_100s): its one-off timing of validation and
        # sampling would land inside the timed steps (the ratio to the bare loop read 0.73, not ~1.0).
        "budget_seconds=null",
        "+trainer.limit_val_batches=2",
        f"paths.output_dir={output_dir}",
        *([f"model.block_size={args.block}"] if args.block else []),
        # nanoGPT computes float32 products on a CPU; matmul_precision=auto would not on one with AMX.
        *(["matmul_precision=highest"] if args.nanogpt else []),
        *args.override,
    ]
    with initialize_config_dir(config_dir=CONFIG_PATH, version_base="1.3"):
        return compose(config_name="train", overrides=overrides)


class StepTimes(Callback):
    """perf_counter at the end of every training batch: the gaps include all per-step work."""

    def __init__(self, device: torch.device) -> None:
        self.times: list[float] = []
        self.device = device

    def on_train_batch_end(self, *args: Any) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        self.times.append(time.perf_counter())


def run_project(cfg: DictConfig, args: argparse.Namespace) -> tuple[float, float]:
    """Seconds per step of chargpt's own training path: the mean over the timed steps, and the
    median of their individual times (what nanoGPT's per-iteration figure compares with)."""
    # Each fit gets a run directory of its own: build_run refuses one that already holds a run
    # (metrics.json, checkpoints), as the previous repetition's does.
    cfg = cfg.copy()
    OmegaConf.update(cfg, "paths.output_dir", tempfile.mkdtemp(prefix="fit-", dir=cfg.paths.output_dir))
    L.seed_everything(cfg.seed, verbose=False)
    datamodule, module, trainer = build_run(cfg)[:3]
    timer = StepTimes(torch.device(args.device))
    trainer.callbacks.append(timer)
    trainer.fit(module, datamodule=datamodule)
    t = timer.times[args.warmup - 1 : args.warmup + args.steps]
    gaps = [b - a for a, b in itertools.pairwise(t)]
    return (t[-1] - t[0]) / args.steps, statistics.median(gaps)


def run_bare(cfg: DictConfig, args: argparse.Namespace) -> float:
    """Seconds per step of a minimal loop: same model, batches, optimizer, schedule and clipping."""
    L.seed_everything(cfg.seed, verbose=False)
    datamodule, module = build_run(cfg)[:2]
    device = torch.device(args.device)
    run_precision = precision.precision_plugin(args.precision, device)  # what the Trainer applies
    model = run_precision.convert_module(module.model.to(device)).train()
    step_model = torch.compile(model) if args.compile else model
    total = args.warmup + args.steps
    opt = build_optimizer(model, plain(cfg.optimizer))
    sched = build_scheduler(opt, plain(cfg.scheduler), lambda: total)
    dm = datamodule
    windows = TrainWindows(dm.train_ids, dm.block_size, dm.batch_size, dm.seed)
    clip = cfg.trainer.gradient_clip_val
    start = 0.0
    for step in range(total):
        if step == args.warmup:
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
        x, y = (t.to(device, non_blocking=True) for t in windows[step])
        plain_training_step(step_model, opt, x, y, run_precision, clip)
        if sched is not None:
            sched.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / args.steps


NANOGPT_DATA = "data/shakespeare_char"
NANOGPT_DTYPE = {"32-true": "float32", "bf16-mixed": "bfloat16", "16-mixed": "float16"}
NANOGPT_ITER = re.compile(r"^iter (\d+): loss \S+, time ([\d.]+)ms", re.MULTILINE)


def nanogpt_command(cfg: DictConfig, args: argparse.Namespace, out_dir: str) -> list[str]:
    """nanoGPT's train.py on chargpt's config: its Shakespeare recipe with the model, batch, step count,
    precision, optimizer and schedule overridden to match. Refuses settings nanoGPT cannot express."""
    m, opt, sched = cfg.model, cfg.optimizer, cfg.scheduler
    gpt_only = {
        "arch": "gpt", "pos_encoding": "learned", "activation": "gelu", "mlp_ratio": 4.0,
        "norm": "layernorm", "qk_norm": False, "tie_weights": True, "logit_softcap": None,
    }
    differ = [f"model.{k}={m.get(k)}" for k, v in gpt_only.items() if m.get(k) != v]
    if not str(opt.get("_target_", "")).endswith("AdamW"):
        differ.append(f"optimizer={opt.get('_target_')}")
    if not str(sched.get("_target_", "")).endswith("WarmupCosine"):
        differ.append(f"scheduler={sched.get('_target_')}")
    if args.precision not in NANOGPT_DTYPE or (args.device == "cpu" and args.precision != "32-true"):
        differ.append(f"precision {args.precision} on {args.device} (nanoGPT runs fp32 on CPU)")
    if args.device == "cpu" and cfg.matmul_precision != "highest":
        differ.append(f"matmul_precision={cfg.matmul_precision} (nanoGPT's products are float32 on CPU)")
    if differ:
        raise ConfigError(f"--nanogpt: nanoGPT's train.py cannot run this config: {', '.join(differ)}")
    total = args.warmup + args.steps
    lr = float(opt.lr)
    settings = {
        "device": args.device, "compile": args.compile, "dtype": NANOGPT_DTYPE[args.precision],
        "out_dir": out_dir, "log_interval": 1, "eval_iters": 20,
        "eval_interval": total + 1,  # evaluates at iteration 0 only (a warm-up iteration)
        "n_layer": int(m.n_layer), "n_head": int(m.n_head), "n_embd": int(m.n_embd),
        "block_size": int(m.block_size), "dropout": float(m.dropout), "bias": bool(m.bias),
        "batch_size": int(cfg.data.batch_size), "gradient_accumulation_steps": 1,
        "max_iters": total - 1, "lr_decay_iters": total - 1,  # iterations 0..max_iters run
        "learning_rate": lr, "min_lr": lr * float(sched.min_lr_ratio),
        "warmup_iters": int(sched.warmup_steps),
        "beta1": float(opt.betas[0]), "beta2": float(opt.betas[1]),
        "weight_decay": float(opt.weight_decay), "grad_clip": float(cfg.trainer.gradient_clip_val or 0.0),
    }
    return [sys.executable, "train.py", "config/train_shakespeare_char.py",
            *(f"--{k}={v}" for k, v in settings.items())]


def check_nanogpt(path: Path) -> int:
    """A one-line error unless PATH is a nanoGPT clone with the Shakespeare data prepared; returns
    the size of the vocabulary it was prepared with."""
    if not (path / "train.py").is_file() or not (path / "configurator.py").is_file():
        raise ConfigError(f"--nanogpt {path}: no nanoGPT train.py and configurator.py there")
    missing = [f for f in ("train.bin", "val.bin", "meta.pkl") if not (path / NANOGPT_DATA / f).is_file()]
    if missing:
        raise ConfigError(
            f"--nanogpt {path}: {NANOGPT_DATA}/{missing[0]} is missing; run `python "
            f"{NANOGPT_DATA}/prepare.py` in {path} first (it downloads Tiny Shakespeare unless "
            f"{NANOGPT_DATA}/input.txt is already there)"
        )
    with open(path / NANOGPT_DATA / "meta.pkl", "rb") as f:
        return int(pickle.load(f)["vocab_size"])


def run_nanogpt(path: Path, command: list[str], args: argparse.Namespace) -> tuple[float, float]:
    """Seconds per step of nanoGPT's train.py: the median and the mean of its per-iteration times
    after the warm-up iterations (the evaluation iteration 0 is among those)."""
    done = subprocess.run(command, cwd=path, capture_output=True, text=True)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["(no output)"]
        raise SystemExit(f"nanoGPT's train.py failed (exit {done.returncode}): {tail[0]}")
    times = {int(i): float(ms) / 1e3 for i, ms in NANOGPT_ITER.findall(done.stdout)}
    timed = [times[i] for i in range(args.warmup, args.warmup + args.steps) if i in times]
    if len(timed) != args.steps:
        raise SystemExit(f"nanoGPT's train.py printed {len(timed)} of {args.steps} timed iterations")
    return statistics.median(timed), statistics.mean(timed)


def matmul_peak(device: torch.device, dtype: torch.dtype, n: int = 1024, reps: int = 20) -> float:
    """Best FLOP/s of an n x n matmul: the achievable peak on this machine."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    best = float("inf")
    for _ in range(reps):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        a @ b
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best


def loader_batches_per_s(loader: Iterable[Any], n: int = 200) -> float:
    """Batches/s of a data loader alone, iterated as the Trainer does, after its first batch."""
    it = iter(loader)
    next(it)
    t = time.perf_counter()
    for _ in range(n):
        next(it)
    return n / (time.perf_counter() - t)


def main() -> None:
    args = parse_args()
    quiet_known_warnings()
    try:  # both paths run the precision a run resolves to ("auto" included) here
        args.precision = precision.precision_for_device(args.precision, torch.device(args.device))
    except ConfigError as e:
        exit_usage(f"--precision: {e}")
    with tempfile.TemporaryDirectory(prefix="chargpt-bench-") as out:
        cfg = compose_config(args, out)
        tokens_per_step = args.batch * cfg.model.block_size
        nanogpt_path = Path(args.nanogpt).expanduser().resolve() if args.nanogpt else None
        if nanogpt_path is not None:
            command = nanogpt_command(cfg, args, str(Path(out) / "nanogpt"))
            nanogpt_vocab = check_nanogpt(nanogpt_path)
        project, project_median, bare, nano, nano_mean = [], [], [], [], []
        for rep in range(args.reps):
            mean, median = run_project(cfg, args)
            project.append(mean)
            project_median.append(median)
            bare.append(run_bare(cfg, args))
            line = (
                f"rep {rep + 1}/{args.reps}: chargpt {mean * 1e3:.2f} ms/step, "
                f"bare {bare[-1] * 1e3:.2f} ms/step"
            )
            if nanogpt_path is not None:
                median_n, mean_n = run_nanogpt(nanogpt_path, command, args)
                nano.append(median_n)
                nano_mean.append(mean_n)
                line += (
                    f"; median step: chargpt {median * 1e3:.2f} ms, nanoGPT {median_n * 1e3:.2f} ms "
                    f"(mean {mean_n * 1e3:.2f})"
                )
            print(line, flush=True)
        run = build_run(cfg)
        loader_bps = loader_batches_per_s(run.datamodule.train_dataloader())
        module = run.module
        fpt = module.model.flops_per_token()
        vocab = module.tokenizer.vocab_size
        if nanogpt_path is not None and nanogpt_vocab != vocab:
            print(f"note: nanoGPT's data has {nanogpt_vocab} characters, chargpt's corpus {vocab}")

    device = torch.device(args.device)
    low = args.precision.startswith("bf16")
    # Timed in the arithmetic the run trained with: the float32 matmul precision the runs above set
    # (matmul_precision=auto is 'medium', bf16 products, on a CPU with AMX). A true-float32 peak
    # would put a model with bf16 products above 100% of it.
    products = torch.get_float32_matmul_precision()
    peak = matmul_peak(device, torch.bfloat16 if low else torch.float32)
    peak_name = "bf16 matmul peak" if low else f"fp32 matmul peak at matmul precision '{products}'"
    # The best repetition of each path: the one least disturbed by other processes on the machine.
    p_step, b_step = min(project), min(bare)
    tps, bare_tps = tokens_per_step / p_step, tokens_per_step / b_step
    flops = tps * fpt
    result = {
        "model": args.model, "batch": args.batch, "block": int(cfg.model.block_size),
        "precision": args.precision, "compile": args.compile, "device": args.device,
        "ms_per_step": round(p_step * 1e3, 3), "bare_ms_per_step": round(b_step * 1e3, 3),
        "median_ms_per_step": round(statistics.median(project) * 1e3, 3),
        "median_bare_ms_per_step": round(statistics.median(bare) * 1e3, 3),
        "tokens_per_s": round(tps, 1), "bare_tokens_per_s": round(bare_tps, 1),
        "ratio_vs_bare": round(tps / bare_tps, 4),
        "model_flops_per_s": round(flops), "matmul_peak_flops_per_s": round(peak),
        "matmul_precision": products,
        "fraction_of_peak": round(flops / peak, 4),
        "loader_batches_per_s": round(loader_bps, 1), "steps_per_s": round(1 / p_step, 2),
    }
    if nano:
        # Best repetition of each, as above; per-step medians on both sides (nanoGPT reports per
        # iteration), and the ratio of means as a check. Ratio > 1: chargpt's step is faster.
        p_med, n_med, n_mean = min(project_median), min(nano), min(nano_mean)
        result.update({
            "step_median_ms": round(p_med * 1e3, 3),
            "nanogpt_ms_per_step": round(n_med * 1e3, 3),
            "nanogpt_mean_ms_per_step": round(n_mean * 1e3, 3),
            "ratio_vs_nanogpt": round(n_med / p_med, 4),
            "ratio_vs_nanogpt_mean": round(n_mean / p_step, 4),
            "reps_step_median_ms": [round(x * 1e3, 3) for x in project_median],
            "reps_nanogpt_ms": [round(x * 1e3, 3) for x in nano],
            # Each repetition's pair ran back to back: its ratio is the least exposed to load drift.
            "reps_ratio_vs_nanogpt": [round(n / p, 4) for n, p in zip(nano, project_median, strict=True)],
        })
    print(
        f"chargpt: {tps:,.0f} tokens/s ({p_step * 1e3:.2f} ms/step); bare loop: {bare_tps:,.0f} tokens/s "
        f"({b_step * 1e3:.2f} ms/step); ratio {tps / bare_tps:.3f}"
    )
    print(
        f"model: {fpt / 1e6:.2f} MFLOP/token -> {flops / 1e9:.2f} GFLOP/s = {flops / peak:.1%} of the "
        f"measured {peak_name} ({peak / 1e9:.0f} GFLOP/s)"
    )
    print(f"loader alone: {loader_bps:,.0f} batches/s vs {1 / p_step:,.1f} training steps/s")
    if nano:
        print(
            f"nanoGPT train.py: {result['nanogpt_ms_per_step']:.2f} ms/step (median) vs chargpt "
            f"{result['step_median_ms']:.2f} ms/step (median): ratio {result['ratio_vs_nanogpt']:.3f} "
            f"(means: {result['nanogpt_mean_ms_per_step']:.2f} vs {p_step * 1e3:.2f}, "
            f"ratio {result['ratio_vs_nanogpt_mean']:.3f}); > 1 means chargpt is faster; per repetition: "
            + ", ".join(f"{r:.3f}" for r in result["reps_ratio_vs_nanogpt"])
        )
    print(json.dumps(result))


if __name__ == "__main__":
    run_script(main)
