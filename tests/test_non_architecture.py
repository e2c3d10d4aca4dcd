"""Settings that are not architecture (model.compile, model.dropout) may change when a run resumes
or is fine-tuned; a width may not (ModelConfig.architecture decides both)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from chargpt.cli.train import main as train_main
from conftest import bare_train_args, run_main, train_two_step_run


@pytest.fixture(scope="module")
def first(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A finished 2-step run (n_embd=32, dropout 0, not compiled) and its text."""
    return train_two_step_run(tmp_path_factory.mktemp("first"))


@pytest.fixture
def compiled(monkeypatch: pytest.MonkeyPatch) -> list[torch.nn.Module]:
    """What torch.compile was asked to compile; the model runs eager (compiling takes minutes on CPU)."""
    calls: list[torch.nn.Module] = []
    monkeypatch.setattr(torch, "compile", lambda model, *a, **k: calls.append(model) or model)
    return calls


def _model_settings(checkpoint: Path) -> dict:
    return torch.load(checkpoint, weights_only=True)["hyper_parameters"]["model"]


def _one_error(code: int, err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def test_resume_may_compile_and_change_dropout(first, compiled, capsys) -> None:
    run, corpus = first
    args = [*bare_train_args(corpus, None, "trainer.max_steps=4", "trainer.val_check_interval=2"),
            f"ckpt_path={run}", "model.compile=true", "model.dropout=0.1"]
    code, _, err = run_main(train_main, args, capsys)
    assert code == 0, err
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == 4 and len(compiled) == 1
    assert ckpt["hyper_parameters"]["model"]["compile"] is True
    assert ckpt["hyper_parameters"]["model"]["dropout"] == 0.1


def test_resume_refuses_another_width(first, compiled, capsys) -> None:
    run, corpus = first
    args = [*bare_train_args(corpus, None, "trainer.max_steps=8"), f"ckpt_path={run}",
            "model.compile=true", "model.dropout=0.2", "model.n_embd=64"]
    line = _one_error(*run_main(train_main, args, capsys)[::2])
    assert "its model has model.n_embd=32 but this run asks for model.n_embd=64" in line
    assert "compile" not in line and "dropout" not in line


def _finetune_args(corpus: Path, run_dir: Path, init_from: Path, *extra: str) -> list[str]:
    base = [a for a in bare_train_args(corpus, run_dir, "trainer.max_steps=2") if not a.startswith("model.")]
    return [*base, f"init_from={init_from}", *extra]


def test_finetune_may_compile_and_change_dropout(first, compiled, tmp_path, capsys) -> None:
    run, corpus = first
    args = _finetune_args(corpus, tmp_path / "ft", run, "model.compile=true", "model.dropout=0.2")
    code, _, err = run_main(train_main, args, capsys)
    assert code == 0, err
    settings = _model_settings(tmp_path / "ft" / "checkpoints" / "last.ckpt")
    source = _model_settings(run / "checkpoints" / "last.ckpt")
    assert settings["compile"] is True and settings["dropout"] == 0.2 and len(compiled) == 1
    assert {k: v for k, v in settings.items() if k not in ("compile", "dropout")} == {
        k: v for k, v in source.items() if k not in ("compile", "dropout")}


def test_finetune_refuses_another_width(first, compiled, tmp_path, capsys) -> None:
    run, corpus = first
    args = _finetune_args(corpus, tmp_path / "ft", run, "model.compile=true", "model.dropout=0.2",
                          "model.n_embd=64")
    line = _one_error(*run_main(train_main, args, capsys)[::2])
    assert "drop the override model.n_embd=64 (checkpoint: 32)" in line
    assert "compile" not in line and "dropout" not in line
    assert not (tmp_path / "ft" / "checkpoints").exists()


def test_a_refused_resume_names_the_values_as_they_are_typed() -> None:
    # `model.logit_softcap=None` is the text "None" to Hydra, not null: the fix it shows must run.
    from chargpt.errors import CheckpointError
    from chargpt.model import ModelConfig
    from chargpt.training.resume_checks import check_resumable

    trained = ModelConfig(qk_norm=True)
    ckpt = {"hyper_parameters": {"model": trained.to_dict(), "vocab": ["a", "b"]}}
    with pytest.raises(CheckpointError) as refused:
        check_resumable(ckpt, "RUN", ModelConfig(logit_softcap=30.0), ["a", "b"], None)
    assert ("its model has model.logit_softcap=null, model.qk_norm=true but this run asks for "
            "model.logit_softcap=30.0, model.qk_norm=false;") in str(refused.value)
