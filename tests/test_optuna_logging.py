"""hparams_search=optuna: Optuna's own log lines are coloured on a terminal only, as colorlog's
conventions have it (NO_COLOR, FORCE_COLOR); a pipe or a file gets plain text."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest
from omegaconf import OmegaConf

from chargpt.runs.optuna_logging import OptunaLogColours
from conftest import lacks

# Optuna is imported by the tests that use it: a second of imports every test worker would
# otherwise pay when it collects this module.
pytestmark = pytest.mark.skipif(lacks("optuna"), reason="the optuna extra is not installed")

OPTUNA_SWEEPER = "hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper"
BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def optuna_handlers(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Optuna's logger as the test found it, and no colour setting from the environment."""
    for name in ("NO_COLOR", "FORCE_COLOR"):
        monkeypatch.delenv(name, raising=False)
    import optuna

    optuna.logging.get_logger("optuna")  # configured, as any import of Optuna's modules does
    logger = logging.getLogger("optuna")
    before, level = list(logger.handlers), logger.level
    optuna.logging.set_verbosity(optuna.logging.INFO)  # Optuna's default (another test may lower it)
    yield
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    for handler in before:
        logger.addHandler(handler)
    logger.setLevel(level)


def _study_created(monkeypatch: pytest.MonkeyPatch, stream: io.StringIO, sweeper: str) -> str:
    """What a search writes to `stream` (as stderr) when it creates its study."""
    import optuna

    monkeypatch.setattr("sys.stderr", stream)
    OptunaLogColours().on_multirun_start(OmegaConf.create({"hydra": {"sweeper": {"_target_": sweeper}}}))
    optuna.create_study(study_name="colours")
    return stream.getvalue()


@pytest.mark.usefixtures("optuna_handlers")
@pytest.mark.parametrize(("stream", "environment", "coloured"), [
    (io.StringIO(), {}, False),  # a pipe or a file: it had Optuna's escape codes
    (Terminal(), {}, True),
    (Terminal(), {"NO_COLOR": "1"}, False),
    (io.StringIO(), {"FORCE_COLOR": "1"}, True),
])
def test_optunas_lines_are_coloured_on_a_terminal_only(
    monkeypatch: pytest.MonkeyPatch, stream: io.StringIO, environment: dict[str, str], coloured: bool
) -> None:
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    written = _study_created(monkeypatch, stream, OPTUNA_SWEEPER)
    assert "A new study created in memory with name: colours" in written
    assert ("\x1b[" in written) == coloured
    assert written.count("A new study created") == 1  # Optuna's own handler no longer writes it too


@pytest.mark.usefixtures("optuna_handlers")
def test_another_sweeper_leaves_optunas_logging_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    handlers = list(logging.getLogger("optuna").handlers)
    config = OmegaConf.create({"hydra": {"sweeper": {"_target_": BASIC_SWEEPER}}})
    OptunaLogColours().on_multirun_start(config)
    assert logging.getLogger("optuna").handlers == handlers
