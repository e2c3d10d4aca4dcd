"""The serving engine on its own: batched decoding gives each request chargpt's text, for every
positional encoding and the bigram model, prompts shorter and longer than the context, window
restarts, several choices; stop sequences; cancelling, the queue limit, empty requests."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import pytest
import torch

from chargpt.data.tokenizer import CharTokenizer
from chargpt.inference import TrainedModel
from chargpt.model import ModelConfig, build_model
from chargpt.serving.engine import Engine, Event, Job, QueueFull, ShuttingDown, TooManyJobs
from chargpt.serving.stops import StopSequences
from conftest import cut_at_stop

VOCAB = list("\n abcdefghijklmnopqrstuvwxyz.,")
BLOCK = 16


class Collector:
    """A job's events, and a flag once every choice has ended."""

    def __init__(self, n: int) -> None:
        self.texts, self.n, self.ended, self.done = [""] * n, n, 0, threading.Event()
        self.errors: list[str] = []
        self.ends: list[tuple[str | None, int]] = [(None, 0)] * n  # finish_reason, characters generated
        self.events: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.events.append(event)
        if event.kind == "text":
            self.texts[event.index] += event.text
        elif event.kind == "end":  # with the choice's last characters
            self.texts[event.index] += event.text
            self.ends[event.index] = (event.finish_reason, event.generated)
            self.ended += 1
            if self.ended == self.n:
                self.done.set()
        else:
            self.errors.append(event.text)
            self.done.set()


def make_job(
    trained: TrainedModel, prompt: str, max_new_tokens: int, seed: int, n: int = 1, temperature: float = 1.0,
    top_k: int | None = None, top_p: float | None = None, stop: tuple[str, ...] = (), seeded: bool = True,
) -> tuple[Job, Collector]:
    collector = Collector(n)
    generator = torch.Generator().manual_seed(seed)
    ids = trained.tokenizer.encode(prompt)
    job = Job(ids, max_new_tokens, n, temperature, top_k, top_p, generator, collector,
              StopSequences(stop, max_new_tokens), seeded)
    return job, collector


def model(**options: object) -> TrainedModel:
    torch.manual_seed(0)
    config = ModelConfig(n_layer=2, n_head=2, n_embd=32, block_size=BLOCK, init_std=0.2, **options)
    return TrainedModel(build_model(config, len(VOCAB)).eval(), CharTokenizer(VOCAB))


REQUESTS = [  # prompt, characters, seed, choices, temperature, top_k, top_p
    ("a", 50, 1, 1, 1.0, None, None),
    ("the cat sat", 40, 2, 2, 0.8, 5, None),
    ("hello", 7, 5, 3, 1.2, None, None),
    ("z", 60, 6, 1, 1.0, 3, 0.8),
    # Admitted while others decode: prompts that fill the context, and more.
    ("x" * BLOCK, 30, 3, 1, 1.0, None, 0.9),
    ("a long prompt, longer than the context window.", 45, 4, 1, 0.0, None, None),
]


@pytest.mark.parametrize("options", [dict(pos_encoding="learned"), dict(pos_encoding="sinusoidal"),
                                     dict(pos_encoding="rope"), dict(arch="bigram")], ids=str)
def test_batched_requests_get_chargpt_text(options: dict[str, object]) -> None:
    trained = model(**options)
    engine = Engine(trained.model, trained.tokenizer, max_batch=4, max_queue=10)
    widths: list[int] = []
    batched_step = engine._batched_step
    engine._batched_step = lambda stepping: (widths.append(len(stepping)), batched_step(stepping))[1]  # type: ignore[method-assign]
    jobs = [make_job(trained, *request) for request in REQUESTS]
    for job, _ in jobs:
        engine.submit(job)  # all waiting before the engine starts: they run 4 at a time
    engine.start()
    try:
        for _, collector in jobs:
            assert collector.done.wait(120) and not collector.errors
    finally:
        engine.close()
    for request, (_, collector) in zip(REQUESTS, jobs, strict=True):
        prompt, n_chars, seed, n, temperature, top_k, top_p = request
        expected = trained.generate(prompt, num_samples=n, seed=seed, max_new_tokens=n_chars,
                                    temperature=temperature, top_k=top_k, top_p=top_p)
        assert collector.texts == expected, prompt
    if options.get("arch") != "bigram":
        assert max(widths) == 4  # four requests shared each step


def run_alone(trained: TrainedModel, job: Job, collector: Collector) -> int:
    """Run one job to its end; return how many characters the engine sampled for it."""
    engine = Engine(trained.model, trained.tokenizer, max_batch=1)
    sampled: list[int] = []
    take_token = engine._take_token
    engine._take_token = lambda i, logits: (sampled.append(i), take_token(i, logits))[1]  # type: ignore[method-assign]
    engine.submit(job)
    engine.start()
    try:
        assert collector.done.wait(60) and not collector.errors
    finally:
        engine.close()
    return len(sampled)


def test_a_stop_sequence_cuts_each_seeded_choice_of_chargpt_text() -> None:
    trained = model()
    samples = trained.generate("the", num_samples=3, seed=7, max_new_tokens=40)
    stops = (samples[0][10:12], samples[2][20:23], "no such")  # the first and last choices stop
    job, collector = make_job(trained, "the", 40, 7, n=3, stop=stops)
    sampled = run_alone(trained, job, collector)
    expected = [cut_at_stop(sample, list(stops)) for sample in samples]
    assert collector.texts == [text for text, _, _ in expected]
    assert collector.ends == [(reason, generated) for _, reason, generated in expected]
    assert expected[0][1] == expected[2][1] == "stop"
    # Each choice is its sample cut short: a stopped choice that another follows makes its remaining
    # draws unseen, so the next starts where chargpt's next sample does; the last one ends at once.
    assert sampled == 40 + 40 + expected[2][2]


def test_without_a_seed_a_stopped_choice_generates_no_further() -> None:
    # Nothing to keep in step with: the next choice starts at once.
    trained = model()
    samples = trained.generate("the", num_samples=1, seed=7, max_new_tokens=40)
    job, collector = make_job(trained, "the", 40, 7, n=2, stop=(samples[0][10:12],), seeded=False)
    sampled = run_alone(trained, job, collector)
    assert collector.texts[0] == cut_at_stop(samples[0], [samples[0][10:12]])[0]
    assert sampled == sum(generated for _, generated in collector.ends)
    assert collector.ends[0][0] == "stop"


@pytest.mark.parametrize("held_back", [False, True])
def test_a_choice_s_end_carries_its_last_characters(held_back: bool) -> None:
    # One event, not a character and then an empty end: a stream sends the choice's finish_reason
    # with its last characters, not in a chunk of its own. Characters held back as the possible
    # start of a stop sequence that never completed go with the end too.
    trained = model()
    samples = trained.generate("the", num_samples=2, seed=7, max_new_tokens=6)
    stop = (samples[1][-1] + "qqq",) if held_back else ()
    job, collector = make_job(trained, "the", 6, 7, n=2, stop=stop)
    run_alone(trained, job, collector)
    assert collector.texts == samples
    for choice in range(2):
        events = [e for e in collector.events if e.index == choice]
        assert events[-1].kind == "end" and events[-1].text
        assert all(e.kind == "text" for e in events[:-1])


def test_cancelled_requests_stop_and_free_their_place() -> None:
    trained = model()
    engine = Engine(trained.model, trained.tokenizer, max_batch=1, max_queue=5)
    endless, endless_out = make_job(trained, "a", 10**9, 0)
    short, short_out = make_job(trained, "b", 5, 1)
    engine.submit(endless)
    engine.submit(short)
    engine.start()
    try:
        while not endless_out.texts[0]:
            endless_out.done.wait(0.01)
        assert engine.load() == {"running": 1, "waiting": 1, "requests": 2}
        endless.cancel()
        assert short_out.done.wait(60) and len(short_out.texts[0]) == 5
        assert not endless_out.done.is_set()  # cancelled: no end event, nobody listens any more
        assert engine.load() == {"running": 0, "waiting": 0, "requests": 0}
    finally:
        engine.close()


def test_the_queue_limit_and_empty_requests() -> None:
    trained = model()
    engine = Engine(trained.model, trained.tokenizer, max_batch=2, max_queue=1)
    collectors = []
    for seed in range(3):  # two run, one waits
        job, collector = make_job(trained, "a", 3, seed)
        engine.submit(job)
        collectors.append(collector)
    # Not started: two of them hold the free places, which the engine fills at its first step.
    assert engine.load() == {"running": 2, "waiting": 1, "requests": 3}
    with pytest.raises(QueueFull, match=r"busy: all its 3 places are taken \(2 prompts generating and 1 "
                       r"waiting, of 3 requests\); retry shortly"):
        engine.submit(make_job(trained, "a", 3, 9)[0])
    # One place: it said "all its 1 places are taken".
    alone = Engine(trained.model, trained.tokenizer, max_batch=1, max_queue=0)
    alone.submit(make_job(trained, "a", 3, 0)[0])
    with pytest.raises(QueueFull, match=r"^the server is busy: its only place is taken \(1 prompt generating "
                       r"and 0 waiting, of 1 request\); retry shortly$"):
        alone.submit(make_job(trained, "a", 3, 1)[0])
    empty, empty_out = make_job(trained, "a", 0, 0, n=2)
    engine.start()
    try:
        for collector in collectors:
            assert collector.done.wait(60) and len(collector.texts[0]) == 3
        engine.submit(empty)
        assert empty_out.done.wait(60) and empty_out.texts == ["", ""]
    finally:
        engine.close()


@contextlib.contextmanager
def _one_place_held(trained: TrainedModel, max_batch: int, max_queue: int) -> Iterator[Engine]:
    """An engine started with an endless request decoding in one place: cancelled after the block,
    and the engine closed."""
    engine = Engine(trained.model, trained.tokenizer, max_batch=max_batch, max_queue=max_queue)
    endless, endless_out = make_job(trained, "a", 10**9, 0)
    try:
        engine.submit(endless)
        engine.start()
        while not endless_out.texts[0]:
            endless_out.done.wait(0.01)
        yield engine
        endless.cancel()
    finally:
        engine.close()


def test_a_full_queue_counts_the_jobs_filling_free_places_as_running() -> None:
    # Jobs queued while places were free wait for the decoding thread's next step to take them:
    # they were counted as waiting, and a 429 said "1 request is generating and 3 requests are
    # waiting" with max_queue=1 (and /health said so too).
    trained = model()
    # engine.wake held: the decoding thread admits nothing, as between two of its steps.
    with _one_place_held(trained, max_batch=3, max_queue=1) as engine, engine.wake:
        for seed in range(3):  # two take the free places, one waits
            engine.submit(make_job(trained, "a", 5, seed)[0])
        assert engine.load() == {"running": 3, "waiting": 1, "requests": 4}
        with pytest.raises(QueueFull, match=r"busy: all its 4 places are taken \(3 prompts generating "
                           r"and 1 waiting, of 4 requests\);"):
            engine.submit(make_job(trained, "a", 5, 9)[0])


def test_a_request_cancelled_while_it_waits_gives_up_its_place_in_the_queue() -> None:
    # Its client went away (a closed connection): it held its place until a free place let the
    # decoding thread drop it, and new requests were refused as if it still waited.
    trained = model()
    with _one_place_held(trained, max_batch=1, max_queue=1) as engine:
        gone, _ = make_job(trained, "a", 5, 1)
        engine.submit(gone)
        assert engine.load() == {"running": 1, "waiting": 1, "requests": 2}
        gone.cancel()
        assert engine.load() == {"running": 1, "waiting": 0, "requests": 1}
        engine.submit(make_job(trained, "a", 5, 2)[0])  # its place is free: taken, not refused
        assert engine.load() == {"running": 1, "waiting": 1, "requests": 2}


def test_a_request_s_prompts_are_queued_all_or_none() -> None:
    # A list of prompts is a job per prompt, a place each: some queued and the others refused would
    # leave the request neither answered nor refused.
    trained = model()
    engine = Engine(trained.model, trained.tokenizer, max_batch=2, max_queue=1)
    engine.submit(make_job(trained, "a", 3, 0)[0])
    with pytest.raises(QueueFull, match=r"busy: 1 of its 3 places is taken \(1 prompt generating and 0 "
                       r"waiting, of 1 request\) and this request's 3 prompts need a place each"):
        engine.submit(*(make_job(trained, "a", 3, seed)[0] for seed in range(3)))
    assert engine.load() == {"running": 1, "waiting": 0, "requests": 1}
    with pytest.raises(TooManyJobs, match="4 prompts need a place each, and this server has 3 "
                       r"\(max_concurrency 2 \+ max_queue 1\); send at most 3 prompts per request"):
        engine.submit(*(make_job(trained, "a", 3, seed)[0] for seed in range(4)))
    engine.submit(*(make_job(trained, "a", 3, seed)[0] for seed in range(2)))
    assert engine.load() == {"running": 2, "waiting": 1, "requests": 2}


def test_a_stopping_engine_takes_no_new_request() -> None:
    # Its loop has ended or is ending: a request queued now would never be answered (the server
    # then cancels it at exit: a plain-text 500). It is refused, and the app answers 503.
    trained = model()
    engine = Engine(trained.model, trained.tokenizer, max_batch=2)
    engine.start()
    engine.request_stop()
    try:
        with pytest.raises(ShuttingDown, match="the server is shutting down"):
            engine.submit(make_job(trained, "a", 3, 0)[0])
    finally:
        engine.close()


def test_the_load_counts_places_a_prompt_each_and_the_requests_that_hold_them() -> None:
    # A request of two prompts holds two places: the load and a 429 called them "2 requests", and a
    # list refused for want of places was told "1 request is generating" with places free.
    trained = model()
    engine = Engine(trained.model, trained.tokenizer, max_batch=2, max_queue=1)
    engine.submit(*(make_job(trained, "a", 3, seed)[0] for seed in range(2)))
    assert engine.load() == {"running": 2, "waiting": 0, "requests": 1}
    with pytest.raises(QueueFull, match=r"^the server is busy: 2 of its 3 places are taken \(2 prompts "
                       r"generating and 0 waiting, of 1 request\) and this request's 2 prompts need a place "
                       r"each; retry shortly, or send fewer prompts$"):
        engine.submit(*(make_job(trained, "a", 3, seed)[0] for seed in range(2)))
    engine.submit(make_job(trained, "a", 3, 5)[0])
    assert engine.load() == {"running": 2, "waiting": 1, "requests": 2}
    with pytest.raises(QueueFull, match=r"^the server is busy: all its 3 places are taken \(2 prompts "
                       r"generating and 1 waiting, of 2 requests\); retry shortly$"):
        engine.submit(make_job(trained, "a", 3, 6)[0])


class _OutOfGPUMemory(torch.nn.Module):
    """A model whose every forward runs out of GPU memory (as CUDA says it)."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.inner, self.block_size, self.config = model, model.block_size, model.config

    def new_cache(self, batch: int) -> object:
        return self.inner.new_cache(batch)

    def forward(self, *args: object, **kwargs: object) -> object:
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB.")


def test_memory_running_out_names_the_setting_that_sizes_it_and_the_engine_goes_on(caplog) -> None:
    # The requests were told "generation failed: OutOfMemoryError", and the log held a traceback: neither
    # named what to change. Both now name max_concurrency; warming up raises the error itself (it
    # let the server start, every request then failing).
    trained = model()
    engine = Engine(_OutOfGPUMemory(trained.model), trained.tokenizer, max_batch=4, max_queue=2)
    engine.start()
    try:
        with pytest.raises(torch.OutOfMemoryError):
            engine.warm_up()
        assert not caplog.records  # said once, by the command that warms it up
        job, out = make_job(trained, "a", 5, 0)
        engine.submit(job)
        assert out.done.wait(60)
        said = ("out of GPU memory (could not allocate 2.00 GiB); 1 prompt decoding together, of "
                "max_concurrency=4 (the server's setting that sizes its memory: each prompt it decodes at "
                f"once holds a row of {BLOCK} characters' keys and values); retry with fewer prompts, or "
                "restart the server with a smaller max_concurrency, e.g. max_concurrency=2")
        assert out.errors == [f"generation failed: {said}"]
        assert [(r.levelname, r.getMessage(), r.exc_info) for r in caplog.records] == [
            ("ERROR", f"decoding failed: {said}", None)]
        assert engine.thread.is_alive()
    finally:
        engine.close()
