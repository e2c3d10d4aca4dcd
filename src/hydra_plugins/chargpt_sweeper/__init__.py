"""chargpt's Hydra sweeper (hydra/sweeper=quoting, the default): Hydra's basic sweeper, handing each
job values it can read back. What it changes is in chargpt/overrides.py (readable_choices)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

# (private: listed, with split_arguments, in chargpt/hydra_internals.py)
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.types import Override


class QuotingBasicSweeper(BasicSweeper):
    """Hydra 1.3's BasicSweeper writes each value of a `choice(...)` bare, with only spaces, commas
    and brackets escaped: one quoted for a non-ASCII letter, a quote or a `~` reached its job
    unreadable. Here such a value is written quoted; every other as Hydra writes it. What the jobs
    return is handed on (chargpt-eval's table of its jobs: chargpt/cli/sweep_jobs.py), and what
    a parallel job held when it was killed, or a job run apart (submitit's launchers) held, is printed."""

    @staticmethod
    def split_arguments(overrides: list[Override], max_batch_size: int | None) -> list[list[list[str]]]:
        from chargpt.overrides import readable_choices

        return BasicSweeper.split_arguments([readable_choices(o) for o in overrides], max_batch_size)

    def sweep(self, arguments: list[str]) -> Any:
        from chargpt.cli.exits import no_room_said_with_the_continue_command
        from chargpt.cli.held_output import held_outputs, jobs_told_where_output_goes, print_held_output
        from chargpt.cli.sweep_jobs import exit_as_a_job_did, record_returns

        assert self.config is not None
        folder = Path(str(self.config.hydra.sweep.dir))
        earlier = held_outputs(folder) if folder.is_dir() else {}
        try:
            # A disk that fills between jobs: one line with the sweep's continue command.
            with jobs_told_where_output_goes(folder), \
                    no_room_said_with_the_continue_command(self.config.hydra):
                returns = super().sweep(arguments)
        finally:  # what a parallel launcher's job held when its worker was killed (a job beside it
            # failed), and what jobs run apart (submitit's launchers) held for the sweep to print
            print_held_output(folder, earlier)
        exit_as_a_job_did([job for batch in returns for job in batch])
        record_returns([job for batch in returns for job in batch])
        return returns
