"""The figures a run reports: tokens as trained across a change of batch size, metrics.json in
step with the newest checkpoint, and each parameter group's learning rate."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
import torch

from chargpt.cli.train import main as train_main
from chargpt.errors import ConfigError
from chargpt.model import ModelConfig, build_model
from chargpt.training.optim import build_optimizer, check_optimizer, group_rates
from conftest import StepHook, bare_train_args, run_main, write_corpus

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
MUON = {"_target_": "chargpt.training.optim.muon_adamw", "lr": 0.02, "adamw": {"lr": 1e-3}}


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHARGPT_CACHE_DIR", str(tmp_path / "cache"))


def test_tokens_count_each_step_at_the_batch_size_it_trained_with(tmp_path, monkeypatch, capsys):
    corpus = write_corpus(tmp_path / "corpus.txt")
    run = tmp_path / "run"
    args = bare_train_args(corpus, run, "trainer.max_steps=4", "trainer.val_check_interval=4")
    code, _, err = run_main(train_main, args, capsys)
    assert code == 0, err
    args = bare_train_args(corpus, None, "trainer.max_steps=6", "data.batch_size=8", f"ckpt_path={run}")
    code, out, err = run_main(train_main, args, capsys)
    assert code == 0, err
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["step"] == 6 and metrics["tokens"] == 4 * 4 * 16 + 2 * 8 * 16  # not 6 * 8 * 16
    [line] = [x for x in (out + err).splitlines() if "tokens per step" in x]
    assert "resuming at step 4 with 128 tokens per step (data.batch_size=8) where the run had 64" in line


def test_the_closing_line_gives_the_figures_of_metrics_json(tmp_path, monkeypatch, capsys):
    # A clock that moves a second at each reading: figures taken again after the last write differ.
    import itertools
    from types import SimpleNamespace

    from chargpt.training.callbacks import metrics as run_metrics

    monkeypatch.setattr(run_metrics, "time", SimpleNamespace(perf_counter=itertools.count(1000).__next__))
    run = tmp_path / "run"
    args = bare_train_args(write_corpus(tmp_path / "corpus.txt"), run, "trainer.max_steps=4")
    code, out, err = run_main(train_main, args, capsys)
    assert code == 0, err
    metrics = json.loads((run / "metrics.json").read_text())
    closing = f"step 4: val loss {metrics['val_loss']:.4f} (best {metrics['best_val_loss']:.4f}), " \
              f"{metrics['train_seconds']:.0f} s, {metrics['tokens_per_second']:.0f} tokens/s"
    assert closing in out + err, out + err


def test_metrics_json_matches_the_interrupt_checkpoint(tmp_path, monkeypatch, capsys):
    corpus = write_corpus(tmp_path / "corpus.txt")
    run = tmp_path / "run"
    hook = StepHook(monkeypatch)
    hook.send_signal_at(5, signal.SIGTERM)
    args = bare_train_args(corpus, run, "trainer.max_steps=12", "trainer.val_check_interval=4")
    code, _, err = run_main(train_main, args, capsys)
    assert code == 128 + signal.SIGTERM, err
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    metrics = json.loads((run / "metrics.json").read_text())
    assert ckpt["global_step"] == metrics["step"] == 5  # was 4: the last validation's
    assert metrics["val_step"] == 4 and metrics["tokens"] == 5 * 4 * 16


def test_each_parameter_group_rate_is_named():
    model = build_model(ModelConfig(block_size=16, n_layer=1, n_head=2, n_embd=32), 12)
    assert group_rates(build_optimizer(model, {"_target_": "torch.optim.AdamW", "lr": 3e-4})) == {"": 3e-4}
    assert group_rates(build_optimizer(model, MUON)) == {"muon": 0.02, "adamw": 1e-3}


def test_muon_without_torch_muon_names_the_version(monkeypatch):
    monkeypatch.delattr(torch.optim, "Muon", raising=False)
    with pytest.raises(ConfigError, match=r"optimizer=muon needs torch.optim.Muon \(torch>=2.9\)"):
        check_optimizer(MUON)
    check_optimizer({"_target_": "torch.optim.AdamW"})  # others are fine
