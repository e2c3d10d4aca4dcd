"""Autoregressive sampling: temperature, top-k, top-p (nucleus), greedy, with a KV cache.

Context rule, shared by cached and uncached decoding so both give identical text: the model
sees the tokens since a window start; when that window would exceed the context length, it
restarts at the newest block_size // 2 tokens (the cache is then refilled from them). This
keeps generation going past the context at an amortised cost, instead of a full recompute for
every token.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator

import torch
from torch import nn

from chargpt.checks import real_number, whole_number
from chargpt.errors import CheckpointError, ConfigError, SettingError
from chargpt.model.kv_cache import KVCache


def kept_on_restart(block_size: int) -> int:
    """The newest tokens a window keeps when it restarts past the context (the rule above)."""
    return max(1, block_size // 2)


def check_decoding(use_cache: bool, compile: bool) -> None:
    """compile=true needs the cache: what it compiles is the cached one-token step."""
    if compile and not use_cache:
        raise ConfigError("compile=true compiles the cached decoding step; it needs use_cache=true")


def check_sampling(
    temperature: float, top_k: int | None, top_p: float | None, max_new_tokens: int = 0, prefix: str = ""
) -> None:
    """Each setting of the right type and in its range: a SettingError naming the first that is not
    (as `{prefix}name`: the training command's settings are `sample.temperature` and so on)."""
    max_new_name, top_k_name, top_p_name, temperature_name = (
        f"{prefix}{name}" for name in ("max_new_tokens", "top_k", "top_p", "temperature"))
    whole_number(max_new_name, max_new_tokens)
    whole_number(top_k_name, top_k, optional=True)
    real_number(top_p_name, top_p, optional=True)
    try:
        real_number(temperature_name, temperature, low=0)
    except SettingError:
        message = f"{temperature_name}={temperature!r} must be a finite number >= 0 (0 means greedy)"
        raise SettingError(message, temperature_name) from None
    if top_k is not None and top_k < 0:
        raise SettingError(f"{top_k_name}={top_k} must be >= 0 (0 or null turns it off)", top_k_name)
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise SettingError(f"{top_p_name}={top_p} must be in (0, 1] (1 or null turns it off)", top_p_name)
    if max_new_tokens < 0:
        raise SettingError(f"{max_new_name}={max_new_tokens} must be >= 0", max_new_name)


def filter_logits(logits: torch.Tensor, top_k: int | None, top_p: float | None) -> torch.Tensor:
    """Set to -inf the logits outside the top k and outside the smallest set reaching mass top_p."""
    if top_k:
        kth = torch.topk(logits, min(top_k, logits.size(-1))).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True)
        probs = sorted_logits.softmax(-1)
        # Drop a token when the tokens ranked above it already reach top_p.
        drop_sorted = probs.cumsum(-1) - probs >= top_p
        drop_sorted[..., 0] = False  # the likeliest stays, whatever top_p (1e-300 is 0 in float32)
        drop = drop_sorted.scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


GREEDY_BELOW = 1e-30  # temperatures this small sample greedily (0 is documented as greedy)
EMPTY_PROMPT = "the prompt is empty; give at least one character"  # also the server's 400


def sample_next(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """One next token per row of (B, V) logits, as a (B, 1) tensor."""
    # Below ~1e-30 the logits over the temperature overflow float32 (NaN after softmax), and the
    # draw is greedy anyway: the likeliest character's odds against any other are exp(gap / T).
    if temperature < GREEDY_BELOW or top_k == 1:
        return logits.argmax(-1, keepdim=True)
    probs = filter_logits(logits.float() / temperature, top_k, top_p).softmax(-1)
    try:
        return torch.multinomial(probs, 1, generator=generator)
    except RuntimeError as err:  # NaN or infinite logits (checked by the draw itself, at no cost)
        if "probability tensor contains" not in str(err):
            raise
        raise not_finite_error() from None


def not_finite_error() -> CheckpointError:
    return CheckpointError(
        "the model's next-character probabilities are not finite (its weights give NaN or infinite "
        "outputs): it cannot be sampled; use an earlier checkpoint of its run"
    )


def check_finite(logits: torch.Tensor) -> None:
    """Refuse outputs that are not finite. The draw checks its own input on a CPU, but a greedy
    draw (argmax) takes NaN silently and a CUDA draw fails in a device-side assert; this check
    waits for the device, so it runs once, on the first character: weights that give NaN give it
    there."""
    if not bool(torch.isfinite(logits).all()):
        raise not_finite_error()


QUIET_FROZEN = {
    "freezing": True, "autotune_num_choices_displayed": 0, "max_autotune_report_choices_stats": False,
}


def compile_decode_step(model: nn.Module) -> Callable[..., tuple[torch.Tensor, None]]:
    """The model compiled for cached one-token steps: their shapes never change, so it compiles
    once for all positions. The weights are frozen into the compiled code (inductor's
    `freezing`, so they must not change afterwards) and matrix products are autotuned: on CPU
    the generated kernels read the weights far faster than the BLAS matrix-vector product that
    bounds eager decoding (docs/BENCHMARKS.md)."""
    import torch._inductor.config as inductor_config  # seconds to import: only when compiling

    compiled = torch.compile(model, mode="max-autotune-no-cudagraphs", dynamic=False)

    def step(idx: torch.Tensor, cache: KVCache) -> tuple[torch.Tensor, None]:
        # Compilation happens on the first call, so the settings must hold there. Autotuning
        # would print its timings and a torch-internal deprecation warning to stderr.
        with inductor_config.patch(QUIET_FROZEN), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*TypedStorage is deprecated.*")
            return compiled(idx, cache=cache)

    return step


def iter_tokens(
    model: nn.Module,
    idx: torch.Tensor,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
    use_cache: bool = True,
    compile: bool = False,
) -> Iterator[torch.Tensor]:
    """Yield each new (B, 1) token column after the prompt `idx` (B, T).

    compile=True compiles the cached one-token step (compile_decode_step): tens of seconds
    once, then faster steps, so it pays off for long generations.
    """
    check_sampling(temperature, top_k, top_p, max_new_tokens)
    if idx.shape[1] == 0:
        raise ConfigError(EMPTY_PROMPT)
    check_decoding(use_cache, compile)
    block = model.block_size
    keep = kept_on_restart(block)
    cache = model.new_cache(idx.shape[0]) if use_cache else None
    step = compile_decode_step(model) if compile and cache is not None else model
    refill = True  # the cache is empty: the next call feeds the whole window
    seq = idx
    start = max(0, seq.shape[1] - block)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for position in range(max_new_tokens):
                if cache is None:
                    logits, _ = model(seq[:, start:])
                elif refill:
                    logits, _ = model(seq[:, start:], cache=cache)
                    refill = False
                else:
                    # A fresh (B, 1) tensor: a view of seq changes strides as seq grows,
                    # which would make the compiled step recompile.
                    last = seq[:, -1:].clone(memory_format=torch.contiguous_format)
                    logits, _ = step(last, cache=cache)
                if position == 0:
                    check_finite(logits[:, -1, :])
                token = sample_next(logits[:, -1, :], temperature, top_k, top_p, generator)
                seq = torch.cat((seq, token), dim=1)
                if seq.shape[1] - start > block:
                    start = seq.shape[1] - keep
                    refill = True
                    if cache is not None:
                        cache.reset()
                yield token
    finally:
        # Only where it changed: a stream left open as Python exits ends here with torch half torn
        # down, where train() raised a TypeError that Python printed as it ended.
        if model.training != was_training:
            model.train(was_training)


def generate(model: nn.Module, idx: torch.Tensor, max_new_tokens: int, **options: object) -> torch.Tensor:
    """The prompt followed by max_new_tokens sampled tokens, (B, T + max_new_tokens)."""
    new = list(iter_tokens(model, idx, max_new_tokens, **options))  # type: ignore[arg-type]
    return torch.cat([idx, *new], dim=1)
