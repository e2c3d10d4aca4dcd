"""The signals that ask a command to stop (Ctrl-C's SIGINT, SIGTERM), and a handler for them
while a block runs: what the commands, the server, and a sweep's jobs each do with them is theirs."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
# The stop signals this process's starter ignores, as this module is first imported (before any
# handler of chargpt's): a script's `cmd &` starts `cmd` with Ctrl-C's SIGINT ignored, so that a
# Ctrl-C meant for the script leaves it running. They stay ignored throughout, as Python leaves them.
_IGNORED_BY_STARTER = frozenset(s for s in STOP_SIGNALS if signal.getsignal(s) is signal.SIG_IGN)


def handled_stop_signals() -> tuple[signal.Signals, ...]:
    """The stop signals a handler of chargpt's may take over: those its starter does not ignore."""
    return tuple(s for s in STOP_SIGNALS if s not in _IGNORED_BY_STARTER)


@contextlib.contextmanager
def handling_stop_signals(handler: Callable[[int, FrameType | None], None]) -> Iterator[None]:
    """`handler` for SIGINT and SIGTERM while the block runs, the earlier handlers after it (only
    the main thread may set handlers: elsewhere the block runs with none changed; a signal the
    process's starter ignores stays ignored)."""
    main_thread = threading.current_thread() is threading.main_thread()
    originals = {s: signal.getsignal(s) for s in handled_stop_signals()} if main_thread else {}
    for s in originals:
        signal.signal(s, handler)
    try:
        yield
    finally:
        for s, earlier in originals.items():
            signal.signal(s, earlier)


class SignalOutsideTraining(BaseException):
    """SIGINT or SIGTERM while Lightning sets the run up or tears it down (GracefulInterrupt takes
    the signals over for the training loop). Not a KeyboardInterrupt: Lightning ends one with
    "Detected KeyboardInterrupt" and exit code 1; anything else it tears down and raises again
    (after its loggers are told, which end their runs as stopped, not failed)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class StoppedAfterLastStep(KeyboardInterrupt):
    """A stop signal that came after a run's last step: the run finished and was saved, and the
    command ends without its closing sample (exit 130 or 143, by `signum`, as for any stop)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = int(signum)
