"""Data path at scale: encoding speed and resident memory of training on a large generated corpus.

Writes a `--size-mb` text file (Tiny Shakespeare repeated, each copy starting at a different line
so copies differ), encodes it as chargpt does (sha256, vocabulary scan, ids to a memory-mapped
cache), times the training loader alone on both corpora, then runs a short `chargpt-train` on each
in subprocesses and compares their peak RSS. Everything it writes lives in a temporary folder
that is deleted at the end. The last line is a JSON object.

    python scripts/bench_data.py                 # 500 MB, 50 training steps
    python scripts/bench_data.py --size-mb 50
    python scripts/bench_data.py --steps 1000    # RSS must stay bounded on long runs too
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_train import loader_batches_per_s
from chargpt.data import CharDataModule
from chargpt.data.corpus import default_data_dir
from chargpt.data.encoding import load_encoded
from chargpt.errors import DataError
from script_cli import ScriptParser, existing_folder, positive, run_script

# The default training config's window and batch (model=tiny, data.batch_size).
BLOCK_SIZE, BATCH_SIZE = 64, 12


def parse_args() -> argparse.Namespace:
    p = ScriptParser(description=__doc__.splitlines()[0])
    p.add_argument("--size-mb", type=positive, default=500)
    p.add_argument("--steps", type=positive, default=50, help="training steps of each run")
    p.add_argument("--dir", type=existing_folder, default=None,
                   help="scratch folder (default: the system temp folder)")
    return p.parse_args()


def write_corpus(source: Path, dest: Path, size_bytes: int) -> None:
    lines = source.read_text().splitlines(keepends=True)
    written, shift = 0, 0
    with dest.open("w") as f:
        while written < size_bytes:
            copy = "".join(lines[shift:] + lines[:shift])
            f.write(copy)
            written += len(copy)
            shift = (shift + 7919) % len(lines)


def loader_rate(corpus: Path, cache_dir: Path, n: int = 5000) -> float:
    """Batches/s of the training DataLoader alone, over enough batches to cycle the page drops."""
    datamodule = CharDataModule(str(corpus), BLOCK_SIZE, BATCH_SIZE, cache_dir=str(cache_dir))
    datamodule.setup()
    return loader_batches_per_s(datamodule.train_dataloader(), n)


def peak_rss_mb(corpus: Path, run_dir: Path, steps: int, cache_dir: Path) -> tuple[float, float, float]:
    """Peak resident memory (MB), its peak private (anonymous) part, and wall time of a short
    training run in a fresh process.

    Read from the child's /proc status (VmHWM; RssAnon polled): unlike its rusage, it does not
    inherit this process's peak. The rest of RSS is file-backed: shared libraries and the pages of
    the memory-mapped ids, which are page cache the kernel can drop at any time.
    """
    cmd = [
        sys.executable, "-m", "chargpt.cli.train", "data=text", f"data.path={corpus}",
        f"trainer.max_steps={steps}", f"trainer.val_check_interval={steps}", "+trainer.limit_val_batches=5",
        "logger=none", "sample.max_new_tokens=0", f"hydra.run.dir={run_dir}",
    ]
    env = {**os.environ, "CHARGPT_CACHE_DIR": str(cache_dir)}
    start = time.perf_counter()
    log = run_dir.with_suffix(".log")
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
    status, peak_kb, anon_kb = Path(f"/proc/{proc.pid}/status"), 0, 0
    while proc.poll() is None:  # VmHWM only grows: its last reading is the peak (gone in a zombie)
        with contextlib.suppress(OSError, ValueError, KeyError):
            fields = dict(line.split(":", 1) for line in status.read_text().splitlines())
            peak_kb = max(peak_kb, int(fields["VmHWM"].split()[0]))
            anon_kb = max(anon_kb, int(fields["RssAnon"].split()[0]))
        time.sleep(0.05)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"training run failed:\n{log.read_text()[-3000:]}")
    return peak_kb / 1024, anon_kb / 1024, seconds


def main() -> None:
    args = parse_args()
    source = Path(default_data_dir()) / "tinyshakespeare" / "input.txt"
    if not source.is_file():
        raise DataError(
            f"needs Tiny Shakespeare at {source}; set CHARGPT_DATA_DIR to the folder holding tinyshakespeare/"
        )
    with tempfile.TemporaryDirectory(prefix="chargpt-bench-data-", dir=args.dir) as tmp:
        root = Path(tmp)
        big = root / "big.txt"
        t = time.perf_counter()
        write_corpus(source, big, args.size_mb << 20)
        size_mb = big.stat().st_size / 2**20
        print(f"wrote {big.name}: {size_mb:,.0f} MB in {time.perf_counter() - t:.1f} s", flush=True)

        cache = root / "cache"
        t = time.perf_counter()
        encoded = load_encoded(big, None, cache)
        ids, tokenizer = encoded.ids, encoded.tokenizer
        encode_s = time.perf_counter() - t
        print(f"encoded {len(ids):,} characters ({tokenizer.vocab_size} symbols) in {encode_s:.1f} s: "
              f"{size_mb / encode_s:,.0f} MB/s", flush=True)
        del ids, encoded
        bps_small, bps_big = loader_rate(source, cache), loader_rate(big, cache)
        print(f"training loader alone: Tiny Shakespeare {bps_small:,.0f} batches/s, "
              f"{size_mb:,.0f} MB corpus {bps_big:,.0f} batches/s", flush=True)

        rss_small, anon_small, s_small = peak_rss_mb(source, root / "run-small", args.steps, cache)
        rss_big, anon_big, s_big = peak_rss_mb(big, root / "run-big", args.steps, cache)
    print(f"peak RSS of {args.steps} training steps: Tiny Shakespeare {rss_small:,.0f} MB ({s_small:.0f} s), "
          f"{size_mb:,.0f} MB corpus {rss_big:,.0f} MB ({s_big:.0f} s): {rss_big - rss_small:+,.0f} MB")
    print(f"peak private (anonymous) memory: {anon_small:,.0f} MB vs {anon_big:,.0f} MB: "
          f"{anon_big - anon_small:+,.0f} MB (the rest is file-backed page cache)")
    print(json.dumps({
        "size_mb": round(size_mb, 1), "encode_seconds": round(encode_s, 2),
        "encode_mb_per_s": round(size_mb / encode_s, 1), "steps": args.steps,
        "loader_batches_per_s_tinyshakespeare": round(bps_small), "loader_batches_per_s_big": round(bps_big),
        "rss_tinyshakespeare_mb": round(rss_small, 1), "rss_big_mb": round(rss_big, 1),
        "rss_delta_mb": round(rss_big - rss_small, 1),
        "anon_tinyshakespeare_mb": round(anon_small, 1), "anon_big_mb": round(anon_big, 1),
        "anon_delta_mb": round(anon_big - anon_small, 1),
        "train_seconds_tinyshakespeare": round(s_small, 1), "train_seconds_big": round(s_big, 1),
    }))


if __name__ == "__main__":
    run_script(main)
