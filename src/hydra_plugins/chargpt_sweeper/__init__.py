"""chargpt's Hydra sweeper (hydra/sweeper=quoting, the default): Hydra's basic sweeper, handing each
job values it can read back. What it changes is in chargpt/overrides.py (readable_choices)."""

from __future__ import annotations

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.types import Override


class QuotingBasicSweeper(BasicSweeper):
    """Hydra 1.3's BasicSweeper writes each value of a `choice(...)` bare, with only spaces, commas
    and brackets escaped: one quoted for a non-ASCII letter, a quote or a `~` reached its job
    unreadable. Here such a value is written quoted; every other as Hydra writes it."""

    @staticmethod
    def split_arguments(overrides: list[Override], max_batch_size: int | None) -> list[list[list[str]]]:
        from chargpt.overrides import readable_choices

        return BasicSweeper.split_arguments([readable_choices(o) for o in overrides], max_batch_size)
