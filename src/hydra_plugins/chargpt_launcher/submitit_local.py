"""chargpt's submitit launcher for this machine (hydra/launcher=submitit_local): submitit's, whose
sweep stops every job with a checkpoint on a signal (chargpt/runs/submitit_local.py). Registered
under submitit's own name; absent where the `slurm` extra is not installed."""

# No `from __future__ import annotations`: Hydra runs this module before it is in sys.modules,
# where a dataclass would look its string annotations up.
import dataclasses
from collections.abc import Sequence

from hydra.core.utils import JobReturn

from hydra_plugins.chargpt_entries import store

try:
    from hydra_plugins.hydra_submitit_launcher.config import LocalQueueConf
    from hydra_plugins.hydra_submitit_launcher.submitit_launcher import LocalLauncher
except ImportError:  # no `slurm` extra: no submitit launcher
    LocalLauncher = None


if LocalLauncher is not None:

    class StoppableLocalLauncher(LocalLauncher):
        """submitit's local launcher whose jobs each get a signal once and stop with a checkpoint,
        and whose sweep waits for them, without submitit's controllers' tracebacks."""

        def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
            from chargpt.runs.submitit_local import stoppable_controllers

            assert self.config is not None

            with stoppable_controllers(self.config):
                return super().launch(job_overrides, initial_job_idx)

    @dataclasses.dataclass
    class StoppableLocalQueueConf(LocalQueueConf):
        _target_: str = "hydra_plugins.chargpt_launcher.submitit_local.StoppableLocalLauncher"
        # submitit's 60 minutes ended a longer training job, killed a second after its signal, without a
        # checkpoint: on this machine a job has no time limit (hydra.launcher.timeout_min=N sets one).
        timeout_min: int = 60 * 24 * 365

    # Replaces submitit's own entry (imported, so stored, above; again after Hydra's scan: chargpt_entries).
    REPLACEMENTS = [("hydra/launcher", "submitit_local", StoppableLocalQueueConf)]
else:
    REPLACEMENTS = []
store(REPLACEMENTS)
