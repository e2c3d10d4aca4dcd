"""Every private Lightning member chargpt relies on still exists in the installed Lightning.

An upgrade that removes one fails here, naming it, instead of deep inside a training run.
"""

from __future__ import annotations

import importlib
import logging
import re
from functools import reduce
from pathlib import Path

import lightning as L
import pytest
from lightning.pytorch.callbacks import RichProgressBar

from chargpt.training import lightning_internals
from chargpt.training.lightning_internals import PRIVATE_MEMBERS, SIGNAL_CONNECTOR
from conftest import lacks


@pytest.fixture(scope="module")
def owners(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    from lightning.pytorch.loggers import CSVLogger, MLFlowLogger, WandbLogger

    folder = tmp_path_factory.mktemp("loggers")
    trainer = L.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False, max_steps=1)
    owners: dict[str, object] = {"lightning": L, "trainer": trainer, "RichProgressBar": RichProgressBar,
                                 "CSVLogger": CSVLogger(folder)}
    if not lacks("mlflow"):  # (neither starts a run until it is first used)
        owners["MLFlowLogger"] = MLFlowLogger(tracking_uri="http://127.0.0.1:9")  # not contacted
    if not lacks("wandb"):
        owners["WandbLogger"] = WandbLogger(save_dir=str(folder), offline=True)
    return owners


@pytest.mark.parametrize(("owner", "path"), PRIVATE_MEMBERS, ids=[f"{o}.{p}" for o, p in PRIVATE_MEMBERS])
def test_private_lightning_member_exists(owners: dict[str, object], owner: str, path: str) -> None:
    if "." in owner:  # a module
        try:
            owners[owner] = importlib.import_module(owner)
        except ImportError:
            pytest.fail(
                f"Lightning {L.__version__} has no module {owner}: chargpt's use of {owner}.{path} in "
                "src/chargpt/training/lightning_internals.py needs a replacement before this upgrade"
            )
    if owner not in owners:
        pytest.skip(f"{owner} needs its tracker's extra")
    try:
        reduce(getattr, path.split("."), owners[owner])
    except AttributeError:
        pytest.fail(
            f"Lightning {L.__version__} has no {owner}.{path}: chargpt's use of it in "
            "src/chargpt/training/lightning_internals.py needs a replacement before this upgrade"
        )


PRIVATE_MEMBER = re.compile(r"\b(?:trainer|fit_loop|epoch_loop|_logger_connector)\._\w+"
                            r"|\blightning(?:\.\w+)*\._\w+")
LIGHTNING_IMPORT = re.compile(r"\bfrom lightning[\w.]* import (\([^)]*\)|[^\n]*)")


def reaches_lightnings_privates(source: str) -> bool:
    """A private trainer/loop member, a private Lightning module, or a private name among those
    imported from Lightning (anywhere in the import's list, parenthesised or not)."""
    imported = (name for names in LIGHTNING_IMPORT.findall(source)
                for name in re.findall(r"\b\w+", re.sub(r"#[^\n]*", "", names)))
    return bool(PRIVATE_MEMBER.search(source)) or any(name.startswith("_") for name in imported)


@pytest.mark.parametrize(("source", "private"), [
    ("from lightning.pytorch.loggers.tensorboard import _TENSORBOARD_AVAILABLE", True),
    ("from lightning.pytorch.loggers import CSVLogger, _x", True),  # not the first name: once missed
    ("from lightning.pytorch.loggers import (\n    CSVLogger,\n    _x,\n)", True),
    ("import lightning.pytorch._graveyard", True),
    ("if trainer._signal_connector:", True),
    ("from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger  # _not a name", False),
    ("from lightning.pytorch import Trainer\n_local = 1", False),
])
def test_a_private_lightning_access_is_recognised(source: str, private: bool) -> None:
    assert reaches_lightnings_privates(source) is private


def test_every_private_access_in_the_package_is_listed() -> None:
    # Private trainer/loop members, and Lightning's private names, are reached only through
    # lightning_internals.py (run_checks.py imported the TensorBoard logger's flag itself, unchecked).
    import chargpt

    root = Path(chargpt.__file__).parent
    users = {p.relative_to(root).as_posix() for p in root.rglob("*.py")
             if reaches_lightnings_privates(p.read_text())}
    assert users <= {"training/lightning_internals.py"}, users


def test_every_private_logger_member_the_trackers_use_is_listed() -> None:
    import re

    from chargpt.training import trackers

    source = Path(trackers.__file__).read_text()
    used = set(re.findall(r"\b(?:self|logger)\.(_\w+)", source))
    # set or defined by the trackers alone
    own = set(re.findall(r"\bself\.(_\w+)\s*[:=]", source) + re.findall(r"\bdef (_\w+)\(", source))
    own -= {"_experiment"}
    listed = {path for owner, path in PRIVATE_MEMBERS if owner.endswith("Logger")}
    assert used - own <= listed, used - own - listed


def test_the_package_imports_without_lightnings_signal_connector(monkeypatch) -> None:
    # A Lightning that renamed its private signal connector class made the import of
    # lightning_internals (and so of every command that trains) fail with an ImportError.
    module, name = SIGNAL_CONNECTOR
    monkeypatch.delattr(importlib.import_module(module), name)
    spec = importlib.util.spec_from_file_location("internals_copy", lightning_internals.__file__)
    assert spec is not None and spec.loader is not None
    spec.loader.exec_module(importlib.util.module_from_spec(spec))


def test_a_lightning_without_its_signal_connector_keeps_its_own_handling_and_says_so(
    monkeypatch, caplog
) -> None:
    module, name = SIGNAL_CONNECTOR
    trainer = L.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False, max_steps=1)
    lightnings_own = trainer._signal_connector
    monkeypatch.delattr(importlib.import_module(module), name)
    with caplog.at_level(logging.WARNING, logger=lightning_internals.__name__):
        lightning_internals.keep_ignored_signals_ignored(trainer)
    assert trainer._signal_connector is lightnings_own
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and f"{module}.{name}" in warnings[0], warnings
    assert "\n" not in warnings[0]


def test_the_signal_connector_keeps_ignored_stop_signals_ignored() -> None:
    trainer = L.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False, max_steps=1)
    lightning_internals.keep_ignored_signals_ignored(trainer)
    module, name = SIGNAL_CONNECTOR
    assert isinstance(trainer._signal_connector, getattr(importlib.import_module(module), name))
    assert type(trainer._signal_connector).__name__ == "_KeepingIgnoredSignals"
