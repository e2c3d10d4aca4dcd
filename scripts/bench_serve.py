"""Serving throughput: requests per second and time to first character, 1 and 8 concurrent clients.

Starts `chargpt-serve` (a separate process, as in use) on a randomly initialised model of the given
preset (speed does not depend on the weights) and a 65-character vocabulary, then has 1 and then 8
clients each send streaming requests back to back for --seconds. Each --max-concurrency value
is a separate server; 1 serves one request at a time (no batching). The last line is JSON.

    python scripts/bench_serve.py                                 # model=tiny, batched (8) and one at a time
    python scripts/bench_serve.py --tokens 500 --seconds 30
    python scripts/bench_serve.py --max-concurrency 8 --compile   # compiled batched step
    python scripts/bench_serve.py --threads null                  # torch's default thread count
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import string
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import torch
from hydra import compose, initialize_config_dir

from chargpt.cli import CONFIG_PATH
from chargpt.hydra_run import plain
from chargpt.model import ModelConfig, build_model
from script_cli import ScriptParser, positive, positive_number, run_script

VOCAB = sorted(set(string.ascii_letters + string.digits + " \n.,;:!?'-&$"))[:65]


def parse_args() -> argparse.Namespace:
    p = ScriptParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="tiny", help="model preset (configs/model)")
    p.add_argument("--tokens", type=positive, default=200, help="characters per request")
    p.add_argument("--seconds", type=positive_number, default=20.0, help="measured time per client count")
    p.add_argument("--clients", type=positive, nargs="+", default=[1, 8])
    p.add_argument("--max-concurrency", type=positive, nargs="+", default=[8, 1], help="one server per value")
    p.add_argument("--compile", action="store_true", help="serve with the compiled decoding step")
    p.add_argument("--threads", default=None,
                   help="the server's threads: a number, or null for torch's default (default: the server's)")
    return p.parse_args()


def write_checkpoint(preset: str, folder: Path) -> Path:
    with initialize_config_dir(config_dir=CONFIG_PATH, version_base="1.3"):
        cfg = compose(config_name="train", overrides=[f"model={preset}"])
    config = ModelConfig.from_dict(plain(cfg.model))
    torch.manual_seed(0)
    model = build_model(config, len(VOCAB))
    path = folder / f"{preset}.ckpt"
    torch.save({"hyper_parameters": {"model": config.to_dict(), "vocab": VOCAB},
                "state_dict": {f"model.{k}": v for k, v in model.state_dict().items()}}, path)
    return path


class Server:
    def __init__(self, ckpt: Path, max_concurrency: int, compile: bool, threads: str | None) -> None:
        args = [sys.executable, "-m", "chargpt.cli.serve", f"ckpt_path={ckpt}", "port=0", "log_level=warning",
                f"max_concurrency={max_concurrency}", f"compile={str(compile).lower()}", "max_queue=1000",
                *([f"threads={threads}"] if threads else [])]
        start = time.perf_counter()
        self.process = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.startswith("serving "):
                self.address = urlsplit(line.split(" at ")[1].split("/ ")[0]).netloc
                self.ready_s = time.perf_counter() - start  # start, load, warm-up (and compile)
                return
        raise SystemExit(f"chargpt-serve did not start (exit code {self.process.wait()})")

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def one_request(address: str, body: bytes) -> tuple[float, float, int]:
    """(time to first character, total time, characters) of one streaming request."""
    host, port = address.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=300)
    start = time.perf_counter()
    conn.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
    response = conn.getresponse()
    first, chars = None, 0
    for raw in response:
        line = raw.decode().strip()
        if not line.startswith("data: {"):
            continue
        text = "".join(c["text"] for c in json.loads(line[6:])["choices"])
        if text and first is None:
            first = time.perf_counter() - start
        chars += len(text)
    total = time.perf_counter() - start
    conn.close()
    return first or total, total, chars


def run_clients(address: str, clients: int, seconds: float, tokens: int) -> dict[str, float]:
    results: list[tuple[float, float, int]] = []
    lock = threading.Lock()
    stop_at = time.perf_counter() + seconds

    def client(index: int) -> None:
        seed = index * 100_000
        while time.perf_counter() < stop_at:
            seed += 1
            body = json.dumps({"prompt": "\n", "max_tokens": tokens, "seed": seed, "stream": True}).encode()
            result = one_request(address, body)
            with lock:
                results.append(result)

    start = time.perf_counter()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    firsts = sorted(r[0] for r in results)
    return {
        "clients": clients, "requests": len(results), "requests_per_s": len(results) / wall,
        "chars_per_s": sum(r[2] for r in results) / wall,
        "ttfc_median_ms": 1000 * statistics.median(firsts),
        "ttfc_p90_ms": 1000 * firsts[int(0.9 * (len(firsts) - 1))],
        "latency_median_ms": 1000 * statistics.median(r[1] for r in results),
    }


def main() -> None:
    args = parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = write_checkpoint(args.model, Path(tmp))
        for limit in args.max_concurrency:
            server = Server(ckpt, limit, args.compile, args.threads)
            print(f"max_concurrency={limit}: the server was ready in {server.ready_s:.1f} s", flush=True)
            try:
                run_clients(server.address, max(args.clients), 2.0, args.tokens)  # warm-up
                for clients in args.clients:
                    row = run_clients(server.address, clients, args.seconds, args.tokens)
                    rows.append({"max_concurrency": limit, **row})
            finally:
                server.close()
    print(f"model={args.model}, {args.tokens} characters per request, {args.seconds:.0f} s per row, "
          f"compile={args.compile}, threads={args.threads or 'as in serve.yaml'}, {os.cpu_count()} CPUs")
    print(f"{'max_concurrency':>15} {'clients':>7} {'requests/s':>10} {'chars/s':>8} {'TTFC median':>12} "
          f"{'TTFC p90':>9} {'latency median':>15}")
    for r in rows:
        print(f"{r['max_concurrency']:>15} {r['clients']:>7} {r['requests_per_s']:>10.2f} "
              f"{r['chars_per_s']:>8.0f} {r['ttfc_median_ms']:>10.1f}ms {r['ttfc_p90_ms']:>7.1f}ms "
              f"{r['latency_median_ms']:>13.0f}ms")
    print(json.dumps({"model": args.model, "tokens": args.tokens, "compile": args.compile, "rows": rows}))


if __name__ == "__main__":
    run_script(main)
