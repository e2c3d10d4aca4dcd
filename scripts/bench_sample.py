"""Sampling throughput with and without the KV cache.

Generates `--tokens` tokens from a randomly initialised model of the given preset (speed does not
depend on the weights), alternating cached and uncached runs with the same seed, and checks that
both give the same tokens. With --compile, a third mode runs the cached decoding with its
one-token step compiled (the `compile=true` of chargpt-sample); its one-off compile time is
printed apart. The last line is a JSON object.

    python scripts/bench_sample.py                      # model=small (6 layers, 384 wide, block 256)
    python scripts/bench_sample.py --compile
    python scripts/bench_sample.py --model tiny --tokens 1000
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from hydra import compose, initialize_config_dir

from chargpt.cli import CONFIG_PATH
from chargpt.hydra_run import plain
from chargpt.model import ModelConfig, build_model
from chargpt.model.sampling import iter_tokens
from script_cli import ScriptParser, positive, run_script

VOCAB = 65  # Tiny Shakespeare's


def parse_args() -> argparse.Namespace:
    p = ScriptParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="small", help="model preset (configs/model)")
    p.add_argument("--tokens", type=positive, default=500, help="new tokens per sample")
    p.add_argument("--prompt-len", type=positive, default=1)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--reps", type=positive, default=3, help="alternating repetitions of each mode")
    p.add_argument("--device", default="cpu")
    p.add_argument("--compile", action="store_true", help="also time the compiled cached decoding")
    p.add_argument("--override", action="append", default=[], help="model override, e.g. block_size=128")
    return p.parse_args()


def load_preset(name: str, overrides: list[str]) -> ModelConfig:
    with initialize_config_dir(config_dir=CONFIG_PATH, version_base="1.3"):
        cfg = compose(config_name="train", overrides=[f"model={name}", *[f"model.{o}" for o in overrides]])
    return ModelConfig.from_dict(plain(cfg.model))


MODES = {"cached": {"use_cache": True}, "uncached": {"use_cache": False},
         "compiled": {"use_cache": True, "compile": True}}


def sample(
    model: torch.nn.Module, prompt: torch.Tensor, tokens: int, temperature: float, mode: str
) -> tuple[float, torch.Tensor]:
    """Seconds to draw `tokens` characters after `prompt`, and the (1, tokens) characters drawn."""
    generator = torch.Generator(device=prompt.device).manual_seed(0)
    start = time.perf_counter()
    drawn = list(iter_tokens(model, prompt, tokens, temperature, generator=generator, **MODES[mode]))
    if prompt.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start, torch.cat(drawn, dim=1)


def main() -> None:
    args = parse_args()
    config = load_preset(args.model, args.override)
    torch.manual_seed(0)
    model = build_model(config, VOCAB).to(args.device).eval()
    prompt = torch.randint(0, VOCAB, (1, args.prompt_len), device=args.device)
    modes = ["cached", "uncached"] + (["compiled"] if args.compile else [])
    compile_s = None
    for mode in modes:  # warm-up; the first compiled call compiles
        seconds, _ = sample(model, prompt, 20, args.temperature, mode)
        if mode == "compiled":
            compile_s = seconds
            print(f"compiling the decoding step took {compile_s:.1f} s", flush=True)
    times: dict[str, list[float]] = {mode: [] for mode in modes}
    same = {mode: True for mode in modes}
    for rep in range(args.reps):
        texts = {}
        for mode in modes:
            seconds, texts[mode] = sample(model, prompt, args.tokens, args.temperature, mode)
            times[mode].append(seconds)
            same[mode] = same[mode] and torch.equal(texts[mode], texts["cached"])
        print(f"rep {rep + 1}/{args.reps}: " + ", ".join(
            f"{mode} {args.tokens / times[mode][-1]:,.0f} tokens/s" for mode in modes), flush=True)
    # The best repetition of each mode: the one least disturbed by other processes.
    tps = {mode: args.tokens / min(times[mode]) for mode in modes}
    print(f"{args.model} ({config.n_layer} layers, {config.n_embd} wide, block {config.block_size}), "
          f"{args.tokens} tokens: " + ", ".join(f"{m} {tps[m]:,.0f} tokens/s" for m in modes))
    speedup = tps["cached"] / tps["uncached"]
    print(f"speedup of the cache {speedup:.1f}x, identical tokens: {same['uncached']}")
    result = {
        "model": args.model, "tokens": args.tokens, "device": args.device,
        "cached_tokens_per_s": round(tps["cached"], 1), "uncached_tokens_per_s": round(tps["uncached"], 1),
        "speedup": round(speedup, 2), "identical": same["uncached"],
    }
    if args.compile:
        print(f"compiled: speedup {tps['compiled'] / tps['uncached']:.1f}x over uncached, "
              f"{tps['compiled'] / tps['cached']:.1f}x over cached eager, "
              f"identical tokens: {same['compiled']}")
        result.update({
            "compiled_tokens_per_s": round(tps["compiled"], 1), "compile_s": round(compile_s, 1),
            "compiled_speedup": round(tps["compiled"] / tps["uncached"], 2),
            "compiled_identical": same["compiled"],
        })
    print(json.dumps(result))


if __name__ == "__main__":
    run_script(main)
