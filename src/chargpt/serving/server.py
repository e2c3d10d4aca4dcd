"""Run the app with uvicorn: on a socket bound up front, until Ctrl+C or SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

import h11
import uvicorn
from fastapi import FastAPI
from h11._connection import DEFAULT_MAX_INCOMPLETE_EVENT_SIZE  # as uvicorn imports it
from uvicorn.config import LOG_LEVELS as _UVICORN_LOG_LEVELS
from uvicorn.protocols.http.h11_impl import H11Protocol

from chargpt.errors import ConfigError
from chargpt.serving.protocol import APIError
from chargpt.stop_signals import handling_stop_signals

LOOPBACK = ("127.0.0.1", "localhost", "::1")
LOG_LEVELS = tuple(_UVICORN_LOG_LEVELS)  # the log_level names uvicorn takes
GRACE_S = 2  # on Ctrl+C, how long requests still generating get to finish: an open stream never would
# Once they are told to end, how long their answers get to go out before the connections still open
# are closed: a client that stopped reading leaves its stream waiting to write, unable to end.
SEND_S = 0.5
LINGER_S = 1  # how long a refused request's client gets to read its error before its connection closes


def bind(host: str, port: int) -> socket.socket:
    """A socket bound to host:port but not yet listening: a port in use is reported before the
    model loads, and clients are refused (not left waiting) until the server is ready."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as err:
        raise ConfigError(f"host={host!r} is not an address this machine can bind ({err.strerror}); "
                          "use host=127.0.0.1") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as err:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port} ({err.strerror or err}); "
                          "pick another port (port=0 takes any free one)") from None
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


NOT_HTTP = APIError(
    400, "the bytes received are not a valid HTTP request; this server speaks HTTP/1.1 without TLS "
    "(an http:// address, not https://): send a request such as POST /v1/completions with a JSON body",
    code="invalid_http",
)
# h11's limit on a request's head (its request line and headers) still arriving; uvicorn keeps it.
MAX_HEAD_BYTES = DEFAULT_MAX_INCOMPLETE_EVENT_SIZE
HEAD_TOO_LARGE = APIError(
    431, f"the request's headers are larger than this server's limit of {MAX_HEAD_BYTES:,} bytes "
    "(with its request line); send shorter headers (a long cookie or token?): the prompt and its "
    "settings go in the JSON body",
    code="headers_too_large",
)
_REASONS = {400: b"Bad Request", 431: b"Request Header Fields Too Large"}


class _Connection(h11.Connection):
    """h11's connection, remembering why the bytes received were refused: uvicorn drops the reason,
    and a head over the size limit (h11's hint: 431) is no malformed request."""

    refused_for: h11.RemoteProtocolError | None = None

    def next_event(self) -> Any:
        try:
            return super().next_event()
        except h11.RemoteProtocolError as err:
            self.refused_for = err
            raise


UVICORN_REFUSAL = "Invalid HTTP request received."  # uvicorn's log line for any head h11 refuses


class _RefusalsNamed(logging.LoggerAdapter):
    """uvicorn's error log as one connection writes it: a head refused for its size is logged as
    such, where uvicorn logs every head h11 refuses as bytes that are no HTTP request."""

    def __init__(self, protocol: _JsonErrorsProtocol) -> None:
        super().__init__(protocol.logger)
        self.protocol = protocol

    @property
    def level(self) -> int:  # uvicorn reads it before logging its trace messages
        return self.logger.level

    def warning(self, msg: object, *args: Any, **kwargs: Any) -> None:
        if msg == UVICORN_REFUSAL and self.protocol.head_too_large():
            host, port = self.protocol.client or ("?", 0)
            msg = (f"{host}:{port} - a request's headers passed this server's limit of {MAX_HEAD_BYTES:,} "
                   f"bytes (with its request line): answered 431 {_REASONS[431].decode()}")
        super().warning(msg, *args, **kwargs)


class _JsonErrorsProtocol(H11Protocol):
    """uvicorn's HTTP/1.1, answering bytes that are not an HTTP request (an https:// client's TLS
    handshake, a malformed header) or a head over h11's size limit with the app's JSON error where
    uvicorn answers plain text. The app never sees such bytes: there is no request to hand it."""

    def __init__(self, config: uvicorn.Config, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        limit = config.h11_max_incomplete_event_size or MAX_HEAD_BYTES
        self.conn: _Connection = _Connection(h11.SERVER, limit)
        self.refused = False  # answered with an error: what the client still sends is dropped
        self.logger = _RefusalsNamed(self)

    def head_too_large(self) -> bool:
        """Whether the bytes received were refused for a head over the size limit (h11's hint: 431)."""
        refused_for = self.conn.refused_for
        return refused_for is not None and refused_for.error_status_hint == 431

    def send_400_response(self, msg: str) -> None:
        error = HEAD_TOO_LARGE if self.head_too_large() else NOT_HTTP
        body = json.dumps(error.body(), separators=(",", ":")).encode()  # as the app's JSONResponse
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                   (b"connection", b"close")]
        for event in (h11.Response(status_code=error.status, headers=headers, reason=_REASONS[error.status]),
                      h11.Data(data=body), h11.EndOfMessage()):
            self.transport.write(self.conn.send(event) or b"")
        # Closed with the rest of the request still coming (a long head's next bytes), the connection
        # would be reset, and the client lose this answer: end the writing side, drop what still comes
        # (data_received), and close once the client does, or LINGER_S later.
        self.refused = True
        if not self.transport.can_write_eof():
            self.transport.close()
            return
        self.transport.write_eof()
        self.loop.call_later(LINGER_S, self.transport.close)

    def data_received(self, data: bytes) -> None:
        if not self.refused:
            super().data_received(data)


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, on_ready: Callable[[], None] | None) -> None:
        super().__init__(config)
        self.on_ready = on_ready
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped_now = False
        self._timers: list[asyncio.TimerHandle] = []

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """A second Ctrl+C (or SIGTERM) ends the requests still generating now, each with its error
        answer, where uvicorn would force the exit and cancel them: a traceback each, a plain-text
        500, a stream cut short. A third Ctrl+C forces the exit (uvicorn forces on SIGINT only)."""
        stop: Callable[[], None] | None = getattr(self.config.app.state, "stop_generating", None)
        if self.should_exit and not self._stopped_now and stop is not None and self._loop is not None:
            self._stopped_now = True
            # A signal handler must not take the engine's lock.
            self._loop.call_soon_threadsafe(self._end_generation)
            return
        super().handle_exit(sig, frame)

    def _end_generation(self) -> None:
        """The requests still generating end with their error (the app's stop_generating); SEND_S later
        the connections still open are closed, as a client hanging up would close them: their clients
        stopped reading, and their streams, waiting to write, could not end before uvicorn cancelled
        them, a traceback each."""
        stop: Callable[[], None] | None = getattr(self.config.app.state, "stop_generating", None)
        if stop is not None:
            stop()
        self._timers.append(asyncio.get_running_loop().call_later(SEND_S, self._close_connections))

    def _close_connections(self) -> None:
        for connection in list(self.server_state.connections):
            connection.transport.abort()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Ctrl+C and SIGTERM shut down gracefully and the command then exits 0 (uvicorn would
        re-raise the signal afterwards: a traceback for Ctrl+C, death by signal for SIGTERM)."""
        with handling_stop_signals(self.handle_exit):
            yield

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """Requests still generating when the grace period ends get an error ("the server is shutting
        down") from the app's stop_generating, in time to answer: uvicorn would cancel them, a traceback
        each."""
        self._timers.append(asyncio.get_running_loop().call_later(GRACE_S, self._end_generation))
        try:
            await super().shutdown(sockets)
        finally:
            for timer in self._timers:
                timer.cancel()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().startup(sockets)
        if self.on_ready is not None and self.started:
            self.on_ready()  # listening now: a client that reads this can connect


def make_server(
    app: FastAPI, log_level: str = "info", on_ready: Callable[[], None] | None = None
) -> uvicorn.Server:
    # After GRACE_S the requests still running end with an error, and SEND_S later the connections still
    # open are closed; uvicorn would cancel any request left a second after GRACE_S.
    config = uvicorn.Config(app, http=_JsonErrorsProtocol, log_level=log_level, lifespan="off",
                            timeout_graceful_shutdown=GRACE_S + 1)
    return _Server(config, on_ready)


def serve(
    app: FastAPI, sock: socket.socket, log_level: str = "info", on_ready: Callable[[], None] | None = None
) -> None:
    """Serve until interrupted (Ctrl+C or SIGTERM); on_ready runs once the socket listens."""
    make_server(app, log_level, on_ready).run(sockets=[sock])

