"""Time-budgeted training: pick the step count that fits a wall-clock budget, early in the run.

The budget counts from the start of the process (imports and data loading included). After a
few warm-up steps the callback times `calibration_steps` steps, estimates what the end of the run
costs (a full validation, what the callbacks do at its end, the closing sample), and fixes
trainer.max_steps to the steps that fit. The LR schedule reads max_steps at every step, so it
reaches its floor as the last step ends. About every 1% of the budget the count is re-planned from the
mean step time over the last quarter of the budget, with the end's estimate scaled up by a lasting
slowdown, so a machine that slows down or speeds up, or does both in turn, is followed. A burst
that would overrun the run shortens it at once (a slow spell priced as lasting as long again as it
has lasted, not for every step left); the count lengthens only while the steps are no
slower than that mean, so neither a host's jitter nor a lasting slowdown makes it swing. A
re-plan that moves the count by 2% or more (or cuts an overrun) is logged, the others at DEBUG.
Validations during training are timed apart from the steps, and the plan makes room for the ones
still due and prices the final one at their mean. A budget that cannot hold start-up, calibration
and the final validation is refused with the smallest budget this model needs on this machine, as
measured.

The chosen count is written to budget.json and metrics.json and kept in the checkpoint: a resumed
run keeps it, and `trainer.max_steps=<count> budget_seconds=null` re-runs the same schedule. A run
stopped before the plan has no count to keep: its checkpoint keeps the seconds of the budget used
so far instead, and its resume plans with what is left of the budget (calibrating again).
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.trainer.states import TrainerFn

from chargpt import shell_words
from chargpt.checks import real_number, whole_number
from chargpt.distributed import is_rank_zero
from chargpt.errors import ConfigError
from chargpt.files import read_json_object, write_json_atomic
from chargpt.run_layout import BUDGET_FILE
from chargpt.training import budget_plan
from chargpt.training.auto_size.choice import rerun_words
from chargpt.training.budget_plan import (
    EXIT_SHARE_OF_STARTUP,
    LASTING_FRACTION,
    RESERVE_SECONDS,
    SHORTEN_ONLY_FRACTION,
    VALIDATION_MARGIN,
    budget_to_ask,
    edge_batches,
    forward_seconds,
    plan_steps_with_validations,
    replan_is_shown,
    replan_pace,
    sampling_seconds,
    validation_batches,
    validations_due,
)
from chargpt.training.steps import epoch_steps, set_total_steps, step_limit

log = logging.getLogger(__name__)


class ValidationTimes:
    """The time validations during training take, kept apart: their seconds are not step time (nor
    those of the checkpoints after them), and the ones still due before the end are priced by the
    plan at the mean of the fit's own."""

    def __init__(self) -> None:
        self.latest = (-1.0, -1.0)  # when the latest validation started, and its loop ended
        self.total = 0.0  # every validation's seconds, from its start to the next step
        self._began: float | None = None
        # Those of the fit, and their seconds: a sanity check's two batches, or a fine-tune's
        # validation before the fit with the fit's set-up after it, are not what one still due costs.
        self._of_the_fit = False
        self._count, self._seconds = 0, 0.0

    def started(self, now: float, of_the_fit: bool) -> None:
        self.latest = (now, now)
        self._began, self._of_the_fit = now, of_the_fit

    def loop_ended(self, now: float) -> None:
        """The loop is over; the callbacks' work at its end follows (it counts until the next step)."""
        self.latest = (self.latest[0], now)

    @property
    def underway(self) -> bool:
        """A validation started and no step since."""
        return self._began is not None

    def training_goes_on(self, now: float) -> None:
        """A step starts: the validation underway has ended."""
        assert self._began is not None
        took = now - self._began
        self.total += took
        if self._of_the_fit:
            self._count += 1
            self._seconds += took
        self._began = None

    def mean(self) -> float | None:
        """What one validation of the fit took, on average; None before the first."""
        return self._seconds / self._count if self._count else None


class TimeBudget(Callback):
    """Fixes trainer.max_steps so that training, final validation and saving end within `seconds`
    of `start` (default: run_start_time()). A configured max_steps stays an upper bound.
    With `seconds` None (budget_seconds=null, the default) it does nothing."""

    def __init__(
        self,
        seconds: float | None,
        output_dir: str | None = None,
        start: float | None = None,
        skip_steps: int = 5,
        calibration_steps: int = 30,
        reserve_seconds: float = RESERVE_SECONDS,
        check_fraction: float = 0.01,
        clock: Callable[[], float] = time.monotonic,
        sample_tokens: int = 0,
    ) -> None:
        seconds = budget_plan.checked_seconds(seconds)
        self.check_settings(skip_steps, calibration_steps, reserve_seconds, sample_tokens)
        self.active = seconds is not None
        self.seconds, self.clock = float(seconds or 0.0), clock
        self.start = budget_plan.run_start_time() if start is None else start
        self.deadline = self.start + self.seconds
        self.path = Path(output_dir) / BUDGET_FILE if output_dir else None
        self.skip_steps, self.calibration_steps = skip_steps, calibration_steps
        self.reserve_seconds, self.check_fraction = reserve_seconds, check_fraction
        self.sample_tokens = sample_tokens or 0  # the closing sample: it counts too
        self.check_every = 1  # steps between re-checks: about check_fraction of the budget
        self.planned_steps: int | None = None
        self.step_seconds: float | None = None
        self.final_seconds: float | None = None
        self.final_parts: dict[str, float] = {}
        self.final_seconds_now: float | None = None  # the end's estimate at the latest plan
        self._calibration_pace = 0.0
        self.replans = 0
        self._shown_plan: int | None = None  # the count the last INFO line gave
        self.auto: dict[str, Any] | None = None  # model=auto's choice and reasons, recorded as is
        self.before_resume: dict[str, Any] | None = None  # the interrupted run's budget.json, kept
        # Seconds of the budget that the launches before this one used, when they stopped before
        # the plan (their checkpoint's): this launch has only the rest of the budget.
        self.spent_before = 0.0
        self._first_step = 0  # this launch's first step: its first skip_steps are not timed either
        # (step, step time) where calibration's timing began; then those of the plan and of every
        # re-check since, the newest last: the windows the re-plans time (empty in a resumed run).
        self._calibration_start: tuple[int, float] | None = None
        self._marks: deque[tuple[int, float]] = deque()
        self._slow_since: float | None = None  # when the steps' current slow spell began (step time)
        self._cap = -1
        self._cap_setting = ""  # the setting that sets _cap (trainer.max_epochs=1), to name in the plan
        self._affordable: int | None = None  # the steps the budget bought at the latest plan, uncapped
        self._last_step_end = 0.0  # when the latest step ended: the final work is timed from it
        self._validations = ValidationTimes()
        self._train_end: dict[str, Any] = {}  # what on_train_end recorded: the record keeps it
        self._warned = False  # training and its final validation ended past the budget, said
        self._startup = 0.0  # seconds from the process's start to training's, in this launch: prices the exit

    @staticmethod
    def check_settings(skip_steps: object, calibration_steps: object, reserve_seconds: object,
                       sample_tokens: object) -> None:
        """What the constructor checks, and a run before it reads any data (run_checks)."""
        whole_number("skip_steps", skip_steps, low=0)
        whole_number("calibration_steps", calibration_steps, low=1)
        real_number("reserve_seconds", reserve_seconds, low=0)
        whole_number("sample_tokens", sample_tokens, low=0, optional=True)

    def count_from(self, start: float) -> None:
        """Move the budget's start (time.monotonic() seconds) to `start`."""
        self.start, self.deadline = start, start + self.seconds

    # --- checkpointed: a resumed run keeps the planned count -------------------------------------
    def state_dict(self) -> dict[str, Any]:
        if not self.active:
            return {}
        state = {"planned_steps": self.planned_steps, "step_seconds": self.step_seconds}
        if self.planned_steps is None:  # no plan yet: what the budget has used up to this checkpoint
            state["spent_seconds"] = round(self.clock() - self.start, 3)
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.planned_steps = state_dict.get("planned_steps")
        self.step_seconds = state_dict.get("step_seconds")
        spent = state_dict.get("spent_seconds")  # (absent from older checkpoints and planned runs)
        self.spent_before = float(spent) if isinstance(spent, (int, float)) and spent > 0 else 0.0

    @property
    def plan_step(self) -> int:
        """The step at which this launch plans: its first steps skipped, then the timed ones."""
        return self._first_step + max(1, self.skip_steps) + self.calibration_steps

    @property
    def ends_before_plan(self) -> bool:
        """Whether the run's step limit (a short epoch, a small trainer.max_steps) ends it before
        the budget has timed the steps it plans with: the budget then never sets the count."""
        return self.planned_steps is None and 0 < self._cap < self.plan_step

    @property
    def limited_by(self) -> str | None:
        """What ends the run: "budget_seconds", or the step limit that ends it first (as set:
        trainer.max_epochs=1); None while unknown (before the plan, and in a resumed launch, which
        trains to the count its first launch planned: that one's record says)."""
        if self.ends_before_plan:
            return self._cap_setting
        if self.planned_steps is None or self._affordable is None:
            return None
        return self._cap_setting if self.planned_steps == self._cap < self._affordable else "budget_seconds"

    @property
    def counts_down(self) -> bool:
        """Whether the time left to show is the budget's: this launch stops at a deadline, and no
        step limit ends it first (a budget of 1e9 s beside one epoch counted down 277777 hours)."""
        return self.limits_this_launch and self.limited_by in (None, "budget_seconds")

    @property
    def limits_this_launch(self) -> bool:
        """Whether this launch stops at a deadline: a resumed run trains to the count planned before,
        with no time limit of its own (`_calibration_pace` is only measured by a launch that plans)."""
        return self.active and (self.planned_steps is None or self._calibration_pace > 0)

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # A resumed run's count, before Lightning decides whether any step is left: a run that has
        # trained it all then trains nothing, as a finished run without a budget does, and its
        # record and the progress bar are not touched by a launch that did nothing.
        if self.active and self.planned_steps is not None:
            set_total_steps(trainer, self.planned_steps)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.active:
            return
        self._cap = trainer.max_steps
        if self.planned_steps is not None:  # resumed: same schedule as the interrupted run
            set_total_steps(trainer, self.planned_steps)
            if self.path is not None and self.before_resume is None:
                # Its plan and timings: this run's record goes on top, that one inside it (an
                # unreadable one, or one that holds no JSON object, is only not kept).
                self.before_resume = read_json_object(self.path) or None
            # The schedule (learning rate, the rates model=auto set) was fixed for that count: a
            # new plan would change the run, so this launch has no time limit of its own.
            planned_for = budget_plan.planned_budget(self.before_resume or {}) or self.seconds
            given = "" if planned_for == self.seconds else (
                f"budget_seconds={self.seconds:g} is not used: ")  # a new budget would be a new plan
            self.seconds = planned_for  # the record names the budget the steps were planned for
            log.log(logging.WARNING if given else logging.INFO,
                    "time budget: %sa resumed run trains on to the %d steps its %g s budget planned (now at "
                    "step %d), with no new time limit", given, self.planned_steps, planned_for,
                    trainer.global_step)
            return
        self.note_launch(trainer)
        before = ""
        if self.spent_before:
            # Resumed before its plan: the budget is the whole run's, so it counts from as far
            # before this process's start as the launches before it used (deadline included).
            self.count_from(self.start - self.spent_before)
            before = f", {self.spent_before:.1f} s of it by the launches before this resume"
        used = self.clock() - self.start
        self._startup = used - self.spent_before
        log.info("time budget: %.0f s %s (%.1f s used before training%s)", self.seconds,
                 "for the whole run" if before else "from process start", used, before)
        if used >= self.seconds:
            self._refuse(f"it was used up before training started ({used:.0f} s of start-up{before})", used)
        if self.ends_before_plan:
            log.info("time budget: %s ends the run at step %d, before the budget would plan (at step %d): "
                     "the budget does not limit it", self._cap_setting, self._cap, self.plan_step)

    def note_launch(self, trainer: L.Trainer) -> None:
        """This launch's step limit (and the setting that sets it) and first step, as training
        starts (before a plan): the plan reads them, and so does the progress bar, whose own
        on_train_start may come first."""
        self._cap, self._first_step = trainer.max_steps, trainer.global_step
        data = trainer.datamodule
        per_epoch = 0 if getattr(data, "train_ids", None) is None else epoch_steps(
            trainer, len(data.train_ids), data.batch_size, data.block_size)
        self._cap_setting = step_limit(trainer, per_epoch)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        if not self.active:
            return
        step, now = trainer.global_step, self.clock()
        self._last_step_end = now
        stepping = now - self._validations.total  # the clock without validations: what steps took
        if self.planned_steps is None:
            self._calibrate(trainer, pl_module, step, now, stepping)
        else:
            self._recheck(trainer, step, now, stepping)

    def _calibrate(self, trainer: L.Trainer, pl_module: L.LightningModule, step: int, now: float,
                   stepping: float) -> None:
        """Before the plan: time `calibration_steps` steps once the first ones are skipped, then plan
        the run's steps from their pace, or refuse a budget the run cannot end in."""
        # (One process: checked at every step. Several agree only at the plan, below.)
        skipped = self._first_step + self.skip_steps
        if trainer.world_size == 1 and now >= self.deadline and step < trainer.max_steps:
            # Calibration itself overran: the run cannot end in time, whatever it plans.
            steps_left = skipped + self.calibration_steps - step
            self._refuse(
                f"it ran out at step {step}, before calibration ended",
                (now - self.start) * (1 + max(0, steps_left) / max(1, step)),
            )
        start = self._calibration_start
        if step == skipped or (start is None and step > skipped):
            # first steps are slow (allocation, lazy init): not timed
            self._calibration_start = (step, stepping)
        elif start is not None and step - start[0] >= self.calibration_steps:
            pace = (stepping - start[1]) / (step - start[0])
            self.final_seconds = self.estimate_final_seconds(trainer, pl_module)
            now = self.clock()
            # What must fit: the closing sample need not, as it stops where the command must end
            # (closing_sample_deadline) and the plan takes it from the steps while they can pay.
            end = self.final_seconds - self.final_parts.get("closing_sample", 0.0) + self.reserve_seconds
            # Not even one more step and the final validation fit (rank 0's clock decides).
            if trainer.strategy.broadcast(now + pace + end > self.deadline, src=0):
                self._refuse(
                    f"start-up and calibration took {now - self.start:.0f} s and the final validation "
                    f"and saving need ~{end:.0f} s", now - self.start + pace + end,
                )
            self._plan(trainer, step, now, pace)
            self._marks = deque([(step, self.clock() - self._validations.total)])  # not the estimate's time
            every = max(1, round(self.check_fraction * self.seconds / self.step_seconds))
            self.check_every = int(trainer.strategy.broadcast(every, src=0))

    def _recheck(self, trainer: L.Trainer, step: int, now: float, stepping: float) -> None:
        """After the plan: about every `check_fraction` of the budget, plan the steps left again
        from the recent and the lasting pace."""
        if not self._marks or step >= trainer.max_steps or step == self._marks[-1][0]:
            return
        last_step, last_time = self._marks[-1]
        due = step - last_step >= self.check_every
        if trainer.world_size == 1:  # one process: also check by time, in case steps got far slower
            due = due or stepping - last_time >= self.check_fraction * self.seconds
        if not due:
            return
        # Re-plan from the lasting pace (the mean over the last LASTING_FRACTION of the budget): it
        # follows a lasting change of speed (either way) without overreacting to a short stall; a
        # burst that would overrun cuts at once (replan_pace). Lengthening waits until the recent
        # steps are no slower than the lasting pace: after a cut for a slowdown that lasts, the
        # lasting pace lags behind it, and lengthening by it undid the cut at the next re-check.
        recent = (stepping - last_time) / (step - last_step)
        lasting = self._lasting_pace(step, stepping)
        # How long the steps have been slower than the lasting pace, this window included.
        if recent <= lasting:
            self._slow_since = None
        elif self._slow_since is None:
            self._slow_since = last_time
        spell = 0.0 if self._slow_since is None else stepping - self._slow_since
        # The end's estimate follows the lasting change, not a burst.
        end = self._end_at(lasting, validations_due(trainer, step, trainer.max_steps))
        left = self.deadline - now
        last_stretch = left <= SHORTEN_ONLY_FRACTION * self.seconds
        replan = replan_pace(recent, lasting, trainer.max_steps - step, end, left, last_stretch, spell)
        before = self.planned_steps
        self._plan(trainer, step, now, replan.pace, end_pace=lasting, lengthen=replan.lengthen)
        if self.planned_steps != before:
            self.replans += 1
            if is_rank_zero():
                shown = replan_is_shown(self.planned_steps, self._shown_plan or before, replan.overrun)
                if shown:
                    self._shown_plan = self.planned_steps
                level = logging.INFO if shown else logging.DEBUG
                window = stepping - self._marks[0][1]
                # Before a second of marks, the lasting pace is the recent one: said once.
                lasting_text = f" ({1000 * lasting:.1f} over the last {window:.0f} s)" if window >= 1 else ""
                log.log(level, "time budget: %.1f ms/step lately%s, re-planned from %d to %d steps at "
                        "step %d", 1000 * recent, lasting_text, before, self.planned_steps, step)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.active:
            return
        now = self.clock()
        # What the end really took, in the estimate's parts: to check (and tune) the estimate.
        start, loop_end = self._validations.latest
        measured = {"validation": loop_end - start, "after_validation": now - loop_end}
        if start < self._last_step_end:  # no validation after the last step
            measured = {"after_last_step": now - self._last_step_end}
        self._train_end = {"train_end_seconds": round(now - self.start, 2), "final_step": trainer.global_step,
                           "final_seconds_measured": {k: round(v, 3) for k, v in measured.items()}}
        self._write(**self._train_end)
        if now > self.deadline and self._calibration_pace and is_rank_zero():  # (a resumed run has none)
            self._warned = True
            # Both what the steps and what the end took, against the plan: either may have run over.
            log.warning(
                "time budget exceeded: training and the final validation ended at %.1f s of "
                "budget_seconds=%g; the last steps took %.0f ms each (%.0f ms when the run planned), the "
                "end after them %.1f s (estimated %.1f s); other work on this machine slows a run",
                now - self.start, self.seconds, 1000 * (self.step_seconds or 0.0),
                1000 * self._calibration_pace, sum(measured.values()), self.final_seconds_now or 0.0)

    def exit_seconds(self) -> float:
        """What the process's exit is priced at: EXIT_SHARE_OF_STARTUP of this launch's start-up, as
        timed, scaled with the steps' slowdown since calibration (at the latest plan's pace)."""
        slowdown = self._slowdown(self.step_seconds) if self._calibration_pace and self.step_seconds else 1.0
        return EXIT_SHARE_OF_STARTUP * self._startup * slowdown

    def closing_sample_deadline(self) -> float | None:
        """When the closing sample stops (this clock's time) for the command to end inside the budget:
        its exit (exit_seconds()) still follows. None where this launch has no time limit of its own."""
        return self.deadline - self.exit_seconds() if self.limits_this_launch and self._train_end else None

    def command_ended(self, sample_seconds: float | None, cut: bool = False) -> None:
        """The command's work is done (its closing figures, and its closing sample of
        `sample_seconds`, None without one, `cut` where it stopped at closing_sample_deadline()):
        recorded, and a warning with the fix where it ended past the budget although training and its
        final validation did not (that end's warning says it)."""
        if not self.limits_this_launch or not self._train_end or not is_rank_zero():
            return
        now = self.clock()
        measured = dict(self._train_end["final_seconds_measured"])
        if sample_seconds is not None:
            measured["closing_sample"] = round(sample_seconds, 3)
        cut_note = {"closing_sample_cut": True} if cut else {}
        exit_seconds = self.exit_seconds()
        self._write(**(self._train_end | {"final_seconds_measured": measured,
                                          "work_end_seconds": round(now - self.start, 2),
                                          "exit_seconds_estimate": round(exit_seconds, 2)} | cut_note))
        # A sample that began in time and was cut at its deadline ended the command where the budget
        # ends it: its last character is drawn just after that reading, not a late end.
        began_in_time = now - (sample_seconds or 0.0) < self.deadline - exit_seconds
        if now <= self.deadline - exit_seconds or self._warned or (cut and began_in_time):
            return
        # Past the deadline, or too close to it to exit in time: the plan leaves the reserve after
        # the final validation's estimate, and this much more would have kept the command inside.
        over = now + exit_seconds - self.deadline
        after = now - self.start - self._train_end["train_end_seconds"]
        log.warning(
            "time budget exceeded: the command's work ended at %.1f s of budget_seconds=%g, with its exit "
            "(~%.1f s) still to come, %.1f s after training and its final validation ended; give the end "
            "more room: callbacks.time_budget.reserve_seconds=%g%s", now - self.start, self.seconds,
            exit_seconds, after, math.ceil(self.reserve_seconds + over), budget_plan.busy_advice())

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.active:
            of_the_fit = not trainer.sanity_checking and trainer.state.fn == TrainerFn.FITTING
            self._validations.started(self.clock(), of_the_fit)

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        if self.active and self._validations.underway:  # (the clock is read only then)
            self._validations.training_goes_on(self.clock())

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.active:
            self._validations.loop_ended(self.clock())

    def _plan(
        self, trainer: L.Trainer, step: int, now: float, pace: float, lengthen: bool = True,
        end_pace: float | None = None,
    ) -> None:
        """Fix max_steps from the step time `pace` (first plan), or re-plan it; the end's estimate
        is scaled to the step time `end_pace` (default: `pace`)."""
        first = self.planned_steps is None
        if first:
            self._calibration_pace = pace
        self.step_seconds = pace
        end_pace = end_pace or pace
        self.final_seconds_now = self._final_at(end_pace)
        # Validations due before the last step take their time too.
        steps = plan_steps_with_validations(
            step, now, self.deadline, pace, self.final_seconds_now + self.reserve_seconds,
            self._validation_at(end_pace), lambda last: validations_due(trainer, step, last),
        )
        affordable = self._affordable = steps
        if self._cap > 0:
            steps = min(steps, self._cap)
        if not first and not lengthen:
            steps = min(steps, self.planned_steps)
        # Every process must stop at the same step: rank 0's plan wins (its clock rules the budget).
        steps = int(trainer.strategy.broadcast(steps, src=0))
        if first:
            # The run ends before its budget: say so, or a budget looks used that is not.
            # Raising the other limit would change nothing: the one that ends the run is named.
            capped = (f" (its step limit, {self._cap_setting}; the budget would buy ~{affordable:,}: "
                      "raise it to use it)") if affordable > steps else ""
            log.info("time budget: %.1f ms/step, final validation and saving ~%.1f s: %d steps%s",
                     1000 * pace, self.final_seconds_now + self.reserve_seconds, steps, capped)
            self._shown_plan = steps
        if steps != self.planned_steps:
            self.planned_steps = steps
            set_total_steps(trainer, steps)
            self._write()

    def _lasting_pace(self, step: int, now: float) -> float:
        """Mean step time from the newest re-check at least LASTING_FRACTION of the budget ago (or
        from the plan) to (`step`, `now`), which becomes a re-check itself."""
        self._marks.append((step, now))
        while len(self._marks) > 2 and now - self._marks[1][1] >= LASTING_FRACTION * self.seconds:
            self._marks.popleft()
        first_step, first_time = self._marks[0]
        return (now - first_time) / (step - first_step)

    def _slowdown(self, pace: float) -> float:
        """How much slower than at calibration the host runs at step time `pace`: the end runs on
        the same machine as the steps, so a host that slowed down will validate more slowly too
        (up to four times). One that sped up is not trusted to stay fast until the end."""
        return min(max(pace / self._calibration_pace, 1.0), 4.0)

    def _final_at(self, pace: float) -> float:
        """The end's estimate at step time `pace`: the final validation, priced as one during training
        is (the run's own, as measured, where it has any), and the closing sample timed at the plan."""
        return self._validation_at(pace) + self.final_parts.get("closing_sample", 0.0) * self._slowdown(pace)

    def _end_at(self, pace: float, validations: int) -> float:
        """The end's estimate at step time `pace`, with `validations` more validations before it."""
        return self._final_at(pace) + validations * self._validation_at(pace)

    def _validation_at(self, pace: float) -> float:
        """What one validation takes at step time `pace`, its callbacks' work and checkpoints included:
        the mean of those measured during training (one alone swung a plan that had 25 still due by
        30%: a checkpoint written or not, a text sample), timed at the load of their moment; else
        the end's estimate without its closing sample, timed at the plan."""
        if (measured := self._validations.mean()) is not None:
            return measured
        assert self.final_seconds is not None
        return (self.final_seconds - self.final_parts.get("closing_sample", 0.0)) * self._slowdown(pace)

    def _refuse(self, why: str, needed: float) -> None:
        """Stop a run whose budget cannot hold its calibration and final validation, naming the
        smallest budget this model needs on this machine (as measured so far)."""
        minimum = budget_to_ask(needed)
        message = (
            f"budget_seconds={self.seconds:g} is too small for this model on this machine: {why}; "
            f"use budget_seconds={minimum} or more (start-up, {self.skip_steps + self.calibration_steps} "
            "calibration steps and the final validation must fit)"
        ) + ("" if self.auto is not None else ", or a smaller model")  # model=auto's is the smallest fit
        message += budget_plan.busy_advice()
        # What was measured stays on record (the parts of the end's estimate, if it was made).
        self._write(refused=message, used_seconds=round(self.clock() - self.start, 2))
        raise ConfigError(message)

    def estimate_final_seconds(self, trainer: L.Trainer, pl_module: L.LightningModule) -> float:
        """Seconds of what follows the last step: the final full validation (forwards of the split's
        first batch timed back to back at the load of the moment, times the batches, with
        VALIDATION_MARGIN),
        what the callbacks do at its end (each callback with a `validation_end_seconds(trainer,
        pl_module, clock)` method times its own work) and the closing sample of `sample_tokens`
        characters. The parts are kept in `final_parts` (budget.json).

        The forward is validation's own (`step_forward`: compiled with model.compile), in its
        precision context, on the split's real first and last batches: a compiled forward compiles
        again for eval mode, autocast, and the smaller last batch, tens of seconds each on a CPU,
        and here that happens before the plan rather than after the last step."""
        dm = trainer.datamodule
        try:
            loader = dm.val_dataloader()
            n_batches = validation_batches(trainer, len(loader))
            shape = (dm.val_batch_size, dm.block_size)
        except (AttributeError, TypeError):
            return 0.0
        batches = edge_batches(loader)
        if not batches:  # (another datamodule) random inputs of validation's batch size
            vocab = getattr(pl_module.model, "vocab_size", 2)
            batches = [(torch.randint(0, vocab, shape), torch.randint(0, vocab, shape))]
        if n_batches < len(loader):  # limit_val_batches: validation stops before the last batch
            batches = batches[:1]
        first, *rest = [tuple(t.to(pl_module.device) for t in b) for b in batches]
        forward = getattr(pl_module, "step_forward", pl_module.model)
        was_training = pl_module.training
        pl_module.eval()
        with torch.no_grad():
            with trainer.precision_plugin.val_step_context():
                batch = forward_seconds(forward, *first, clock=self.clock)  # all but the last are alike
                for last in rest:
                    forward(*last)
            parts = {"validation": VALIDATION_MARGIN * batch * n_batches}
            for callback in trainer.callbacks:
                if callable(timer := getattr(callback, "validation_end_seconds", None)):
                    parts[type(callback).__name__] = timer(trainer, pl_module, self.clock)
            if self.sample_tokens:
                parts["closing_sample"] = sampling_seconds(pl_module.model, self.sample_tokens, self.clock)
        pl_module.train(was_training)
        # Milliseconds: on a fast CPU a small model's validation takes under 5 ms, which
        # hundredths of a second would record as 0.
        self.final_parts = {name: round(seconds, 3) for name, seconds in parts.items()}
        return sum(parts.values())

    def summary(self) -> dict[str, Any]:
        fixed = [f"trainer.max_steps={self.planned_steps}", "budget_seconds=null"]
        if self.ends_before_plan:
            fixed = ["budget_seconds=null"]  # its step limit set the count: the same run without the budget
        rerun: str | None = " ".join(fixed)  # added to the run's command
        if self.planned_steps is None and not self.ends_before_plan:
            rerun = None  # stopped before the budget planned a step count: nothing to re-run with
        elif self.auto is not None and self.auto.get("rerun_with"):
            # model=auto needs a budget: the whole command, with the shape it chose instead
            replaced = tuple(f"{setting.split('=')[0]}=" for setting in fixed)  # only the settings fixed
            kept = [a for a in rerun_words(self.auto) if not a.startswith(replaced)]
            rerun = shell_words.join(kept + fixed)
        optional = {  # (absent where they do not apply)
            "limited_by": self.limited_by,
            "spent_before_resume": round(self.spent_before, 2) if self.spent_before else None,
            # The mean validation during training, which prices the end's once there is one.
            "validation_seconds_measured": None if (mean := self._validations.mean()) is None
            else round(mean, 3),
            "auto": self.auto,
            "before_resume": self.before_resume,
            # From the process's start to training's, in this launch: what the exit is priced from.
            "startup_seconds": round(self._startup, 2) if self._startup else None,
        }
        return {
            "budget_seconds": self.seconds,
            "planned_steps": self.planned_steps,
            "step_ms": round(1000 * self.step_seconds, 3) if self.step_seconds else None,
            "final_seconds_estimate": round(self.final_seconds, 2) if self.final_seconds else None,
            "final_seconds_parts": self.final_parts,
            "final_seconds_at_last_plan": round(self.final_seconds_now or 0.0, 2) or None,
            "reserve_seconds": self.reserve_seconds,
            "replans": self.replans,
            "rerun_with": rerun,
        } | {key: value for key, value in optional.items() if value is not None}

    def _write(self, **extra: Any) -> None:
        if self.path is not None and is_rank_zero():
            write_json_atomic(self.path, self.summary() | extra)
