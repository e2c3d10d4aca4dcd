"""What the terminal shows during training: optimizer steps toward the real total, the time left,
and nothing Lightning adds by itself when the config lists no bar or checkpoint."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from rich.progress import Progress

from chargpt.cli.train import main as train_main
from chargpt.training.callbacks.budget import TimeBudget
from chargpt.training.callbacks.progress import StepProgressBar, _TimeLeftColumn
from conftest import StepHook, run_main, write_corpus
from conftest import bare_train_args as quiet_args

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHARGPT_CACHE_DIR", str(tmp_path / "cache"))


def bare_train_args(corpus: Path, run_dir: Path | None, *extra: str) -> list[str]:
    """The quiet test run, with the progress bar back."""
    return [a for a in quiet_args(corpus, run_dir, *extra) if a != "~callbacks.progress_bar"]


@pytest.fixture
def shown(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, float, float | None]]:
    """(description, completed, total) of each task when training starts and when the bar stops."""
    seen: list[tuple[str, float, float | None]] = []
    start, stop = StepProgressBar.on_train_start, StepProgressBar._stop

    def on_train_start(self, trainer, pl_module):  # type: ignore[no-untyped-def]
        start(self, trainer, pl_module)
        seen.extend(("start", t.completed, t.total) for t in self.progress.tasks)

    def record_stop(self):  # type: ignore[no-untyped-def]
        if self.progress is not None:
            seen.extend(("end", t.completed, t.total) for t in self.progress.tasks)
        stop(self)

    monkeypatch.setattr(StepProgressBar, "on_train_start", on_train_start)
    monkeypatch.setattr(StepProgressBar, "_stop", record_stop)
    return seen


def test_bar_counts_optimizer_steps_not_batches(tmp_path, monkeypatch, capsys, shown):
    corpus = write_corpus(tmp_path / "corpus.txt")
    args = bare_train_args(
        corpus, tmp_path / "run", "trainer.max_steps=10", "trainer.accumulate_grad_batches=4"
    )
    code, _, err = run_main(train_main, args, capsys)
    assert code == 0, err
    assert shown == [("start", 0, 10), ("end", 10, 10)]  # was 40/10
    assert "10/10" in err and "Epoch" not in err


@pytest.mark.slow
def test_resumed_bar_continues_from_its_step(tmp_path, monkeypatch, capsys, shown):
    corpus = write_corpus(tmp_path / "corpus.txt")
    run = tmp_path / "run"
    code, _, err = run_main(train_main, bare_train_args(corpus, run, "trainer.max_steps=4"), capsys)
    assert code == 0, err
    shown.clear()
    args = bare_train_args(corpus, None, "trainer.max_steps=7", f"ckpt_path={run}")
    code, _, err = run_main(train_main, args, capsys)
    assert code == 0, err
    assert shown == [("start", 4, 7), ("end", 7, 7)]  # was 4/7 of batches, then 0/3


def test_budgeted_bar_shows_the_time_left_in_the_budget(tmp_path, monkeypatch, capsys, shown):
    monkeypatch.delenv("COLUMNS", raising=False)
    corpus = write_corpus(tmp_path / "corpus.txt")
    args = bare_train_args(corpus, tmp_path / "run", "budget_seconds=3600", "trainer.max_steps=40")
    stop = StepHook(monkeypatch)
    stop.send_signal_at(6)  # before the budget's plan (at step 35): it counts down to its deadline
    code, _, err = run_main(train_main, args, capsys)
    assert code == 130, err
    assert shown[0] == ("start", 0, None)  # the budget picks the total: not the 40 (or 1000000) cap
    # The time left of 1:00:00 (less what start-up took on a busy machine), not an ETA of hours.
    # Written to a file (as here), the bar is one line: rich's 80 columns wrapped it over two.
    assert re.search(r"^train .* \d+/\? .*budget 0:5\d:\d\d left +train/loss \d\.\d{4}", err, re.M), err


def test_a_step_limit_that_ends_the_run_before_the_budget_plans_is_the_bars_total(
    tmp_path, monkeypatch, capsys, shown
):
    # budget_seconds=1e9 with one short epoch (24 steps) ended before the budget planned: the bar
    # read 24/? with 277777:45:37 left.
    monkeypatch.delenv("COLUMNS", raising=False)
    corpus = write_corpus(tmp_path / "corpus.txt")
    args = bare_train_args(corpus, tmp_path / "run", "budget_seconds=1e9", "trainer.max_steps=6")
    code, _, err = run_main(train_main, args, capsys)
    assert code == 0, err
    assert shown == [("start", 0, 6), ("end", 6, 6)]
    [line] = [line for line in err.splitlines() if line.startswith("train ")]
    assert " 6/6 " in line and "budget" not in line and "277777" not in line, line


def _time_left(budget: TimeBudget) -> str:
    """What the bar's time column shows 12 steps into a training of 37."""
    bar = StepProgressBar()
    bar.budget = budget
    progress = Progress()
    progress.add_task("train", total=37, completed=12, kind="train")
    [task] = progress.tasks
    return _TimeLeftColumn(bar).render(task).plain


def test_a_resumed_budgeted_bar_shows_no_countdown() -> None:
    # A resumed budgeted run trains to its planned count with no time limit of its own; the bar
    # counted down a budget from the resume's start all the same, to 0:00:00 while it trained on.
    budget = TimeBudget(30.0, start=0.0, clock=lambda: 10.0)
    assert _time_left(budget) == "budget 0:00:20 left"
    budget.load_state_dict({"planned_steps": 37, "step_seconds": 0.02})
    assert "budget" not in _time_left(budget)


def test_a_first_launch_counts_its_budget_down_after_its_plan_too() -> None:
    budget = TimeBudget(30.0, start=0.0, clock=lambda: 10.0)
    budget.planned_steps, budget._calibration_pace = 37, 0.02  # as its plan leaves them
    assert _time_left(budget) == "budget 0:00:20 left"


def test_no_callbacks_means_no_bar_and_no_checkpoint(tmp_path, monkeypatch, capsys):
    corpus = write_corpus(tmp_path / "corpus.txt")
    run = tmp_path / "run"
    args = [*bare_train_args(corpus, run, "trainer.max_steps=3"), "callbacks=none", "logger=tensorboard"]
    code, out, err = run_main(train_main, args, capsys)
    assert code == 0, err
    assert not list(run.rglob("*.ckpt"))  # Lightning's own epoch=0-step=3.ckpt included
    assert "Epoch" not in out + err and "3/3" not in out + err
    assert "callbacks=[none,last_checkpoint]" in out + err  # said at start


def test_no_callbacks_but_last_checkpoint_keeps_last_ckpt(tmp_path, monkeypatch, capsys):
    corpus = write_corpus(tmp_path / "corpus.txt")
    run = tmp_path / "run"
    args = [*bare_train_args(corpus, run, "trainer.max_steps=3"), "callbacks=[none,last_checkpoint]"]
    code, _, err = run_main(train_main, args, capsys)
    assert code == 0, err
    assert sorted(p.relative_to(run).as_posix() for p in run.rglob("*.ckpt")) == ["checkpoints/last.ckpt"]


def test_sampling_a_run_without_checkpoints_says_why(tmp_path, monkeypatch, capsys):
    from chargpt.cli.sample import main as sample_main

    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.json").write_text("{}")  # what a callbacks=none run leaves
    code, _, err = run_main(sample_main, [f"ckpt_path={run}"], capsys)
    assert code == 2 and err.startswith(f"error: run directory {run} holds no checkpoint")
    assert "callbacks=[none,last_checkpoint]" in err
