"""Every private Lightning member chargpt relies on still exists in the installed Lightning.

An upgrade that removes one fails here, naming it, instead of deep inside a training run.
"""

from __future__ import annotations

from functools import reduce

import lightning as L
import pytest
from lightning.pytorch.callbacks import RichProgressBar

from chargpt.training.lightning_internals import PRIVATE_MEMBERS


@pytest.fixture(scope="module")
def owners() -> dict[str, object]:
    trainer = L.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False, max_steps=1)
    return {"trainer": trainer, "RichProgressBar": RichProgressBar}


@pytest.mark.parametrize(("owner", "path"), PRIVATE_MEMBERS, ids=[f"{o}.{p}" for o, p in PRIVATE_MEMBERS])
def test_private_lightning_member_exists(owners: dict[str, object], owner: str, path: str) -> None:
    try:
        reduce(getattr, path.split("."), owners[owner])
    except AttributeError:
        pytest.fail(
            f"Lightning {L.__version__} has no {owner}.{path}: chargpt's use of it in "
            "src/chargpt/training/lightning_internals.py needs a replacement before this upgrade"
        )


def test_every_private_access_in_the_package_is_listed() -> None:
    # Private trainer/loop members are reached only through lightning_internals.py.
    import re
    from pathlib import Path

    import chargpt

    root = Path(chargpt.__file__).parent
    private = re.compile(r"\b(?:trainer|fit_loop|epoch_loop|_logger_connector)\._\w+")
    users = {
        p.relative_to(root).as_posix() for p in root.rglob("*.py") if private.search(p.read_text())
    }
    assert users <= {"training/lightning_internals.py"}, users
