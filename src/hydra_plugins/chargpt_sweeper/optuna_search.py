"""chargpt's Optuna sweeper (hydra/sweeper=optuna, as hparams_search=optuna picks it): Optuna's,
handing each trial values its job can read back. Registered under Optuna's own name, so that every
search gets it; absent where the `optuna` extra is not installed."""

# No `from __future__ import annotations`: Hydra runs this module before it is in sys.modules,
# where a dataclass would look its string annotations up.
import dataclasses
from typing import Any

from hydra_plugins.chargpt_entries import store

try:
    from hydra_plugins.hydra_optuna_sweeper.config import OptunaSweeperConf
    from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import OptunaSweeper
except ImportError:  # no optuna extra: no search to mend
    OptunaSweeper = None


if OptunaSweeper is not None:

    class QuotingOptunaSweeper(OptunaSweeper):
        """hydra-optuna-sweeper 1.3 writes each trial's override as `f"{name}={value}"`, a text value
        bare: `choice(café.txt, 'a, b.txt')` reached its jobs as `data.path=café.txt` and
        `data.path=a, b.txt`, which Hydra cannot read. Here such a value is written quoted; the study
        keeps the text itself, and every other value is written as Optuna's sweeper writes it. A grid
        sampler's points are run in order (runs/optuna_sampler.py GridInOrder)."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            # OptunaSweeper.__init__ only builds its implementation, which imports optuna: here the
            # same implementation, writing its trials' overrides readable.
            # (private: listed, with _configure_trials, in chargpt/hydra_internals.py)
            from hydra_plugins.hydra_optuna_sweeper._impl import OptunaSweeperImpl

            class ReadableTrials(OptunaSweeperImpl):
                def _configure_trials(self, trials: list, search_space_distributions: dict,
                                      fixed_params: dict) -> list[tuple[str, ...]]:
                    from chargpt.overrides import readable_trial_override

                    written = super()._configure_trials(trials, search_space_distributions, fixed_params)
                    return [tuple(readable_trial_override(o, trial.params) for o in overrides)
                            for trial, overrides in zip(trials, written, strict=True)]

                def sweep(self, arguments: list[str]) -> None:
                    # A setting fixed on the command line (model.n_layer=1) leaves the search, as
                    # Optuna's sweeper drops it from its trials' space, but only after it built a grid
                    # from that space: each of the setting's values made another copy of every point,
                    # run as the same job again. Dropped from the searched params first.
                    from hydra_plugins.hydra_optuna_sweeper._impl import create_params_from_overrides

                    _, fixed = create_params_from_overrides(arguments)
                    if self.params:
                        self.params = {k: v for k, v in self.params.items() if str(k) not in fixed}
                    return super().sweep(arguments)

            self.sweeper = ReadableTrials(*args, **kwargs)
            # A grid's points in order, not drawn at random: a stopped grid search continues as printed.
            from chargpt.runs.optuna_sampler import grid_in_order

            self.sweeper.sampler = grid_in_order(self.sweeper.sampler)

        def sweep(self, arguments: list[str]) -> None:
            # A disk that fills between trials: one line with the search's continue command.
            from chargpt.cli.exits import no_room_said_with_the_continue_command

            with no_room_said_with_the_continue_command(self.sweeper.config.hydra):
                return super().sweep(arguments)

    @dataclasses.dataclass
    class QuotingOptunaSweeperConf(OptunaSweeperConf):
        _target_: str = "hydra_plugins.chargpt_sweeper.optuna_search.QuotingOptunaSweeper"

    # Replaces Optuna's own entry (imported, so stored, above): `hydra/sweeper=optuna` names this one.
    # Stored again once Hydra's scan of the plugins is over (chargpt_entries).
    REPLACEMENTS = [("hydra/sweeper", "optuna", QuotingOptunaSweeperConf)]
else:
    REPLACEMENTS = []
store(REPLACEMENTS)
