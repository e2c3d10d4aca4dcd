"""Continuing runs and counting them: extending a finished run is exact, resuming anywhere is
exact, and epochs (max_epochs) are a real step count every schedule reads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from chargpt.cli.train import main as train_main
from chargpt.errors import ConfigError
from chargpt.training.schedules import Constant, WarmupCosine, WarmupStableDecay, depends_on_total
from chargpt.training.steps import batches_per_epoch, planned_total_steps, steps_per_epoch
from conftest import StepHook, bare_train_args, run_main, write_corpus

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHARGPT_CACHE_DIR", str(tmp_path / "cache"))


def _ckpt(run_dir: Path) -> dict:
    return torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)


def _assert_same_training_state(a: dict, b: dict) -> None:
    assert a["global_step"] == b["global_step"]
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), key
    opt_a, opt_b = (c["optimizer_states"][0]["state"] for c in (a, b))
    assert opt_a.keys() == opt_b.keys()
    for i, state in opt_a.items():
        for k, value in state.items():
            assert torch.equal(value, opt_b[i][k]), (i, k)


@pytest.mark.slow  # three trainings; tests/test_resume.py checks an exact resume by default
def test_extending_a_finished_run_is_exact(tmp_path, monkeypatch, capsys):
    """20 steps, then the same run extended to 40, equals a straight 40-step run bit for bit (the
    default cosine warmup of 100 steps covers all 40; dropout, so the RNG must continue too)."""
    corpus = write_corpus(tmp_path / "corpus.txt")
    # Validation only at the end, as with the default val_check_interval (what exposed the bug).
    common = ["seed=3", "model.dropout=0.2", "trainer.val_check_interval=100"]
    hook = StepHook(monkeypatch)
    code, _, err = run_main(
        train_main,
        bare_train_args(corpus, tmp_path / "straight", *common, "trainer.max_steps=40"),
        capsys,
    )
    assert code == 0, err
    straight = hook.take()
    run = tmp_path / "extended"
    args = bare_train_args(corpus, run, *common, "trainer.max_steps=20")
    code, _, err = run_main(train_main, args, capsys)
    assert code == 0, err
    code, out, err = run_main(
        train_main,
        bare_train_args(corpus, None, *common, "trainer.max_steps=40", f"ckpt_path={run}"),
        capsys,
    )
    assert code == 0, err
    assert "planned for" not in out + err  # warmup only: nothing to warn about
    assert hook.take() == straight  # the same batches and losses at every step
    _assert_same_training_state(_ckpt(tmp_path / "straight"), _ckpt(run))


@pytest.mark.slow
def test_resuming_off_the_middle_is_exact(tmp_path, monkeypatch, capsys):
    """Interrupted at step 4 of 12 (not halfway): the resumed run trains each batch once."""
    corpus = write_corpus(tmp_path / "corpus.txt")
    common = ["trainer.max_steps=12", "trainer.val_check_interval=3"]
    hook = StepHook(monkeypatch)
    code, _, err = run_main(train_main, bare_train_args(corpus, tmp_path / "a", *common), capsys)
    assert code == 0, err
    straight = hook.take()
    hook.send_signal_at(4)
    code, _, err = run_main(train_main, bare_train_args(corpus, tmp_path / "b", *common), capsys)
    assert code == 130, err
    code, _, err = run_main(
        train_main,
        bare_train_args(corpus, None, *common, f"ckpt_path={tmp_path / 'b'}"),
        capsys,
    )
    assert code == 0, err
    assert hook.take() == straight
    _assert_same_training_state(_ckpt(tmp_path / "a"), _ckpt(tmp_path / "b"))


def test_extending_a_cosine_run_says_its_rates_differ(tmp_path, monkeypatch, capsys):
    corpus = write_corpus(tmp_path / "corpus.txt")
    run = tmp_path / "run"
    common = ["scheduler.warmup_steps=2", "trainer.val_check_interval=4"]
    args = bare_train_args(corpus, run, *common, "trainer.max_steps=4")
    code, _, err = run_main(train_main, args, capsys)
    assert code == 0, err
    code, out, err = run_main(
        train_main,
        bare_train_args(corpus, None, *common, "trainer.max_steps=6", f"ckpt_path={run}"),
        capsys,
    )
    assert code == 0, err
    lines = [line for line in (out + err).splitlines() if "planned for 4" in line]
    assert len(lines) == 1 and "toward 6 steps" in lines[0] and "WarmupCosine" in lines[0]


def test_which_schedules_depend_on_the_total():
    assert not depends_on_total(Constant(warmup_steps=5), 20, 20, 40)
    assert not depends_on_total(WarmupCosine(warmup_steps=100), 20, 20, 40)
    assert depends_on_total(WarmupCosine(warmup_steps=5), 20, 20, 40)
    wsd = WarmupStableDecay(warmup_steps=5, decay_fraction=0.2)
    assert not depends_on_total(wsd, 15, 20, 40)  # decay of the 20-step run starts at step 16
    assert depends_on_total(wsd, 20, 20, 40)


def test_total_steps_from_steps_or_epochs():
    assert batches_per_epoch(1000, batch_size=4, block_size=16) == 16  # ceil(1000 / 64)
    assert batches_per_epoch(1000, batch_size=4, block_size=16, world_size=2) == 8
    assert steps_per_epoch(16, accumulation=3) == 6
    assert planned_total_steps(100, -1, per_epoch=6) == 100
    assert planned_total_steps(-1, 2, per_epoch=6) == 12
    assert planned_total_steps(100, 2, per_epoch=6) == 12  # the first limit reached
    assert planned_total_steps(0, -1, per_epoch=6) == 0  # only the validation before training
    # The setting as given: null was named -1 (Lightning keeps max_epochs=None as None).
    for max_steps, max_epochs, what in [(-1, -1, "max_epochs=-1 leave the run without an end"),
                                        (-1, None, "max_epochs=null leave the run without an end"),
                                        (-5, -1, "trainer.max_steps=-5"), (-1, -2, "trainer.max_epochs=-2")]:
        with pytest.raises(ConfigError, match=what):
            planned_total_steps(max_steps, max_epochs, per_epoch=6)


@pytest.mark.parametrize(
    "scheduler",
    ["cosine", pytest.param("wsd", marks=pytest.mark.slow), pytest.param("constant", marks=pytest.mark.slow)],
)
def test_one_epoch_trains_one_pass_and_anneals(tmp_path, monkeypatch, capsys, scheduler):
    corpus = write_corpus(tmp_path / "corpus.txt", n_chars=2000)  # 1800 train chars: 29 batches of 4x16
    run = tmp_path / "run"
    lrs: list[float] = []
    from chargpt.training import CharLM

    original = CharLM.training_step

    def training_step(module, batch, batch_idx):  # type: ignore[no-untyped-def]
        lrs.append(module.optimizers().param_groups[0]["lr"])
        return original(module, batch, batch_idx)

    monkeypatch.setattr(CharLM, "training_step", training_step)
    code, _, err = run_main(
        train_main,
        bare_train_args(
            corpus, run, f"scheduler={scheduler}", "scheduler.warmup_steps=2", "trainer.max_steps=-1",
            "trainer.max_epochs=1", "trainer.accumulate_grad_batches=2", "trainer.val_check_interval=100",
        ),
        capsys,
    )
    assert code == 0, err
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["step"] == metrics["max_steps"] == 15  # ceil(ceil(1800 / 64) / 2)
    assert len(lrs) == 30  # 15 steps of 2 batches
    if scheduler != "constant":  # annealed at the real end, not collapsed after warmup
        assert lrs[-1] < 0.5 * max(lrs) and lrs[6] > 0.5 * max(lrs)


def test_unbounded_run_is_refused(tmp_path, monkeypatch, capsys):
    corpus = write_corpus(tmp_path / "corpus.txt")
    code, _, err = run_main(
        train_main,
        bare_train_args(corpus, tmp_path / "run", "trainer.max_steps=-1", "trainer.max_epochs=-1"),
        capsys,
    )
    assert code == 2
    assert err.startswith("error: trainer.max_steps=-1 and trainer.max_epochs=-1")
    assert len(err.splitlines()) == 1
