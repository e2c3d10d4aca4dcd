"""Speed options keep training correct: fused/foreach AdamW, model.compile, lean step logging."""

from __future__ import annotations

import os
import sys
from typing import ClassVar

import lightning as L
import numpy as np
import pytest
import torch

from chargpt.cli import common
from chargpt.cli import eval as eval_cli
from chargpt.cli import sample as sample_cli
from chargpt.cli import train as train_cli
from chargpt.model import ModelConfig, build_model
from chargpt.training import CharLM
from chargpt.training.callbacks.progress import StepProgressBar
from chargpt.training.callbacks.validate_at_end import ValidateAtEnd
from chargpt.training.host_memory import keep_freed_memory
from chargpt.training.optim import build_optimizer
from chargpt.training.schedules import build_scheduler
from conftest import bare_train_args, make_checkpoint, run_cli, write_corpus

MODEL = {"block_size": 16, "n_layer": 1, "n_head": 2, "n_embd": 32}
VOCAB = [chr(c) for c in range(ord("a"), ord("a") + 12)]


class Batches(torch.utils.data.Dataset):
    def __init__(self, n: int = 64) -> None:
        rng = np.random.default_rng(0)
        self.data = torch.from_numpy(rng.integers(0, len(VOCAB), size=(n, 4, 17)))

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.data[i, :, :-1], self.data[i, :, 1:]


def train_steps(optimizer: dict, steps: int = 5) -> torch.Tensor:
    torch.manual_seed(0)
    model = build_model(ModelConfig(**MODEL), len(VOCAB))
    opt = build_optimizer(model, optimizer)
    sched = build_scheduler(opt, {"_target_": "chargpt.training.schedules.Constant"}, lambda: steps)
    data = Batches()
    for k in range(steps):
        _, loss = model(*data[k])
        loss.backward()
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
    return torch.cat([p.detach().flatten() for p in model.parameters()])


@pytest.mark.parametrize("variant", [{"fused": True}, {"foreach": True}])
def test_fused_and_foreach_adamw_match_the_reference_loop(variant: dict) -> None:
    base = {"_target_": "torch.optim.AdamW", "lr": 1e-2, "weight_decay": 0.1, "betas": [0.9, 0.99]}
    reference = train_steps({**base, "foreach": False})
    fast = train_steps({**base, **variant})
    assert not torch.equal(reference, train_steps({**base, "lr": 0.0}))  # the steps did move weights
    # Kernels round differently (most visible where m/sqrt(v) meets eps); a wrong update (decay,
    # bias correction) would be off by a sizeable fraction of a step (lr = 1e-2).
    torch.testing.assert_close(fast, reference, rtol=1e-3, atol=5e-4)


@pytest.mark.parametrize("optimizer", ["adamw", "muon"])
def test_adamw_is_fused_by_default_alone_and_inside_muon(optimizer: str) -> None:
    from hydra import compose, initialize_config_dir

    from chargpt.cli import CONFIG_PATH
    from chargpt.hydra_run import plain

    with initialize_config_dir(config_dir=CONFIG_PATH, version_base="1.3"):
        cfg = compose(config_name="train", overrides=[f"optimizer={optimizer}"])
    model = build_model(ModelConfig(**MODEL), len(VOCAB))
    opt = build_optimizer(model, plain(cfg.optimizer))
    adamw = opt.optimizers[1] if optimizer == "muon" else opt
    assert isinstance(adamw, torch.optim.AdamW) and adamw.defaults["fused"] is True


def test_compile_flag_is_not_architecture() -> None:
    plain, compiled = ModelConfig(**MODEL), ModelConfig(**MODEL, compile=True)
    assert plain.architecture() == compiled.architecture()  # resumes/loads as the same model
    assert "compile" not in plain.architecture() and "n_embd" in plain.architecture()
    assert compiled.to_dict()["compile"] is True
    assert ModelConfig.from_dict({k: v for k, v in plain.to_dict().items() if k != "compile"}) == plain


def test_compile_flag_must_be_a_bool() -> None:
    from chargpt.errors import ConfigError

    with pytest.raises(ConfigError, match=r"model\.compile"):
        ModelConfig(**MODEL, compile="yes")


def fit(module: CharLM, tmp_path, steps: int = 4, **trainer_args: object) -> L.Trainer:
    trainer = L.Trainer(
        accelerator="cpu", max_steps=steps, logger=False, enable_checkpointing=False,
        enable_model_summary=False, default_root_dir=tmp_path, **trainer_args,
    )
    loader = torch.utils.data.DataLoader(Batches(), batch_size=None)
    trainer.fit(module, train_dataloaders=loader)
    return trainer


def new_module(**model: object) -> CharLM:
    torch.manual_seed(0)
    return CharLM(
        model={**MODEL, **model}, vocab=VOCAB,
        optimizer={"_target_": "torch.optim.AdamW", "lr": 1e-2, "fused": True},
    )


@pytest.mark.slow
def test_compile_switch_trains_and_keeps_checkpoint_keys(tmp_path, monkeypatch) -> None:
    # The eager backend exercises the switch quickly; the slow test below uses the default backend.
    calls = []
    real_compile = torch.compile

    def eager_compile(model, **kwargs):
        calls.append(model)
        return real_compile(model, backend="eager", **kwargs)

    monkeypatch.setattr(torch, "compile", eager_compile)
    compiled = new_module(compile=True)
    fit(compiled, tmp_path, enable_progress_bar=False)
    assert calls == [compiled.model]
    assert set(compiled.state_dict()) == set(new_module().state_dict())
    assert all(k.startswith("model.") for k in compiled.state_dict())
    # Same weights as an eager run of the same steps.
    eager = new_module()
    fit(eager, tmp_path, enable_progress_bar=False)
    for a, b in zip(compiled.parameters(), eager.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_compile_with_inductor_matches_eager(tmp_path) -> None:
    compiled, eager = new_module(compile=True), new_module()
    fit(compiled, tmp_path, enable_progress_bar=False)
    fit(eager, tmp_path, enable_progress_bar=False)
    # Inductor fuses and reorders float math, and Adam's lr-sized steps amplify rounding where
    # m/sqrt(v) meets eps; a wrong graph would be off by whole steps (lr = 1e-2).
    for a, b in zip(compiled.parameters(), eager.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-2, atol=1e-3)


def test_step_values_reach_the_logger_at_its_interval_and_the_last_step(tmp_path) -> None:
    from lightning.pytorch.loggers import CSVLogger

    module = new_module()
    trainer = L.Trainer(
        accelerator="cpu", max_steps=7, log_every_n_steps=3, logger=CSVLogger(tmp_path),
        enable_checkpointing=False, enable_model_summary=False, enable_progress_bar=False,
        callbacks=[ValidateAtEnd()],  # as in chargpt-train: it stops, and so logs, at the last step
    )
    trainer.fit(module, train_dataloaders=torch.utils.data.DataLoader(Batches(), batch_size=None))
    metrics = (tmp_path / "lightning_logs" / "version_0" / "metrics.csv").read_text().splitlines()
    header = metrics[0].split(",")
    rows = [dict(zip(header, line.split(","), strict=True)) for line in metrics[1:]]
    logged_steps = sorted(int(r["step"]) for r in rows if r.get("train/loss"))
    assert logged_steps == [3, 6, 7]  # steps 3 and 6 and the last one, at the steps taken
    assert all(r.get("train/lr") for r in rows if r.get("train/loss"))
    # Logged for the loggers and callbacks, not for Lightning's bar (which reads it every batch).
    assert "train/loss" in trainer.callback_metrics and not trainer.progress_bar_metrics


def test_progress_bar_updates_sparingly_and_at_the_last_step(tmp_path, monkeypatch) -> None:
    updates = []
    original = StepProgressBar._update_train

    def spy(self, trainer, *args, **kwargs):
        updates.append(trainer.global_step)
        original(self, trainer, *args, **kwargs)

    monkeypatch.setattr(StepProgressBar, "_update_train", spy)
    bar = StepProgressBar(min_interval=3600)  # only the first and the last step update it
    completed = []
    stop = StepProgressBar._stop

    def record_and_stop(self):
        if self.progress is not None:
            completed.append(self.progress.tasks[0].completed)
        stop(self)

    monkeypatch.setattr(StepProgressBar, "_stop", record_and_stop)
    fit(new_module(), tmp_path, steps=6, callbacks=[bar])
    assert updates == [1, 6]
    assert completed == [6]


def test_bf16_mixed_with_fused_adamw_and_clipping_trains(tmp_path, monkeypatch) -> None:
    # Lightning alone refuses to clip gradients of a fused optimizer under mixed precision.
    clipped = []
    real_clip = torch.nn.utils.clip_grad_norm_

    def spy(parameters, max_norm, *args, **kwargs):
        clipped.append(max_norm)
        return real_clip(parameters, max_norm, *args, **kwargs)

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", spy)
    module = new_module()
    before = [p.detach().clone() for p in module.parameters()]
    trainer = fit(module, tmp_path, precision="bf16-mixed", gradient_clip_val=1e-3, enable_progress_bar=False)
    assert trainer.global_step == 4
    assert clipped == [1e-3] * 4
    assert all(p.dtype == torch.float32 for p in module.parameters())
    moved = max((p.detach() - b).abs().max().item() for p, b in zip(module.parameters(), before, strict=True))
    assert 0 < moved <= 4 * 1e-2 * 1.01  # Adam moves each weight by at most ~lr per step


def _glibc() -> bool:
    try:
        return sys.platform.startswith("linux") and os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc")
    except (AttributeError, OSError, ValueError):
        return False


def test_keep_freed_memory_sets_glibcs_thresholds_once_and_only_there() -> None:
    # True: both mallopt calls succeeded (thresholds in glibc's range); a second call is a no-op.
    assert keep_freed_memory() is _glibc()
    assert keep_freed_memory() is _glibc()


class RecordThreads(L.Callback):
    """Notes torch's CPU thread count as training starts (a run's callback, by its _target_)."""

    seen: ClassVar[list[tuple[int, str | None]]] = []

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        RecordThreads.seen.append((torch.get_num_threads(), os.environ.get("OMP_NUM_THREADS")))


@pytest.mark.slow  # a sweep of two runs in this process: ~2 s
def test_threads_setting_sets_torchs_cpu_threads_per_job(tmp_path, monkeypatch) -> None:
    # As in a fresh process: an earlier command of this test process (chargpt-serve sets threads=1
    # by default) would otherwise be what threads=null puts back.
    monkeypatch.setattr(common, "_threads_before", None)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    before = torch.get_num_threads()
    wanted = 1 if before > 1 else 2  # a count other than the one in force
    record = "+callbacks.record._target_=test_throughput_options.RecordThreads"
    # Two jobs in one process: the second (threads=null) must get torch's default back.
    corpus = write_corpus(tmp_path / "corpus.txt")
    args = ["-m", *bare_train_args(corpus, None, "trainer.max_steps=2", record),
            f"threads={wanted},null", f"hydra.sweep.dir={tmp_path / 'sweep'}"]
    env_before = os.environ.get("OMP_NUM_THREADS")
    RecordThreads.seen.clear()
    try:
        assert run_cli(train_cli.main, *args) == 0
    finally:
        torch.set_num_threads(before)
    # OMP_NUM_THREADS too: processes the run starts (CPU DDP ranks) take their threads from it.
    assert RecordThreads.seen == [(wanted, str(wanted)), (before, env_before)]
    assert os.environ.get("OMP_NUM_THREADS") == env_before


@pytest.mark.parametrize("command", ["sample", "eval"])
def test_sample_and_eval_take_a_thread_count_too(command, tmp_path, monkeypatch) -> None:
    # Scoring or sampling beside a training run on a small machine: threads=1, as for the run.
    monkeypatch.setattr(common, "_threads_before", None)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    before = torch.get_num_threads()
    wanted = 1 if before > 1 else 2
    ckpt = make_checkpoint(tmp_path / "model.ckpt")
    if command == "sample":
        main, args = sample_cli.main, ["max_new_tokens=5"]
    else:
        main, args = eval_cli.main, ["data=text", f"data.path={write_corpus(tmp_path / 'corpus.txt')}"]
    try:
        assert run_cli(main, f"ckpt_path={ckpt}", f"threads={wanted}", *args) == 0
        assert torch.get_num_threads() == wanted and os.environ.get("OMP_NUM_THREADS") == str(wanted)
    finally:
        common.use_threads(None)
        torch.set_num_threads(before)
