"""Sampling: greedy, temperature, top-k and top-p as promised, the same seed the same text, the
caller's random state left alone, and bad settings or non-finite outputs as one error."""

import subprocess
import sys

import pytest
import torch

from chargpt.errors import CheckpointError, ConfigError
from chargpt.model import GPT, ModelConfig
from chargpt.model.sampling import check_sampling, filter_logits, generate, sample_next
from conftest import make_checkpoint


def test_top_k_1_and_temperature_0_are_greedy() -> None:
    logits = torch.randn(8, 20)
    expected = logits.argmax(-1, keepdim=True)
    assert torch.equal(sample_next(logits, temperature=0.0), expected)
    for seed in range(5):
        gen = torch.Generator().manual_seed(seed)
        assert torch.equal(sample_next(logits, temperature=1.5, top_k=1, generator=gen), expected)


def test_a_tiny_temperature_or_top_p_draws_the_likeliest_not_nan() -> None:
    # Dividing by 1e-300 sent the top logit to +inf (NaN after softmax); a top_p of 1e-300, 0 in
    # float32, dropped every character. Both now leave the likeliest one.
    logits = torch.randn(6, 20) * 5
    expected = logits.argmax(-1, keepdim=True)
    gen = torch.Generator().manual_seed(0)
    for settings in (dict(temperature=1e-300), dict(temperature=1e-45), dict(temperature=1.0, top_p=1e-300)):
        assert torch.equal(sample_next(logits, generator=gen, **settings), expected), settings


def test_top_k_keeps_the_k_largest() -> None:
    logits = torch.tensor([[1.0, 5.0, 3.0, 4.0, 2.0]])
    kept = filter_logits(logits, top_k=2, top_p=None).isfinite()
    assert kept.tolist() == [[False, True, False, True, False]]


def test_top_p_keeps_the_smallest_set_reaching_p() -> None:
    probs = torch.tensor([[0.05, 0.5, 0.2, 0.25]])
    logits = probs.log()
    # 0.5 alone < 0.7; 0.5 + 0.25 reaches 0.7: exactly those two survive.
    assert filter_logits(logits, None, 0.7).isfinite().tolist() == [[False, True, False, True]]
    # p reached exactly by the top token: just it.
    assert filter_logits(logits, None, 0.5).isfinite().tolist() == [[False, True, False, False]]
    assert filter_logits(logits, None, 1.0).isfinite().all()
    gen = torch.Generator().manual_seed(0)
    draws = torch.cat([sample_next(logits, 1.0, None, 0.7, gen) for _ in range(200)])
    assert set(draws.flatten().tolist()) == {1, 3}


def test_same_seed_same_text_different_seed_different_text() -> None:
    torch.manual_seed(0)
    model = GPT(ModelConfig(block_size=16, n_layer=1, n_head=2, n_embd=32), vocab_size=30)
    prompt = torch.zeros(1, 1, dtype=torch.long)

    def run(seed: int) -> list[int]:
        gen = torch.Generator().manual_seed(seed)
        return generate(model, prompt, 40, temperature=1.0, generator=gen)[0].tolist()

    assert run(1) == run(1)
    assert run(1) != run(2)
    assert len(run(1)) == 41


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(temperature=-1, top_k=None, top_p=None), "temperature"),
        (dict(temperature=float("nan"), top_k=None, top_p=None), "temperature=nan must be a finite"),
        (dict(temperature=float("inf"), top_k=None, top_p=None), "temperature=inf must be a finite"),
        (dict(temperature=1, top_k=-2, top_p=None), "top_k"),
        (dict(temperature=1, top_k=None, top_p=0.0), "top_p"),
        (dict(temperature=1, top_k=None, top_p=1.5), "top_p"),
        (dict(temperature=1, top_k=None, top_p=None, max_new_tokens=-1), "max_new_tokens"),
    ],
)
def test_invalid_sampling_settings(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        check_sampling(**kwargs)


def test_unseeded_generation_leaves_the_callers_random_state_alone() -> None:
    from chargpt.data.tokenizer import CharTokenizer
    from chargpt.inference import TrainedModel

    torch.manual_seed(0)
    model = GPT(ModelConfig(n_layer=1, n_head=2, n_embd=16, block_size=8), vocab_size=5)
    trained = TrainedModel(model, CharTokenizer(list("abcde")))
    torch.manual_seed(123)
    expected = torch.rand(3)  # what the caller's program draws next
    torch.manual_seed(123)
    texts = trained.generate("ab", num_samples=2, max_new_tokens=20)
    assert torch.equal(torch.rand(3), expected)  # sampling did not reseed or draw from it
    assert all(len(t) == 20 and set(t) <= set("abcde") for t in texts)


@pytest.mark.parametrize("use_cache", [False, True])
def test_past_the_context_the_model_sees_its_whole_context_then_the_newest_half(use_cache: bool) -> None:
    torch.manual_seed(0)
    model = GPT(ModelConfig(n_layer=1, n_head=2, n_embd=16, block_size=8), vocab_size=5)
    seen: list[int] = []  # the window each token is drawn from: the cache's length plus what is fed
    if use_cache:
        model.register_forward_pre_hook(
            lambda _, args, kwargs: seen.append(int(kwargs["cache"].next) + args[0].shape[1]),
            with_kwargs=True)
    else:
        model.register_forward_pre_hook(lambda _, args: seen.append(args[0].shape[1]))
    generate(model, torch.zeros(1, 1, dtype=torch.long), 16, use_cache=use_cache)
    # Up to all 8 characters of the context; then the newest 4 (block_size // 2) and on from there.
    assert seen == [1, 2, 3, 4, 5, 6, 7, 8, 4, 5, 6, 7, 8, 4, 5, 6]


def test_a_model_with_non_finite_outputs_is_one_error_not_a_torch_traceback(tmp_path, capsys) -> None:
    # A checkpoint whose weights score NaN (one huge step): torch's "probability tensor contains
    # either inf, nan or element < 0" came out of chargpt-sample as a traceback, exit 1.
    from chargpt.cli import sample as sample_cli
    from conftest import make_checkpoint, run_main

    with pytest.raises(CheckpointError, match=r"not finite .* use an earlier checkpoint of its run"):
        sample_next(torch.tensor([[0.0, float("nan")]]))
    file = make_checkpoint(tmp_path / "broken.ckpt")
    ckpt = torch.load(file, weights_only=True)
    ckpt["state_dict"] = {k: v * float("inf") for k, v in ckpt["state_dict"].items()}
    torch.save(ckpt, file)
    code, _, err = run_main(sample_cli.main, [f"ckpt_path={file}", "max_new_tokens=5"], capsys)
    # The line that names the checkpoint, then one error line: the weights are only seen to be broken
    # once they are sampled.
    said, error = err.strip().splitlines()
    assert code == 2 and said == f"sampling from {file}"
    assert error.startswith("error: the model's next-character probabilities are not finite")
    # Greedy decoding (argmax) took the NaN outputs silently and printed a sample of them.
    for greedy in ("temperature=0", "top_k=1"):
        code, out, err = run_main(sample_cli.main, [f"ckpt_path={file}", "max_new_tokens=5", greedy], capsys)
        assert code == 2 and "probabilities are not finite" in err, (greedy, out, err)


@pytest.mark.slow  # a fresh interpreter loads a checkpoint: seconds
def test_a_stream_left_open_as_python_exits_says_nothing(tmp_path) -> None:
    # A script that stops reading a stream and ends: Python closes the generator as it shuts down,
    # torch half torn down, and its cleanup was a TypeError printed as "Exception ignored in".
    ckpt = make_checkpoint(tmp_path / "model.ckpt")
    script = (f"import chargpt\nstream = chargpt.load({str(ckpt)!r}).stream('a', max_new_tokens=1000)\n"
              "print(next(stream))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert len(done.stdout) == 2  # one character and its newline
    assert done.stderr == ""
