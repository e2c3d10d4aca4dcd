"""chargpt's Hydra sweeper (hydra/sweeper=quoting, the default): Hydra's basic sweeper, handing each
job values it can read back. What it changes is in chargpt/overrides.py (readable_choices)."""

from __future__ import annotations

from typing import Any

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.types import Override


class QuotingBasicSweeper(BasicSweeper):
    """Hydra 1.3's BasicSweeper writes each value of a `choice(...)` bare, with only spaces, commas
    and brackets escaped: one quoted for a non-ASCII letter, a quote or a `~` reached its job
    unreadable. Here such a value is written quoted; every other as Hydra writes it. What the jobs
    return is handed on (chargpt-eval's table of its jobs: chargpt/cli/sweep_jobs.py)."""

    @staticmethod
    def split_arguments(overrides: list[Override], max_batch_size: int | None) -> list[list[list[str]]]:
        from chargpt.overrides import readable_choices

        return BasicSweeper.split_arguments([readable_choices(o) for o in overrides], max_batch_size)

    def sweep(self, arguments: list[str]) -> Any:
        from chargpt.cli.sweep_jobs import record_returns

        returns = super().sweep(arguments)
        record_returns([job for batch in returns for job in batch])
        return returns
