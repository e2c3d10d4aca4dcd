"""model=auto: the sizing rule (fed made-up step times), its config checks, the override it prints,
and what a run records."""

from __future__ import annotations

import json
import math
import shlex
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

from chargpt.cli import CONFIG_PATH, train
from chargpt.errors import ConfigError
from chargpt.hydra_run import plain
from chargpt.model import ModelConfig
from chargpt.training import budget_plan, precision
from chargpt.training.auto_size import calibration, ladder, recipe, rule
from chargpt.training.auto_size.choice import Choice, Estimate, from_record
from chargpt.training.auto_size.ladder import LADDER, Shape, non_embedding_params, target_tokens_per_param
from chargpt.training.auto_size.recipe import adamw_lr_for, dropout_for, momentum_for, weight_decay_for
from chargpt.training.auto_size.report import report
from chargpt.training.auto_size.rule import (
    LOOP_OVERHEAD_SECONDS,
    MIN_STEPS,
    StepCaps,
    climb,
    estimate,
    nearest,
)
from chargpt.training.auto_size.run_config import apply_choice
from conftest import StepHook, bare_train_args, run_main, write_corpus

SHAKESPEARE_TRAIN, SHAKESPEARE_VAL = 1_003_854, 111_540


DROPOUT_COST = 1.6  # a step with dropout, against one without (1.44-1.65x measured on a CPU)


def fake_speed(ms_for_anchor: float, dropout_cost: float = DROPOUT_COST):
    """Seconds a step proportional to compute (parameters x tokens a step), `ms_for_anchor` ms for
    the cpu_100s shape; `dropout_cost` times that with any dropout."""
    anchor = non_embedding_params(LADDER[1]) * LADDER[1].tokens_per_step()

    def measure(shape: Shape, dropout: float | None = None) -> float:
        seconds = ms_for_anchor / 1000 * non_embedding_params(shape) * shape.tokens_per_step() / anchor
        return seconds * (dropout_cost if dropout else 1.0)

    return measure


def size(budget: float, ms_for_anchor: float = 45.0, train_chars: int = SHAKESPEARE_TRAIN):
    return climb(LADDER, fake_speed(ms_for_anchor), budget, lambda: 2.0, train_chars, SHAKESPEARE_VAL)


def test_the_anchor_shape_is_chosen_at_the_anchor_budget_and_speed() -> None:
    assert size(100).shape == LADDER[1]


def test_bigger_budget_picks_a_bigger_model() -> None:
    params = [non_embedding_params(size(b).shape) for b in (30, 100, 300, 600, 3600)]
    assert params == sorted(params)
    assert params[0] < params[1] < params[-1]


@pytest.mark.parametrize(("ratios", "picked"), [
    ((6.92, 2.71), 0),  # 4x192 over 5x224 on a fast host at 600 s: the larger lost by 0.010-0.030
    ((6.5, 2.6), 0),  # 3x128 over 4x160 at 600 s on a slow host: the larger lost by 0.012-0.017
    ((7.0, 3.4), 1),  # 4x192 over 4x160 at 600 s on the AMD EPYC: 3.1-3.7 was chosen, and scored 1.446
    ((9.0, 4.0), 1),  # above the target, the nearer as before
])
def test_a_shortfall_of_tokens_per_parameter_counts_twice(ratios: tuple[float, float], picked: int) -> None:
    target = target_tokens_per_param()
    assert 3.7 < target < 3.9  # the cases are written against this anchor
    shapes = LADDER[3:5]
    measured = [Estimate(shape, 50.0, 5000, ratio, 5.0)
                for shape, ratio in zip(shapes, ratios, strict=True)]
    best, why = nearest(measured, "stopped")
    assert best is measured[picked]
    assert "a shortfall counts 2x" in why
    # The plain log distance takes the larger shape in every case.
    plain_pick = min(measured, key=lambda e: abs(math.log(e.tokens_per_param / target)))
    assert plain_pick is measured[1]


def test_faster_machine_picks_a_bigger_model() -> None:
    slow, fast = size(300, ms_for_anchor=90.0), size(300, ms_for_anchor=4.5)
    assert non_embedding_params(fast.shape) > non_embedding_params(slow.shape)


def noting_speed(timed: list[Shape]):
    """fake_speed(45.0), noting in `timed` each shape it times."""
    measure = fake_speed(45.0)

    def recording(shape: Shape, dropout: float | None = None) -> float:
        timed.append(shape)
        return measure(shape, dropout=dropout)

    return recording


def test_climb_stops_below_the_target_and_within_the_calibration_cap() -> None:
    timed: list[Shape] = []
    recording, measure = noting_speed(timed), fake_speed(45.0)
    choice = climb(LADDER, recording, 300, lambda: 2.0, SHAKESPEARE_TRAIN, SHAKESPEARE_VAL)
    target = target_tokens_per_param()
    ratios = [e.tokens_per_param for e in choice.measured]
    assert timed == list(LADDER[: len(timed)]) and 1 < len(timed) < len(LADDER)
    assert all(r >= target for r in ratios[:-1]) and ratios[-1] < target  # no shape timed past it
    assert "below the target" in choice.reason

    clock = iter(range(0, 1000, 3))  # every reading 3 s later: each shape "costs" 3 s to time
    capped = climb(LADDER, measure, 100, lambda: float(next(clock)), SHAKESPEARE_TRAIN, SHAKESPEARE_VAL)
    assert len(capped.measured) == 1 and "past 5.0 s" in capped.reason


def test_a_slow_first_timing_does_not_stop_the_climb() -> None:
    # On a GPU the first shape took 2.5 s to time (~200 of its steps), the next ones a few steps:
    # projected from the first, the next shape would have passed the cap, and the climb ended there.
    now = [0.0]
    measure = fake_speed(45.0)

    def timing(shape: Shape, dropout: float | None = None) -> float:
        seconds = measure(shape, dropout=dropout)
        now[0] += 7 * seconds + (2.5 if shape == LADDER[0] else 0.0)
        return seconds

    choice = climb(LADDER, timing, 120, lambda: now[0], SHAKESPEARE_TRAIN, SHAKESPEARE_VAL)
    assert len(choice.measured) > 1 and "below the target" in choice.reason


def test_a_long_calibration_says_which_shape_it_is_timing(caplog) -> None:
    # A day's budget climbed the whole ladder in ~30 s on a 2-core CPU without a word.
    now = [0.0]
    measure = fake_speed(45.0)

    def timing(shape: Shape, dropout: float | None = None) -> float:
        seconds = measure(shape, dropout=dropout)
        now[0] += 7 * seconds
        return seconds

    caplog.set_level("INFO", logger="chargpt.training.auto_size")
    choice = climb(LADDER, timing, 86_400, lambda: now[0], SHAKESPEARE_TRAIN, SHAKESPEARE_VAL)
    said = [r.getMessage() for r in caplog.records]
    assert said[0] == "model=auto: timing up to 8 shapes, smallest first, in about 5% of the budget"
    progress = [m for m in said if " of 8), " in m]
    assert progress and progress[-1].startswith(f"model=auto: timing {LADDER[-1].name} (8 of 8), ")
    assert len(progress) < len(choice.measured)  # the first seconds of timing pass without a line
    assert said[-1] == f"model=auto: timing {choice.shape.name} again with dropout {choice.dropout:g}"

    caplog.clear()
    size(100)
    assert len(caplog.records) == 1  # a short calibration: its one line, then the choice block


def test_the_choice_blocks_columns_fit_a_long_budgets_figures() -> None:
    choice = size(86_400 * 365)
    assert len(choice.measured) == len(LADDER)
    block = report(choice, 86_400 * 365, SHAKESPEARE_TRAIN).splitlines()
    header, rows = block[1], block[2 : 2 + len(LADDER)]
    assert header.split() == ["shape", "non-emb", "params", "ms/step", "steps", "tok/param", "epochs"]
    # Each figure ends where its column's title ends, however many digits it has.
    for title in ("params", "steps", "epochs"):
        end = header.index(title) + len(title)
        for row in rows:
            assert row[end - 1].isdigit() and row[end : end + 1] in ("", " ")


def test_a_budget_too_small_for_the_smallest_shape_is_refused_with_one_that_fits(monkeypatch) -> None:
    timed: list[Shape] = []
    recording, measure = noting_speed(timed), fake_speed(45.0)
    with pytest.raises(ConfigError) as refused:
        climb(LADDER, recording, 9, lambda: 6.0, SHAKESPEARE_TRAIN, SHAKESPEARE_VAL)
    message = str(refused.value)
    assert timed == [LADDER[0]]  # refused after the first timing, before any choice
    assert message.startswith("budget_seconds=9 is too small for model=auto on this machine")
    assert "smaller model" not in message  # model=auto already starts at its smallest
    suggested = int(message.split("use budget_seconds=")[1].split()[0])
    choice = climb(LADDER, measure, suggested, lambda: 6.0, SHAKESPEARE_TRAIN, SHAKESPEARE_VAL)
    assert choice.planned is not None and choice.planned.steps >= MIN_STEPS
    # On a busy machine the advice says that more seconds may not be the fix.
    monkeypatch.setattr(budget_plan, "other_work", lambda: "load 4.5 on 2 cores")
    with pytest.raises(ConfigError, match=r"or more; other work is running on this machine \(load 4\.5"):
        climb(LADDER, measure, 9, lambda: 6.0, SHAKESPEARE_TRAIN, SHAKESPEARE_VAL)


def test_a_budget_that_start_up_used_up_is_refused_before_any_shape_is_timed(monkeypatch) -> None:
    # model=auto budget_seconds=0.5 timed its smallest shape (seconds on a busy CPU) before refusing.
    timed: list[Shape] = []
    with pytest.raises(ConfigError) as refused:
        climb(LADDER, noting_speed(timed), 0.5, lambda: 6.0, SHAKESPEARE_TRAIN, SHAKESPEARE_VAL)
    message = str(refused.value)
    assert timed == []
    assert message.startswith("budget_seconds=0.5 is too small for model=auto on this machine: start-up "
                              "took 6.0 s of it before any shape could be timed")
    # It names a budget that holds what was measured (start-up and the end's reserve): that one
    # times the smallest shape, and is refused or sized from that shape's measured speed.
    suggested = int(message.split("use budget_seconds=")[1].split()[0])
    assert suggested >= 6.0 + budget_plan.RESERVE_SECONDS
    rule.check_room_to_time(suggested, 6.0)
    monkeypatch.setattr(budget_plan, "other_work", lambda: "load 4.5 on 2 cores")
    with pytest.raises(ConfigError, match=r"other work is running on this machine \(load 4\.5"):
        climb(LADDER, noting_speed(timed), 0.5, lambda: 6.0, SHAKESPEARE_TRAIN, SHAKESPEARE_VAL)
    assert timed == []


def test_smaller_corpus_gets_more_dropout() -> None:
    big, small = size(600, train_chars=10_000_000), size(600, train_chars=200_000)
    assert big.dropout == 0.0 < small.dropout <= 0.2
    assert dropout_for(1.0) == 0.0 and dropout_for(100.0) == 0.2
    assert dropout_for(8.0) == 0.0 < dropout_for(12.0) < dropout_for(16.0)


def _timed_dropouts(
    budget: float, train_chars: int, dropout: float | None = None
) -> tuple[Choice, list[float | None]]:
    """The choice, and the dropouts each timing ran with."""
    measure, timed = fake_speed(45.0), []

    def recording(shape: Shape, dropout: float | None = None) -> float:
        timed.append(dropout)
        return measure(shape, dropout=dropout)

    choice = climb(LADDER, recording, budget, lambda: 2.0, train_chars, SHAKESPEARE_VAL, dropout=dropout)
    return choice, timed


def test_the_rules_dropout_is_timed_and_the_rates_follow_what_the_run_then_makes() -> None:
    choice, timed = _timed_dropouts(600, train_chars=200_000)
    first = _chosen(choice)  # the shape as the climb timed it, without dropout
    slower = choice.dropout_timing
    assert timed[:-1] == [0.0] * (len(timed) - 1) and timed[-1] == dropout_for(first.epochs) > 0
    assert slower is not None and slower.shape == choice.shape
    assert slower.step_ms == pytest.approx(DROPOUT_COST * first.step_ms)
    assert slower.steps < first.steps and slower.epochs < first.epochs
    # Dropout, decay and rates are those of the steps and epochs the run makes with dropout on.
    assert 0 < choice.dropout == dropout_for(slower.epochs) < dropout_for(first.epochs)
    assert choice.planned == slower and choice.momentum == momentum_for(slower.steps)
    assert choice.adamw_lr == adamw_lr_for(choice.shape.n_embd, slower.steps)
    record = choice.summary()
    assert record["chosen"]["steps"] == slower.steps and record["timed_with_dropout"]["step_ms"] == round(
        slower.step_ms, 2)
    assert f"with dropout {timed[-1]:g} a step takes {slower.step_ms:.1f} ms" in choice.reason
    assert "the chosen shape with dropout" in report(choice, 600, 200_000)
    resumed = from_record(record)
    assert resumed.planned and resumed.dropout_timing and resumed.dropout_timing.row() == slower.row()
    assert resumed.summary()["chosen"] == record["chosen"]


def test_dropout_too_slow_for_its_epochs_is_dropped() -> None:
    # Without dropout this run makes ~9 epochs (dropout 0.01); with it, 1.6x slower steps make
    # ~5.6, where the rule wants none: it trains without, at the speed first measured.
    chars = 700_000
    plain_choice = climb(
        LADDER, fake_speed(45.0, dropout_cost=1.0), 600, lambda: 2.0, chars, SHAKESPEARE_VAL
    )
    assert dropout_for(_chosen(plain_choice).epochs) > 0  # the premise: dropout at the first timing
    choice, timed = _timed_dropouts(600, train_chars=chars)
    first = _chosen(choice)
    assert choice.dropout_timing is not None and dropout_for(choice.dropout_timing.epochs) == 0
    assert choice.dropout == 0 and timed[-1] > 0
    assert choice.planned is not None and choice.planned.step_ms == first.step_ms  # its first speed
    assert choice.momentum == momentum_for(choice.planned.steps)
    assert "too few for dropout: none; " in choice.reason


def test_a_given_dropout_is_timed_with_every_shape_and_not_again() -> None:
    choice, timed = _timed_dropouts(600, train_chars=200_000, dropout=0.05)
    assert timed == [0.05] * len(choice.measured)  # timed with every shape, and not again
    assert choice.dropout_timing is None
    assert choice.dropout == 0.05 and "dropout 0.05 (given)" in choice.reason
    no_dropout, _ = _timed_dropouts(600, train_chars=200_000, dropout=0.0)
    assert no_dropout.dropout == 0.0 and no_dropout.dropout_timing is None


def test_weight_decay_grows_with_the_epochs_then_stays() -> None:
    wd = weight_decay_for
    assert wd(0.5) == wd(2.0) == 0.0 < wd(3.0) < wd(5.0) < wd(6.0) == wd(50.0) == 0.1
    short, long = size(100), size(600, ms_for_anchor=15.0)  # ~2 and ~5 epochs of Tiny Shakespeare
    assert short.weight_decay == wd(_chosen(short).epochs)
    assert short.weight_decay < long.weight_decay
    assert f"Muon weight decay {long.weight_decay:g}" in long.reason


def _chosen(choice: Choice) -> Estimate:
    return next(e for e in choice.measured if e.shape == choice.shape)


@pytest.mark.parametrize(
    ("extra", "expected"),
    [([], "chosen"), (["optimizer.weight_decay=0.02"], 0.02), (["optimizer=adamw"], "config")],
)
def test_weight_decay_is_set_for_muon_unless_the_command_line_gives_it(extra: list[str], expected) -> None:
    overrides = ["model=auto", "budget_seconds=600", *extra]
    with initialize_config_dir(config_dir=CONFIG_PATH, version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides, return_hydra_config=True)
    configured = float(cfg.optimizer.weight_decay)
    choice = size(600, ms_for_anchor=15.0)
    assert choice.weight_decay > 0
    rule = choice.weight_decay
    apply_choice(cfg, choice, overrides, cfg.hydra.runtime.choices)
    want = {"chosen": rule, "config": configured}.get(expected, expected)
    assert cfg.optimizer.weight_decay == want and choice.weight_decay == want  # the record says what ran
    assert f"optimizer.weight_decay={want:g}" in choice.overrides


def test_a_record_from_before_the_weight_decay_rule_resumes_without_it() -> None:
    record = size(600, ms_for_anchor=15.0).summary()
    del record["chosen"]["weight_decay"]
    assert from_record(record).weight_decay == 0.0


def test_wider_models_get_a_lower_adamw_lr() -> None:
    lr = adamw_lr_for
    assert lr(96, 1000) == lr(128, 1000) == 0.02 and lr(192, 1000) == 0.016 > lr(384, 1000)
    assert lr(128, 9000) == 0.003 and lr(192, 9000) == 0.0024


def test_short_runs_get_faster_moving_rates_than_long_ones() -> None:
    lr, momentum = adamw_lr_for, momentum_for
    assert momentum(500) == momentum(2900) == 0.9 < momentum(4000) < momentum(5200) == 0.95
    assert momentum(50_000) == 0.95
    assert lr(128, 2900) == 0.02 > lr(128, 4000) > lr(128, 5200)
    short, long = size(100), size(600, ms_for_anchor=15.0)
    assert (short.momentum, long.momentum) == (momentum(_chosen(short).steps), momentum(_chosen(long).steps))
    assert short.momentum < long.momentum and short.adamw_lr > long.adamw_lr
    for choice in (short, long):
        assert choice.adamw_lr == lr(choice.shape.n_embd, _chosen(choice).steps)
    assert f"Muon momentum {short.momentum:g}" in short.reason


@pytest.mark.parametrize(
    ("extra", "expected"), [([], "chosen"), (["optimizer.momentum=0.8"], 0.8), (["optimizer=adamw"], None)]
)
def test_momentum_is_set_for_muon_unless_the_command_line_gives_it(extra: list[str], expected) -> None:
    overrides = ["model=auto", "budget_seconds=100", *extra]
    with initialize_config_dir(config_dir=CONFIG_PATH, version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides, return_hydra_config=True)
    choice = size(100)
    want = choice.momentum if expected == "chosen" else expected
    apply_choice(cfg, choice, overrides, cfg.hydra.runtime.choices)
    assert cfg.optimizer.get("momentum") == want == choice.momentum == choice.summary()["chosen"]["momentum"]
    if want is None:  # AdamW: no momentum to set, record or print, and its own lr is what ran
        assert not any(o.startswith("optimizer.momentum=") for o in choice.overrides)
        assert choice.adamw_lr == cfg.optimizer.lr == choice.summary()["chosen"]["adamw_lr"]
        assert choice.adamw_lr != adamw_lr_for(choice.shape.n_embd, _chosen(choice).steps)
        assert f"AdamW lr {cfg.optimizer.lr:g}," in report(choice, 100, SHAKESPEARE_TRAIN)
        assert choice.reason.endswith(f"its own lr {cfg.optimizer.lr:g} and weight decay 0.1 apply")
        resumed = from_record(choice.summary())
        apply_choice(cfg, resumed, overrides, cfg.hydra.runtime.choices)
        assert resumed.reason.count("no Muon part") == 1
    else:
        assert f"optimizer.momentum={want:g}" in choice.overrides
        assert f"momentum {want:g}" in report(choice, 100, SHAKESPEARE_TRAIN).splitlines()[-3]


def test_a_record_from_before_the_momentum_rule_resumes_with_the_configs_momentum() -> None:
    record = size(100).summary()
    del record["chosen"]["momentum"]
    record["chosen"]["adamw_lr"] = 0.003  # the old rule's
    choice = from_record(record)
    assert choice.momentum is None and choice.adamw_lr == 0.003
    with initialize_config_dir(config_dir=CONFIG_PATH, version_base="1.3"):
        overrides = ["model=auto", "budget_seconds=100"]
        cfg = compose(config_name="train", overrides=overrides, return_hydra_config=True)
    apply_choice(cfg, choice, overrides, cfg.hydra.runtime.choices)
    assert cfg.optimizer.momentum == 0.95 == choice.momentum  # optimizer/muon.yaml's: what that run had
    assert cfg.optimizer.adamw.lr == 0.003  # the recorded rate, not today's rule


def test_model_auto_without_budget_is_a_config_error(tmp_path: Path, capsys) -> None:
    corpus = write_corpus(tmp_path / "c.txt")
    args = ["model=auto", "data=text", f"data.path={corpus}", f"hydra.run.dir={tmp_path / 'run'}"]
    code, _, err = run_main(train.main, args, capsys)
    assert code == 2
    assert err.strip().splitlines()[-1].startswith("error: model=auto sizes the model for a time budget")
    assert "budget_seconds=" in err and "Traceback" not in err


def test_model_auto_implies_the_cpu_100s_recipe() -> None:
    with initialize_config_dir(config_dir=CONFIG_PATH, version_base="1.3"):
        auto = ["model=auto", "budget_seconds=60"]
        cfg = compose(config_name="train", overrides=auto)
        given = compose(config_name="train", overrides=[*auto, "optimizer.lr=0.02"])
    assert cfg.optimizer._target_.endswith("muon_adamw") and cfg.optimizer.lr == 0.01
    assert cfg.scheduler._target_.endswith("WarmupStableDecay")
    assert cfg.model.auto and cfg.model.pos_encoding == "rope" and cfg.model.zero_init_residual
    assert cfg.trainer.val_check_interval >= cfg.trainer.max_steps >= 1_000_000
    assert given.optimizer.lr == 0.02  # the command line wins


@pytest.mark.parametrize("typed", [[], ["optimizer.lr=0.0123456789", "model.dropout=0.123456789"]])
def test_printed_override_reproduces_the_model(typed: list[str]) -> None:
    # Typed values of many digits came back with six (0.0123457): another run than the one printed.
    overrides = ["model=auto", "budget_seconds=300", "model.norm=rmsnorm", *typed]
    with initialize_config_dir(config_dir=CONFIG_PATH, version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides, return_hydra_config=True)
        choice = size(300, train_chars=100_000)
        cfg.matmul_precision = "medium"  # as matmul_precision=auto resolves on a CPU with AMX
        apply_choice(cfg, choice, overrides, cfg.hydra.runtime.choices)
        assert choice.overrides[0] == "chargpt-train" and "model=auto" not in choice.overrides
        again = compose(config_name="train", overrides=choice.overrides[1:])
    fields = plain(cfg.model)
    fields.pop("auto")
    chosen = ModelConfig.from_dict(fields)
    assert chosen.n_embd == choice.shape.n_embd and chosen.norm == "rmsnorm" and chosen.dropout > 0
    if typed:
        assert cfg.optimizer.lr == 0.0123456789 and chosen.dropout == 0.123456789
    assert ModelConfig.from_dict(plain(again.model)) == chosen
    assert again.data.batch_size == choice.shape.batch_size
    assert plain(again.optimizer) == plain(cfg.optimizer) and plain(again.scheduler) == plain(cfg.scheduler)
    assert again.budget_seconds == 300
    assert again.trainer.precision == cfg.trainer.precision
    assert again.matmul_precision == "medium"


@pytest.mark.parametrize(("native", "amx", "expected"), [
    (True, False, "bf16-mixed"),  # AVX-512 BF16 alone: autocast is the only way to the bf16 units
    (True, True, "32-true"),  # AMX: matmul_precision=auto computes the products in bf16 instead
    (False, False, "32-true"),  # bf16 emulated
])
def test_precision_auto_is_bf16_autocast_where_it_is_the_way_to_bf16_units(
    monkeypatch, native: bool, amx: bool, expected: str
) -> None:
    monkeypatch.setattr(precision, "native_bf16", lambda device: native)
    monkeypatch.setattr(precision, "amx_tiles", lambda: amx)
    with initialize_config_dir(config_dir=CONFIG_PATH, version_base="1.3"):
        asked = [compose(config_name="train", overrides=o) for o in (
            ["trainer.precision=auto"], ["model=auto", "budget_seconds=60"])]  # model=auto's default
        default = compose(config_name="train")
    for cfg in asked:
        assert precision.decide_precision(cfg)
        assert cfg.trainer.precision == expected
    assert not precision.decide_precision(default)
    assert default.trainer.precision == "32-true"  # auto only when asked for
    assert precision.precision_for_device("auto", torch.device("cpu")) == expected


def test_the_saved_config_holds_the_precision_auto_resolved_to(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setattr(precision, "native_bf16", lambda device: False)
    run = tmp_path / "run"
    args = bare_train_args(
        write_corpus(tmp_path / "c.txt"), run, "trainer.precision=auto", "trainer.max_steps=2",
        "trainer.val_check_interval=2",
    )
    code, _, err = run_main(train.main, args, capsys)
    assert code == 0, err
    saved = (run / ".hydra" / "config.yaml").read_text()
    assert saved.startswith("# trainer.precision=auto resolved to 32-true on this machine\n")
    assert OmegaConf.create(saved).trainer.precision == "32-true"
    assert "trainer.precision=auto" in (run / ".hydra" / "overrides.yaml").read_text()  # what was typed


@pytest.mark.slow
def test_a_resumed_run_keeps_the_precision_auto_gave_it(tmp_path: Path, capsys, monkeypatch) -> None:
    # Started where auto is float32; resumed where auto is bf16 autocast (another machine, or a run
    # from before auto's rule changed): it goes on in float32, unless float32 is asked for no more.
    monkeypatch.setattr(precision, "run_device", lambda trainer: torch.device("cpu"))
    monkeypatch.setattr(precision, "native_bf16", lambda device: False)
    run = tmp_path / "run"
    args = bare_train_args(write_corpus(tmp_path / "c.txt"), run, "trainer.precision=auto",
                           "trainer.max_steps=2", "trainer.val_check_interval=2")
    code, _, err = run_main(train.main, args, capsys)
    assert code == 0, err

    def recorded() -> str:
        hparams = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["hyper_parameters"]
        return hparams["precision"]

    assert recorded() == "32-true"
    monkeypatch.setattr(precision, "native_bf16", lambda device: True)
    monkeypatch.setattr(precision, "amx_tiles", lambda: False)
    resume = [a.replace("max_steps=2", "max_steps=3") for a in args if not a.startswith("hydra.run")]
    code, _, err = run_main(train.main, [*resume, f"ckpt_path={run}"], capsys)
    assert code == 0, err
    assert recorded() == "32-true"
    saved = sorted((run / ".hydra").glob("resume-*/config.yaml"))[-1].read_text()
    assert saved.startswith("# trainer.precision=auto kept 32-true, the checkpoint's\n")
    # A checkpoint from before the precision was recorded: the run's saved config says.
    assert precision.saved_precision(run) == "32-true"
    last = run / "checkpoints" / "last.ckpt"
    assert precision.keep_precision(compose_auto(), {"hyper_parameters": {}}, last)[0]
    # Given on the command line, the user's choice wins.
    resume = [a.replace("max_steps=3", "max_steps=4") for a in resume]
    code, _, err = run_main(train.main, [*resume, f"ckpt_path={run}", "trainer.precision=bf16-mixed"], capsys)
    assert code == 0, err
    assert recorded() == "bf16-mixed"


def compose_auto() -> DictConfig:
    with initialize_config_dir(config_dir=CONFIG_PATH, version_base="1.3"):
        cfg = compose(config_name="train", overrides=["trainer.precision=auto"])
    precision.decide_precision(cfg)  # bf16-mixed, as the test's CPU now has bf16 units and no AMX
    return cfg


@pytest.mark.parametrize(
    ("given", "device", "name"),
    [
        ("bf16", "cpu", "bf16-mixed"), ("32", "cpu", "32-true"), (64, "cpu", "64-true"),
        (None, "cpu", "32-true"), ("bf16-true", "cpu", "bf16-true"),
        ("transformer-engine", "cuda", "transformer-engine"),
        (16, "cuda", "16-mixed"), (16, "cpu", "bf16-mixed"),  # as Lightning runs it: no fp16 autocast on CPU
    ],
)
def test_precision_aliases_get_the_names_lightning_runs(given: object, device: str, name: str) -> None:
    assert precision.precision_for_device(given, torch.device(device)) == name


def test_fp16_autocast_asked_for_on_a_cpu_says_it_trains_in_bf16(tmp_path: Path, capsys) -> None:
    # 16-mixed on a CPU was made bf16-mixed before Lightning saw it, so its warning never came: the
    # run trained in bf16 with nothing said of the fp16 asked for.
    run = tmp_path / "run"
    args = bare_train_args(write_corpus(tmp_path / "c.txt"), run, "trainer.precision=16-mixed",
                           "trainer.max_steps=2", "trainer.val_check_interval=2")
    code, out, err = run_main(train.main, args, capsys)
    assert code == 0, err
    assert ("trainer.precision=16-mixed trains as bf16-mixed on this CPU (fp16 autocast runs on GPUs only); "
            "pass trainer.precision=bf16-mixed to ask for it") in out + err
    assert OmegaConf.load(run / ".hydra" / "config.yaml").trainer.precision == "bf16-mixed"
    assert precision.replaced_precision("bf16-mixed", torch.device("cpu")) is None
    assert precision.replaced_precision(16, torch.device("cuda")) is None
    assert precision.replaced_precision("auto", torch.device("cpu")) is None


@pytest.mark.parametrize(
    ("run_precision", "autocast", "weights"),
    [
        ("32-true", False, torch.float32),
        ("bf16-mixed", True, torch.float32),  # autocast: float32 weights, bf16 products
        ("bf16-true", False, torch.bfloat16),  # the weights themselves in bf16
    ],
)
def test_shapes_are_timed_in_the_runs_precision(
    monkeypatch, run_precision: str, autocast: bool, weights: torch.dtype
) -> None:
    seen = []
    original = calibration.build_model

    def recording_model(*args, **kwargs):
        model = original(*args, **kwargs)
        model.register_forward_hook(
            lambda m, *_: seen.append((torch.is_autocast_enabled("cpu"), next(m.parameters()).dtype))
        )
        return model

    monkeypatch.setattr(calibration, "build_model", recording_model)
    measure = calibration.step_timer(
        ModelConfig(), {"_target_": "torch.optim.AdamW", "lr": 1e-3}, 8,
        torch.randint(0, 8, (500,)).numpy(), torch.device("cpu"), 1.0, seed=0, precision=run_precision,
    )
    assert measure(Shape(1, 16, 2, 8, 2)) > 0
    assert seen and set(seen) == {(autocast, weights)}


def test_a_shape_is_timed_with_the_runs_dropout_unless_another_is_asked_for(monkeypatch) -> None:
    seen = []
    original = calibration.build_model

    def recording_model(config: ModelConfig, *args, **kwargs):
        seen.append(config.dropout)
        return original(config, *args, **kwargs)

    monkeypatch.setattr(calibration, "build_model", recording_model)
    measure = calibration.step_timer(
        ModelConfig(dropout=0.2), {"_target_": "torch.optim.AdamW", "lr": 1e-3}, 8,
        torch.randint(0, 8, (500,)).numpy(), torch.device("cpu"), 1.0, seed=0,
    )
    assert measure(Shape(1, 16, 2, 8, 2)) > 0 and measure(Shape(1, 16, 2, 8, 2), dropout=0.05) > 0
    assert seen == [0.2, 0.05]


@pytest.mark.parametrize(("extra", "keyword", "passed"), [
    ([], "dropout", None), (["model.dropout=0"], "dropout", 0.0), (["model.dropout=0.1"], "dropout", 0.1),
    ([], "reserve_seconds", 2.0), (["callbacks.time_budget.reserve_seconds=9"], "reserve_seconds", 9.0),
    ([], "caps", StepCaps(1_000_000)), (["trainer.max_steps=50"], "caps", StepCaps(50)),
    (["trainer.max_steps=-1"], "caps", StepCaps()),
    (["trainer.max_epochs=2"], "caps", StepCaps(1_000_000, 2)),
])
def test_command_line_settings_reach_the_climb(
    tmp_path: Path, capsys, monkeypatch, extra, keyword, passed
) -> None:
    # A given dropout is timed with every shape and never replaced by the rule's (None: the rule's).
    # The reserve: the climb planned with the default 2 s whatever the callback was told to keep back.
    seen = {}

    def stop(*args, **kwargs):
        seen.update(kwargs)
        raise ConfigError("stopped before timing")

    monkeypatch.setattr(rule, "climb", stop)
    args = ["model=auto", "budget_seconds=60", "data=text", f"data.path={write_corpus(tmp_path / 'c.txt')}",
            f"hydra.run.dir={tmp_path / 'run'}", *extra]
    code, _, err = run_main(train.main, args, capsys)
    assert code == 2 and "stopped before timing" in err and seen[keyword] == passed


@pytest.mark.parametrize("value", ["abc", "null", "-5"])
def test_a_bad_reserve_is_refused_before_any_timing(tmp_path: Path, capsys, monkeypatch, value) -> None:
    monkeypatch.setattr(rule, "climb", lambda *a, **k: pytest.fail("timed shapes"))
    args = ["model=auto", "budget_seconds=60", "data=text", f"data.path={write_corpus(tmp_path / 'c.txt')}",
            f"hydra.run.dir={tmp_path / 'run'}", f"callbacks.time_budget.reserve_seconds={value}"]
    code, _, err = run_main(train.main, args, capsys)
    assert code == 2 and err.startswith("error: callbacks.time_budget.reserve_seconds=")
    assert "must be a finite number >= 0" in err and "Traceback" not in err


def test_a_step_cap_sizes_the_model_for_the_steps_the_run_will_make() -> None:
    # trainer.max_steps stops the run whatever the budget buys: the choice (and its printed steps,
    # epochs and rates) was made for the steps of the whole budget, a larger model than 500 steps want.
    free, capped = size(600), climb(LADDER, fake_speed(45.0), 600, lambda: 2.0, SHAKESPEARE_TRAIN,
                                    SHAKESPEARE_VAL, caps=StepCaps(max_steps=500))
    assert free.planned is not None and free.planned.steps > 500
    assert capped.planned is not None and capped.planned.steps == 500
    assert all(e.steps <= 500 for e in capped.measured)
    assert non_embedding_params(capped.shape) < non_embedding_params(free.shape)
    assert capped.momentum == momentum_for(500) and "trainer.max_steps=500 caps the steps" in capped.reason
    assert "caps the steps" not in free.reason


def test_an_epoch_cap_sizes_the_model_for_the_epochs_the_run_will_make() -> None:
    # trainer.max_epochs stops the run too: each shape's steps are capped at its own epochs' worth
    # (an epoch is the training text over the shape's batch of windows).
    free = size(600)
    capped = climb(LADDER, fake_speed(45.0), 600, lambda: 2.0, SHAKESPEARE_TRAIN, SHAKESPEARE_VAL,
                   caps=StepCaps(max_epochs=1))
    assert capped.planned is not None and free.planned is not None and free.planned.epochs > 1
    def one_epoch(shape: Shape) -> int:
        return math.ceil(SHAKESPEARE_TRAIN / shape.tokens_per_step())

    assert all(e.steps <= one_epoch(e.shape) for e in capped.measured)
    assert capped.planned.steps == one_epoch(capped.shape)
    assert non_embedding_params(capped.shape) < non_embedding_params(free.shape)
    assert "trainer.max_epochs=1 caps the steps" in capped.reason


def test_a_larger_reserve_plans_fewer_steps() -> None:
    shape = LADDER[0]
    usual = estimate(shape, 0.05, 100, 5.0, SHAKESPEARE_TRAIN, SHAKESPEARE_VAL)
    kept = estimate(shape, 0.05, 100, 5.0, SHAKESPEARE_TRAIN, SHAKESPEARE_VAL, reserve_seconds=12.0)
    assert usual.steps - kept.steps == pytest.approx(10.0 / (0.05 + LOOP_OVERHEAD_SECONDS), abs=1)


def test_model_auto_refuses_a_shape_on_the_command_line(tmp_path: Path, capsys) -> None:
    corpus = write_corpus(tmp_path / "c.txt")
    code, _, err = run_main(
        train.main,
        ["model=auto", "budget_seconds=30", "model.n_embd=64", "data=text", f"data.path={corpus}",
         f"hydra.run.dir={tmp_path / 'run'}"],
        capsys,
    )
    assert code == 2 and "error: model=auto chooses model.n_embd itself" in err


def test_model_auto_refuses_gradient_accumulation(tmp_path: Path, capsys) -> None:
    # It priced a step as one batch and set its rates for the steps that bought: with
    # trainer.accumulate_grad_batches=4 the run made a quarter of them, each of four batches.
    corpus = write_corpus(tmp_path / "c.txt")
    code, _, err = run_main(
        train.main,
        ["model=auto", "budget_seconds=30", "trainer.accumulate_grad_batches=4", "data=text",
         f"data.path={corpus}", f"hydra.run.dir={tmp_path / 'run'}"],
        capsys,
    )
    assert code == 2 and err.startswith(
        "error: model=auto chooses the batch itself (data.batch_size, one batch a step), but "
        "trainer.accumulate_grad_batches=4 makes each step 4 batches")
    assert err.count("\n") == 1 and "timing" not in err and not (tmp_path / "run").exists()


def test_model_auto_on_a_text_too_short_for_its_context_advises_what_it_takes(tmp_path: Path, capsys) -> None:
    # The advice was "a smaller model.block_size", which model=auto then refused.
    corpus = write_corpus(tmp_path / "c.txt", n_chars=1000)
    code, _, err = run_main(
        train.main,
        ["model=auto", "budget_seconds=30", "data=text", f"data.path={corpus}",
         f"hydra.run.dir={tmp_path / 'run'}"],
        capsys,
    )
    assert code == 2 and err.startswith(f"error: the val split of {corpus} has 100 characters, fewer than ")
    assert err.strip().endswith("use a longer text, a fixed model with a short context (model=tiny "
                                "model.block_size=99) or another data.train_fraction")


TINY_LADDER = (Shape(1, 32, 2, 16, 4), Shape(1, 48, 2, 16, 4), Shape(2, 64, 2, 16, 4))


@pytest.mark.slow
def test_auto_run_records_its_choice_and_a_resume_keeps_it(tmp_path: Path, capsys, monkeypatch) -> None:
    # A budget counts from the process start; here, from the call (pytest started long ago).
    monkeypatch.setattr(budget_plan, "run_start_time", time.monotonic)
    monkeypatch.setattr(ladder, "LADDER", TINY_LADDER)
    # Dropout and weight decay from the first epoch: the epochs 12 s buy depend on the machine's
    # load (a loaded one bought too few for either), and what is tested is that the choice is used.
    monkeypatch.setattr(recipe, "DROPOUT_BY_EPOCHS", ((0.0, 0.1), (1.0, 0.2)))
    monkeypatch.setattr(recipe, "WEIGHT_DECAY_BY_EPOCHS", ((0.0, 0.1),))
    corpus = write_corpus(tmp_path / "c.txt")  # 3,600 training characters: many epochs
    run = tmp_path / "run"
    args = [
        "model=auto", "budget_seconds=12", "data=text", f"data.path={corpus}", f"hydra.run.dir={run}",
        "callbacks.time_budget.skip_steps=1", "callbacks.time_budget.calibration_steps=3",
        "+trainer.limit_val_batches=4", "sample.max_new_tokens=0", "logger=none", "~callbacks.progress_bar",
    ]
    # Stopped after its plan (step 4: 1 skipped + 3 timed), so that the resume below has steps to train.
    StepHook(monkeypatch).send_signal_at(8)
    code, out, err = run_main(train.main, args, capsys)
    assert code == 130, err
    printed = out + err
    assert "model=auto: 12 s budget" in printed and "same run without model=auto: chargpt-train" in printed
    whole = json.loads((run / "budget.json").read_text())
    record = whole["auto"]
    chosen = record["chosen"]
    keys = ("n_layer", "n_embd", "n_head", "block_size", "batch_size")
    assert Shape(*(chosen[k] for k in keys)) in TINY_LADDER
    assert record["candidates"] and record["rerun_with"].startswith("chargpt-train ")
    # The run's re-run line is a whole command here (model=auto needs a budget): its shape, its steps.
    command = shlex.split(whole["rerun_with"])
    assert command[0] == "chargpt-train" and sum(a.startswith("budget_seconds=") for a in command) == 1
    with initialize_config_dir(config_dir=CONFIG_PATH, version_base="1.3"):
        again = compose("train", overrides=command[1:])
    assert again.trainer.max_steps == whole["planned_steps"] and again.budget_seconds is None
    assert not again.model.get("auto") and again.model.n_embd == chosen["n_embd"]
    # model=auto does not clip (the default trainer does): the command that repeats it says so.
    assert again.trainer.gradient_clip_val is None and "trainer.gradient_clip_val=null" in command
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["hyper_parameters"]["auto"]["chosen"] == chosen
    assert ckpt["hyper_parameters"]["model"]["n_embd"] == chosen["n_embd"]
    saved = OmegaConf.load(run / ".hydra" / "config.yaml")  # Hydra's record shows the choice
    assert (saved.model.n_embd, saved.data.batch_size, saved.model.auto) == (
        chosen["n_embd"], chosen["batch_size"], False)
    assert saved.optimizer.weight_decay == chosen["weight_decay"] > 0
    # Many epochs: the rule's dropout was timed on the chosen shape, and the run trains with it.
    assert chosen["dropout"] > 0 and saved.model.dropout == chosen["dropout"]
    assert record["timed_with_dropout"]["shape"] == chosen["shape"] and "with dropout" in record["reason"]

    # Resumed: the recorded choice is rebuilt, nothing is timed again.
    def no_timing(*a, **k):
        raise AssertionError("a resumed model=auto run must not calibrate")

    monkeypatch.setattr(calibration, "step_timer", no_timing)
    resumed = [a for a in args if not a.startswith("hydra.run.dir=")] + [f"ckpt_path={run}"]
    # Without model=auto the default model is asked for: refused, with what to add.
    code, _, err = run_main(train.main, [a for a in resumed if a not in args[:2]], capsys)
    assert code == 2 and "it was sized by model=auto: add model=auto and its budget_seconds" in err
    # Given another budget: not used, and said so; the block, its re-run line and the record name
    # the budget the plan was made for.
    code, out, err = run_main(train.main, [a.replace("budget_seconds=12", "budget_seconds=30")
                                           for a in resumed], capsys)
    assert code == 0, err
    assert "kept from the checkpoint" in out + err and " s by the first run (target " in out + err
    assert "model=auto: 12 s budget" in out + err and "budget_seconds=30 is not used" in out + err
    [rerun] = [line for line in (out + err).splitlines() if line.startswith("same run without model=auto")]
    assert "budget_seconds=12" in rerun and "budget_seconds=30" not in rerun
    after = json.loads((run / "budget.json").read_text())
    assert after["auto"]["chosen"] == chosen and after["budget_seconds"] == 12
    resumed_configs = list((run / ".hydra").glob("resume-*/config.yaml"))
    assert len(resumed_configs) == 1  # the refused resume left none: the report reads the latest
    resumed_cfg = OmegaConf.load(resumed_configs[0])
    assert resumed_cfg.model.n_layer == chosen["n_layer"]
    assert resumed_cfg.optimizer.weight_decay == chosen["weight_decay"]


@pytest.mark.slow
def test_each_sweep_job_sizes_itself(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setattr(budget_plan, "run_start_time", time.monotonic)
    monkeypatch.setattr(ladder, "LADDER", TINY_LADDER)
    timed: list[tuple[Shape, float | None]] = []
    timer = calibration.step_timer

    def counting_timer(*args, **kwargs):
        measure = timer(*args, **kwargs)
        return lambda shape, dropout=None: (timed.append((shape, dropout)), measure(shape, dropout))[1]

    monkeypatch.setattr(calibration, "step_timer", counting_timer)
    corpus = write_corpus(tmp_path / "c.txt", n_chars=20_000)
    args = [
        "-m", "model=auto", "budget_seconds=8,10", "data=text", f"data.path={corpus}",
        f"hydra.sweep.dir={tmp_path / 'sweep'}", "callbacks.time_budget.skip_steps=1",
        "callbacks.time_budget.calibration_steps=3", "+trainer.limit_val_batches=4",
        "sample.max_new_tokens=0", "logger=none", "~callbacks.progress_bar",
    ]
    run_main(train.main, args, capsys)  # (whether a job on a busy machine fits its budget is not the point)
    blocks = [(tmp_path / "sweep" / job / "train.log").read_text() for job in ("0", "1")]
    assert "model=auto: 8 s budget" in blocks[0] and "model=auto: 10 s budget" in blocks[1]
    counts = [int(b.split(" shape(s) timed")[0].rsplit(" ", 1)[1]) for b in blocks]
    assert sum(dropout == 0.0 for _, dropout in timed) == sum(counts)  # each job timed its own shapes
    assert "data.path=/" in blocks[1]  # the printed command holds the path as typed


class _NoWholeCopy:
    """Training ids that allow gathering windows but not a copy of the whole split."""

    def __init__(self, ids: np.ndarray) -> None:
        self.ids = ids

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: np.ndarray) -> np.ndarray:
        assert isinstance(index, np.ndarray) and index.ndim == 2, "windows are gathered at once"
        return self.ids[index]

    def __array__(self, *args, **kwargs):
        raise AssertionError("the whole training split was copied")

    def __iter__(self):
        raise AssertionError("the whole training split was read")


def test_the_step_timer_gathers_windows_without_copying_the_whole_split() -> None:
    # The timer made an int64 copy of the training split: 8 bytes a character of a memory-mapped
    # uint8 file, 391 MB more for a 50 MB text before the first shape was timed.
    ids = _NoWholeCopy(np.random.default_rng(0).integers(0, 8, 500).astype(np.uint8))
    measure = calibration.step_timer(
        ModelConfig(), {"_target_": "torch.optim.AdamW", "lr": 1e-3}, 8, ids, torch.device("cpu"), 1.0,
        seed=0,
    )
    assert measure(Shape(1, 16, 2, 8, 2)) > 0
