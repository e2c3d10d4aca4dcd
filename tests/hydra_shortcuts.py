"""Hydra's composition made cheaper for the tests, with the same results.

Composing the config is most of an in-process CLI test's time (~160 ms of a command refused before
it trains), and the suite composes it about a thousand times with a few dozen distinct choices of
config groups. Each shortcut here keeps Hydra's own answer for what it skips: the YAML text and
each override are parsed once, the run mode is read from the overrides where only they can set it,
and the list of config files and their merge are kept per choice of groups; the value overrides,
the checks and everything after are Hydra's, every time. tests/test_hydra_shortcuts.py composes
with and without them and compares. Compositions that read config folders of a test's own are
never kept (the test may change a file between two of them).
"""

from __future__ import annotations

import contextlib
import copy
import io
import os
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from hydra._internal import config_loader_impl
from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra._internal.config_repository import CachingConfigRepository, IConfigRepository
from hydra._internal.defaults_list import DefaultsList
from hydra._internal.hydra import Hydra
from hydra.core.config_search_path import ConfigSearchPath
from hydra.core.default_element import ResultDefault
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from omegaconf import DictConfig, OmegaConf
from omegaconf._utils import get_yaml_loader

from chargpt.cli import CONFIG_PATH

REAL_LOAD = OmegaConf.load
REAL_GET_MODE = Hydra.get_mode
REAL_CREATE_DEFAULTS_LIST = config_loader_impl.create_defaults_list
REAL_COMPOSE_FROM_DEFAULTS = ConfigLoaderImpl._compose_config_from_defaults_list
REAL_CACHING_REPOSITORY_INIT = CachingConfigRepository.__init__
REAL_INITIALIZE_SOURCES = CachingConfigRepository.initialize_sources
REAL_PARSE_RULE = OverridesParser.parse_rule

_parsed_yaml: dict[str, bytes] = {}
_defaults_lists: dict[tuple, tuple[DefaultsList, bytes]] = {}
_composed: dict[tuple, bytes] = {}
_parsed_overrides: dict[str, bytes] = {}
_enabled = True


def load_yaml_once(file_: str | Path | io.TextIOBase) -> object:
    """OmegaConf.load, parsing each distinct YAML text once per test process (in pure Python, ~38
    files a composition). The result is built afresh from a copy of the parsed text, so nothing a
    run does to its config reaches the next."""
    if not _enabled:
        return REAL_LOAD(file_)
    if isinstance(file_, (str, Path)):
        text = Path(os.path.abspath(file_)).read_text(encoding="utf-8")
    else:
        text = file_.read()
    if text not in _parsed_yaml:
        parsed = yaml.load(text, Loader=get_yaml_loader())
        _parsed_yaml[text] = kept(OmegaConf.create() if parsed is None else OmegaConf.create(parsed))
    return copy_of(_parsed_yaml[text])


def kept(value: object) -> bytes:
    """`value` as kept between compositions: pickled, which OmegaConf supports with every node's
    type and flag, so each `copy_of` is a deep copy, made in C (copy.deepcopy of a config is ~2x
    slower, in Python)."""
    return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)


def copy_of(kept_value: bytes) -> Any:
    return pickle.loads(kept_value)


def mode_as_configured(self: Hydra, config_name: str | None, overrides: list[str]) -> object:
    """Hydra.get_mode without its extra composition where its answer is known. Hydra composes the
    whole config once only to read `hydra.mode`, then again for the run. Only the search configs
    (hparams_search) set `hydra.mode`, so elsewhere the answer is None (run or multirun as the `-m`
    flag says) unless an override sets it; test_launcher_configs checks this against the real
    get_mode for every config. Config folders of one's own (`--config-dir`, a search path) may set
    it anywhere: Hydra is asked."""
    settable = ("hydra.mode", "hparams_search", "hydra.searchpath")
    repository = getattr(self.config_loader, "repository", None)
    if (not _enabled or repository is None or _shipped_sources(repository) is None
            or any(o.lstrip("+~").startswith(settable) for o in overrides)):
        return REAL_GET_MODE(self, config_name, overrides)
    return None


def _shipped_sources(repo: IConfigRepository) -> tuple[tuple[str, str], ...] | None:
    """The config sources Hydra reads, when they are only those installed (Hydra's, its plugins',
    chargpt's configs folder): what a composition's files can come from, and none a test writes."""
    sources = tuple((source.scheme(), str(source.path)) for source in repo.get_sources())
    shipped = all(scheme != "file" or Path(path) == Path(CONFIG_PATH) for scheme, path in sources)
    return sources if shipped else None


def _is_group_choice(repo: IConfigRepository, override: Override) -> bool:
    """Whether Hydra reads the override as a choice of config group (hydra's Overrides): those
    decide the files composed, the rest are applied as values after."""
    return not isinstance(override.value(), dict) and repo.group_exists(override.key_or_group)


def create_defaults_list_kept(
    repo: IConfigRepository, config_name: str | None, overrides_list: list[Override],
    prepend_hydra: bool, skip_missing: bool,
) -> DefaultsList:
    """Hydra's list of config files to compose, kept per choice of config groups. The value
    overrides it hands on are this call's own, sorted from its overrides as Hydra sorts them."""
    sources = _shipped_sources(repo) if _enabled else None
    if sources is None:
        return REAL_CREATE_DEFAULTS_LIST(repo, config_name, overrides_list, prepend_hydra, skip_missing)
    live = [o for o in overrides_list if not o.is_sweep_override()]
    choices: list[Override] = []
    values: list[Override] = []
    for override in live:
        (choices if _is_group_choice(repo, override) else values).append(override)
    key = (sources, config_name, tuple(o.input_line for o in choices), prepend_hydra, skip_missing)
    if key not in _defaults_lists:
        made = REAL_CREATE_DEFAULTS_LIST(repo, config_name, choices, prepend_hydra, skip_missing)
        _defaults_lists[key] = (made, kept((made.defaults, made.overrides)))
    made, copied = _defaults_lists[key]
    defaults, overrides = copy_of(copied)
    return DefaultsList(
        defaults=defaults, defaults_tree=made.defaults_tree, config_overrides=values, overrides=overrides
    )


def _default_key(default: ResultDefault) -> tuple[Any, ...]:
    return (default.config_path, default.parent, default.package, default.is_self, default.primary,
            default.override_key)


def compose_from_defaults_kept(
    self: ConfigLoaderImpl, defaults: list[ResultDefault], repo: IConfigRepository
) -> DictConfig:
    """Hydra's merge of the listed config files, kept per list; each call gets its own copy."""
    sources = _shipped_sources(repo) if _enabled else None
    if sources is None:
        return REAL_COMPOSE_FROM_DEFAULTS(self, defaults, repo)
    key = (sources, tuple(_default_key(d) for d in defaults))
    if key not in _composed:
        _composed[key] = kept(REAL_COMPOSE_FROM_DEFAULTS(self, defaults, repo))
    return copy_of(_composed[key])


def override_parsed_once(self: OverridesParser, text: str, rule_name: str) -> Any:
    """Hydra's parse of an override, each distinct text parsed once per test process (its grammar
    runs in pure Python, ~2 ms an override, and a command's overrides are read several times); what
    it refuses is parsed, and refused, every time."""
    if not _enabled or rule_name != "override":
        return REAL_PARSE_RULE(self, text, rule_name)
    if text not in _parsed_overrides:
        _parsed_overrides[text] = kept(REAL_PARSE_RULE(self, text, rule_name))
    return copy_of(_parsed_overrides[text])


def repository_copied_when_changed(self: CachingConfigRepository, delegate: IConfigRepository) -> None:
    """CachingConfigRepository's start, without its copy of Hydra's repository (every config source,
    the structured ones' store included: ~15 ms a composition), made only when a composition
    changes its sources (a `hydra.searchpath`), which is the only change the copy keeps out."""
    if not _enabled:
        REAL_CACHING_REPOSITORY_INIT(self, delegate)
        self.copied = True
        return
    self.delegate = delegate
    self.cache = {}
    self.copied = False


def initialize_sources_of_a_copy(self: CachingConfigRepository, config_search_path: ConfigSearchPath) -> None:
    if not self.copied:
        self.delegate = copy.deepcopy(self.delegate)
        self.copied = True
    REAL_INITIALIZE_SOURCES(self, config_search_path)


def install() -> None:
    OmegaConf.load = staticmethod(load_yaml_once)  # type: ignore[method-assign]
    OverridesParser.parse_rule = override_parsed_once  # type: ignore[method-assign]
    Hydra.get_mode = mode_as_configured  # type: ignore[method-assign]
    config_loader_impl.create_defaults_list = create_defaults_list_kept  # type: ignore[assignment]
    ConfigLoaderImpl._compose_config_from_defaults_list = compose_from_defaults_kept  # type: ignore[method-assign]
    CachingConfigRepository.__init__ = repository_copied_when_changed  # type: ignore[method-assign]
    CachingConfigRepository.initialize_sources = initialize_sources_of_a_copy  # type: ignore[method-assign]


@contextlib.contextmanager
def real_hydra() -> Iterator[None]:
    """Hydra as it is, every shortcut off, for the block."""
    global _enabled
    _enabled = False
    try:
        yield
    finally:
        _enabled = True
