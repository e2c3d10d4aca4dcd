"""What trains on a resumed run that found nothing left to train: the command to resume it with."""

from __future__ import annotations

from pathlib import Path

import lightning as L
from hydra.core.hydra_config import HydraConfig

from chargpt.hydra_run import task_overrides
from chargpt.overrides import override_key
from chargpt.run_layout import CONFIG_DIR, launch_cwd
from chargpt.runs.resume import resume_command, this_process_environment
from chargpt.training.auto_size.choice import rerun_words
from chargpt.training.callbacks.budget import TimeBudget


def how_to_train_on(trainer: L.Trainer, run_dir: str) -> str:
    """Why a resumed run trained nothing, and what trains it on. A budgeted run keeps the count its
    budget planned whatever trainer.max_steps says (its schedule was set for it): it trains on
    without the budget, and a model=auto run with its chosen shape in place of model=auto (which
    needs a budget)."""
    budget = next((c for c in trainer.callbacks if isinstance(c, TimeBudget) and c.active), None)
    if budget is None or budget.planned_steps is None:
        return f"trainer.max_steps={trainer.max_steps}; pass a larger trainer.max_steps to train on"
    # model=auto's: its first launch's command line as typed (there), with the shape it chose.
    auto = (budget.auto or {}).get("rerun_with")
    launched = rerun_words(budget.auto or {})[1:] if auto else task_overrides()
    fixed = ("budget_seconds", "trainer.max_steps", "ckpt_path", "model") if auto else (
        "budget_seconds", "trainer.max_steps", "ckpt_path")
    kept = [o for o in launched if override_key(o) not in fixed]
    if auto:
        cwd = launch_cwd(Path(run_dir) / CONFIG_DIR)
    else:
        cwd = HydraConfig.get().runtime.cwd if HydraConfig.initialized() else None
    command = resume_command(run_dir, [*kept, "budget_seconds=null", "trainer.max_steps=STEPS"], cwd,
                             typed=bool(auto))
    command = " ".join([*this_process_environment(), command])
    return (f"the {budget.planned_steps} steps its time budget planned, which a resume keeps whatever "
            f"trainer.max_steps says; to train on, resume it without the budget, with STEPS above "
            f"{budget.planned_steps}: {command}")
