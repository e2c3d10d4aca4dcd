"""chargpt's Hydra launcher (hydra/launcher=local_parallel, and Hydra's own name for it,
hydra/launcher=joblib). Hydra loads launchers only from this namespace package; what the launcher
does is in chargpt/runs/parallel_launcher.py."""

# No `from __future__ import annotations`: Hydra runs this module before it is in sys.modules,
# where a dataclass would look its string annotations up.
import dataclasses
from collections.abc import Sequence

from hydra.core.utils import JobReturn
from omegaconf import OmegaConf

from hydra_plugins.chargpt_entries import store

try:
    from hydra_plugins.hydra_joblib_launcher.config import JobLibLauncherConf
    from hydra_plugins.hydra_joblib_launcher.joblib_launcher import JoblibLauncher
except ImportError:  # without the `joblib` extra there is no parallel launcher (and no warning)
    JoblibLauncher = None

if JoblibLauncher is not None:

    class StoppableJoblibLauncher(JoblibLauncher):
        """Hydra's joblib launcher whose training sweep stops every job at a step boundary, each with a
        checkpoint, on the first signal (also one sent to the sweep's process alone)."""

        def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
            from chargpt.runs.parallel_launcher import launch_stoppably

            assert self.config is not None

            def launch() -> Sequence[JobReturn]:
                return super(StoppableJoblibLauncher, self).launch(job_overrides, initial_job_idx)

            if OmegaConf.select(self.config, "trainer") is None:
                # A sweep that trains nothing (chargpt-sample, -eval, -export): no step to stop at, no
                # checkpoint to write, nothing to continue; a signal ends it as Hydra's launcher does.
                from chargpt.cli.sweep_jobs import launch_reading_sweep

                return launch_reading_sweep(self.config, launch)
            return launch_stoppably(self.config, launch)

    @dataclasses.dataclass
    class StoppableJoblibConf(JobLibLauncherConf):
        _target_: str = "hydra_plugins.chargpt_launcher.StoppableJoblibLauncher"

    # hydra/launcher=joblib, Hydra's name for the same launcher, stops as cleanly: with Hydra's class a
    # signal to the sweep's process ended its jobs mid-step, no checkpoint, each left `running`.
    # Replaces joblib's own entry (imported, so stored, above); its settings (n_jobs=-1, ...) stay.
    # Stored again once Hydra's scan of the plugins is over (chargpt_entries): the scan stores
    # joblib's again as it runs its module, after this one's from a wheel install.
    REPLACEMENTS = [("hydra/launcher", "joblib", StoppableJoblibConf)]
else:
    REPLACEMENTS = []
store(REPLACEMENTS)
