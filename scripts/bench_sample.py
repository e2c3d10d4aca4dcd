"""Sampling throughput with and without the KV cache.

Generates `--tokens` tokens from a randomly initialised model of the given preset (speed does not
depend on the weights), alternating cached and uncached runs with the same seed, and checks that
both give the same tokens. The last line is a JSON object.

    python scripts/bench_sample.py                      # model=small (6 layers, 384 wide, block 256)
    python scripts/bench_sample.py --model tiny --tokens 1000
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from hydra import compose, initialize_config_dir

from chargpt.hydra_app import CONFIG_PATH, plain
from chargpt.model import ModelConfig, build_model
from chargpt.model.sampling import iter_tokens

VOCAB = 65  # Tiny Shakespeare's


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="small", help="model preset (configs/model)")
    p.add_argument("--tokens", type=int, default=500, help="new tokens per sample")
    p.add_argument("--prompt-len", type=int, default=1)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--reps", type=int, default=3, help="alternating repetitions of each mode")
    p.add_argument("--device", default="cpu")
    p.add_argument("--override", action="append", default=[], help="model override, e.g. block_size=128")
    return p.parse_args()


def load_preset(name: str, overrides: list[str]) -> ModelConfig:
    with initialize_config_dir(config_dir=CONFIG_PATH, version_base="1.3"):
        cfg = compose(config_name="train", overrides=[f"model={name}", *[f"model.{o}" for o in overrides]])
    return ModelConfig.from_dict(plain(cfg.model))


def sample(model: torch.nn.Module, prompt: torch.Tensor, args: argparse.Namespace, use_cache: bool):
    generator = torch.Generator(device=prompt.device).manual_seed(0)
    start = time.perf_counter()
    tokens = list(iter_tokens(model, prompt, args.tokens, args.temperature, generator=generator,
                              use_cache=use_cache))
    if prompt.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start, torch.cat(tokens, dim=1)


def main() -> None:
    args = parse_args()
    config = load_preset(args.model, args.override)
    torch.manual_seed(0)
    model = build_model(config, VOCAB).to(args.device).eval()
    prompt = torch.randint(0, VOCAB, (1, args.prompt_len), device=args.device)
    sample(model, prompt, argparse.Namespace(**{**vars(args), "tokens": 20}), True)  # warm-up
    cached, uncached = [], []
    same = True
    for rep in range(args.reps):
        t_cached, a = sample(model, prompt, args, True)
        t_uncached, b = sample(model, prompt, args, False)
        same = same and torch.equal(a, b)
        cached.append(t_cached)
        uncached.append(t_uncached)
        print(f"rep {rep + 1}/{args.reps}: cached {args.tokens / t_cached:,.0f} tokens/s, "
              f"uncached {args.tokens / t_uncached:,.0f} tokens/s", flush=True)
    # The best repetition of each mode: the one least disturbed by other processes.
    tps, tps_uncached = args.tokens / min(cached), args.tokens / min(uncached)
    print(f"{args.model} ({config.n_layer} layers, {config.n_embd} wide, block {config.block_size}), "
          f"{args.tokens} tokens: cached {tps:,.0f} tokens/s, uncached {tps_uncached:,.0f} tokens/s, "
          f"speedup {tps / tps_uncached:.1f}x; identical tokens: {same}")
    print(json.dumps({
        "model": args.model, "tokens": args.tokens, "device": args.device,
        "cached_tokens_per_s": round(tps, 1), "uncached_tokens_per_s": round(tps_uncached, 1),
        "speedup": round(tps / tps_uncached, 2), "identical": same,
    }))


if __name__ == "__main__":
    main()
