"""chargpt-serve over real HTTP on a free local port: the text equals chargpt-sample's, streaming,
stop sequences, lists of prompts, the openai client, 20 concurrent requests, the queue limit, bad
input, and the CLI."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import torch

import chargpt
from chargpt import inference
from chargpt.cli import sample as sample_cli
from chargpt.cli import serve as serve_cli
from chargpt.data.tokenizer import CharTokenizer
from chargpt.export import export_model
from chargpt.inference import start_prompt
from chargpt.model import ModelConfig, build_model
from chargpt.model_card import card_for
from chargpt.serving.engine import Engine
from conftest import cut_at_stop, lacks, run_main

if TYPE_CHECKING:
    from chargpt.serving.protocol import Limits

NO_EXTRA = "the serve extra is not installed: pip install -e '.[serve]'"
# The serving libraries (FastAPI, uvicorn, httpx, pydantic) are imported by the functions that use
# them: every test worker collects this module, and most never serve.
pytestmark = pytest.mark.skipif(lacks("fastapi", "uvicorn", "httpx", "openai"), reason=NO_EXTRA)

# What people type: punctuation, quotes, accents, an emoji, newlines.
VOCAB = sorted(set("\n !\"',.:;?-ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyzéàç’😀"))


def small_limits() -> Limits:
    """The limits most of these tests serve with: 64 characters by default, at most 500, n at most
    4, 6 choices a request."""
    from chargpt.serving.protocol import Limits

    return Limits(default_max_tokens=64, max_tokens=500, max_n=4, max_choices=6)


def write_checkpoint(run: Path, config: ModelConfig, seed: int = 0, vocab: list[str] = VOCAB,
                     arithmetic: dict[str, str] | None = None) -> Path:
    """A run directory with a chargpt checkpoint (random weights), a val loss and a step, and the
    `arithmetic` its run validated in (precision, matmul_precision, device_type) where given."""
    torch.manual_seed(seed)
    model = build_model(config, len(vocab))
    path = run / "checkpoints" / "last.ckpt"
    path.parent.mkdir(parents=True)
    torch.save({
        "hyper_parameters": {"model": config.to_dict(), "vocab": vocab, **(arithmetic or {})},
        "state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
        "callbacks": {"ModelCheckpoint{'monitor': 'val/loss'}": {
            "monitor": "val/loss", "current_score": torch.tensor(1.5)}},
        "global_step": 123,
    }, path)
    return run


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    config = ModelConfig(n_layer=2, n_head=2, n_embd=32, block_size=16, pos_encoding="rope")
    return write_checkpoint(tmp_path_factory.mktemp("serve") / "my run", config)


@contextmanager
def served_in_a_thread(app: Any) -> Iterator[str]:
    """The app served as chargpt-serve serves it, on a free local port in a thread: its URL."""
    from chargpt.serving.server import bind, make_server, url_of

    sock = bind("127.0.0.1", 0)
    server = make_server(app, "warning")
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("the server thread stopped before it started")
            thread.join(0.01)
        yield url_of(sock)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@contextmanager
def serving(path: Path, limits: Limits | None = None, **engine_options: Any) -> Iterator[tuple[str, Engine]]:
    """`path` served in a thread (with small_limits unless `limits` are given): its URL, and the
    engine."""
    from chargpt.serving.app import create_app

    trained = chargpt.load(path)
    engine = Engine(trained.model, trained.tokenizer, **engine_options)
    engine.start()
    try:
        engine.warm_up()
        app = create_app(engine, trained.tokenizer, card_for(path, trained), limits or small_limits())
        with served_in_a_thread(app) as url:
            assert url.startswith("http://127.0.0.1:")
            yield url, engine
    finally:
        engine.close()


@pytest.fixture(scope="module")
def server(run_dir: Path) -> Iterator[tuple[str, Engine]]:
    with serving(run_dir, max_batch=8, max_queue=64) as served:
        yield served


@pytest.fixture(scope="module")
def url(server: tuple[str, Engine]) -> str:
    return server[0]


def complete(url: str, **body: Any) -> dict[str, Any]:
    import httpx

    response = httpx.post(f"{url}/v1/completions", json=body, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


def chargpt_sample(
    ckpt: Path, prompt: str, n: int, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture,
    **settings: Any,
) -> str:
    args = [f"ckpt_path={ckpt}", f"prompt={prompt}", f"num_samples={n}", "device=cpu",
            *(f"{k}={'null' if v is None else v}" for k, v in settings.items())]
    code, stdout, stderr = run_main(sample_cli.main, args, capsys)
    assert code == 0, stderr
    return stdout


def test_models_names_the_model_and_its_card(url: str, run_dir: Path) -> None:
    import httpx

    from chargpt.serving.protocol import MAX_STOP

    listing = httpx.get(f"{url}/v1/models").json()
    assert listing["object"] == "list"
    (model,) = listing["data"]
    assert model["id"] == "my run" and model["object"] == "model"
    card = model["chargpt"]
    assert card["val_loss"] == pytest.approx(1.5) and card["step"] == 123
    assert card["params"] == chargpt.load(run_dir).model.num_params()
    assert card["block_size"] == 16 and card["vocab_size"] == len(VOCAB) and card["max_tokens"] == 500
    assert card["max_stop"] == MAX_STOP == 4  # the page's limit on its stop sequences: the API's, one place
    assert card["start_prompt"] == "\n"  # what a request without a prompt continues from
    assert httpx.get(f"{url}/v1/models/my run").json()["id"] == "my run"
    assert httpx.get(f"{url}/health").json()["status"] == "ok"


@pytest.mark.parametrize(
    ("prompt", "settings"),
    [
        ('The king, "said" she, é😀\nNext: ', dict(max_tokens=80, temperature=0.8, top_k=10, seed=11)),
        ("A", dict(max_tokens=40, temperature=0.0, seed=1)),
        ("it’s à ça - no?", dict(max_tokens=50, top_p=0.9, seed=2**40, n=3)),
    ],
)
def test_seeded_text_equals_chargpt_sample(
    prompt: str, settings: dict[str, Any], url: str, run_dir: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    response = complete(url, prompt=prompt, **settings)
    n = settings.get("n", 1)
    texts = [choice["text"] for choice in sorted(response["choices"], key=lambda c: c["index"])]
    assert len(texts) == n and all(len(t) == settings["max_tokens"] for t in texts)
    assert all(c["finish_reason"] == "length" for c in response["choices"])
    made = n * settings["max_tokens"]
    assert response["usage"] == {"prompt_tokens": len(prompt), "completion_tokens": made,
                                 "total_tokens": len(prompt) + made}
    cli = chargpt_sample(run_dir, prompt, n, monkeypatch, capsys, max_new_tokens=settings["max_tokens"],
                         temperature=settings.get("temperature", 1.0), top_k=settings.get("top_k"),
                         top_p=settings.get("top_p"), seed=settings["seed"])
    assert cli == "\n---\n".join(prompt + text for text in texts) + "\n"


def test_a_prompt_written_otherwise_is_read_as_chargpt_sample_reads_it(url: str) -> None:
    # Windows line endings and an accent typed as a combining mark: the model's text, written
    # otherwise; the server answered 400 where chargpt-sample samples it.
    import unicodedata

    settings = {"max_tokens": 12, "temperature": 0.8, "seed": 3}
    as_typed = complete(url, prompt=unicodedata.normalize("NFD", "Café\r\nà"), **settings)
    as_known = complete(url, prompt="Café\nà", **settings)
    assert as_typed["choices"][0]["text"] == as_known["choices"][0]["text"]


def read_events(url: str, **body: Any) -> list[str]:
    import httpx

    with httpx.stream("POST", f"{url}/v1/completions", json={**body, "stream": True}, timeout=60) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        return [line for line in response.iter_lines() if line]


@pytest.mark.slow
def test_streaming_sends_chunks_then_done_with_the_same_text(url: str) -> None:
    body = dict(prompt="ROMEO:\n", max_tokens=300, seed=5, n=2)
    events = read_events(url, **body, stream_options={"include_usage": True})
    assert events[-1] == "data: [DONE]"
    assert all(e.startswith("data: {") for e in events[:-1])
    chunks = [json.loads(e.removeprefix("data: ")) for e in events[:-1]]
    *text_chunks, usage = chunks
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] == 600
    texts = ["", ""]
    finished = []
    for chunk in text_chunks:
        assert chunk["object"] == "text_completion" and chunk["model"] == "my run"
        (choice,) = chunk["choices"]
        texts[choice["index"]] += choice["text"]
        if choice["finish_reason"] is not None:
            finished.append(choice["index"])
    assert finished == [0, 1]
    assert len(text_chunks) > 6  # characters arrive as they are made, not in one piece per choice
    assert texts == [c["text"] for c in complete(url, **body)["choices"]]


@pytest.mark.parametrize(("prompt", "n"), [("Café, à\n", 1), (["Café, à\n", "😀 \"Hi\"\n"], 2)])
def test_characters_made_before_the_stream_reads_them_arrive_in_one_chunk_per_choice(
    server: tuple[str, Engine], monkeypatch: pytest.MonkeyPatch, prompt: str | list[str], n: int
) -> None:
    # Characters already waiting when the stream sends travel together, each choice's in one chunk
    # with its end: a client that reads slower than the model writes gets a chunk per choice, not
    # one event per character, even where the engine interleaves the choices of several prompts.
    # The request's submission waits here until every choice has ended, holding the server's event
    # loop: every character is waiting by the time the stream sends its first.
    url, engine = server
    submit = engine.submit

    def submit_then_wait_for_the_ends(*jobs: Any) -> None:
        ends = threading.Semaphore(0)
        for job in jobs:
            def emit_noting_the_end(event: Any, emit: Any = job.emit) -> None:
                emit(event)
                if event.kind == "end":
                    ends.release()

            job.emit = emit_noting_the_end
        submit(*jobs)
        for _ in range(sum(job.n for job in jobs)):
            assert ends.acquire(timeout=60)

    settings = dict(prompt=prompt, n=n, max_tokens=40, seed=5)
    whole = [c["text"] for c in complete(url, **settings)["choices"]]
    monkeypatch.setattr(engine, "submit", submit_then_wait_for_the_ends)
    events = read_events(url, **settings)
    assert events[-1] == "data: [DONE]"
    chunks = [json.loads(e.removeprefix("data: "))["choices"] for e in events[:-1]]
    assert all(len(c) == 1 for c in chunks)
    assert sorted((c[0]["index"], c[0]["text"], c[0]["finish_reason"]) for c in chunks) == [
        (i, text, "length") for i, text in enumerate(whole)
    ]
    assert all(len(text) == 40 for text in whole)


def streamed_choices(events: list[str], choices: int) -> tuple[list[str], list[str | None], dict[str, int]]:
    """A stream's texts and finish_reasons by index, and its usage (include_usage)."""
    assert events[-1] == "data: [DONE]"
    *chunks, usage = [json.loads(e.removeprefix("data: ")) for e in events[:-1]]
    texts, reasons = [""] * choices, [None] * choices
    for chunk in chunks:
        (choice,) = chunk["choices"]
        texts[choice["index"]] += choice["text"]
        if choice["finish_reason"] is not None:
            assert reasons[choice["index"]] is None  # one end per choice
            reasons[choice["index"]] = choice["finish_reason"]
    assert usage["choices"] == []
    return texts, reasons, usage["usage"]


@pytest.mark.slow
def test_a_stop_sequence_cuts_each_seeded_choice_of_chargpt_samples(
    url: str, run_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    prompt, settings = "ROMEO:", dict(max_tokens=80, temperature=0.9, seed=21)
    cli = chargpt_sample(run_dir, prompt, 3, monkeypatch, capsys, max_new_tokens=80, temperature=0.9, seed=21)
    samples = [sample.removeprefix(prompt) for sample in cli.removesuffix("\n").split("\n---\n")]
    assert [len(sample) for sample in samples] == [80] * 3
    # Two sequences that occur (in the first and last samples), and one that ends the second
    # sample but would need a character the vocabulary lacks: held back as it begins, then sent.
    stop = [samples[0][30:32], samples[2][10:13], samples[1][-2:] + "\x00"]
    expected = [cut_at_stop(sample, stop) for sample in samples]
    assert [reason for _, reason, _ in expected] == ["stop", "length", "stop"]
    made = sum(generated for _, _, generated in expected)  # the stop sequences' characters included
    answer = complete(url, prompt=prompt, n=3, stop=stop, **settings)
    assert [(c["index"], c["text"], c["finish_reason"]) for c in answer["choices"]] == [
        (i, text, reason) for i, (text, reason, _) in enumerate(expected)]
    assert answer["usage"] == {"prompt_tokens": 6, "completion_tokens": made, "total_tokens": 6 + made}
    # Streamed: the same texts, so not one character of a stop sequence was sent.
    usage_too = {"include_usage": True}
    texts, reasons, usage = streamed_choices(
        read_events(url, prompt=prompt, n=3, stop=stop, **settings, stream_options=usage_too), 3)
    assert texts == [text for text, _, _ in expected] and reasons == ["stop", "length", "stop"]
    assert usage == answer["usage"]


def test_a_list_of_prompts_gets_n_choices_each_as_if_each_were_sent_alone(url: str) -> None:
    prompts, settings = ["Hi", "The king"], dict(max_tokens=30, seed=4, n=2, stop="\n")
    alone = [complete(url, prompt=prompt, **settings)["choices"] for prompt in prompts]
    # OpenAI's numbering: prompt p's choice c is choice p * n + c.
    expected = [(2 * p + c, choice["text"], choice["finish_reason"])
                for p in range(2) for c, choice in enumerate(alone[p])]
    answer = complete(url, prompt=prompts, **settings)
    assert answer["object"] == "text_completion" and answer["model"] == "my run"
    assert answer["id"].startswith("cmpl-") and isinstance(answer["created"], int)
    assert [(c["index"], c["text"], c["finish_reason"]) for c in answer["choices"]] == expected
    assert [reason for _, _, reason in expected] == ["length", "stop", "length", "stop"]
    assert answer["usage"]["prompt_tokens"] == len("Hi") + len("The king")
    texts, reasons, usage = streamed_choices(
        read_events(url, prompt=prompts, **settings, stream_options={"include_usage": True}), 4)
    assert list(zip(range(4), texts, reasons, strict=True)) == expected
    assert usage == answer["usage"]


def test_a_list_of_prompts_beyond_the_server_s_places_is_refused(run_dir: Path) -> None:
    # Each prompt takes a place: with one, and no queue, two prompts would wait forever.
    import httpx

    with serving(run_dir, max_batch=1, max_queue=0) as (url, _):
        response = httpx.post(f"{url}/v1/completions", json={"prompt": ["a", "b"], "max_tokens": 5})
        assert response.status_code == 400
        assert response.json()["error"]["message"] == (
            "the request's 2 prompts need a place each, and this server has 1 (max_concurrency 1 + "
            "max_queue 0); send at most 1 prompt per request")
        assert len(complete(url, prompt=["a"], max_tokens=5)["choices"][0]["text"]) == 5


def test_a_line_separator_in_the_text_stays_inside_its_streamed_event(tmp_path: Path) -> None:
    # U+0085, U+2028 and U+2029 end a line for Python's str.splitlines, and so for httpx's
    # iter_lines and the clients that read a stream with it: sent as themselves, they cut an
    # event's JSON in two. A model trained on text that has them generates them.
    separators = "\x85\u2028\u2029"
    run = write_checkpoint(tmp_path / "separators", ModelConfig(arch="bigram", block_size=8),
                           vocab=sorted("ab" + separators))
    body = dict(prompt="a", max_tokens=100, seed=0)
    with serving(run) as (url, _):
        events = read_events(url, **body)
        expected = complete(url, **body)["choices"][0]["text"]
    assert set(separators) <= set(expected)
    assert events[-1] == "data: [DONE]"
    chunks = [json.loads(e.removeprefix("data: ")) for e in events[:-1]]
    assert "".join(c["choices"][0]["text"] for c in chunks) == expected


@pytest.mark.slow
def test_the_openai_client_works_unchanged(url: str) -> None:
    import openai

    client = openai.OpenAI(base_url=f"{url}/v1", api_key="not-needed", max_retries=0)
    assert [m.id for m in client.models.list()] == ["my run"]
    settings = dict(model="my run", prompt="Good night, sweet prince", max_tokens=60, temperature=0.7, seed=3)
    completion = client.completions.create(**settings)
    text = completion.choices[0].text
    assert len(text) == 60 and completion.choices[0].finish_reason == "length"
    assert completion.usage.completion_tokens == 60
    streamed = "".join(chunk.choices[0].text for chunk in client.completions.create(**settings, stream=True)
                       if chunk.choices)
    assert streamed == text
    # top_k is an extension: the client passes it in extra_body. top_k=1 is greedy.
    greedy = client.completions.create(model="my run", prompt="Hi", max_tokens=30, extra_body={"top_k": 1})
    expected = complete(url, prompt="Hi", max_tokens=30, temperature=0)["choices"][0]["text"]
    assert greedy.choices[0].text == expected
    with pytest.raises(openai.BadRequestError, match="not in the vocabulary"):
        client.completions.create(model="my run", prompt="Grüße", max_tokens=5)
    with pytest.raises(openai.NotFoundError, match="not served here"):
        client.completions.create(model="gpt-4", prompt="Hi", max_tokens=5)


def test_the_openai_client_sends_stop_and_lists_of_prompts(url: str) -> None:
    import openai

    client = openai.OpenAI(base_url=f"{url}/v1", api_key="not-needed", max_retries=0)
    settings = dict(model="my run", prompt="Good night", max_tokens=60, seed=3)
    whole = client.completions.create(**settings).choices[0].text
    stop = whole[20:22]
    text, reason, generated = cut_at_stop(whole, [stop])
    cut = client.completions.create(**settings, stop=stop)
    assert (cut.choices[0].text, cut.choices[0].finish_reason) == (text, reason) == (text, "stop")
    assert cut.usage.completion_tokens == generated
    chunks = list(client.completions.create(**settings, stop=[stop, "\x00"], stream=True))
    assert "".join(chunk.choices[0].text for chunk in chunks) == text
    assert chunks[-1].choices[0].finish_reason == "stop"
    batch = client.completions.create(**{**settings, "prompt": ["Good night", "Hi"], "max_tokens": 10})
    assert [choice.index for choice in batch.choices] == [0, 1] and batch.choices[0].text == whole[:10]
    with pytest.raises(openai.BadRequestError, match="stop has 5 sequences"):
        client.completions.create(**settings, stop=list("abcde"))


def test_twenty_prompts_in_one_request_as_langchain_sends_them_are_served_by_default(run_dir: Path) -> None:
    # LangChain's OpenAI class sends 20 prompts a request (n=1): the default max_n=8 counted the
    # choices of every prompt and refused them. max_n bounds n, max_choices the request's choices.
    import httpx
    import openai

    from chargpt.serving.protocol import Limits

    with serving(run_dir, Limits(), max_batch=8, max_queue=64) as (url, engine):
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="not-needed", max_retries=0)
        prompts = [f"The {word}" for word in "king queen lord lady duke".split()] * 4
        batch = client.completions.create(model="my run", prompt=prompts, max_tokens=3, seed=2)
        assert [choice.index for choice in batch.choices] == list(range(20))
        assert all(len(choice.text) == 3 for choice in batch.choices)
        assert batch.choices[5].text == batch.choices[0].text  # the same prompt and seed
        with pytest.raises(openai.BadRequestError, match=r"20 prompts with n=2 ask for 40 choices; this "
                           r"server's limit of 32 \(max_choices\)"):
            client.completions.create(model="my run", prompt=prompts, n=2, max_tokens=3)
        with pytest.raises(openai.BadRequestError, match="n=9 must be between 1 and 8"):
            client.completions.create(model="my run", prompt="Hi", n=9, max_tokens=3)
        # Each limit itself is allowed: n=8 (max_n) for 4 prompts, 32 choices (max_choices).
        at_limits = client.completions.create(model="my run", prompt=prompts[:4], n=8, max_tokens=1)
        assert len(at_limits.choices) == 32
        card = httpx.get(f"{url}/v1/models").json()["data"][0]["chargpt"]
        assert (card["max_n"], card["max_choices"]) == (8, 32)
        assert engine.load() == {"running": 0, "waiting": 0, "requests": 0}


@pytest.mark.slow  # 20 clients; the batching itself is checked in tests/test_serve_engine.py
def test_twenty_concurrent_requests_are_all_answered(server: tuple[str, Engine], run_dir: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    url, engine = server
    widths: list[int] = []
    batched_step = engine._batched_step

    def recording(stepping: list[int]) -> dict[int, torch.Tensor]:
        widths.append(len(stepping))
        return batched_step(stepping)

    monkeypatch.setattr(engine, "_batched_step", recording)

    def ask(seed: int) -> str:
        body = dict(prompt="The queen", max_tokens=40, seed=seed)
        if seed % 2:
            events = read_events(url, **body)
            return "".join(json.loads(e[6:])["choices"][0]["text"] for e in events[:-1])
        return complete(url, **body)["choices"][0]["text"]

    with ThreadPoolExecutor(max_workers=20) as pool:
        texts = list(pool.map(ask, range(20)))
    trained = chargpt.load(run_dir)
    # Batched rows compute their logits with another matrix kernel than a lone request, equal to the
    # last bit or so; a sampled character could differ only if its random draw fell that close to a
    # boundary between two characters, which these 800 characters make vanishingly unlikely.
    assert texts == [trained.generate("The queen", seed=s, max_new_tokens=40)[0] for s in range(20)]
    assert max(widths) > 1  # requests shared forward passes
    assert engine.load() == {"running": 0, "waiting": 0, "requests": 0}


@pytest.mark.parametrize(
    ("body", "status", "param", "message"),
    [
        ('{"prompt": "Grüße 🙂", "max_tokens": 5}', 400, "prompt",
         "the prompt has characters not in the vocabulary: 'ß', 'ü', '🙂'"),
        ('{"prompt": "Hi", "temperature": -0.5}', 400, "temperature",
         "temperature=-0.5 must be a finite number >= 0"),
        ('{"prompt": "Hi", "max_tokens": 501}', 400, "max_tokens",
         "max_tokens=501 is above this server's limit of 500"),
        ('{"prompt": "Hi", "max_new_tokens": 10000}', 400, "max_new_tokens", "limit of 500"),
        ('{"prompt": "Hi", "max_tokens": -1}', 400, "max_tokens", "max_tokens=-1 must be >= 0"),
        # NaN, or a flag for a number, is not a setting: refused before it reaches the shared batch.
        ('{"prompt": "Hi", "temperature": NaN}', 400, "temperature", "input should be a finite number"),
        ('{"prompt": "Hi", "top_p": Infinity}', 400, "top_p", "input should be a finite number"),
        ('{"prompt": "Hi", "max_tokens": true}', 400, "max_tokens", "input should be a valid integer"),
        ('{"prompt": "Hi", "stream": true, "stream_options": {"include_usge": true}}', 400,
         "stream_options.include_usge", "unknown parameter 'stream_options.include_usge'"),
        ('{"prompt": "Hi", "stream_options": {"include_usage": true}}', 400, "stream_options",
         "stream_options applies only with stream=true"),  # as OpenAI's API answers it
        ('{"prompt": "Hi", "stream": true, "stream_options": {"include_usage": "yes"}}', 400,
         "stream_options.include_usage", "stream_options.include_usage must be true or false"),
        ('{"prompt": "Hi", "max_tokens": 5, "max_new_tokens": 6}', 400, "max_tokens",
         "max_tokens and max_new_tokens disagree; send only max_tokens"),
        ('{"prompt": "Hi", max_tokens: 5}', 400, None,
         "not valid JSON (Expecting property name enclosed in double quotes: line 1 column 18)"),
        ('{"prompt": "ab', 400, None, "not valid JSON (Unterminated string starting at: line 1 column 12)"),
        ('["Hi"]', 400, None, "must be a JSON object, got an array"),
        ("null", 400, None, "must be a JSON object, got null"),
        ('{"prompt": "Hi", "temprature": 0.5}', 400, "temprature", "unknown parameter 'temprature'"),
        ('{"prompt": "Hi", "top_p": 1.5}', 400, "top_p", "top_p=1.5 must be in (0, 1]"),
        ('{"prompt": "Hi", "top_k": -3}', 400, "top_k", "top_k=-3 must be >= 0"),
        ('{"prompt": "Hi", "n": 5}', 400, "n", "n=5 must be between 1 and 4"),
        ('{"prompt": ""}', 400, "prompt", "the prompt is empty"),
        ('{"prompt": ["a", ""]}', 400, "prompt", "prompt[1] is empty; give at least one character"),
        ('{"prompt": []}', 400, "prompt", "prompt is an empty list; give at least one prompt"),
        ('{"prompt": [72, 105]}', 400, "prompt", "prompt is given as token ids; this server's tokens are "
         "characters and it reads text: send the prompt as a string, or several as a list of strings"),
        ('{"prompt": [[72, 105], [65]]}', 400, "prompt", "prompt is given as token ids"),
        ('{"prompt": ["Hi", 5]}', 400, "prompt", "prompt[1] must be a string, got a number"),
        ('{"prompt": {"text": "Hi"}}', 400, "prompt", "prompt must be a string or a list of strings, got an "
         "object"),
        ('{"prompt": ["Hi", "Grüße"]}', 400, "prompt", "prompt[1] has characters not in the vocabulary: 'ß'"),
        ('{"prompt": ["a", "b", "c", "d"], "n": 2}', 400, "prompt", "4 prompts with n=2 ask for 8 choices; "
         "this server's limit of 6 (max_choices) counts the choices of every prompt: send fewer prompts or a "
         "smaller n"),
        ('{"prompt": "Hi", "stop": ["a", "b", "c", "d", "e"]}', 400, "stop",
         "stop has 5 sequences, more than the 4 allowed (as in OpenAI's API); send at most 4"),
        ('{"prompt": "Hi", "stop": ["\\n", ""]}', 400, "stop", "stop[1] is an empty string, which would end "
         "every choice before its first character; remove it"),
        ('{"prompt": "Hi", "stop": ["\\n", 3]}', 400, "stop", "stop[1] must be a string, got a number"),
        ('{"prompt": "Hi", "stop": true}', 400, "stop", "stop must be a string or a list of up to 4 strings, "
         "got true or false"),
        ('{"prompt": null}', 400, "prompt", "prompt is null; give it as a string, or leave it out"),
        ('{"prompt": "A", "stream_options": ' + "[" * 100000 + "]" * 100000 + "}", 400, None,
         "the request body is nested too deeply"),
        ('{"prompt": "A", "max_tokens": ' + "9" * 5000 + "}", 400, None,
         "the request body has a number too long to read"),
        ('{"prompt": "Hi", "max_tokens": "many"}', 400, "max_tokens",
         "max_tokens: input should be a valid integer"),
        ('{"prompt": "Hi", "echo": true}', 400, "echo", "echo is not supported by this server"),
        ('{"prompt": "Hi", "seed": 18446744073709551616}', 400, "seed", "outside the 64-bit range"),
        ('{"prompt": "Hi", "model": "gpt-4"}', 404, "model", "the model 'gpt-4' is not served here"),
        # A parameter name with a lone surrogate escape (valid JSON, no UTF-8 for it): it is named
        # escaped, as the error JSON could not carry it (it got a 500, or "None: ..." at the top).
        ('{"prompt": "Hi", "\\ud800": 3}', 400, None, "the parameter name '\\ud800' is not valid text"),
        ('{"prompt": "Hi", "stream": true, "stream_options": {"\\ud800": true}}', 400, None,
         "the parameter name '\\ud800' is not valid text"),
    ],
)
def test_bad_input_gets_a_4xx_json_error_and_the_server_keeps_serving(
    body: str, status: int, param: str | None, message: str, url: str
) -> None:
    import httpx

    response = httpx.post(f"{url}/v1/completions", content=body.encode(), timeout=30,
                          headers={"Content-Type": "application/json"})
    assert response.status_code == status
    error = response.json()["error"]
    assert message in error["message"]
    assert error["param"] == param and error["type"] == "invalid_request_error"
    assert len(complete(url, prompt="Hi", max_tokens=5)["choices"][0]["text"]) == 5


def raw_answer(url: str, *sent: bytes) -> bytes:
    """What the server answers bytes sent as they are, in these writes, over a socket of its own:
    all it writes until it closes the connection (as it does after a refusal)."""
    host, port = url.removeprefix("http://").split(":")
    answer = b""
    with socket.create_connection((host, int(port)), timeout=30) as client:
        for part in sent:
            client.sendall(part)
        while chunk := client.recv(65536):
            answer += chunk
    return answer


@pytest.mark.parametrize(
    "sent",
    [
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # a TLS handshake: an https:// address
        b"GARBAGE / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\na header without its colon\r\n\r\n",
    ],
)
def test_bytes_that_are_not_http_get_a_400_json_error_and_the_server_keeps_serving(
    sent: bytes, url: str
) -> None:
    head, _, body = raw_answer(url, sent).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 ")
    assert b"content-type: application/json" in head.lower()
    error = json.loads(body)["error"]
    assert error["type"] == "invalid_request_error" and error["code"] == "invalid_http"
    assert "not a valid HTTP request" in error["message"] and "https://" in error["message"]
    assert len(complete(url, prompt="Hi", max_tokens=5)["choices"][0]["text"]) == 5


def test_headers_over_the_size_limit_get_a_431_json_error_naming_them_and_the_server_keeps_serving(
    url: str,
) -> None:
    """A long cookie sent in pieces: h11 refuses the head once it passes its limit. Its answer names
    the headers' size, not bytes that are no HTTP."""
    cookie = [b"a" * 1024] * 40  # 40 writes
    answer = raw_answer(url, b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nCookie: ", *cookie)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 431 ")
    assert b"content-type: application/json" in head.lower()
    error = json.loads(body)["error"]
    assert error["code"] == "headers_too_large" and error["type"] == "invalid_request_error"
    assert "headers are larger than" in error["message"] and "16,384 bytes" in error["message"]
    assert "not a valid HTTP request" not in error["message"]
    assert len(complete(url, prompt="Hi", max_tokens=5)["choices"][0]["text"]) == 5


@contextmanager
def server_log() -> Iterator[list[str]]:
    """The lines the server logs as problems (uvicorn's error log, the one a terminal shows)
    meanwhile."""
    lines: list[str] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: lines.append(record.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger("uvicorn.error")
    logger.addHandler(handler)
    try:
        yield lines
    finally:
        logger.removeHandler(handler)


def test_headers_over_the_size_limit_are_logged_as_such_not_as_an_invalid_request(url: str) -> None:
    # The server's log said "Invalid HTTP request received." of a request it answered 431.
    with server_log() as lines:
        answer = raw_answer(url, b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nCookie: ", *[b"a" * 1024] * 40)
    assert answer.startswith(b"HTTP/1.1 431 ")
    assert len(lines) == 1 and re.fullmatch(
        r"127\.0\.0\.1:\d+ - a request's headers passed this server's limit of 16,384 bytes \(with its "
        r"request line\): answered 431 Request Header Fields Too Large", lines[0]), lines
    with server_log() as lines:  # bytes that are no HTTP are still named by uvicorn's line
        assert raw_answer(url, b"GARBAGE / HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 400 ")
    assert lines == ["Invalid HTTP request received."]


def test_a_client_still_sending_a_refused_head_gets_its_error_rather_than_a_reset(url: str) -> None:
    """A 300 KB cookie in one write: the server refuses the head while its rest still comes. Closed
    then, the connection would be reset, and the client lose the answer."""
    cookie = b"a" * 300_000
    answer = raw_answer(url, b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nCookie: " + cookie + b"\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 431 ") and b"headers_too_large" in answer
    assert len(complete(url, prompt="Hi", max_tokens=5)["choices"][0]["text"]) == 5


def test_a_request_without_max_tokens_gets_the_servers_default_length(url: str) -> None:
    assert len(complete(url, prompt="Hi")["choices"][0]["text"]) == 64  # the fixture's default_max_tokens
    assert len(complete(url, prompt="Hi", max_new_tokens=7)["choices"][0]["text"]) == 7


def test_unknown_routes_and_methods_get_json_errors(url: str) -> None:
    import httpx

    missing = httpx.get(f"{url}/v1/chat/completions")
    assert missing.status_code == 404 and "POST /v1/completions" in missing.json()["error"]["message"]
    assert "GET /health" in missing.json()["error"]["message"]
    assert httpx.head(f"{url}/health").status_code == 200  # a load balancer's probe
    assert httpx.head(f"{url}/").status_code == 200
    # A trailing slash is not redirected (a client's POST would not follow): a 404 naming the routes.
    slash = httpx.post(f"{url}/v1/completions/", json={"prompt": "Hi"})
    assert slash.status_code == 404 and "POST /v1/completions" in slash.json()["error"]["message"]


def test_a_body_past_a_megabyte_gets_413_and_the_server_keeps_serving(url: str) -> None:
    import httpx

    huge = json.dumps({"prompt": "a" * (1 << 20), "max_tokens": 5})
    response = httpx.post(f"{url}/v1/completions", content=huge.encode(), timeout=30,
                          headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert "larger than 1,048,576 bytes" in response.json()["error"]["message"]
    chunks = (huge[i:i + 65536].encode() for i in range(0, len(huge), 65536))  # no Content-Length
    response = httpx.post(f"{url}/v1/completions", content=chunks, timeout=30)
    assert response.status_code == 413
    assert len(complete(url, prompt="Hi", max_tokens=5)["choices"][0]["text"]) == 5
    assert httpx.get(f"{url}/v1/completions").status_code == 405
    assert httpx.get(f"{url}/v1/models/other").status_code == 404


def test_a_full_queue_gets_429_and_a_closed_stream_frees_its_place(run_dir: Path) -> None:
    import httpx

    from chargpt.serving.protocol import Limits

    limits = Limits(max_tokens=1_000_000)
    with serving(run_dir, limits, max_batch=1, max_queue=1) as (url, engine), httpx.Client(timeout=60) as c:
        long = {"prompt": "The", "max_tokens": 1_000_000, "stream": True}  # until the client hangs up
        with c.stream("POST", f"{url}/v1/completions", json=long) as first:
            lines = first.iter_lines()  # kept open: closing this iterator would close the connection
            assert next(lines).startswith("data: {")  # it is generating
            queued: dict[str, Any] = {}
            waiter = threading.Thread(target=lambda: queued.update(
                complete(url, prompt="Hi", max_tokens=5)), daemon=True)
            waiter.start()
            deadline = time.monotonic() + 30
            while engine.load()["waiting"] < 1 and time.monotonic() < deadline:
                time.sleep(0.01)
            refused = c.post(f"{url}/v1/completions", json={"prompt": "Hi", "max_tokens": 5})
            assert refused.status_code == 429 and refused.headers["retry-after"] == "1"
            assert refused.json()["error"]["code"] == "queue_full"
            message = refused.json()["error"]["message"]
            assert "busy: all its 2 places are taken (1 prompt generating and 1 waiting, of 2 requests)" \
                in message
            assert engine.load() == {"running": 1, "waiting": 1, "requests": 2}
            assert next(lines) == ""  # still streaming
        # The first client hung up after a few characters: its generation stops, the queued one runs.
        waiter.join(timeout=60)
        assert len(queued["choices"][0]["text"]) == 5
        assert engine.load() == {"running": 0, "waiting": 0, "requests": 0}


def test_a_client_that_hangs_up_on_a_plain_request_stops_its_generation(run_dir: Path) -> None:
    from chargpt.serving.protocol import Limits

    limits = Limits(max_tokens=1_000_000)
    with serving(run_dir, limits, max_batch=1, max_queue=0) as (url, engine):
        host, port = url.removeprefix("http://").split(":")
        body = json.dumps({"prompt": "The", "max_tokens": 1_000_000, "n": 4}).encode()  # minutes of work
        with socket.create_connection((host, int(port)), timeout=30) as client:
            client.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                           b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
            deadline = time.monotonic() + 30
            while engine.load()["running"] < 1 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert engine.load() == {"running": 1, "waiting": 0, "requests": 1}  # it is generating
        # The client hung up before any answer: its generation stops and frees the only slot.
        deadline = time.monotonic() + 30
        while engine.load()["running"] > 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert engine.load() == {"running": 0, "waiting": 0, "requests": 0}
        assert len(complete(url, prompt="Hi", max_tokens=5)["choices"][0]["text"]) == 5  # not a 429


def test_an_export_folder_serves_the_same_model(run_dir: Path, tmp_path: Path) -> None:
    import httpx

    trained = chargpt.load(run_dir)
    folder = export_model(trained, card_for(run_dir, trained), "safetensors", tmp_path / "my export")
    with serving(folder, max_batch=2) as (url, _):
        (model,) = httpx.get(f"{url}/v1/models").json()["data"]
        assert model["id"] == "my run" and model["chargpt"]["val_loss"] == pytest.approx(1.5)
        text = complete(url, prompt="Hi", max_tokens=30, seed=4)["choices"][0]["text"]
    assert text == trained.generate("Hi", seed=4, max_new_tokens=30)[0]


def test_the_bigram_model_is_served_too(tmp_path: Path) -> None:
    run = write_checkpoint(tmp_path / "bigram", ModelConfig(arch="bigram", block_size=8))
    with serving(run, max_batch=4) as (url, _), ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda s: complete(url, prompt="Hi", max_tokens=20, seed=s), range(4)))
    texts = [answer["choices"][0]["text"] for answer in answers]
    trained = chargpt.load(run)
    assert texts == [trained.generate("Hi", seed=s, max_new_tokens=20)[0] for s in range(4)]


def _cli_error(args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> str:
    code, _, stderr = run_main(serve_cli.main, args, capsys)
    lines = stderr.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), stderr
    return lines[0]


def test_cli_bad_settings_are_one_error_line(
    run_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    assert "ckpt_path is required" in _cli_error([], monkeypatch, capsys)
    assert _cli_error(["ckpt_path=/no/such run", "port=0"], monkeypatch, capsys) == (
        "error: checkpoint not found: /no/such run; pass an existing .ckpt file or run directory, or an "
        "export folder")
    assert "max_tokens=900 is above max_tokens_cap=100" in _cli_error(
        [f"ckpt_path={run_dir}", "max_tokens=900", "max_tokens_cap=100"], monkeypatch, capsys)
    assert "max_concurrency=0 must be a whole number >= 1" in _cli_error(
        [f"ckpt_path={run_dir}", "max_concurrency=0"], monkeypatch, capsys)
    assert "port=70000" in _cli_error([f"ckpt_path={run_dir}", "port=70000"], monkeypatch, capsys)
    assert "max_n=true must be a whole number >= 1" in _cli_error(
        [f"ckpt_path={run_dir}", "max_n=true"], monkeypatch, capsys)
    assert "max_n=40 is above max_choices=32, the choices of a whole request" in _cli_error(
        [f"ckpt_path={run_dir}", "max_n=40"], monkeypatch, capsys)
    assert "compile='maybe' must be true or false" in _cli_error(
        [f"ckpt_path={run_dir}", "compile=maybe"], monkeypatch, capsys)
    assert "device='tpu' is not a device" in _cli_error(
        [f"ckpt_path={run_dir}", "device=tpu"], monkeypatch, capsys)
    assert "log_level='loud' is not one of critical, error, warning, info, debug, trace" in _cli_error(
        [f"ckpt_path={run_dir}", "log_level=loud"], monkeypatch, capsys)
    assert "name=caf\\xe9 is not UTF-8 text" in _cli_error(  # a Latin-1 terminal's café: every answer a 500
        [f"ckpt_path={run_dir}", "name=caf\udce9"], monkeypatch, capsys)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        message = _cli_error([f"ckpt_path={run_dir}", f"port={port}"], monkeypatch, capsys)
    assert f"cannot listen on 127.0.0.1:{port}" in message and "port=0" in message


def test_cli_memory_running_out_as_it_starts_names_max_concurrency(
    run_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    # A key/value cache too large for max_concurrency rows was torch's traceback, exit 1; memory
    # running out in the first step let the server start, every request then failing.
    from chargpt.serving import engine as engine_module

    def no_room(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't "
                           "allocate memory: you tried to allocate 32768000000000 bytes. "
                           "Error code 12 (Cannot allocate memory)")

    monkeypatch.setattr(engine_module, "BatchedKVCache", no_room)
    said = ("max_concurrency=1000 (a key/value cache row of the model's whole context per prompt decoded at "
            "once) is too large for the memory of the device the model is on (device=auto); serve with less, "
            "e.g. max_concurrency=500, or on another device")
    assert _cli_error([f"ckpt_path={run_dir}", "port=0", "max_concurrency=1000"], monkeypatch, capsys) == (
        f"error: out of CPU memory (could not allocate 29.80 TiB); {said}")
    monkeypatch.undo()
    monkeypatch.setattr(Engine, "_iteration", no_room)  # the warm-up's first step
    assert _cli_error([f"ckpt_path={run_dir}", "port=0", "max_concurrency=1000"], monkeypatch, capsys) == (
        f"error: out of CPU memory (could not allocate 29.80 TiB); {said}")
    # One row is the least: it advised "serve with less, e.g. on another device".
    assert _cli_error([f"ckpt_path={run_dir}", "port=0", "max_concurrency=1"], monkeypatch, capsys).endswith(
        "the device the model is on (device=auto); serve on another device")
    # Building the model itself: max_concurrency, advised first, was no help.
    monkeypatch.undo()
    monkeypatch.setattr(inference, "build_model", no_room)
    assert re.fullmatch(
        r"error: out of CPU memory \(could not allocate 29.80 TiB\); the model itself \([\d,]+ parameters, "
        r"0.0 GiB of weights\) does not fit in memory for device=cpu, and no setting makes it smaller; "
        r"load it on a machine or device with more memory",
        _cli_error([f"ckpt_path={run_dir}", "port=0", "max_concurrency=1000"], monkeypatch, capsys))


def test_cli_settings_become_the_servers_limits(run_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture) -> None:
    # max_tokens is the default a request gets, max_tokens_cap the most it may ask: Limits names
    # them default_max_tokens and max_tokens, so the two are easily handed over the wrong way round.
    from chargpt.serving import app, server
    from chargpt.serving.protocol import Limits

    given: list[Limits] = []
    create_app = app.create_app

    def create(engine: Engine, tokenizer: CharTokenizer, card: Any, limits: Limits) -> Any:
        given.append(limits)
        return create_app(engine, tokenizer, card, limits)

    monkeypatch.setattr(app, "create_app", create)
    monkeypatch.setattr(server, "serve", lambda *args, **kwargs: None)  # built, never served
    code, _, err = run_main(serve_cli.main, [f"ckpt_path={run_dir}", "port=0", "max_tokens=5",
                                             "max_tokens_cap=9", "max_n=2", "max_choices=3"], capsys)
    assert code == 0, err
    assert given == [Limits(default_max_tokens=5, max_tokens=9, max_n=2, max_choices=3)]


def test_serving_a_run_still_training_names_the_step_it_serves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    # It printed "serving run (N parameters)" alone: a run still training was served with the
    # weights of its latest validation for as long as the server ran, and nothing said which step's
    # they were, or that the run wrote newer ones (chargpt-export says so).
    from chargpt.serving import server

    monkeypatch.setattr(server, "serve", lambda *args, on_ready, **kwargs: on_ready())  # never served
    run = write_checkpoint(tmp_path / "run", ModelConfig(n_layer=1, n_head=2, n_embd=16, block_size=8))
    status = {"status": "running", "pid": os.getpid(), "host": socket.gethostname()}
    (run / "status.json").write_text(json.dumps(status))
    code, out, err = run_main(serve_cli.main, [f"ckpt_path={run}", "port=0"], capsys)
    assert code == 0 and out.startswith("serving run (") and ", step 123) at http://127.0.0.1:" in out, err
    assert err.strip() == (f"note: {run} is still training: this server serves its weights at step 123; "
                           "restart the server once it has ended for its last ones")
    (run / "status.json").write_text(json.dumps({"status": "interrupted"}))
    code, _, err = run_main(serve_cli.main, [f"ckpt_path={run}", "port=0"], capsys)
    assert err.strip() == (f"note: {run} was stopped (Ctrl-C or a signal) before it finished: this server "
                           "serves its weights at step 123; resume it (its chargpt-train command with "
                           f"ckpt_path={run}) and restart the server for a trained model")
    (run / "status.json").write_text(json.dumps({"status": "finished"}))
    code, _, err = run_main(serve_cli.main, [f"ckpt_path={run}", "port=0"], capsys)
    assert code == 0 and err == ""


@pytest.mark.slow  # several seconds; runs in the slow set (.ci/run)
def test_cli_serves_until_terminated(run_dir: Path) -> None:
    import httpx

    process = subprocess.Popen(
        [sys.executable, "-m", "chargpt.cli.serve", f"ckpt_path={run_dir}", "port=0", "log_level=warning"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("serving my run (") and "/v1)" in line, line + process.stderr.read()
        base = line.split(" at ")[1].split("/ ")[0]
        assert base.startswith("http://127.0.0.1:")  # localhost by default
        assert httpx.get(f"{base}/v1/models").json()["data"][0]["id"] == "my run"
        assert len(complete(base, prompt="Hi", max_tokens=7)["choices"][0]["text"]) == 7
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.slow  # several seconds; runs in the slow set (.ci/run)
def test_a_second_ctrl_c_ends_open_requests_with_their_errors_at_once(tmp_path: Path) -> None:
    # uvicorn's forced exit cancelled them: a traceback each, a plain-text 500, streams cut short.
    import httpx

    config = ModelConfig(n_layer=4, n_head=4, n_embd=256, block_size=256)  # slow enough to stay open
    run = write_checkpoint(tmp_path / "big run", config)
    process = subprocess.Popen(
        [sys.executable, "-m", "chargpt.cli.serve", f"ckpt_path={run}", "port=0", "log_level=warning",
         "max_tokens_cap=100000"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert process.stdout is not None
        base = process.stdout.readline().split(" at ")[1].split("/ ")[0]
        with ThreadPoolExecutor(2) as pool:
            url = f"{base}/v1/completions"
            plain = pool.submit(httpx.post, url, json={"max_tokens": 100000}, timeout=60)
            streamed = pool.submit(lambda: httpx.post(url, timeout=60, json={
                "max_tokens": 100000, "stream": True}).text)
            time.sleep(2)  # both generating
            process.send_signal(signal.SIGINT)
            time.sleep(0.3)
            process.send_signal(signal.SIGINT)  # before the 2 s grace ends
            answer, events = plain.result(), streamed.result()
        assert process.wait(timeout=30) == 0
        assert answer.status_code == 503
        assert answer.json()["error"]["message"] == "the server is shutting down"
        last = [line for line in events.splitlines() if line.startswith("data: ")][-1]
        assert json.loads(last[6:])["error"]["message"] == "the server is shutting down"
        assert "Traceback" not in process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.slow  # waits out the 2 s grace
def test_ctrl_c_ends_a_stream_whose_client_stopped_reading_without_a_traceback(run_dir: Path) -> None:
    # Its answers fill the socket's buffers and the server's write waits: the stream cannot send its
    # error. uvicorn cancelled it after its own deadline, an "Exception in ASGI application" traceback.
    # A long model name, which every chunk repeats: the buffers fill in a moment.
    process = subprocess.Popen(
        [sys.executable, "-m", "chargpt.cli.serve", f"ckpt_path={run_dir}", "port=0", "log_level=warning",
         f"name={'m' * 4000}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert process.stdout is not None
        host, port = process.stdout.readline().split(" at http://")[1].split("/ ")[0].split(":")
        body = json.dumps({"prompt": ["ROMEO:", "JULIET:", "Café, à", "😀"], "n": 8, "max_tokens": 4096,
                           "stream": True}).encode()
        stalled = socket.socket()
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a client reading nothing
        stalled.connect((host, int(port)))
        stalled.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                        b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        time.sleep(3)  # the answers fill the buffers
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
        stalled.close()
        assert "Traceback" not in process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:.*script_method.*:DeprecationWarning")  # inside torch's compiler
def test_the_compiled_step_serves_without_recompiling(run_dir: Path) -> None:
    with serving(run_dir, max_batch=3, compile=True) as (url, _):  # compiles and warms up before serving
        with torch._dynamo.config.patch(error_on_recompile=True), ThreadPoolExecutor(3) as pool:
            bodies = [dict(prompt="The", max_tokens=50, seed=s, n=1 + s % 2) for s in range(5)]
            answers = list(pool.map(lambda body: complete(url, **body), bodies))
            alone = complete(url, prompt="A", max_tokens=70, temperature=0)
        for body, answer in zip(bodies, answers, strict=True):
            assert [len(c["text"]) for c in answer["choices"]] == [50] * body["n"]
        assert len(alone["choices"][0]["text"]) == 70
        assert set("".join(c["text"] for a in answers for c in a["choices"])) <= set(VOCAB)


@pytest.mark.parametrize("neutral", [
    {"stream": None}, {"best_of": 1}, {"logit_bias": {}}, {"stop": []}, {"stop": ""}, {"stop": None},
    {"suffix": ""},
    {"echo": False}, {"presence_penalty": 0.0}, {"frequency_penalty": 0}, {"logprobs": None},
])
def test_openai_values_that_ask_for_nothing_are_accepted(neutral: dict) -> None:
    # What OpenAI's clients send as their defaults, or an empty list or map: nothing is asked that
    # the server does not do.
    from chargpt.serving.protocol import parse_completion

    tokenizer = CharTokenizer.from_text("abc")
    request = parse_completion({"prompt": "ab", **neutral}, tokenizer, small_limits(), "m")
    assert request.prompts == ["ab"] and request.stream is False and request.stop == ()


@pytest.mark.parametrize("asked", [
    {"best_of": 2}, {"logit_bias": {"1": 5}}, {"echo": True}, {"echo": 0},
    {"presence_penalty": 0.5}, {"logprobs": 0},
])
def test_openai_values_that_ask_for_something_unsupported_are_refused(asked: dict) -> None:
    from chargpt.serving.protocol import APIError, parse_completion

    with pytest.raises(APIError) as refused:
        parse_completion({"prompt": "ab", **asked}, CharTokenizer.from_text("abc"), small_limits(), "m")
    assert refused.value.status == 400 and "is not supported by this server" in refused.value.message


def test_stop_sequences_are_read_as_the_prompt_is() -> None:
    # Windows line endings and a combining accent, as the prompt reads them; a sequence the model
    # can never write (a character it lacks, or longer than any choice) is harmless: accepted.
    import unicodedata

    from chargpt.serving.protocol import parse_completion

    tokenizer = CharTokenizer.from_text("ab\né")
    body = {"prompt": "ab", "max_tokens": 3, "stop": ["\r\n", unicodedata.normalize("NFD", "é"), "ß", "abab"]}
    assert parse_completion(body, tokenizer, small_limits(), "m").stop == ("\n", "é", "ß", "abab")
    assert parse_completion({**body, "stop": "a"}, tokenizer, small_limits(), "m").stop == ("a",)


@pytest.mark.parametrize(("text", "start"), [("ab\ncd", "\n"), ("no newline here", " ")])
def test_a_request_without_a_prompt_starts_as_chargpt_sample_does(text: str, start: str) -> None:
    # A model of a text with no newline cannot take one: it starts from its first character instead.
    from chargpt.serving.protocol import parse_completion

    tokenizer = CharTokenizer.from_text(text)
    request = parse_completion({"max_tokens": 3}, tokenizer, small_limits(), "m")
    assert request.prompts == [start_prompt(tokenizer)] == [start]
    assert request.prompt_ids == [tokenizer.encode(start)]
