"""The HTTP app (FastAPI): the OpenAI-style completions API, the model list and the web page.

POST /v1/completions   prompt (or a list), max_tokens, temperature, top_p, top_k, seed, n, stop, stream
GET  /v1/models        the served model (its card under "chargpt": size, validation loss...)
GET  /v1/models/{id}   that model alone (404 for any other id)
GET  /                 a page to try the model in a browser
GET  /health           {"status": "ok"} and the current load
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from importlib import resources
from typing import Any

import torch
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from chargpt.data.tokenizer import CharTokenizer
from chargpt.inference import start_prompt
from chargpt.model_card import ModelCard
from chargpt.serving.engine import Engine, Event, Job, QueueFull, ShuttingDown, TooManyJobs
from chargpt.serving.protocol import (
    MAX_STOP,
    APIError,
    CompletionRequest,
    Limits,
    model_not_found,
    parse_completion,
    read_json,
)
from chargpt.serving.stops import StopSequences

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


# A request is a prompt and a few settings; the model reads only its last context's characters.
MAX_BODY_BYTES = 1 << 20


async def bounded_body(request: Request) -> bytes:
    """The request's body, refused (413) past MAX_BODY_BYTES: read no further than that."""
    too_large = APIError(
        413, f"the request body is larger than {MAX_BODY_BYTES:,} bytes; send a shorter prompt",
        code="request_too_large",
    )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise too_large
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY_BYTES:
                raise too_large
    except ClientDisconnect:  # gone while sending: an answer nobody reads, and no traceback in the log
        raise APIError(400, "the client disconnected before its request body arrived") from None
    return bytes(body)


def error_response(err: APIError) -> JSONResponse:
    headers = {"Retry-After": "1"} if err.status == 429 else None
    return JSONResponse(err.body(), status_code=err.status, headers=headers)


async def disconnected(request: Request) -> None:
    """Returns once the client has disconnected (its body is read already: nothing else comes)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


# Characters that end a line for str.splitlines (and so for httpx's iter_lines and the clients that
# read a stream with it) which JSON leaves as they are: sent raw, one would cut an event in two.
_LINE_BREAKS_JSON_KEEPS = str.maketrans({"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})


def sse(data: dict[str, Any] | str) -> str:
    """One server-sent event: a single line of JSON (accents and emoji as UTF-8, readable)."""
    if not isinstance(data, str):
        data = json.dumps(data, ensure_ascii=False).translate(_LINE_BREAKS_JSON_KEEPS)
    return f"data: {data}\n\n"


def by_choice(batch: list[Event]) -> list[tuple[int, str, str | None]]:
    """The events as (index, text, finish_reason), one per choice in the order they first come: each
    choice's characters together and its end with them, however the engine interleaved the choices."""
    choices: dict[int, tuple[str, str | None]] = {}
    for event in batch:
        text, reason = choices.get(event.index, ("", None))
        choices[event.index] = (text + event.text, event.finish_reason if event.kind == "end" else reason)
    return [(index, text, reason) for index, (text, reason) in choices.items()]


class Completion:
    """One request's jobs (one per prompt) and the events they get back on the event loop. Prompt p's
    choice c is choice p * n + c, as OpenAI numbers them."""

    def __init__(self, engine: Engine, request: CompletionRequest, model: str) -> None:
        self.request, self.model = request, model
        self.id, self.created = f"cmpl-{uuid.uuid4().hex[:24]}", int(time.time())
        self.events: asyncio.Queue[Event] = asyncio.Queue()
        self.choices = len(request.prompt_ids) * request.n
        self.finish_reasons: list[str | None] = [None] * self.choices
        self.generated = 0  # characters, over every choice: usage's completion_tokens
        stop = StopSequences(request.stop, request.max_tokens)
        self.jobs = [self._job(engine, ids, p * request.n, stop) for p, ids in enumerate(request.prompt_ids)]
        try:
            engine.submit(*self.jobs)
        except QueueFull as err:
            raise APIError(429, str(err), type="rate_limit_error", code="queue_full") from None
        except TooManyJobs as err:
            raise APIError(400, str(err), "prompt") from None
        except ShuttingDown as err:
            raise APIError(503, str(err), type="server_error", code="shutting_down") from None

    def _job(self, engine: Engine, prompt_ids: list[int], first: int, stop: StopSequences) -> Job:
        loop = asyncio.get_running_loop()

        def emit(event: Event) -> None:  # runs on the decoding thread
            event = dataclasses.replace(event, index=first + event.index)
            # RuntimeError: the event loop is gone (shutdown), nobody waits for this any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self.events.put_nowait, event)

        # Each prompt has a generator of its own: with a seed, its choices are chargpt-sample's
        # samples of that prompt, as if it had been sent alone.
        request = self.request
        seed = request.seed if request.seed is not None else secrets.randbits(63)
        generator = torch.Generator(device=engine.device).manual_seed(seed)
        return Job(prompt_ids, request.max_tokens, request.n, request.temperature, request.top_k,
                   request.top_p, generator, emit, stop, seeded=request.seed is not None)

    def cancel(self) -> None:
        for job in self.jobs:
            job.cancel()

    async def batches(self) -> AsyncIterator[list[Event]]:
        """The events as they come, those already waiting together; until every choice ended."""
        ended = 0
        while ended < self.choices:
            batch = [await self.events.get()]
            while not self.events.empty():
                batch.append(self.events.get_nowait())
            for event in batch:
                if event.kind == "error":
                    raise APIError(503, event.text, type="server_error", code="generation_failed")
                if event.kind == "end":
                    ended += 1
                    self.finish_reasons[event.index] = event.finish_reason
                    self.generated += event.generated
            yield batch

    async def texts(self, request: Request) -> list[str] | None:
        """Every choice's whole text; None if the client disconnected first, which stops the generation
        (nothing else notices: a response that is not streamed writes nothing until the end)."""
        texts = [""] * self.choices

        async def collect() -> None:
            async for batch in self.batches():
                for event in batch:
                    texts[event.index] += event.text

        collecting = asyncio.ensure_future(collect())
        hangup = asyncio.ensure_future(disconnected(request))
        try:
            done, _ = await asyncio.wait((collecting, hangup), return_when=asyncio.FIRST_COMPLETED)
        finally:
            self.cancel()  # stops the work if the client went away; a no-op once done
            collecting.cancel()
            hangup.cancel()
        if collecting not in done:
            return None
        collecting.result()  # the generation's error, if it failed
        return texts

    def body(self, choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        """The response, or one streamed chunk of it: `choices` and any `extra` (usage), named as this
        completion."""
        return {"id": self.id, "object": "text_completion", "created": self.created, "model": self.model,
                "choices": choices, **extra}

    async def response(self, request: Request) -> Response:
        """Every choice whole, with usage; a 499 if the client disconnected first."""
        texts = await self.texts(request)
        if texts is None:
            return Response(status_code=499)  # nobody reads it: nginx's "client closed request"
        choices = [{"text": text, "index": i, "logprobs": None, "finish_reason": reason}
                   for i, (text, reason) in enumerate(zip(texts, self.finish_reasons, strict=True))]
        return JSONResponse(self.body(choices, usage=self.usage()))

    async def stream(self) -> AsyncIterator[str]:
        """The choices as server-sent events while they are generated, then usage if asked for, then
        [DONE]; a generation's failure as an error event."""
        try:
            async for batch in self.batches():
                for index, text, reason in by_choice(batch):
                    yield sse(self.body([{"text": text, "index": index, "logprobs": None,
                                          "finish_reason": reason}]))
            if self.request.include_usage:
                yield sse(self.body([], usage=self.usage()))
            yield sse("[DONE]")
        except APIError as err:
            yield sse(err.body())  # the status line is sent already; clients read the error event
        finally:
            self.cancel()  # the client closed the stream early: stop generating for it

    def usage(self) -> dict[str, int]:
        """Characters: every prompt's, and every choice's generated ones (a stop sequence's included,
        as OpenAI counts the tokens generated, though the text leaves it out)."""
        prompt = sum(len(ids) for ids in self.request.prompt_ids)
        return {"prompt_tokens": prompt, "completion_tokens": self.generated,
                "total_tokens": prompt + self.generated}


def model_entry(card: ModelCard, tokenizer: CharTokenizer, limits: Limits) -> dict[str, Any]:
    """The served model as /v1/models lists it: OpenAI's fields, and chargpt's card and limits."""
    return {"id": card.name, "object": "model", "created": int(time.time()), "owned_by": "chargpt",
            "chargpt": {**card.to_dict(), "max_tokens": limits.max_tokens,
                        "default_max_tokens": limits.default_max_tokens, "max_n": limits.max_n,
                        "max_choices": limits.max_choices, "max_stop": MAX_STOP,
                        "start_prompt": start_prompt(tokenizer)}}


def answer_errors_as_json(app: FastAPI) -> None:
    """Every error `app` answers is OpenAI's JSON error: a bad request's, a route's (404 names the
    routes there are) and an internal one's (no traceback sent)."""

    @app.exception_handler(APIError)
    async def api_error(request: Request, err: APIError) -> JSONResponse:
        return error_response(err)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, err: StarletteHTTPException) -> JSONResponse:
        message = f"{request.method} {request.url.path}: {err.detail}"
        if err.status_code == 404:
            message += ("; this server has GET /, GET /health, GET /v1/models, GET /v1/models/{model} "
                        "and POST /v1/completions")
        return error_response(APIError(err.status_code, message, code=str(err.status_code)))

    @app.exception_handler(Exception)
    async def internal_error(request: Request, err: Exception) -> JSONResponse:
        return error_response(APIError(500, f"internal error: {type(err).__name__}", type="server_error"))


def create_app(engine: Engine, tokenizer: CharTokenizer, card: ModelCard, limits: Limits) -> FastAPI:
    # No redirect of /v1/completions/ to /v1/completions: a client's POST would not follow it.
    app = FastAPI(title="chargpt", docs_url=None, redoc_url=None, openapi_url=None, redirect_slashes=False)
    page = resources.files("chargpt.serving").joinpath("page.html").read_text(encoding="utf-8")
    # At shutdown (server.py): the requests still running end with an error.
    app.state.stop_generating = engine.request_stop
    served = model_entry(card, tokenizer, limits)
    answer_errors_as_json(app)

    @app.api_route("/", methods=["GET", "HEAD"], response_class=HTMLResponse)
    async def index() -> HTMLResponse:
        return HTMLResponse(page)

    @app.api_route("/health", methods=["GET", "HEAD"])  # HEAD: load balancers' probes
    async def health() -> dict[str, Any]:
        return {"status": "ok", **engine.load()}

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [served]}

    @app.get("/v1/models/{model_id:path}")
    async def model(model_id: str) -> dict[str, Any]:
        if model_id != card.name:
            raise model_not_found(model_id, card.name)
        return served

    @app.post("/v1/completions")
    async def completions(request: Request) -> Response:
        parsed = parse_completion(read_json(await bounded_body(request)), tokenizer, limits, card.name)
        completion = Completion(engine, parsed, card.name)
        if parsed.stream:
            return StreamingResponse(completion.stream(), media_type="text/event-stream", headers=SSE_HEADERS)
        return await completion.response(request)

    return app
