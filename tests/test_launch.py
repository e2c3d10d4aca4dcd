"""The console scripts: each reaches its command, `import chargpt` is instant, and a Ctrl-C while a
command is still importing its code ends with one line and exit 130, as it does later."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import tomllib

from chargpt.cli import launch

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
SCRIPTS = tomllib.loads(PYPROJECT.read_text())["project"]["scripts"]


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_each_console_script_runs_its_command(script: str, monkeypatch: pytest.MonkeyPatch) -> None:
    module_name, function = SCRIPTS[script].split(":")
    assert module_name == "chargpt.cli.launch"
    command = script.removeprefix("chargpt-")
    real = importlib.import_module(f"chargpt.cli.{command}")
    assert callable(real.main)
    ran: list[str] = []
    monkeypatch.setattr(importlib, "import_module",
                        lambda name: SimpleNamespace(main=lambda: ran.append(name)))
    getattr(launch, function)()
    assert ran == [f"chargpt.cli.{command}"]


INTERRUPTED_IMPORT = """
import importlib, os, signal
real = importlib.import_module
def interrupted(name):  # Ctrl-C arrives while the command's code is being imported
    os.kill(os.getpid(), signal.SIGINT)
    return real(name)
importlib.import_module = interrupted
from chargpt.cli.launch import train
train()
"""


def test_ctrl_c_while_a_command_imports_its_code_is_one_line_and_exit_130() -> None:
    done = subprocess.run([sys.executable, "-c", INTERRUPTED_IMPORT], capture_output=True, text=True)
    assert done.returncode == 130, done.stderr[-2000:]
    assert done.stderr.strip() == "interrupted"
    assert done.stdout == ""


def test_import_chargpt_loads_no_torch_until_the_api_is_used() -> None:
    probe = ("import sys, chargpt; before = 'torch' in sys.modules; load = chargpt.load; "
             "print(before, 'torch' in sys.modules, load.__module__)")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["False", "True", "chargpt.inference"]
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = importlib.import_module("chargpt").nope
