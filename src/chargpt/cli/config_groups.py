"""A config group's options on the command line (`model=tiny`, `model=[a,b]`): each must name an
option of the group, in chargpt's configs or in the folders a command line adds (`--config-dir`,
`hydra.searchpath=[...]`), and a group of alternatives takes one at a time."""

from __future__ import annotations

import functools
import re
import warnings
from pathlib import Path

from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from chargpt.cli import CONFIG_PATH
from chargpt.cli.hydra_errors import ONE_OPTION_GROUPS, not_an_option
from chargpt.cli.hydra_options import override_positions
from chargpt.data.sources.paths import expand_path
from chargpt.errors import ConfigError
from chargpt.overrides import split_override


def config_group_dirs(argv: list[str]) -> list[Path] | None:
    """The config folders Hydra searches for this command line: chargpt's and any `--config-dir`
    (a `hydra.searchpath` adds more: searchpath_override); None when the primary config is found another
    way (`--config-path`), whose options only Hydra can list."""
    dirs = [Path(CONFIG_PATH)]
    for i, arg in enumerate(argv[1:], start=1):
        flag, eq, value = arg.partition("=")
        if flag in ("-cp", "--config-path"):
            return None
        if arg in ("-cd", "--config-dir") and i + 1 < len(argv):
            dirs.append(Path(expand_path(argv[i + 1])))
        elif flag == "--config-dir" and eq:
            dirs.append(Path(expand_path(value)))
    return dirs


def searchpath_override(argv: list[str]) -> str | None:
    """The command line's `hydra.searchpath=[...]` override (the last, which Hydra applies), or None."""
    given = [f"hydra.searchpath={parts[2]}" for i in override_positions(argv)
             if (parts := split_override(argv[i])) and parts[1] == "hydra.searchpath"]
    return given[-1] if given else None


@functools.cache
def _searchpath_options(group: str, searchpath: str) -> frozenset[str] | None:
    """The options of config `group` in the folders a `hydra.searchpath=[...]` override adds (and
    chargpt's), as Hydra's config repository lists them with that override applied; None when
    Hydra cannot apply it (its own error says why)."""
    GlobalHydra.instance().clear()
    try:
        # Quiet: a folder of it that is missing is Hydra's to warn of, once, when it composes.
        with warnings.catch_warnings(), initialize_config_dir(config_dir=CONFIG_PATH, version_base="1.3"):
            warnings.simplefilter("ignore")
            loader = GlobalHydra.instance().config_loader()
            return frozenset(loader.get_group_options(group, overrides=[searchpath]))
    except Exception:
        return None
    finally:
        GlobalHydra.instance().clear()


def check_one_option_lists(overrides: list[str]) -> None:
    """`model=[small,tiny]`: Hydra merges a list's options into one config (the last one's values
    win), which for chargpt's own options of a group of alternatives is no model meant: refused,
    naming the sweep that runs each. A list naming an option of one's own (`trainer=[default,mine]`
    with --config-dir) is Hydra's way to compose a config on top of another: left to Hydra. (After
    the checks of what a command does not use: chargpt-sample has no model to pick.)"""
    for override in overrides:
        parts = split_override(override)
        listed = re.fullmatch(r"\[\s*([\w\-]+(?:\s*,\s*[\w\-]+)+)\s*\]", parts[2]) if parts else None
        if parts and listed and parts[1] in ONE_OPTION_GROUPS:
            key, value = parts[1], re.sub(r"\s+", "", listed[1])
            if not all((Path(CONFIG_PATH) / key / f"{option}.yaml").is_file() for option in value.split(",")):
                continue
            raise ConfigError(f"{key}=[{value}] picks {value.count(',') + 1} options of {key} at once, and "
                              f"Hydra merges them into one {key} (the last one's values win); pick one, or "
                              f"run once with each as a sweep: -m {key}={value}")


def check_group_option(key: str, value: str, config_dirs: list[Path], searchpath: str | None = None) -> None:
    """`group=option` (or a sweep's `group=a,b`, or a list `group=[a,b]`) for a config group in
    `config_dirs`, or in the folders of a `hydra.searchpath=[...]` override, must name options that
    exist there: a ConfigError listing them, before Hydra composes anything."""
    if "/" in key or "." in key:
        return  # not a config group
    groups = [d / key for d in config_dirs if (d / key).is_dir()]
    known_set = {f.stem for group in groups for f in group.glob("*.yaml")}
    if searchpath is not None:
        listed = _searchpath_options(key, searchpath)
        if listed is None:
            return  # a search path Hydra cannot read: Hydra's own error names it
        known_set |= listed
    if not known_set:
        return  # not a config group
    known = sorted(known_set)
    if value == "null":  # Hydra's ValueError, with a traceback
        none = f"; {key}=none for none" if "none" in known else ""
        raise ConfigError(f"{key}=null: a config group takes the name of one of its options "
                          f"({', '.join(known)}); leave it out for its default{none}")
    listed = re.fullmatch(r"\[\s*([\w\-]+(?:\s*,\s*[\w\-]+)*)?\s*\]", value)
    if listed is not None:
        value = re.sub(r"\s+", "", listed[1] or "")
    elif not re.fullmatch(r"[\w\-]+(,[\w\-]+)*", value):
        return  # a value Hydra reads itself (glob(...), ...)
    unknown = [name for name in value.split(",") if name and name not in known]
    if unknown:
        raise ConfigError(not_an_option(key, unknown[0], known))
