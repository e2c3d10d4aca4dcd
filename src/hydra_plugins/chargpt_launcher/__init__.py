"""chargpt's Hydra launcher (hydra/launcher=local_parallel). Hydra loads launchers only from this
namespace package; what the launcher does is in chargpt/runs/parallel_launcher.py."""

from __future__ import annotations

from collections.abc import Sequence

from hydra.core.utils import JobReturn

try:
    from hydra_plugins.hydra_joblib_launcher.joblib_launcher import JoblibLauncher
except ImportError:  # without the `joblib` extra there is no parallel launcher (and no warning)
    JoblibLauncher = None

if JoblibLauncher is not None:

    class StoppableJoblibLauncher(JoblibLauncher):
        """Hydra's joblib launcher whose sweep stops every job at a step boundary, each with a
        checkpoint, on the first signal (also one sent to the sweep's process alone)."""

        def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
            from chargpt.runs.parallel_launcher import launch_stoppably

            assert self.config is not None
            return launch_stoppably(self.config, lambda: super(StoppableJoblibLauncher, self).launch(
                job_overrides, initial_job_idx))
