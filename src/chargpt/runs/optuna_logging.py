"""Optuna's own log lines (the study it created or loaded): coloured on a terminal, plain elsewhere.

Optuna 2.10 formats them with colorlog without telling it the stream it writes to, so colorlog
cannot see that it is not a terminal: `chargpt-train hparams_search=optuna ... 2>&1 | tee log` and
a redirected log got its escape codes. Its handler is swapped, before the search starts, for one
whose formatter knows the stream: colour only on a terminal, and colorlog's NO_COLOR and
FORCE_COLOR are followed.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

# Optuna's own format (optuna.logging.create_default_formatter), so its lines read as before.
OPTUNA_FORMAT = "%(log_color)s[%(levelname)1.1s %(asctime)s]%(reset)s %(message)s"


class _StreamAwareHandler(logging.StreamHandler):
    """The handler put in Optuna's place (a class of its own: a later search replaces it)."""


def colour_optuna_logs_on_a_terminal_only() -> None:
    """Optuna's log lines to stderr, coloured only where stderr is a terminal (needs the extra)."""
    import colorlog
    import optuna

    optuna.logging.disable_default_handler()  # it configures Optuna's logger first, if not yet
    optuna_logger = logging.getLogger("optuna")
    for earlier in [h for h in optuna_logger.handlers if isinstance(h, _StreamAwareHandler)]:
        optuna_logger.removeHandler(earlier)
    handler = _StreamAwareHandler(sys.stderr)
    handler.setFormatter(colorlog.ColoredFormatter(OPTUNA_FORMAT, stream=handler.stream))
    optuna_logger.addHandler(handler)


class OptunaLogColours(Callback):
    """Sets Optuna's log lines as above when the sweep is Optuna's search (hparams_search=optuna);
    any other command imports nothing of Optuna."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        if "optuna" in str(config.hydra.sweeper.get("_target_", "")):
            colour_optuna_logs_on_a_terminal_only()
