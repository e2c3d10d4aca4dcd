"""Time-budgeted runs: the step count is planned from measured step times (an injected clock here),
the LR ends annealed at that step, and the count is recorded for re-runs and resumes."""

from __future__ import annotations

import contextlib
import itertools
import json
import re
import shlex
import time
from pathlib import Path
from types import SimpleNamespace

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader

from chargpt.cli import train
from chargpt.data import CharDataModule
from chargpt.errors import ConfigError
from chargpt.runs.train_on import how_to_train_on
from chargpt.training import CharLM, budget_plan
from chargpt.training.budget_plan import (
    edge_batches,
    plan_steps,
    plan_steps_with_validations,
    validation_batches,
)
from chargpt.training.callbacks import budget as budget_module
from chargpt.training.callbacks.budget import TimeBudget
from chargpt.training.callbacks.validate_at_end import ValidateAtEnd
from chargpt.training.steps import fix_total_steps
from conftest import run_cli, train_args


class FakeClock:
    """Advances by `tick` seconds on every reading; `tick` can be changed mid-run."""

    def __init__(self, tick: float) -> None:
        self.now, self.tick = 0.0, tick

    def __call__(self) -> float:
        self.now += self.tick
        return self.now


def test_plan_steps_leaves_room_for_the_end_of_the_run() -> None:
    # 80 s left after the 20 s of final work, at 0.5 s a step: 160 more steps.
    assert plan_steps(step=10, now=0.0, deadline=100.0, step_seconds=0.5, final_seconds=20.0) == 170
    # Out of time already: one more step, so the run still ends on its schedule.
    assert plan_steps(step=10, now=99.0, deadline=100.0, step_seconds=0.5, final_seconds=20.0) == 11


@pytest.mark.parametrize(("step", "every", "validation"),
                         [(0, 20, 1.0), (47, 20, 1.0), (0, 5, 0.2), (0, 500, 3.0)])
def test_a_plan_with_validations_due_is_the_most_steps_that_fit_with_them(
    step: int, every: int, validation: float
) -> None:
    # A run validating every 20 steps at ~1 s each (about what 20 steps took) was planned 87 steps
    # of the 350 its 40 s held: the validations were counted for the plan without them.
    def due(last: int) -> int:
        return max(0, (last - 1) // every - step // every)

    pace, final, deadline = 0.045, 3.0, 40.0
    planned = plan_steps_with_validations(step, 0.0, deadline, pace, final, validation, due)
    fits = [n for n in range(step + 1, 2000) if (n - step) * pace + due(n) * validation <= deadline - final]
    assert planned == max(fits)
    if every == 20:
        assert planned - step > 0.8 * (deadline - final) / (pace + validation / every)
    # No time left at all: one more step.
    assert plan_steps_with_validations(step, 39.0, deadline, pace, final, validation, due) == step + 1
    # Nothing due: the plan without validations.
    assert plan_steps_with_validations(step, 0.0, deadline, pace, final, validation, lambda _: 0) == \
        plan_steps(step, 0.0, deadline, pace, final)


def test_budget_must_be_positive() -> None:
    with pytest.raises(ConfigError):
        TimeBudget(0)


def fit_with_budget(
    corpus: Path, tmp_path: Path, clock: FakeClock, extra_callbacks: tuple = (), max_steps: int = 10_000,
    max_epochs: int | None = None, state: dict | None = None, **budget_kw,
) -> tuple:
    data = CharDataModule(
        str(corpus), block_size=16, batch_size=4, val_batch_size=64, cache_dir=str(tmp_path)
    )
    data.setup()
    module = CharLM(
        model={"n_layer": 1, "n_head": 2, "n_embd": 32, "block_size": 16},
        vocab=data.tokenizer.to_list(),
        optimizer={"_target_": "torch.optim.AdamW", "lr": 1e-2},
        scheduler={"_target_": "chargpt.training.schedules.WarmupStableDecay", "warmup_steps": 3},
    )
    budget = TimeBudget(start=0.0, clock=clock, output_dir=str(tmp_path), **budget_kw)
    if state is not None:  # a resume: the callback's state from the checkpoint
        budget.load_state_dict(state)
    trainer = L.Trainer(
        max_steps=max_steps, max_epochs=max_epochs, val_check_interval=10_000, check_val_every_n_epoch=None,
        callbacks=[ValidateAtEnd(), budget, *extra_callbacks],
        logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        num_sanity_val_steps=0, limit_val_batches=2, accelerator="cpu",
    )
    fix_total_steps(trainer, len(data.train_ids), data.batch_size, data.block_size)  # as a run's build does
    trainer.fit(module, datamodule=data)
    return trainer, budget


@pytest.mark.slow  # several seconds of training; the default run covers the mechanism
def test_budget_picks_the_step_count_and_anneals_at_it(corpus: Path, tmp_path: Path) -> None:
    clock = FakeClock(tick=0.02)  # one reading per step: 20 ms a step
    trainer, budget = fit_with_budget(
        corpus, tmp_path, clock, seconds=2.0, skip_steps=2, calibration_steps=10, reserve_seconds=0.5
    )
    # 20 ms a step, as re-planned: the time the end's estimate took is not counted as steps.
    assert budget.step_seconds == pytest.approx(0.02)
    assert 30 < budget.planned_steps < 75  # ~1.5 s of 20 ms steps, less the validation estimate
    assert trainer.global_step == budget.planned_steps == trainer.max_steps
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)  # annealed
    record = json.loads((tmp_path / "budget.json").read_text())
    assert record["planned_steps"] == budget.planned_steps == record["final_step"]
    assert record["rerun_with"] == f"trainer.max_steps={budget.planned_steps} budget_seconds=null"
    assert record["limited_by"] == "budget_seconds"
    assert budget.state_dict()["planned_steps"] == budget.planned_steps  # kept in checkpoints


class TickFrom(L.Callback):
    """From training step `step` on, the fake clock advances `tick` seconds a reading."""

    def __init__(self, clock: FakeClock, step: int, tick: float) -> None:
        self.clock, self.step, self.tick = clock, step, tick

    def on_train_batch_start(self, trainer: L.Trainer, *args) -> None:
        if trainer.global_step == self.step:
            self.clock.tick = self.tick


def test_a_step_limit_below_what_the_budget_buys_is_said_with_the_plan(
    corpus: Path, tmp_path: Path, caplog
) -> None:
    # budget_seconds=600 beside the default trainer.max_steps=3000 ended the run early, its plan line
    # reading as if the budget had set the steps.
    caplog.set_level("INFO", logger=budget_module.__name__)
    trainer, budget = fit_with_budget(corpus, tmp_path, FakeClock(tick=0.02), max_steps=20, seconds=2.0,
                                      skip_steps=2, calibration_steps=5, reserve_seconds=0.5)
    assert trainer.global_step == budget.planned_steps == 20
    [plan] = [r.getMessage() for r in caplog.records if "ms/step" in r.getMessage()]
    assert re.search(r": 20 steps \(its step limit, trainer.max_steps=20; the budget would buy "
                     r"~[\d,]+: raise it to use it\)$", plan), plan


def short_text(tmp_path: Path) -> Path:
    """A text of ~20 steps an epoch of 4 windows of 16 characters: an epoch ends before a plan."""
    corpus = tmp_path / "short.txt"
    corpus.write_text("the king and the queen of the night. " * 40)
    return corpus


def test_an_epoch_limit_below_what_the_budget_buys_is_named_as_the_one_to_raise(
    tmp_path: Path, caplog
) -> None:
    # budget_seconds=30 trainer.max_epochs=1 ended after one epoch, and the plan said to raise
    # trainer.max_steps, which changes nothing there.
    caplog.set_level("INFO", logger=budget_module.__name__)
    corpus = short_text(tmp_path)
    trainer, budget = fit_with_budget(corpus, tmp_path, FakeClock(tick=0.02), max_epochs=1, seconds=2.0,
                                      skip_steps=2, calibration_steps=5, reserve_seconds=0.5)
    epoch = trainer.global_step
    assert 10 < epoch == budget.planned_steps < 40
    assert budget.limited_by == "trainer.max_epochs=1" and not budget.counts_down  # (no 277777 h countdown)
    [plan] = [r.getMessage() for r in caplog.records if "ms/step" in r.getMessage()]
    assert re.search(rf": {epoch} steps \(its step limit, trainer.max_epochs=1; the budget would buy "
                     r"~[\d,]+: raise it to use it\)$", plan), plan


def test_a_step_limit_that_ends_the_run_before_the_plan_is_recorded_as_its_limit(
    tmp_path: Path, caplog
) -> None:
    # budget_seconds=1e9 trainer.max_epochs=1 on a small text ended its epoch before the budget
    # planned: budget.json had planned_steps null, and nothing said what had ended the run.
    caplog.set_level("INFO", logger=budget_module.__name__)
    corpus = short_text(tmp_path)
    trainer, budget = fit_with_budget(corpus, tmp_path, FakeClock(tick=0.02), max_epochs=1, seconds=1e9)
    epoch = trainer.global_step
    assert 10 < epoch < budget.plan_step and budget.planned_steps is None
    record = json.loads((tmp_path / "budget.json").read_text())
    assert record["planned_steps"] is None and record["final_step"] == epoch
    assert record["limited_by"] == "trainer.max_epochs=1"
    assert record["rerun_with"] == "budget_seconds=null"  # the same run: its epoch set the count
    assert not budget.counts_down  # the progress bar shows its estimate to the epoch's end
    assert (f"time budget: trainer.max_epochs=1 ends the run at step {epoch}, before the budget would plan "
            f"(at step 35): the budget does not limit it") in [r.getMessage() for r in caplog.records]


def test_budget_shortens_the_run_when_steps_slow_down(corpus: Path, tmp_path: Path, caplog) -> None:
    clock = FakeClock(tick=0.02)
    slow_down = TickFrom(clock, step=20, tick=0.1)  # the machine got busy: 5x slower from here
    trainer, budget = fit_with_budget(corpus, tmp_path, clock, extra_callbacks=(slow_down,), seconds=2.0,
                                      skip_steps=2, calibration_steps=10, reserve_seconds=0.5)
    assert budget.replans >= 1
    assert trainer.global_step == budget.planned_steps < 40
    assert budget.limited_by == "budget_seconds" and budget.counts_down
    # The end runs on the slowed machine too: its estimate grew with the step time.
    assert budget.final_seconds_now > 2 * budget.final_seconds
    assert clock.now < 2.0  # finished inside the (fake) budget
    assert not [r for r in caplog.records if "exceeded" in r.getMessage()]
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)


def test_a_run_that_ends_past_its_budget_says_so(corpus: Path, tmp_path: Path, caplog) -> None:
    clock = FakeClock(tick=0.02)
    stall = TickFrom(clock, step=40, tick=0.5)  # near the end, another job takes the machine
    caplog.set_level("INFO", logger=budget_module.__name__)
    fit_with_budget(corpus, tmp_path, clock, extra_callbacks=(stall,), seconds=2.0, skip_steps=2,
                    calibration_steps=10, reserve_seconds=0.5)
    assert clock.now > 2.0
    [warning] = [r for r in caplog.records if r.levelname == "WARNING"]
    assert re.fullmatch(r"time budget exceeded: training and the final validation ended at \d+\.\d s of "
                        r"budget_seconds=2; the last steps took \d+ ms each \(20 ms when the run planned\), "
                        r"the end after them \d+\.\d s \(estimated \d+\.\d s\); other work on this machine "
                        r"slows a run", warning.getMessage())


def test_a_command_whose_work_ends_past_its_budget_says_so_with_the_fix(
    corpus: Path, tmp_path: Path, caplog
) -> None:
    # Training and its final validation ended inside the budget; what followed them (the closing
    # sample on a busy host) ended the command 4.8 s past its 40 s, without a word.
    clock = FakeClock(tick=0.02)
    caplog.set_level("INFO", logger=budget_module.__name__)
    _, budget = fit_with_budget(corpus, tmp_path, clock, seconds=2.0, skip_steps=2, calibration_steps=10,
                                reserve_seconds=0.5)
    assert clock.now < 2.0 and not [r for r in caplog.records if r.levelname == "WARNING"]
    train_end = json.loads((tmp_path / "budget.json").read_text())["train_end_seconds"]
    clock.now += 1.5  # the closing sample
    budget.command_ended(sample_seconds=1.5)
    [warning] = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    ended = clock.now  # (the reading command_ended took)
    over = ended + budget.exit_seconds() - 2.0
    assert warning.startswith(
        f"time budget exceeded: the command's work ended at {ended:.1f} s of budget_seconds=2, with its "
        f"exit (~{budget.exit_seconds():.1f} s) still to come, {ended - train_end:.1f} s after training and "
        f"its final validation ended; give the end more room: callbacks.time_budget.reserve_seconds="
        f"{int(-(-(0.5 + over) // 1))}")
    record = json.loads((tmp_path / "budget.json").read_text())
    assert record["work_end_seconds"] == round(ended, 2) and record["train_end_seconds"] == train_end
    assert record["final_seconds_measured"]["closing_sample"] == 1.5
    assert "validation" in record["final_seconds_measured"]  # the end's parts are kept

    # Inside the budget, with room for the exit: no word.
    caplog.clear()
    clock.now = 2.0 - budget.exit_seconds() - 0.1
    budget.command_ended(sample_seconds=None)
    assert not [r for r in caplog.records if r.levelname == "WARNING"]

    # A closing sample cut where the budget ends the command (its last character drawn just after the
    # cut's reading) ended the command as planned: no word. It was told to raise reserve_seconds.
    clock.now = budget.closing_sample_deadline() - 0.6
    clock.now += 0.61  # the sample, stopped at its deadline
    budget.command_ended(sample_seconds=0.61, cut=True)
    assert not [r for r in caplog.records if r.levelname == "WARNING"]
    assert json.loads((tmp_path / "budget.json").read_text())["closing_sample_cut"] is True
    # Cut before it drew anything, where training's end left it no time: that is said.
    clock.now = budget.closing_sample_deadline() + 0.2
    budget.command_ended(sample_seconds=0.0, cut=True)
    assert [r for r in caplog.records if r.levelname == "WARNING"]


@pytest.mark.parametrize(("startup", "exit_at_least", "exit_at_most"), [(2.7, 0.2, 0.9), (20.0, 2.1, 4.0)])
def test_the_exit_is_priced_from_the_runs_own_startup(
    corpus: Path, tmp_path: Path, startup: float, exit_at_least: float, exit_at_most: float
) -> None:
    # 1 s was kept for the exit whatever the machine: it took 0.2 s after a quiet start-up of 2.7 s,
    # and 1.4-2.1 s under a load of 19-30 (whose start-ups took several times as long), past the 1 s.
    clock = FakeClock(tick=0.02)
    clock.now = startup  # the process started at 0: imports and data took this long
    _, budget = fit_with_budget(corpus, tmp_path, clock, seconds=startup + 2.0, skip_steps=2,
                                calibration_steps=10, reserve_seconds=0.5)
    kept = budget.deadline - budget.closing_sample_deadline()
    assert exit_at_least <= kept <= exit_at_most
    budget.command_ended(sample_seconds=None)
    assert json.loads((tmp_path / "budget.json").read_text())["exit_seconds_estimate"] == round(kept, 2)


def test_a_command_is_told_past_its_budget_once(corpus: Path, tmp_path: Path, caplog) -> None:
    # Training itself ended past the budget, and said so: the command's end does not say it again.
    clock = FakeClock(tick=0.02)
    stall = TickFrom(clock, step=40, tick=0.5)
    caplog.set_level("INFO", logger=budget_module.__name__)
    _, budget = fit_with_budget(corpus, tmp_path, clock, extra_callbacks=(stall,), seconds=2.0, skip_steps=2,
                                calibration_steps=10, reserve_seconds=0.5)
    budget.command_ended(sample_seconds=None)
    assert len([r for r in caplog.records if r.levelname == "WARNING"]) == 1
    # The closing sample had no time left: it stops at once.
    assert budget.closing_sample_deadline() == pytest.approx(2.0 - budget.exit_seconds())


def test_the_closing_sample_stops_where_the_budget_ends_the_command(capsys) -> None:
    from omegaconf import OmegaConf

    class Endless:
        def stream(self, prompt: str, **settings):
            yield from itertools.cycle("ab")

    clock = FakeClock(tick=0.1)  # one reading before each character
    options = OmegaConf.create({"prompt": "Hi, ça va? 🙂", "max_new_tokens": 300, "temperature": 0.8,
                                "top_k": None, "seed": 7})
    assert train.print_sample(Endless(), options, "Hi, ça va? 🙂", "my runs/r1", stop_at=0.55, clock=clock)
    out, err = capsys.readouterr()
    assert out.endswith("Hi, ça va? 🙂ababa\n")  # the readings at 0.1 to 0.5 drew five characters
    assert err == ("note: the closing sample stopped after 5 characters, where the time budget ends the "
                   "command; draw it whole with: chargpt-sample 'ckpt_path=my runs/r1' "
                   "'prompt=Hi, ça va? 🙂' max_new_tokens=300 temperature=0.8 seed=7\n")


def test_a_closing_sample_drawn_whole_as_the_deadline_passes_is_not_called_cut(capsys) -> None:
    from omegaconf import OmegaConf

    class Short:  # a sample of max_new_tokens characters, as the trained model streams it
        def stream(self, prompt: str, max_new_tokens: int, **settings):
            yield from "abcde"[:max_new_tokens]

    clock = FakeClock(tick=0.1)  # one reading before each character
    options = OmegaConf.create({"prompt": "Hi", "max_new_tokens": 5, "temperature": 0.8, "seed": 7})
    # The fifth character is drawn after the reading at 0.5; the next reading (0.6) is past the deadline.
    assert not train.print_sample(Short(), options, "Hi", "my runs/r1", stop_at=0.55, clock=clock)
    out, err = capsys.readouterr()
    assert out.endswith("Hiabcde\n")
    assert err == ""  # the whole sample: no note that it stopped


def test_a_samples_estimate_is_timed_on_a_real_draw_with_its_cache_restarts() -> None:
    from chargpt.model import ModelConfig, build_model
    from chargpt.model.sampling import iter_tokens

    class ModelClock:  # moved only by the model: each forward costs 1 ms a character it reads
        now = 0.0

        def __call__(self) -> float:
            return self.now

    clock = ModelClock()
    model = build_model(ModelConfig(n_layer=1, n_head=2, n_embd=16, block_size=16), 10).eval()

    def costs(module: torch.nn.Module, args: tuple) -> None:
        clock.now += 0.001 * args[0].shape[1]
    model.register_forward_pre_hook(costs)
    estimate = budget_plan.sampling_seconds(model, 300, clock)
    began = clock.now
    for _ in iter_tokens(model, torch.zeros(1, 1, dtype=torch.long), 300):
        pass
    took = clock.now - began
    # Past the context the cache restarts with half a window re-read: a character costs ~1.75 ms, not
    # the 1 ms of one character's forward timed alone, which priced the sample below what it took.
    assert took > 1.5 * 0.001 * 300
    assert took <= estimate <= 1.1 * budget_plan.SAMPLING_MARGIN * took


def test_resumed_budget_run_keeps_its_planned_steps(corpus: Path, tmp_path: Path, caplog) -> None:
    earlier = {"planned_steps": 37, "final_seconds_estimate": 1.5, "replans": 4, "final_step": None}
    (tmp_path / "budget.json").write_text(json.dumps(earlier))  # the interrupted run's record
    budget = TimeBudget(10.0, output_dir=str(tmp_path), start=0.0, clock=FakeClock(0.01))
    budget.load_state_dict({"planned_steps": 37, "step_seconds": 0.02})
    caplog.set_level("INFO", logger=budget_module.__name__)

    class Trainer:
        max_steps = 10_000
        global_step = 12

        class fit_loop:  # mirrors Lightning's attribute path
            class epoch_loop:
                max_steps = 10_000

    budget.on_train_start(Trainer, torch.nn.Module())
    assert Trainer.fit_loop.epoch_loop.max_steps == 37
    # Said as it is: the count is trained to its end, the budget's seconds are not this launch's limit.
    assert [r.getMessage() for r in caplog.records] == [
        "time budget: a resumed run trains on to the 37 steps its 10 s budget planned (now at step 12), "
        "with no new time limit"]
    budget._write(final_step=37)
    record = json.loads((tmp_path / "budget.json").read_text())
    assert record["planned_steps"] == 37 and record["final_step"] == 37
    assert record["before_resume"] == earlier  # its plan and timings are not lost

    # Resumed with another budget_seconds: it is not used, and said so (the record kept the typed one).
    (tmp_path / "budget.json").write_text(json.dumps({**earlier, "budget_seconds": 40.0}))
    budget = TimeBudget(20.0, output_dir=str(tmp_path), start=0.0, clock=FakeClock(0.01))
    budget.load_state_dict({"planned_steps": 37, "step_seconds": 0.02})
    caplog.clear()
    budget.on_train_start(Trainer, torch.nn.Module())
    [warning] = [r for r in caplog.records if r.levelname == "WARNING"]
    assert warning.getMessage().startswith("time budget: budget_seconds=20 is not used: a resumed run trains "
                                           "on to the 37 steps its 40 s budget planned")
    budget._write(final_step=37)
    assert json.loads((tmp_path / "budget.json").read_text())["budget_seconds"] == 40.0

    # A record that holds no JSON object (edited by hand) crashed the resume; it is only not kept.
    (tmp_path / "budget.json").write_text("[1, 2]")
    budget = TimeBudget(10.0, output_dir=str(tmp_path), start=0.0, clock=FakeClock(0.01))
    budget.load_state_dict({"planned_steps": 37, "step_seconds": 0.02})
    budget.on_train_start(Trainer, torch.nn.Module())
    budget._write(final_step=37)
    assert "before_resume" not in json.loads((tmp_path / "budget.json").read_text())


def test_a_run_resumed_before_its_plan_plans_with_what_is_left_of_the_budget(
    corpus: Path, tmp_path: Path, caplog
) -> None:
    # budget_seconds=60 stopped by Ctrl-C before its plan (the first ~35 steps) got a whole new 60 s
    # on its resume: the run as a whole could pass its budget.
    first = TimeBudget(2.0, start=0.0, clock=FakeClock(tick=0.8))
    state = first.state_dict()  # its checkpoint, 0.8 s into the budget, before any plan
    assert state == {"planned_steps": None, "step_seconds": None, "spent_seconds": 0.8}
    caplog.set_level("INFO", logger=budget_module.__name__)
    clock = FakeClock(tick=0.02)
    trainer, budget = fit_with_budget(corpus, tmp_path, clock, state=state, seconds=2.0, skip_steps=2,
                                      calibration_steps=10, reserve_seconds=0.5)
    assert trainer.global_step == budget.planned_steps
    assert 0.8 + clock.now < 2.0  # both launches together end inside the budget
    record = json.loads((tmp_path / "budget.json").read_text())
    assert record["spent_before_resume"] == 0.8
    assert 0.8 < record["train_end_seconds"] < 2.0  # counted from the first launch's start
    [start] = [r.getMessage() for r in caplog.records
               if r.name == budget_module.__name__ and "used" in r.getMessage()]
    assert start == ("time budget: 2 s for the whole run (0.8 s used before training, 0.8 s of it by the "
                     "launches before this resume)")
    # A second stop before the plan would keep both launches' seconds.
    assert TimeBudget(2.0, start=0.0, clock=lambda: 0.5).state_dict()["spent_seconds"] == 0.5


@pytest.mark.slow
def test_budget_lengthens_for_a_faster_host_but_keeps_the_end_estimate(corpus: Path, tmp_path: Path) -> None:
    clock = FakeClock(tick=0.02)
    speed_up = TickFrom(clock, step=20, tick=0.01)  # the other job ended: 2x faster from here
    trainer, budget = fit_with_budget(corpus, tmp_path, clock, extra_callbacks=(speed_up,), seconds=2.0,
                                      skip_steps=2, calibration_steps=10, reserve_seconds=0.5)
    assert budget.step_seconds < 0.02 and trainer.global_step == budget.planned_steps > 75
    # Not trusted to stay fast until the end: the end is still priced at calibration's speed.
    assert budget.final_seconds_now == budget.final_seconds
    assert clock.now < 2.0


@pytest.mark.slow
def test_budget_follows_the_host_back_after_a_slow_spell(corpus: Path, tmp_path: Path) -> None:
    clock = FakeClock(tick=0.02)
    spell = (TickFrom(clock, step=20, tick=0.1), TickFrom(clock, step=30, tick=0.02))  # 10 slow steps
    trainer, budget = fit_with_budget(corpus, tmp_path, clock, extra_callbacks=spell, seconds=4.0,
                                      skip_steps=2, calibration_steps=10, reserve_seconds=0.5)
    # The last plans ran at the host's speed again: the spell (1 s of a 4 s budget) had left the
    # pace they used (a mean since calibration would still count it: ~0.025 s a step) ...
    assert budget.step_seconds == pytest.approx(0.02, rel=0.02)
    # ... and the end is priced at that speed, not scaled up by the spell.
    assert budget.final_seconds_now == pytest.approx(budget.final_seconds)
    assert trainer.global_step == budget.planned_steps
    assert 3.2 < clock.now < 4.0


@pytest.mark.slow
def test_a_short_stall_costs_its_own_time_not_the_rest_of_the_run(corpus: Path, tmp_path: Path) -> None:
    # One busy second on a shared host (a few steps 5x slower): the re-check planned every step
    # left at the stall's pace, cut the run to a fraction of its budget, and the run ended there,
    # before the host, back at speed, was seen again (a 100 s run ended at 65 s). A slow spell is
    # expected to last as long again as it has lasted: it costs about its own time.
    clock = FakeClock(tick=0.02)
    # Re-checked every 5% of the budget (10 steps at 20 ms, as a 100 s run re-checks every 33 steps).
    stall = (TickFrom(clock, step=80, tick=0.25), TickFrom(clock, step=82, tick=0.02))  # 0.5 s
    trainer, budget = fit_with_budget(corpus, tmp_path, clock, extra_callbacks=stall, seconds=4.0,
                                      skip_steps=2, calibration_steps=10, reserve_seconds=0.5,
                                      check_fraction=0.05)
    assert trainer.global_step == budget.planned_steps
    assert 3.2 < clock.now < 4.0, clock.now  # it used its budget, and kept inside it


class PlanRecorder(L.Callback):
    """Records the planned count after every step."""

    def __init__(self) -> None:
        self.plans: list[int] = []

    def on_train_batch_end(self, trainer: L.Trainer, *args) -> None:
        self.plans.append(trainer.max_steps)


class Jitter(PlanRecorder):
    """The host's jitter: steps alternate between `slow` and `fast` seconds, `every` steps each."""

    def __init__(self, clock: FakeClock, slow: float, fast: float, every: int) -> None:
        super().__init__()
        self.clock, self.slow, self.fast, self.every = clock, slow, fast, every

    def on_train_batch_start(self, trainer: L.Trainer, *args) -> None:
        self.clock.tick = self.slow if (trainer.global_step // self.every) % 2 == 0 else self.fast


@pytest.mark.slow
def test_jittery_steps_do_not_swing_the_plan(corpus: Path, tmp_path: Path) -> None:
    # Steps at 22 and 18 ms in turn, two each: every re-check (every 2 steps) sees one or the
    # other, ~10% either side of the lasting 20 ms. Cutting for each slow window (it would overrun
    # by a few steps) and lengthening at the next swung the count by ~8% at every re-check; now
    # the slow windows are left to the lasting pace.
    clock = FakeClock(tick=0.02)
    jitter = Jitter(clock, slow=0.022, fast=0.018, every=2)
    trainer, budget = fit_with_budget(corpus, tmp_path, clock, extra_callbacks=(jitter,), seconds=4.0,
                                      skip_steps=2, calibration_steps=10, reserve_seconds=0.05)
    plans = [p for p in jitter.plans if p < 10_000]  # from the first plan on
    plans = [p for i, p in enumerate(plans) if i == 0 or p != plans[i - 1]]  # each change once
    # Once the lasting pace spans a few windows, it moves the count by a step or two at most
    # (before, each re-check cut it by ~8% or restored it).
    settled = plans[4:]
    assert max((abs(b - a) for a, b in itertools.pairwise(settled)), default=0) <= 0.02 * plans[0], plans
    assert trainer.global_step == budget.planned_steps and clock.now < 4.0


@pytest.mark.slow
def test_a_lasting_slowdown_only_shortens_the_plan(corpus: Path, tmp_path: Path) -> None:
    # 1.5x slower from half the budget on, to the end. The burst cut comes at once; the lasting
    # pace then lags behind the recent one for a quarter of the budget, and lengthening by it
    # undid the cut at every other re-check (the count swung up and down).
    clock = FakeClock(tick=0.02)
    slow_down, recorder = TickFrom(clock, step=90, tick=0.03), PlanRecorder()
    trainer, budget = fit_with_budget(corpus, tmp_path, clock, extra_callbacks=(slow_down, recorder),
                                      seconds=4.0, skip_steps=2, calibration_steps=10, reserve_seconds=0.05)
    after = recorder.plans[90:]
    assert after[-1] < after[0]  # the slowdown cut the plan ...
    assert all(b <= a for a, b in itertools.pairwise(after)), after  # ... and it never grew back
    assert trainer.global_step == budget.planned_steps and clock.now < 4.0


@pytest.mark.slow  # a 10 s budget; the in-process budget tests cover planning by default
def test_cli_budget_run_records_the_count(corpus: Path, tmp_path: Path, monkeypatch) -> None:
    # A budget counts from the process start; here, from the call (pytest started long ago).
    monkeypatch.setattr(budget_plan, "run_start_time", time.monotonic)
    args = _ten_second_budget(corpus, tmp_path)
    assert run_cli(train.main, *args) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    record = json.loads((tmp_path / "budget.json").read_text())
    assert metrics["step"] == metrics["max_steps"] == record["planned_steps"] < 100000
    # The TensorBoard sample and the attention picture, timed at the plan (no closing sample).
    assert set(record["final_seconds_parts"]) == {"validation", "SampleText", "AttentionMaps"}
    assert all(seconds > 0 for seconds in record["final_seconds_parts"].values())
    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    state = next(v for k, v in ckpt["callbacks"].items() if k.startswith("TimeBudget"))
    assert state["planned_steps"] == record["planned_steps"]


def _ten_second_budget(corpus: Path, run_dir: Path) -> list[str]:
    return train_args(
        corpus, run_dir, "budget_seconds=10", "scheduler=wsd", "scheduler.warmup_steps=2",
        # A short calibration: a budget that cannot hold it is refused (slow or busy machines).
        "callbacks.time_budget.skip_steps=1", "callbacks.time_budget.calibration_steps=3",
        "trainer.max_steps=100000", "trainer.val_check_interval=100000", "+trainer.limit_val_batches=4",
        "sample.max_new_tokens=0",
    )


@pytest.mark.slow  # a 10 s budget, then its resume and a run on
def test_a_finished_budgeted_run_resumed_says_how_to_train_on_and_keeps_its_record(
    corpus: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    monkeypatch.setattr(budget_plan, "run_start_time", time.monotonic)
    args = _ten_second_budget(corpus, tmp_path)
    assert run_cli(train.main, *args) == 0
    record = (tmp_path / "budget.json").read_text()
    planned = json.loads(record)["planned_steps"]
    capsys.readouterr()
    # The budget's count stands on a resume: a larger trainer.max_steps trained nothing, and the advice
    # to pass one was followed in a loop. It also rewrote budget.json with that launch's settings and
    # an "after_last_step" of the clock's whole reading, and showed a bar toward 100000 steps.
    resume = [a for a in args if not a.startswith("hydra.run.dir=")]
    assert run_cli(train.main, *resume, "trainer.max_steps=200000", f"ckpt_path={tmp_path}") == 0
    said = "".join(capsys.readouterr())
    assert (tmp_path / "budget.json").read_text() == record
    assert "found no logged value" not in said and "/100000" not in said
    [line] = [x for x in said.splitlines() if "nothing left to train" in x]
    assert f"the {planned} steps its time budget planned, which a resume keeps" in line
    command = line.split(f"with STEPS above {planned}: ", 1)[1]
    command = command.removesuffix(" (this launch's settings are not kept)")
    words = shlex.split(command)
    assert words[0] == "chargpt-train" and "budget_seconds=null" in words and f"ckpt_path={tmp_path}" in words
    # The printed command trains on.
    more = [w.replace("=STEPS", f"={planned + 3}") for w in words[1:]]
    assert run_cli(train.main, *more) == 0
    assert json.loads((tmp_path / "metrics.json").read_text())["step"] == planned + 3


def test_a_finished_model_auto_run_is_told_to_train_on_with_its_command_line_as_typed(
    tmp_path: Path, monkeypatch
) -> None:
    # model=auto's record holds its first launch's command line as typed there: a prompt's own
    # quotes are part of it, and a relative path is relative to where that launch was made.
    launched = tmp_path / "launched here"
    (tmp_path / "run" / ".hydra").mkdir(parents=True)
    (tmp_path / "run" / ".hydra" / "hydra.yaml").write_text(
        json.dumps({"hydra": {"runtime": {"cwd": str(launched)}}}))
    budget = TimeBudget(60)
    budget.planned_steps = 120
    budget.auto = {"rerun_with": shlex.join([
        "chargpt-train", "sample.prompt='a, b'", "data=text", "data.path=my notes.txt", "model.n_layer=3",
        "trainer.max_steps=1000000", "budget_seconds=60"])}
    monkeypatch.setenv("WANDB_MODE", "offline")
    told = how_to_train_on(SimpleNamespace(callbacks=[budget]), str(tmp_path / "run"))
    command = told.split("with STEPS above 120: ", 1)[1]
    assert command.startswith("WANDB_MODE=offline chargpt-train ")  # as the run logged: not online
    words = shlex.split(command.removeprefix("WANDB_MODE=offline "))
    assert words[1:] == ["sample.prompt='a, b'", "data=text", f"data.path={launched / 'my notes.txt'}",
                         "model.n_layer=3", "budget_seconds=null", "trainer.max_steps=STEPS",
                         f"ckpt_path={tmp_path / 'run'}"]


def test_cpu_100s_preset_is_budgeted_and_validates_only_at_the_end() -> None:
    from hydra import compose, initialize_config_dir

    from chargpt.cli import CONFIG_PATH

    with initialize_config_dir(config_dir=CONFIG_PATH, version_base="1.3"):
        cfg = compose(config_name="train", overrides=["experiment=cpu_100s"])
    assert cfg.budget_seconds == 100
    assert cfg.scheduler._target_.endswith("WarmupStableDecay") and cfg.scheduler.min_lr_ratio == 0.0
    assert cfg.trainer.val_check_interval >= cfg.trainer.max_steps


@pytest.mark.parametrize(
    ("seconds", "why"),
    [(0.4, "the final validation and saving need"), (0.1, "before calibration ended")],
)
def test_budget_too_small_to_calibrate_is_refused(corpus: Path, tmp_path: Path, seconds, why) -> None:
    # 20 ms a step: 12 steps of calibration take ~0.25 s, leaving no room for the final work at
    # 0.4 s; at 0.1 s the budget runs out before calibration ends.
    clock = FakeClock(tick=0.02)
    with pytest.raises(ConfigError) as refused:
        fit_with_budget(
            corpus, tmp_path, clock, seconds=seconds, skip_steps=2, calibration_steps=10, reserve_seconds=0.5
        )
    message = str(refused.value)
    assert f"budget_seconds={seconds:g} is too small for this model on this machine" in message
    assert why in message
    minimum = int(message.split("use budget_seconds=")[1].split()[0])
    assert minimum > seconds
    assert clock.now < 1.0  # stopped at once, not after the budget's overrun
    assert ("other work is running" in message) == (budget_plan.other_work() is not None)
    record = json.loads((tmp_path / "budget.json").read_text())  # what was measured stays on record
    assert record["refused"] == message and record["used_seconds"] > 0
    assert ("validation" in record["final_seconds_parts"]) == (why == "the final validation and saving need")


def test_a_closing_sample_that_cannot_fit_is_cut_not_refused(
    corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The closing sample stops where the command must end: a budget that holds the calibration and
    # the final validation, but not a long sample, runs (its sample cut) rather than being refused
    # for the sample's seconds ("the final validation and saving need ~6 s").
    monkeypatch.setattr(budget_module, "sampling_seconds", lambda *args: 5.0)
    clock = FakeClock(tick=0.02)
    trainer, budget = fit_with_budget(corpus, tmp_path, clock, seconds=2.0, skip_steps=2,
                                      calibration_steps=10, reserve_seconds=0.5, sample_tokens=2000)
    assert budget.final_parts["closing_sample"] == 5.0
    assert trainer.global_step == budget.planned_steps == budget.plan_step + 1  # one more step: all it had
    assert budget.closing_sample_deadline() is not None
    assert "refused" not in json.loads((tmp_path / "budget.json").read_text())


def test_other_work_on_the_machine_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    # A refused budget on a busy machine advised only more seconds; the steps had slowed beside
    # other work, so the advice swung from run to run (35 s, then 60 s).
    monkeypatch.setattr(budget_plan.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(budget_plan.torch, "get_num_threads", lambda: 2)
    started = time.monotonic() - 600  # a run long under way: its two threads are all in the average
    monkeypatch.setattr(budget_plan, "process_start_time", lambda: started)
    monkeypatch.setattr(budget_plan.os, "getloadavg", lambda: (2.4, 2.0, 2.0))
    assert budget_plan.other_work() is None  # this run's own two threads
    monkeypatch.setattr(budget_plan.os, "getloadavg", lambda: (4.5, 3.0, 2.0))
    assert budget_plan.other_work() == "load 4.5 on 2 cores, this run's 2 threads included"
    # 10 s into a run, the one-minute average holds a sixth of its threads: a load of 2 is other work
    # (two busy processes), which subtracting both threads had hidden.
    started = time.monotonic() - 10
    monkeypatch.setattr(budget_plan.os, "getloadavg", lambda: (1.97, 1.0, 0.5))
    assert budget_plan.other_work() == "load 2.0 on 2 cores, this run's 2 threads included"
    assert budget_plan.busy_advice().endswith(": run alone, or with threads=1 beside another")
    # A run with threads=1 was told "this run's 1 threads" and to use the threads=1 it had.
    monkeypatch.setattr(budget_plan.torch, "get_num_threads", lambda: 1)
    assert budget_plan.busy_advice() == ("; other work is running on this machine (load 2.0 on 2 cores, this "
                                         "run's 1 thread included): run alone")


@pytest.mark.slow  # a budgeted run; test_budget_shortens_the_run_when_steps_slow_down re-plans by default
def test_every_replan_is_logged(corpus: Path, tmp_path: Path, caplog) -> None:
    clock = FakeClock(tick=0.02)

    class SpeedChanges(L.Callback):
        def on_train_batch_start(self, trainer: L.Trainer, *args) -> None:
            if trainer.global_step == 20:
                clock.tick = 0.01  # faster: the run is lengthened (not only shortened)

    original = L.Trainer.__init__

    def with_change(self, *args, callbacks=(), **kwargs):
        original(self, *args, callbacks=[*callbacks, SpeedChanges()], **kwargs)

    caplog.set_level("DEBUG", logger=budget_module.__name__)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(L.Trainer, "__init__", with_change)
        _, budget = fit_with_budget(
            corpus, tmp_path, clock, seconds=2.0, skip_steps=2, calibration_steps=10, reserve_seconds=0.5
        )
    replans = [r for r in caplog.records if "re-planned" in r.getMessage()]
    assert budget.replans >= 1 and len(replans) == budget.replans
    assert json.loads((tmp_path / "budget.json").read_text())["replans"] == budget.replans
    # On the terminal (INFO) only the moves of 2% or more since the last count shown (the first
    # plan's, at first): the speed-up is one, the small corrections after it are not.
    counts = [tuple(map(int, re.search(r"from (\d+) to (\d+)", r.getMessage()).groups())) for r in replans]
    shown = [r for r in replans if r.levelname == "INFO"]
    assert shown and len(shown) < len(replans)
    last = counts[0][0]
    for (_, after), record in zip(counts, replans, strict=True):
        if record.levelname == "INFO":
            assert abs(after - last) >= budget_plan.REPLAN_LOG_CHANGE * last
            last = after
        else:
            assert record.levelname == "DEBUG" and abs(after - last) < budget_plan.REPLAN_LOG_CHANGE * last


def test_a_slow_drift_is_shown_every_2_percent_and_an_overrun_cut_always() -> None:
    shown_at, last = [], 1000  # the first plan's count, shown at INFO
    for planned in range(995, 699, -5):  # 0.5% a re-plan: each alone too small to show
        if budget_plan.replan_is_shown(planned, last, overrun=False):
            shown_at.append(planned)
            last = planned
    assert shown_at[:3] == [980, 960, 940] and shown_at[-1] >= 700 and len(shown_at) >= 14
    assert budget_plan.replan_is_shown(999, 1000, overrun=True)
    assert not budget_plan.replan_is_shown(999, 1000, overrun=False)


def test_a_re_check_cuts_at_once_only_for_a_burst_that_overruns_by_a_fifth_of_the_time_left() -> None:
    replan = budget_plan.replan_pace
    # 100 s left, 10 s of end, 900 steps planned at 0.1 s: on time at the lasting pace.
    jitter = replan(recent=0.11, lasting=0.1, steps_left=900, end_seconds=10, left=100, last_stretch=False)
    assert jitter == (0.1, False, False)  # 9 s over (< 20 s): the lasting pace, no lengthening
    burst = replan(recent=0.125, lasting=0.1, steps_left=900, end_seconds=10, left=100, last_stretch=False)
    assert burst == (0.125, False, True)  # 22.5 s over: cut at the recent pace
    late = replan(recent=0.101, lasting=0.1, steps_left=900, end_seconds=10, left=100, last_stretch=True)
    assert late == (0.101, False, True)  # the last stretch: any overrun cuts, and nothing lengthens
    faster = replan(recent=0.09, lasting=0.1, steps_left=900, end_seconds=10, left=100, last_stretch=False)
    assert faster == (0.1, True, False)  # faster steps: the plan may grow, at the lasting pace
    assert not replan(0.09, 0.1, 900, 10, 100, last_stretch=True).lengthen
    # A slow spell is priced as lasting as long again as it has lasted: 2 s at 5x slower costs
    # ~1.6 s, inside the lasting pace's margin; at every step left it was 360 s over, and cut.
    stall = replan(recent=0.5, lasting=0.1, steps_left=900, end_seconds=10, left=100, last_stretch=False,
                   spell_seconds=2)
    assert stall == (0.1, False, False)
    # A spell that has gone on for 60 s is priced 60 s more: 48 s over, cut at that price.
    spell = replan(recent=0.5, lasting=0.1, steps_left=900, end_seconds=10, left=100, last_stretch=False,
                   spell_seconds=60)
    assert spell.overrun and spell.pace == pytest.approx((120 * 0.5 + 780 * 0.1) / 900)
    # In the last stretch the recent pace prices every step left, whatever the spell's length.
    assert replan(0.5, 0.1, 900, 10, 100, last_stretch=True, spell_seconds=2).pace == 0.5


class CostlyAtValidationEnd(L.Callback):
    """A callback whose work at the end of validation takes 0.4 s of the budget's clock."""

    def __init__(self) -> None:
        self.clocks: list = []

    def validation_end_seconds(self, trainer: L.Trainer, pl_module: L.LightningModule, clock) -> float:
        self.clocks.append(clock)
        return 0.4


@pytest.mark.slow
def test_budget_reserves_what_callbacks_do_at_the_final_validation(corpus: Path, tmp_path: Path) -> None:
    costly = CostlyAtValidationEnd()
    clock = FakeClock(tick=0.02)
    _, budget = fit_with_budget(
        corpus, tmp_path, clock, extra_callbacks=(costly,), seconds=2.0, skip_steps=2, calibration_steps=10,
        reserve_seconds=0.5,
    )
    assert costly.clocks == [clock]  # asked once, at the plan, with the budget's own clock
    assert budget.final_parts["CostlyAtValidationEnd"] == 0.4
    assert budget.final_seconds == pytest.approx(sum(budget.final_parts.values()), abs=0.01)
    # Without the 0.4 s, the same run plans ~20 more 20 ms steps.
    _, plain = fit_with_budget(corpus, tmp_path / "plain", FakeClock(tick=0.02), seconds=2.0, skip_steps=2,
                               calibration_steps=10, reserve_seconds=0.5)
    assert 15 <= plain.planned_steps - budget.planned_steps <= 25
    record = json.loads((tmp_path / "budget.json").read_text())
    assert record["final_seconds_parts"]["CostlyAtValidationEnd"] == 0.4
    # And what the end really took, in the same parts (ValidateAtEnd validates after the last step).
    assert set(record["final_seconds_measured"]) == {"validation", "after_validation"}
    assert all(seconds > 0 for seconds in record["final_seconds_measured"].values())


class CompilingWrapper(torch.nn.Module):
    """Stands in for torch.compile's wrapper: the first call with each mode (training or not,
    gradients or not, autocast or not) and inputs' sizes and strides costs `seconds` of the fake
    clock, as a compile does (torch.compile specialises on all of these)."""

    def __init__(self, model: torch.nn.Module, clock: FakeClock, seconds: float) -> None:
        super().__init__()
        self.model, self.clock, self.seconds = model, clock, seconds
        self.compiled: list[tuple] = []
        self.compiled_at: list[float] = []  # the fake clock when each compile ended

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None):
        key = (self.model.training, torch.is_grad_enabled(), torch.is_autocast_enabled("cpu"),
               tuple(x.shape), x.stride(), None if y is None else y.stride())
        if key not in self.compiled:
            self.compiled.append(key)
            self.clock.now += self.seconds
            self.compiled_at.append(self.clock.now)
        return self.model(x, y)


class PlanTimed(TimeBudget):
    """A TimeBudget that keeps the (fake) time of its first plan."""

    planned_at: float | None = None

    def _plan(self, trainer, step, now, *args, **kwargs) -> None:
        if self.planned_steps is None:
            self.planned_at = now
        super()._plan(trainer, step, now, *args, **kwargs)


@pytest.mark.parametrize("precision", ["32-true", pytest.param("bf16-mixed", marks=pytest.mark.slow)])
def test_a_compiled_forward_compiles_for_validation_before_the_plan(
    corpus: Path, tmp_path: Path, monkeypatch, precision: str
) -> None:
    # model.compile=true: validation's own compiles (eval mode, under validation's autocast, and
    # again for the smaller last batch) would land after the last step, past a plan that never saw
    # them. Here each costs 1.5 s of a 6 s budget; the run must still end inside it.
    clock = FakeClock(tick=0.01)
    wrappers: list[CompilingWrapper] = []

    def fake_compile(model: torch.nn.Module, *args, **kwargs) -> CompilingWrapper:
        wrappers.append(CompilingWrapper(model, clock, 1.5))
        return wrappers[-1]

    monkeypatch.setattr(torch, "compile", fake_compile)
    data = CharDataModule(
        str(corpus), block_size=16, batch_size=4, val_batch_size=64, cache_dir=str(tmp_path)
    )
    data.setup()
    module = CharLM(
        model={"n_layer": 1, "n_head": 2, "n_embd": 32, "block_size": 16, "compile": True},
        vocab=data.tokenizer.to_list(), optimizer={"_target_": "torch.optim.AdamW", "lr": 1e-2},
    )
    budget = PlanTimed(6.0, start=0.0, clock=clock, skip_steps=2, calibration_steps=10, reserve_seconds=0.5)
    trainer = L.Trainer(
        max_steps=10_000, val_check_interval=10_000, callbacks=[ValidateAtEnd(), budget], logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        num_sanity_val_steps=0, accelerator="cpu", precision=precision,
    )
    trainer.fit(module, datamodule=data)
    val_batches = len(data.val_dataloader())
    last_rows = len(data.val_dataloader().dataset[val_batches - 1][0])
    assert 0 < last_rows < 64 and val_batches > 2  # the split ends with a smaller batch
    (wrapper,) = wrappers
    # Training's compile, then validation's two, all before the plan (the estimate ran them).
    autocast = precision == "bf16-mixed"
    modes_and_rows = [(training, grad, cast, shape[0]) for training, grad, cast, shape, *_ in
                      wrapper.compiled]
    assert modes_and_rows == [(True, True, autocast, 4), (False, False, autocast, 64),
                              (False, False, autocast, last_rows)]
    assert budget.planned_at is not None and max(wrapper.compiled_at) <= budget.planned_at
    assert trainer.global_step == budget.planned_steps > 50
    assert clock.now < 6.0


class CostlyValidation(L.Callback):
    """Every validation's end costs `seconds` of the fake clock (what it does there: a sample, a
    picture, a checkpoint), and says so to the budget."""

    def __init__(self, clock: FakeClock, seconds: float) -> None:
        self.clock, self.seconds, self.validations = clock, seconds, 0

    def validation_end_seconds(self, trainer: L.Trainer, pl_module: L.LightningModule, clock) -> float:
        return self.seconds

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.validations += 1
        self.clock.now += self.seconds


def test_validations_during_training_are_priced_not_counted_as_step_time(
    corpus: Path, tmp_path: Path
) -> None:
    # Every 20 steps a validation costs 0.3 s: they must not pass for slow steps (the plan would
    # swing with how many fall in its window), and the ones still due must fit in the budget.
    clock = FakeClock(tick=0.02)
    costly = CostlyValidation(clock, 0.3)
    data = CharDataModule(
        str(corpus), block_size=16, batch_size=4, val_batch_size=64, cache_dir=str(tmp_path)
    )
    data.setup()
    module = CharLM(
        model={"n_layer": 1, "n_head": 2, "n_embd": 32, "block_size": 16},
        vocab=data.tokenizer.to_list(), optimizer={"_target_": "torch.optim.AdamW", "lr": 1e-2},
    )
    budget = TimeBudget(4.0, start=0.0, clock=clock, skip_steps=2, calibration_steps=10, reserve_seconds=0.5)
    trainer = L.Trainer(
        max_steps=10_000, val_check_interval=20, callbacks=[ValidateAtEnd(), budget, costly], logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        num_sanity_val_steps=0, limit_val_batches=2, accelerator="cpu",
    )
    trainer.fit(module, datamodule=data)
    assert costly.validations >= 3  # periodic ones, then the end's
    # The steps' own pace: a validation's start is read one tick of this clock after its step's end,
    # which counts as step time (20 ms here, microseconds on a real clock); 1 in 16 steps a window.
    assert budget.step_seconds == pytest.approx(0.02, rel=0.1)
    assert trainer.global_step == budget.planned_steps
    assert clock.now < 4.0


def test_only_the_fits_own_validations_price_the_ones_still_due() -> None:
    # A sanity check's two batches, or a fine-tune's validation before the fit (with the fit's
    # set-up after it), are no measure of a validation during training.
    from types import SimpleNamespace

    from lightning.pytorch.trainer.states import TrainerFn

    clock = FakeClock(tick=0.0)
    budget = TimeBudget(60.0, start=0.0, clock=clock)
    budget.final_seconds, budget._calibration_pace = 2.0, 0.02

    def validation(seconds: float, sanity: bool = False, fn: TrainerFn = TrainerFn.FITTING) -> None:
        trainer = SimpleNamespace(sanity_checking=sanity, state=SimpleNamespace(fn=fn))
        budget.on_validation_start(trainer, None)
        clock.now += seconds
        budget.on_train_batch_start(trainer, None)

    validation(0.05, sanity=True)
    validation(9.0, fn=TrainerFn.VALIDATING)
    assert budget._validation_at(0.02) == pytest.approx(2.0)  # still the end's estimate
    validation(1.0)
    validation(3.0)
    assert budget._validation_at(0.02) == pytest.approx(2.0)  # the mean of the fit's two
    validation(0.5)
    assert budget._validation_at(0.02) == pytest.approx(1.5)


def test_edge_batches_come_only_from_loaders_of_whole_batches() -> None:
    batches = [tuple(torch.zeros(rows, 8, dtype=torch.long) for _ in range(2)) for rows in (4, 4, 2)]
    whole = edge_batches(DataLoader(batches, batch_size=None))
    assert [tuple(t.shape for t in b) for b in whole] == [((4, 8), (4, 8)), ((2, 8), (2, 8))]
    # Anything else is timed on random inputs instead: a loader of samples, items that are not
    # tuples of 2-D tensors.
    assert edge_batches(DataLoader(batches, batch_size=2)) == []
    assert edge_batches(DataLoader([{"x": torch.zeros(4, 8)}], batch_size=None)) == []
    assert edge_batches(DataLoader([torch.zeros(4, 8)], batch_size=None)) == []


@pytest.mark.parametrize(("limit", "expected"), [(1.0, 10), (0.25, 2), (3, 3), (30, 10)])
def test_validation_batches_follow_limit_val_batches(limit, expected, tmp_path: Path) -> None:
    seen = []

    class Probe(L.Callback):  # what the budget sees during training, when it plans
        def on_train_batch_end(self, trainer: L.Trainer, *args) -> None:
            seen.append(validation_batches(trainer, 10))

    module = CharLM(model={"n_layer": 1, "n_head": 2, "n_embd": 16, "block_size": 8}, vocab=list("ab"))
    batches = [tuple(torch.zeros(2, 8, dtype=torch.long) for _ in range(2)) for _ in range(10)]
    trainer = L.Trainer(
        max_steps=1, limit_val_batches=limit, callbacks=[Probe()], logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0, accelerator="cpu",
        default_root_dir=tmp_path,
    )
    loader = DataLoader(batches, batch_size=None)
    trainer.fit(module, train_dataloaders=loader, val_dataloaders=loader)
    assert seen == [expected]
    assert validation_batches(SimpleNamespace(), 10) == 10  # no trainer count: the loader's length


def test_a_run_stopped_before_its_plan_records_no_rerun_command() -> None:
    budget = TimeBudget(seconds=60.0, start=0.0)
    assert budget.planned_steps is None
    assert budget.summary()["rerun_with"] is None  # not "trainer.max_steps=None"


def test_a_draw_timed_moments_ago_prices_the_next_sample_without_drawing_again() -> None:
    from chargpt.model import ModelConfig, build_model

    class ModelClock:  # moved by the model's forwards (1 ms a character read), and by the test
        now = 0.0

        def __call__(self) -> float:
            return self.now

    clock = ModelClock()
    model = build_model(ModelConfig(n_layer=1, n_head=2, n_embd=16, block_size=16), 10).eval()
    forwards = []

    def costs(module: torch.nn.Module, args: tuple) -> None:
        forwards.append(args[0].shape[1])
        clock.now += 0.001 * args[0].shape[1]
    model.register_forward_pre_hook(costs)
    # TensorBoard's text sample, then the closing sample, priced at one estimate of the run's end.
    text_sample = budget_plan.sampling_seconds(model, 20, clock)  # past the context of 16
    drawn = len(forwards)
    closing = budget_plan.sampling_seconds(model, 300, clock)
    assert len(forwards) == drawn  # no second draw taken from the budget
    assert closing == pytest.approx(text_sample * 300 / 20)
    # A draw that stopped inside the context does not price a longer sample (no restart was timed).
    short = build_model(ModelConfig(n_layer=1, n_head=2, n_embd=16, block_size=16), 10).eval()
    short.register_forward_pre_hook(costs)
    budget_plan.sampling_seconds(short, 8, clock)
    drawn = len(forwards)
    budget_plan.sampling_seconds(short, 300, clock)
    assert len(forwards) > drawn
    # Nor does one timed long ago, when the machine's load may have been another.
    clock.now += budget_plan.DRAW_KEPT_SECONDS
    drawn = len(forwards)
    budget_plan.sampling_seconds(model, 300, clock)
    assert len(forwards) > drawn


def test_a_validation_is_priced_at_the_machines_load_not_at_its_fastest_batch(
    corpus: Path, tmp_path: Path
) -> None:
    # On a machine other work shares, a batch's forward takes 10 ms or 30 ms by turns: the final
    # validation takes 20 ms a batch. The fastest of three priced it at 10 ms (x1.5: 15 ms).
    clock = FakeClock(tick=0.0)
    data = CharDataModule(str(corpus), block_size=16, batch_size=4, val_batch_size=64,
                          cache_dir=str(tmp_path))
    data.setup()
    module = CharLM(model={"n_layer": 1, "n_head": 2, "n_embd": 32, "block_size": 16},
                    vocab=data.tokenizer.to_list())
    costs = itertools.cycle([0.01, 0.03])
    real_forward = module.step_forward

    def loaded_forward(*batch: torch.Tensor):
        clock.now += next(costs)
        return real_forward(*batch)

    module.step_forward = loaded_forward
    batches = len(data.val_dataloader())
    trainer = SimpleNamespace(datamodule=data, num_val_batches=[batches], callbacks=[],
                              precision_plugin=SimpleNamespace(val_step_context=contextlib.nullcontext))
    budget = TimeBudget(60.0, start=0.0, clock=clock)
    budget.estimate_final_seconds(trainer, module)
    assert budget.final_parts["validation"] == pytest.approx(
        budget_plan.VALIDATION_MARGIN * 0.02 * batches, rel=0.01)


def test_the_end_is_priced_from_the_runs_own_validations_once_it_has_any() -> None:
    # Timed at the plan, the end was 2 s, 0.5 s of it the closing sample; the validations during
    # training then took 3 s each (a busier machine, a slower picture): the end prices its own at 3 s.
    from lightning.pytorch.trainer.states import TrainerFn

    clock = FakeClock(tick=0.0)
    budget = TimeBudget(60.0, start=0.0, clock=clock)
    budget.final_seconds, budget._calibration_pace = 2.0, 0.02
    budget.final_parts = {"validation": 1.5, "closing_sample": 0.5}
    assert budget._final_at(0.02) == pytest.approx(2.0)
    assert budget._final_at(0.04) == pytest.approx(4.0)  # a host twice as slow: all of it scaled
    trainer = SimpleNamespace(sanity_checking=False, state=SimpleNamespace(fn=TrainerFn.FITTING))
    for _ in range(2):
        budget.on_validation_start(trainer, None)
        clock.now += 3.0
        budget.on_train_batch_start(trainer, None)
    assert budget._final_at(0.02) == pytest.approx(3.0 + 0.5)
    assert budget._final_at(0.04) == pytest.approx(3.0 + 1.0)  # the sample, timed at the plan, scaled
    assert budget.summary()["validation_seconds_measured"] == 3.0
