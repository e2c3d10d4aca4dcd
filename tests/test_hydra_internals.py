"""Every private member of Hydra (and of the Hydra plugins chargpt extends) that chargpt relies on
still exists in the installed versions.

An upgrade that removes one fails here, naming it, instead of deep inside a sweep.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
from functools import reduce
from pathlib import Path

import hydra
import pytest

import chargpt
from chargpt.hydra_internals import OPTUNA_SWEEPER, PRIVATE_MEMBERS


def _owner(owner: str) -> object:
    """A module by its dotted name, else a class named in chargpt/hydra_internals.py."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.utils import JobReturn

    if "." in owner:
        return importlib.import_module(owner)
    if owner == "OptunaSweeperImpl":
        return getattr(importlib.import_module(OPTUNA_SWEEPER[0]), owner)
    if owner == "BasicSweeper":
        from chargpt.hydra_internals import basic_sweeper

        return basic_sweeper()
    # instances: a dataclass's fields are not attributes of its class
    return {"Override": OverridesParser.create().parse_override("a=1,2"), "JobReturn": JobReturn()}[owner]


@pytest.mark.parametrize(("owner", "path"), PRIVATE_MEMBERS, ids=[f"{o}.{p}" for o, p in PRIVATE_MEMBERS])
def test_private_hydra_member_exists(owner: str, path: str) -> None:
    if "optuna" in owner.lower() and importlib.util.find_spec("hydra_plugins.hydra_optuna_sweeper") is None:
        pytest.skip("Optuna's sweeper needs the optuna extra")
    try:
        reduce(getattr, path.split("."), _owner(owner))
    except (ImportError, AttributeError):
        pytest.fail(f"Hydra {hydra.__version__} (or its plugin) has no {owner}.{path}: chargpt's use of it, "
                    "listed in src/chargpt/hydra_internals.py, needs a replacement before this upgrade")


def test_every_private_hydra_access_in_the_package_is_listed() -> None:
    # Hydra's private modules and members are reached through hydra_internals.py, but for the two
    # plugin classes that subclass them (each named in its list).
    src = Path(chargpt.__file__).parent.parent
    private = re.compile(r"\bhydra\._internal\b|\bhydra_\w+\._\w+|\._value\b|\._return_value\b")
    users = {p.relative_to(src).as_posix() for p in src.rglob("*.py") if private.search(p.read_text())}
    assert users <= {"chargpt/hydra_internals.py", "hydra_plugins/chargpt_sweeper/__init__.py",
                     "hydra_plugins/chargpt_sweeper/optuna_search.py"}, users
