"""chargpt's replacements of plugins' configs (hydra/launcher=joblib, submitit_local and
hydra/sweeper=optuna, each its plugin's class in chargpt's subclass) stored again once Hydra's scan
of the plugins is over, so they hold whatever order it scans them in.

Hydra runs every module of the `hydra_plugins` packages, and each plugin's config module stores its
entry as it runs, so the one run last wins. An editable install scans chargpt's after the installed
plugins'; a wheel puts them all in one folder, scanned in name order, chargpt_* before hydra_*: its
entries were replaced by the plugins' own (`kill -INT` of a `hydra/launcher=joblib` sweep ended its
jobs mid-step, with no checkpoint, each left `running`). Hydra asks its search path plugins for
their folders after the scan, before it looks for any config: this one adds none, and stores the
replacements there."""

# No `from __future__ import annotations`: Hydra runs this module before it is in sys.modules.
import importlib

from hydra.core.config_search_path import ConfigSearchPath
from hydra.core.config_store import ConfigStore
from hydra.plugins.search_path_plugin import SearchPathPlugin

# The modules whose REPLACEMENTS (group, name, node: empty where the plugin is not installed) these are.
REPLACING_MODULES = (
    "hydra_plugins.chargpt_launcher",
    "hydra_plugins.chargpt_launcher.submitit_local",
    "hydra_plugins.chargpt_sweeper.optuna_search",
)


def store(replacements: list) -> None:
    for group, name, node in replacements:
        ConfigStore.instance().store(group=group, name=name, node=node, provider="chargpt")


class ReplacementsAfterTheScan(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        for module in REPLACING_MODULES:
            store(importlib.import_module(module).REPLACEMENTS)
