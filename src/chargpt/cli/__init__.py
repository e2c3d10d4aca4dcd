"""The console scripts: thin Hydra entry points (train, sample, eval, report, export, serve)."""

from pathlib import Path

_PACKAGED = Path(__file__).parents[1] / "configs"  # wheel installs
_SOURCE_TREE = Path(__file__).resolve().parents[3] / "configs"  # editable installs and checkouts
CONFIG_PATH = str(_PACKAGED if _PACKAGED.is_dir() else _SOURCE_TREE)  # the commands' Hydra configs
