"""Checks that compose the command's config with the other overrides (on the error path, or for
the few overrides that need it): a `~KEY` that removes a setting the command needs, a search space
typed where no search is set up, and the settings beside a mistyped key for "did you mean"."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from chargpt.cli import CONFIG_PATH
from chargpt.cli.hydra_errors import (
    SettingsBeside,
    dimensions_as_settings,
    no_search_to_give,
    search_params_dict,
    settings_in,
    with_config_loader,
)
from chargpt.cli.hydra_options import override_positions
from chargpt.errors import ConfigError
from chargpt.overrides import is_sweep, override_key

# `~KEY` under these removes a component (a callback, a logger) or leaves a Trainer argument to
# Lightning's documented default; a whole group (`~experiment`) is Hydra's defaults list.
REMOVABLE = ("callbacks.", "logger.", "trainer.", "hydra.")


def check_removals(config_name: str, overrides: list[str]) -> None:
    """Any other `~KEY` removes a value the code would replace by a default of its own, one the
    run's saved config does not show (`~model.n_layer` trained 4 layers; `~data.batch_size` was a
    TypeError): refused before Hydra makes a run's or a sweep's folder, as a setting the command
    needs. A key with no value (null, or none such) is left to Hydra's own message."""
    removed = {o: override_key(o) for o in overrides if o.startswith("~")}
    removed = {o: key for o, key in removed.items()
               if not key.startswith(REMOVABLE) and not (Path(CONFIG_PATH) / key).is_dir()}
    if not removed:
        return
    # One composition without them (nor a sweep's lists: composing takes one value of each).
    config = composed(config_name, [o for o in overrides if o not in removed and not is_sweep(o)])
    for key in removed.values():
        value = None if config is None else OmegaConf.select(config, key, default=None,
                                                             throw_on_resolution_failure=False)
        if value is not None:
            raise removed_a_needed_setting(key, key)


def removed_a_needed_setting(removed: str, needed: str) -> ConfigError:
    """`~removed` on the command line took away `needed`, a setting the command reads."""
    return ConfigError(f"~{removed} removed a setting this command needs ({needed}); leave it out to keep "
                       f"its default, or set a value: {needed}=VALUE")


def composed(config_name: str, overrides: list[str], with_hydra: bool = False) -> DictConfig | None:
    """The command's config with these overrides, its `hydra` part too `with_hydra` (None when it
    cannot be composed)."""
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=CONFIG_PATH, version_base="1.3"):
            return compose(config_name, overrides=overrides, return_hydra_config=with_hydra)
    except Exception:
        return None
    finally:
        GlobalHydra.instance().clear()


def check_search_space_typed(config_name: str, argv: list[str]) -> None:
    """`hydra.sweeper.params={model.dropout: x}` where no search is set up: OmegaConf's traceback
    (exit 1) as Hydra merged it into the null params of its basic sweeper, refused in one line. Where
    a search is set up the dict joins its dimensions. A command line that names its own config
    (--config-dir, --config-name, --config-path) is left to Hydra: only Hydra composes that."""
    overrides = [argv[i] for i in override_positions(argv)]
    typed = {o: dimensions for o in overrides if (dimensions := search_params_dict(o)) is not None}
    own_config = {"-cd", "--config-dir", "-cn", "--config-name", "-cp", "--config-path"}
    if not typed or any(arg.partition("=")[0] in own_config for arg in argv[1:]):
        return
    config = composed(config_name, [o for o in overrides if o not in typed], with_hydra=True)
    if config is None:
        return
    params = OmegaConf.select(config, "hydra.sweeper.params")
    for override, dimensions in typed.items():
        if params is None:
            searches = "hparams_search" in OmegaConf.select(config, "hydra.runtime.choices", default={})
            raise ConfigError(no_search_to_give(override, dimensions, searches))
        # A new dimension needs `+` (Hydra: "not a setting"), and a sweep typed bare OmegaConf cannot
        # merge (its text, `'interval(0.0, 0.3)'`, it can).
        added = not override.startswith("+") and any(name not in params for name in dimensions)
        if added or any(not isinstance(v, str | int | float | bool) for v in dimensions.values()):
            raise ConfigError(dimensions_as_settings(override, dimensions))


def settings_beside(config_name: str, overrides: list[str]) -> SettingsBeside:
    """For a command's config: the settings beside a key (settings_beside_in), its config composed
    by Hydra's compose API."""
    return settings_beside_in(lambda kept, with_hydra: composed(config_name, kept, with_hydra), overrides,
                              config_name)


def settings_beside_in(
    compose: Callable[[list[str], bool], DictConfig | None], overrides: list[str], config_name: str = ""
) -> SettingsBeside:
    """The settings beside a key, in the config the other overrides make (`compose`d again, on the
    error path only, None where it cannot be; its `hydra` part too for a key under it; the key
    `typed`, where that is another, left out too: optimzer.lrr, where optimizer.lrr is looked for);
    none when that cannot be composed. For a top-level key, a group's setting of that very name too
    (`sample.max_new_tokens` for `max_new_tokens`, typed to chargpt-train as chargpt-sample takes
    it), which "did you mean" then names. `config_name`: the command's config (train for
    chargpt-train), for the other commands that have a setting it lacks."""
    return _SettingsBeside(compose, overrides, config_name)


class _SettingsBeside:
    def __init__(
        self, compose: Callable[[list[str], bool], DictConfig | None], overrides: list[str], config_name: str
    ) -> None:
        self.compose, self.overrides, self.config_name = compose, overrides, config_name

    def _config(self, key: str, typed: str = "") -> DictConfig | None:
        def sets(override: str, key: str) -> bool:  # (a dict given above it, {extra: {lr: 2}}, sets it too;
            above = override_key(override)  # one below it, optimzer.lr for optimzer, is left out as well)
            return above == key or above.startswith(f"{key}.") or (
                key.startswith(f"{above}.") and override.partition("=")[2].startswith("{"))

        kept = [o for o in self.overrides if not sets(o, key) and not sets(o, typed or key)]
        return self.compose(kept, key.split(".", 1)[0] == "hydra")

    def __call__(self, key: str, typed: str = "") -> list[str]:
        config = self._config(key, typed)
        if config is None:
            return []
        if "." in key:
            return settings_in(config, key)
        groups = OmegaConf.to_container(config, resolve=False)
        assert isinstance(groups, dict)
        named = [f"{group}.{key}" for group, node in groups.items() if isinstance(node, dict) and key in node]
        return [*settings_in(config, key), *named]

    def nearest_node(self, key: str) -> tuple[str, DictConfig] | None:
        """The deepest node above `key` that the config has, and its name (`hydra.job` for
        hydra.job.env_sett.FOO); None where the config cannot be composed."""
        config = self._config(key)
        if config is None:
            return None
        parts = key.split(".")[:-1]
        while parts:
            node = OmegaConf.select(config, ".".join(parts), default=None, throw_on_resolution_failure=False)
            if isinstance(node, DictConfig):
                return ".".join(parts), node
            parts.pop()
        return "", config

    def commands_taking(self, key: str) -> tuple[str, list[str]]:
        """This command, and the others whose config has the setting `key` (chargpt-train's
        sample.prompt typed to chargpt-sample); none where this command's config is not known."""
        if not self.config_name:
            return "", []
        others = [name for name, config in _command_configs().items()
                  if name != self.config_name and _has_setting(config, key)]
        return f"chargpt-{self.config_name}", [f"chargpt-{name}" for name in others]


_ABSENT = object()


def _has_setting(config: DictConfig, key: str) -> bool:
    return OmegaConf.select(config, key, default=_ABSENT, throw_on_resolution_failure=False) is not _ABSENT


@functools.cache
def _command_configs() -> dict[str, DictConfig]:
    """Each command's config as it is without overrides, by name (train, sample, ...): chargpt's
    top-level configs are its commands' (chargpt-NAME)."""

    def load(loader: Any) -> dict[str, DictConfig]:
        configs = {}
        for path in sorted(Path(CONFIG_PATH).glob("*.yaml")):
            try:
                configs[path.stem] = loader.load_configuration(path.stem, [], RunMode.RUN)
            except Exception:  # a config that does not compose alone names no setting
                continue
        return configs

    configs = with_config_loader(load)
    return configs if isinstance(configs, dict) else {}
