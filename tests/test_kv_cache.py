"""KV-cache decoding gives exactly the tokens of full recomputation, past the context too."""

from __future__ import annotations

import pytest
import torch

from chargpt.errors import ConfigError
from chargpt.model import ModelConfig, build_model
from chargpt.model.sampling import iter_tokens

VOCAB = 11
BLOCK = 8


def tiny_model(pos_encoding: str, seed: int = 0, **overrides: object) -> torch.nn.Module:
    torch.manual_seed(seed)
    config = ModelConfig(
        block_size=BLOCK, n_layer=2, n_head=2, n_embd=16, pos_encoding=pos_encoding, **overrides
    )
    model = build_model(config, VOCAB)
    # Larger weights than the init: sharper logits, so a wrong context changes the argmax.
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(8.0)
    return model.eval()


def run(model: torch.nn.Module, prompt: torch.Tensor, n: int, use_cache: bool, **options: object) -> list:
    generator = torch.Generator().manual_seed(1234)
    tokens = iter_tokens(model, prompt, n, generator=generator, use_cache=use_cache, **options)
    return torch.cat(list(tokens), dim=1).tolist()


PROMPTS = {
    "one token": [[3]],
    "shorter than the context": [[1, 2, 3, 4, 5]],
    "exactly the context": [list(range(BLOCK))],
    "longer than the context": [[i % VOCAB for i in range(3 * BLOCK + 1)]],
    "batch of two": [[1, 2, 3], [4, 5, 6]],
}


@pytest.mark.parametrize("pos_encoding", ["learned", "sinusoidal", "rope"])
@pytest.mark.parametrize("prompt_name", list(PROMPTS))
@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_cached_equals_uncached(pos_encoding: str, prompt_name: str, temperature: float) -> None:
    model = tiny_model(pos_encoding)
    prompt = torch.tensor(PROMPTS[prompt_name])
    n = 5 * BLOCK + 3  # far past the context: the window restarts several times
    cached = run(model, prompt, n, True, temperature=temperature)
    uncached = run(model, prompt, n, False, temperature=temperature)
    assert cached == uncached
    assert len(cached[0]) == n


def test_top_k_top_p_sampling_is_identical_with_cache() -> None:
    model = tiny_model("rope", qk_norm=True, norm="rmsnorm", activation="swiglu")
    prompt = torch.tensor([[2, 7, 1]])
    options = {"temperature": 0.9, "top_k": 5, "top_p": 0.9}
    assert run(model, prompt, 4 * BLOCK, True, **options) == run(model, prompt, 4 * BLOCK, False, **options)


def test_sampled_tokens_depend_on_the_seed() -> None:
    # Guards the test above: with these weights sampling really is random, not near-greedy.
    model = tiny_model("learned")
    prompt = torch.tensor([[1]])
    a = torch.cat(list(iter_tokens(model, prompt, 40, generator=torch.Generator().manual_seed(1))), 1)
    b = torch.cat(list(iter_tokens(model, prompt, 40, generator=torch.Generator().manual_seed(2))), 1)
    assert not torch.equal(a, b)


def test_cache_logits_match_full_forward() -> None:
    # One token at a time through the cache gives the logits of one full forward pass.
    model = tiny_model("rope")
    idx = torch.randint(0, VOCAB, (2, BLOCK), generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        full, _ = model(idx)
        cache = model.new_cache(2)
        steps = [model(idx[:, :3], cache=cache)[0]]
        steps += [model(idx[:, t : t + 1], cache=cache)[0] for t in range(3, BLOCK)]
    torch.testing.assert_close(torch.cat(steps, dim=1), full, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("pos_encoding", ["learned", "rope"])
def test_cache_is_full_at_the_context_length(pos_encoding: str) -> None:
    # No silent wrap-around or overwrite past the last slot.
    model = tiny_model(pos_encoding)
    cache = model.new_cache(1)
    with torch.inference_mode():
        model(torch.zeros(1, BLOCK, dtype=torch.long), cache=cache)
        with pytest.raises(IndexError, match="out of bounds"):
            model(torch.zeros(1, 1, dtype=torch.long), cache=cache)


def test_generation_restores_training_mode() -> None:
    model = tiny_model("learned").train()
    run(model, torch.tensor([[1]]), 3, True)
    assert model.training


def test_compile_needs_the_cache() -> None:
    with pytest.raises(ConfigError, match="needs use_cache=true"):
        run(tiny_model("learned"), torch.tensor([[1]]), 3, False, compile=True)


@pytest.mark.slow
@pytest.mark.parametrize("pos_encoding", ["learned", "rope"])
def test_compiled_decoding_gives_the_same_tokens_without_recompiling(pos_encoding: str) -> None:
    model = tiny_model(pos_encoding)
    prompt = torch.tensor(PROMPTS["shorter than the context"])
    n = 4 * BLOCK  # restarts the window several times
    run(model, prompt, 2, True, compile=True)  # compiles the one-token step
    # Every later position, window restart and new cache reuses that one compiled step.
    with torch._dynamo.config.patch(error_on_recompile=True):
        compiled = run(model, prompt, n, True, compile=True)
    assert compiled == run(model, prompt, n, False)
