"""The generation engine: one decoding thread runs every prompt, several of them per forward.

A job is one prompt of a request (a request may send a list, as OpenAI's clients do). Each job
decodes with exactly the rules of chargpt.model.sampling.iter_tokens (the context window restart,
the sampling of each character from the request's own seeded generator), so its text is
chargpt-sample's. Up to `max_batch` jobs decode together: each step feeds the
next token of every live job through one batched forward on a per-row KV cache (8 clients
got 3.3x the characters per second of one-at-a-time decoding on 2 CPU cores:
docs/BENCHMARKS.md). Prompts and window restarts are fed to their
row alone. A job that runs alone gets the very computation chargpt-sample does; in a batch
its logits can differ from that in the last bit (a different matrix kernel), which changes a
sampled character only if the random draw falls within that distance of a boundary.
Jobs beyond `max_batch` wait in a queue of at most `max_queue`. A choice ends at its length or
at a stop sequence (stops.py); only the text before a stop sequence is ever sent.
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from chargpt.data.tokenizer import CharTokenizer
from chargpt.errors import out_of_memory
from chargpt.model.sampling import compile_decode_step, kept_on_restart, sample_next
from chargpt.plural import counted
from chargpt.serving.batch_cache import BatchedKVCache
from chargpt.serving.stops import NO_STOP, StopScanner, StopSequences

log = logging.getLogger(__name__)


class QueueFull(Exception):
    """A request's prompts find fewer free places (running or queued) than they need, one each."""


class TooManyJobs(Exception):
    """A request has more prompts than the running places and the queue hold together: it would
    never be taken, however long it waited."""


class ShuttingDown(Exception):
    """The engine was asked to stop: it takes no new request (none would be answered)."""


SHUTTING_DOWN = "the server is shutting down"  # what a request refused or cut short by the stop is told


@dataclass(frozen=True)
class Event:
    """What the engine reports to a request: text of a choice, its end, or a failure."""

    kind: str  # "text" | "end" | "error"
    index: int = 0  # the choice
    text: str = ""  # a text's characters; an end's last ones, sent with it; an error's message
    finish_reason: str | None = None  # an end's: "length" or "stop"
    generated: int = 0  # an end's: the characters the choice generated, a stop sequence's included


@dataclass
class Job:
    prompt_ids: list[int]
    max_new_tokens: int
    n: int
    temperature: float
    top_k: int | None
    top_p: float | None
    generator: torch.Generator
    emit: Callable[[Event], None]  # called from the decoding thread
    stop: StopSequences = NO_STOP
    # A seeded choice cut short by a stop sequence still makes the rest of its draws, unseen, when
    # another choice follows: that one then starts where chargpt-sample's next sample does.
    seeded: bool = False
    cancelled: threading.Event = field(default_factory=threading.Event)
    # The request it is a prompt of: the jobs submitted together share it (the load counts requests).
    request: object = None

    def cancel(self) -> None:
        self.cancelled.set()


@dataclass
class Row:
    """A job's live decoding state: iter_tokens' variables for the choice being generated."""

    job: Job
    choice: int = 0
    window: list[int] = field(default_factory=list)  # the tokens the model sees (seq[start:])
    produced: int = 0
    refill: bool = True  # the next token comes from feeding the whole window
    scanner: StopScanner = field(default_factory=NO_STOP.scanner)
    ended: bool = False  # the choice's end was sent (a stop sequence: its remaining draws are unseen)

    def start_choice(self, block_size: int) -> None:
        self.window = self.job.prompt_ids[-block_size:]
        self.produced, self.refill = 0, True
        self.scanner, self.ended = self.job.stop.scanner(), False


class Engine:
    def __init__(
        self, model: nn.Module, tokenizer: CharTokenizer, max_batch: int = 8, max_queue: int = 64,
        compile: bool = False,
    ) -> None:
        if max_batch < 1 or max_queue < 0:
            raise ValueError("max_batch must be at least 1 and max_queue at least 0")
        self.model, self.tokenizer = model.eval(), tokenizer
        self.max_batch, self.max_queue = max_batch, max_queue
        self.block = model.block_size
        self.keep = kept_on_restart(self.block)
        probe = model.new_cache(1)
        self.cache: BatchedKVCache | None = None
        if probe is not None:  # the GPT; the bigram model has no cache and decodes row by row
            c, p = model.config, next(model.parameters())
            self.cache = BatchedKVCache(
                c.n_layer, max_batch, c.n_head, c.block_size, c.head_dim, p.device, p.dtype
            )
        # Compiled: the step always runs all max_batch rows, so one shape (one compilation)
        # serves every load; idle rows compute and are ignored.
        self.step = compile_decode_step(model) if compile and self.cache is not None else None
        self.rows: list[Row] = []
        self.pending: collections.deque[Job] = collections.deque()
        self.wake = threading.Condition()
        self.stopping = False
        self.failure: Exception | None = None  # the last step's that failed, which warm_up raises
        self.warming_up = False  # a failure then is the caller's to say, not the log's
        self.thread = threading.Thread(target=self._run, name="chargpt-decode", daemon=True)

    # -- the request side (any thread) --

    def start(self) -> None:
        self.thread.start()

    def request_stop(self) -> None:
        """Stop after the step in flight: running and queued requests end with an error. Returns
        at once (safe on the server's event loop)."""
        with self.wake:
            self.stopping = True
            self.wake.notify()

    def close(self) -> None:
        self.request_stop()
        self.thread.join(timeout=30)

    def submit(self, *jobs: Job) -> None:
        """Queue jobs (one per prompt of a request), all or none: each takes a place. Their events
        arrive through job.emit. Raises QueueFull, TooManyJobs, or ShuttingDown once the engine was
        asked to stop."""
        with self.wake:
            if self.stopping:
                raise ShuttingDown(SHUTTING_DOWN)
            places = self.max_batch + self.max_queue
            if len(jobs) > places:
                raise TooManyJobs(
                    f"the request's {len(jobs)} prompts need a place each, and this server has "
                    f"{places} (max_concurrency {self.max_batch} + max_queue {self.max_queue}); send at "
                    f"most {counted(places, 'prompt')} per request"
                )
            running, waiting, requests = self._load()
            taken = running + waiting
            if taken + len(jobs) > places:  # not a free place (or queued one) for each
                # Counted in places, the unit of max_concurrency and max_queue, and in requests: one
                # request with a list of prompts holds a place per prompt.
                held = (f"{counted(running, 'prompt')} generating and {waiting} waiting, of "
                        f"{counted(requests, 'request')}")
                if taken >= places:
                    full = "its only place is taken" if places == 1 else f"all its {places} places are taken"
                    raise QueueFull(f"the server is busy: {full} ({held}); retry shortly")
                # Places are free, but fewer than this list of prompts needs (a lone prompt fits).
                are = "is" if taken == 1 else "are"
                raise QueueFull(f"the server is busy: {taken} of its {places} places {are} taken ({held}) "
                                f"and this request's {len(jobs)} prompts need a place each; retry shortly, "
                                "or send fewer prompts")
            request = object()
            for job in jobs:
                job.request = request
            self.pending.extend(jobs)
            self.wake.notify()

    def load(self) -> dict[str, int]:
        """Places (a prompt each) running and waiting, and the requests that hold them."""
        with self.wake:
            running, waiting, requests = self._load()
        return {"running": running, "waiting": waiting, "requests": requests}

    def _load(self) -> tuple[int, int, int]:
        """(running, waiting, requests), the lock held: running and waiting count places, a prompt
        each. The decoding thread admits queued jobs between its steps: until then the jobs that free
        places will take are still queued, and count as running, not waiting (they were said to
        wait: more than max_queue)."""
        # A request whose client went away keeps no place in the queue: the decoding thread would drop
        # it only when a place is free, and a long generation can hold every place for minutes.
        if any(job.cancelled.is_set() for job in self.pending):
            self.pending = collections.deque(job for job in self.pending if not job.cancelled.is_set())
        # A snapshot: rows only shrink, outside the lock.
        jobs = [row.job for row in list(self.rows)] + list(self.pending)
        running = min(len(jobs), self.max_batch)
        requests = len({job.request for job in jobs})
        return running, len(jobs) - running, requests

    def warm_up(self) -> None:
        """Run one short request through every path (prefill, batched step; compiles if set)."""
        done, failed = threading.Event(), threading.Event()

        def emit(event: Event) -> None:
            if event.kind == "error":
                failed.set()
            if event.kind in ("end", "error"):
                done.set()

        prompt = [0] * min(2, self.block)
        generator = torch.Generator(device=self.device).manual_seed(0)
        self.warming_up = True
        try:
            self.submit(Job(prompt, 4, 1, 1.0, None, None, generator, emit))
            done.wait()
        finally:
            self.warming_up = False
        # A model that cannot decode (memory running out at the first step) is not served: every
        # request would fail. The step's own error, for the command to say.
        if failed.is_set() and self.failure is not None:
            raise self.failure

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    # -- the decoding thread --

    def _run(self) -> None:
        with torch.inference_mode():
            while True:
                with self.wake:
                    while not self.stopping and not self.rows and not self.pending:
                        self.wake.wait()
                    if self.stopping:
                        break
                    self._admit()
                try:
                    self._iteration()
                except Exception as err:  # keep serving: fail the live requests, not the server
                    said = self._failed(err)
                    for row in self.rows:
                        row.job.emit(Event("error", row.choice, f"generation failed: {said}"))
                    self.rows.clear()
        for row in self.rows:
            row.job.emit(Event("error", row.choice, SHUTTING_DOWN))
        for job in self.pending:
            job.emit(Event("error", 0, SHUTTING_DOWN))

    def _failed(self, err: Exception) -> str:
        """A step's failure, logged; what its requests are told. Memory running out is no defect:
        one line naming what sizes it, without a traceback (the server goes on; fewer prompts at once
        may fit)."""
        self.failure = err
        ran_out = out_of_memory(err, self._memory_advice)
        if not self.warming_up and ran_out is None:
            log.exception("decoding failed")
        elif not self.warming_up:
            log.error("decoding failed: %s", ran_out)
        return type(err).__name__ if ran_out is None else str(ran_out)

    def _memory_advice(self) -> str:
        # The key/value cache is allocated whole at the start (max_batch rows of the model's context):
        # what a step adds grows with the prompts decoding together.
        decoding = counted(len(self.rows), "prompt")
        fewer = f", e.g. max_concurrency={self.max_batch // 2}" if self.max_batch > 1 else ""
        return (f"{decoding} decoding together, of max_concurrency={self.max_batch} (the server's setting "
                f"that sizes its memory: each prompt it decodes at once holds a row of {self.block} "
                f"characters' keys and values); retry with fewer prompts, or restart the server with a "
                f"smaller max_concurrency{fewer}")

    def _admit(self) -> None:
        while self.pending and len(self.rows) < self.max_batch:
            job = self.pending.popleft()
            if job.cancelled.is_set():
                continue
            if job.max_new_tokens == 0:  # nothing to generate: every choice is empty
                for i in range(job.n):
                    job.emit(Event("end", i, finish_reason="length"))
                continue
            row = Row(job)
            row.start_choice(self.block)
            self.rows.append(row)

    def _iteration(self) -> None:
        """One new token for every live row, as iter_tokens makes it."""
        for i in reversed(range(len(self.rows))):
            if self.rows[i].job.cancelled.is_set():
                self._remove(i)
        if not self.rows:
            return
        logits: list[torch.Tensor | None] = [None] * len(self.rows)
        if self.cache is None:  # no cache (the bigram model): the whole window, every token
            for i, row in enumerate(self.rows):
                logits[i] = self.model(torch.tensor([row.window], device=self.device))[0][:, -1, :]
        else:
            # The batched step first: the rows it does not serve (to be refilled, or idle) may
            # take part in it, and the refills below then overwrite whatever it wrote for them.
            stepping = [i for i, row in enumerate(self.rows) if not row.refill]
            if stepping:
                for i, row_logits in self._batched_step(stepping).items():
                    logits[i] = row_logits
            for i, row in enumerate(self.rows):
                if row.refill:
                    view = self.cache.row(i)
                    view.reset()
                    window = torch.tensor([row.window], device=self.device)
                    logits[i] = self.model(window, cache=view)[0][:, -1, :]
                    row.refill = False
        for i in reversed(range(len(self.rows))):
            self._take_token(i, logits[i])

    def _batched_step(self, stepping: list[int]) -> dict[int, torch.Tensor]:
        """Logits (1, V) of the next token of each row in `stepping`, from one forward."""
        cache = self.cache
        assert cache is not None
        if self.step is None and len(stepping) == 1:
            # Alone: the single-request computation exactly (chargpt-sample's, bit for bit).
            i = stepping[0]
            last = torch.tensor([[self.rows[i].window[-1]]], device=self.device)
            return {i: self.model(last, cache=cache.row(i))[0][:, -1, :]}
        # Compiled, the step always has all rows: one shape, one compilation.
        width = self.max_batch if self.step is not None else len(self.rows)
        tokens = torch.zeros(width, 1, dtype=torch.long, device=self.device)
        tokens[: len(self.rows), 0] = torch.tensor([row.window[-1] for row in self.rows], device=self.device)
        # The other rows write a throwaway entry at position 0 (their own position may be past
        # the end of the cache); they are reset before they are used again.
        idle = torch.ones(cache.next.shape[0], dtype=torch.bool, device=self.device)
        idle[stepping] = False
        cache.next[idle] = 0
        cache.active = width
        out = (self.step or self.model)(tokens, cache=cache)[0]
        return {i: out[i : i + 1, -1, :] for i in stepping}

    def _take_token(self, i: int, logits: torch.Tensor | None) -> None:
        row = self.rows[i]
        job = row.job
        assert logits is not None
        token = int(sample_next(logits, job.temperature, job.top_k, job.top_p, job.generator)[0, 0])
        row.window.append(token)
        if len(row.window) > self.block:  # iter_tokens' window restart
            row.window = row.window[-self.keep :]
            row.refill = True
        row.produced += 1
        end = None if row.ended else self._send(row, token)
        # A choice is done at its length, or at a stop sequence unless its draws must go on (Job.seeded).
        last = row.choice + 1 == job.n
        done = row.produced == job.max_new_tokens or (row.ended and (last or not job.seeded))
        if done and last:
            self._remove(i)  # first: once the client has its answer, the load no longer counts it
        if end is not None:
            job.emit(end)
        if done and not last:  # the next choice continues the same generator, as num_samples does
            row.choice += 1
            row.start_choice(self.block)

    def _send(self, row: Row, token: int) -> Event | None:
        """Emit what of the choice's text may be sent now; if this token ended the choice, return its end
        event instead, which carries that text."""
        text, stopped = row.scanner.push(self.tokenizer.chars[token])
        full = row.produced == row.job.max_new_tokens
        if not (stopped or full):
            if text:
                row.job.emit(Event("text", row.choice, text))
            return None
        if not stopped:
            text += row.scanner.flush()
        row.ended = True
        return Event("end", row.choice, text, "stop" if stopped else "length", row.produced)

    def _remove(self, i: int) -> None:
        """Drop row i; the last row moves into its place so the live rows stay contiguous."""
        last = len(self.rows) - 1
        if i != last and self.cache is not None:
            self.cache.move_row(last, i)
        self.rows[i] = self.rows[last]
        self.rows.pop()
