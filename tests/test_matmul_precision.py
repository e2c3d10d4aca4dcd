"""matmul_precision: `auto` resolved for the device, unknown values refused before any work."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from chargpt.cli import CONFIG_PATH, train
from chargpt.errors import ConfigError
from chargpt.training import precision
from conftest import bare_train_args, run_main, write_corpus


@pytest.mark.parametrize(
    ("amx", "device", "name"),
    [(True, "cpu", "medium"), (False, "cpu", "highest"), (True, "cuda", "high"), (False, "cuda", "high")],
)
def test_auto_is_bf16_products_only_on_a_cpu_with_amx(
    monkeypatch, amx: bool, device: str, name: str
) -> None:
    monkeypatch.setattr(precision, "amx_tiles", lambda: amx)
    assert precision.matmul_precision_for_device("auto", torch.device(device)) == name


def test_auto_keeps_float32_products_in_a_compiled_model(monkeypatch) -> None:
    # The compiler places attention itself, where chargpt's float32 attention does not reach.
    monkeypatch.setattr(precision, "amx_tiles", lambda: True)
    cpu = torch.device("cpu")
    assert precision.matmul_precision_for_device("auto", cpu, compiled=True) == "highest"
    assert precision.matmul_precision_for_device("medium", cpu, compiled=True) == "medium"  # as asked


def test_auto_keeps_float32_products_where_attention_cannot(monkeypatch) -> None:
    # Before torch 2.9 attention cannot keep float32 products under medium: it would run 6-9x slower.
    monkeypatch.setattr(precision, "amx_tiles", lambda: True)
    monkeypatch.setattr(precision, "float32_attention_available", lambda: False)
    assert precision.matmul_precision_for_device("auto", torch.device("cpu")) == "highest"


@pytest.mark.parametrize("given", ["highest", "high", "medium"])
def test_torchs_names_pass_through(given: str) -> None:
    assert precision.matmul_precision_for_device(given, torch.device("cpu")) == given


@pytest.mark.parametrize("given", ["low", "fast", "bf16", 16])
def test_an_unknown_precision_names_the_accepted_ones(given: object) -> None:
    with pytest.raises(ConfigError, match=r"matmul_precision=.* is not a precision; use one of auto, hig"):
        precision.matmul_precision_for_device(given, torch.device("cpu"))


def test_resolving_sets_torchs_precision_and_writes_it_into_the_config(monkeypatch) -> None:
    monkeypatch.setattr(precision, "amx_tiles", lambda: True)
    monkeypatch.setattr(precision, "run_device", lambda trainer: torch.device("cpu"))  # GPU or not
    with initialize_config_dir(config_dir=CONFIG_PATH, version_base="1.3"):
        default = compose(config_name="train")
        given = compose(config_name="train", overrides=["matmul_precision=highest"])
    assert precision.decide_matmul_precision(default)  # auto is the default
    assert default.matmul_precision == "medium" and torch.get_float32_matmul_precision() == "medium"
    assert not precision.decide_matmul_precision(given)
    assert given.matmul_precision == "highest" and torch.get_float32_matmul_precision() == "highest"


def test_the_saved_config_holds_what_auto_resolved_to(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setattr(precision, "amx_tiles", lambda: False)
    run = tmp_path / "run"
    args = bare_train_args(write_corpus(tmp_path / "c.txt"), run, "matmul_precision=auto",
                           "trainer.max_steps=2", "trainer.val_check_interval=2")
    code, _, err = run_main(train.main, args, capsys)
    assert code == 0, err
    saved = (run / ".hydra" / "config.yaml").read_text()
    assert saved.startswith("# matmul_precision=auto resolved to highest on this machine\n")
    assert OmegaConf.create(saved).matmul_precision == "highest"


def test_an_unknown_precision_is_one_error_line_before_training(tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    args = bare_train_args(write_corpus(tmp_path / "c.txt"), run, "matmul_precision=fast",
                           "trainer.max_steps=2")
    code, _, err = run_main(train.main, args, capsys)
    assert code == 2
    assert err.strip().splitlines() == [
        "error: matmul_precision=fast is not a precision; use one of auto, highest, high, medium"
    ]
    assert not (run / "checkpoints").exists()


def _products_of(run: Path) -> tuple[str, str]:
    hparams = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["hyper_parameters"]
    return hparams["matmul_precision"], hparams["device_type"]


@pytest.mark.slow
def test_a_resumed_run_keeps_the_products_it_trained_with(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setattr(precision, "run_device", lambda trainer: torch.device("cpu"))
    monkeypatch.setattr(precision, "float32_attention_available", lambda: True)  # as on torch >= 2.9
    monkeypatch.setattr(precision, "amx_tiles", lambda: False)
    run = tmp_path / "run"
    args = bare_train_args(write_corpus(tmp_path / "c.txt"), run, "trainer.max_steps=2",
                           "trainer.val_check_interval=2")
    code, _, err = run_main(train.main, args, capsys)
    assert code == 0, err
    assert _products_of(run) == ("highest", "cpu")
    # The same run continued where auto now means bf16 products (another machine): it keeps float32.
    monkeypatch.setattr(precision, "amx_tiles", lambda: True)

    def resumed_to(steps: int, *extra: str) -> list[str]:
        kept = [a.replace("max_steps=2", f"max_steps={steps}") for a in args if not a.startswith("hydra.run")]
        return [*kept, f"ckpt_path={run}", *extra]

    code, _, err = run_main(train.main, resumed_to(3), capsys)
    assert code == 0, err
    assert torch.get_float32_matmul_precision() == "highest" and _products_of(run) == ("highest", "cpu")
    resumed = sorted((run / ".hydra").glob("resume-*/config.yaml"))[-1].read_text()
    assert "# matmul_precision=auto kept highest, the checkpoint's\n" in resumed
    # Given on the command line, the user's choice wins.
    code, _, err = run_main(train.main, resumed_to(4, "matmul_precision=medium"), capsys)
    assert code == 0, err
    assert _products_of(run) == ("medium", "cpu")


@pytest.mark.parametrize(
    ("hparams", "saved", "compiled", "kept"),
    [
        ({"matmul_precision": "highest", "device_type": "cpu"}, None, False, "highest"),
        # Before the checkpoint recorded it: the run's saved config (resolved there), else high.
        ({}, "matmul_precision: highest\n", False, "highest"),
        ({}, "matmul_precision: medium\n", False, "medium"),
        ({}, None, False, "high"),
        # Trained on a GPU, resumed on a CPU: auto's own choice for the CPU.
        ({"matmul_precision": "high", "device_type": "cuda"}, None, False, "medium"),
        # Compiled now: auto keeps float32 products in a compiled model (bf16 ones were recorded).
        ({"matmul_precision": "medium", "device_type": "cpu"}, None, True, "highest"),
    ],
)
def test_what_a_resume_keeps(tmp_path: Path, monkeypatch, hparams, saved, compiled, kept) -> None:
    monkeypatch.setattr(precision, "run_device", lambda trainer: torch.device("cpu"))
    monkeypatch.setattr(precision, "float32_attention_available", lambda: True)
    monkeypatch.setattr(precision, "amx_tiles", lambda: True)
    file = tmp_path / "run" / "checkpoints" / "last.ckpt"
    file.parent.mkdir(parents=True)
    if saved is not None:
        (tmp_path / "run" / ".hydra").mkdir()
        (tmp_path / "run" / ".hydra" / "config.yaml").write_text(saved)
    with initialize_config_dir(config_dir=CONFIG_PATH, version_base="1.3"):
        cfg = compose(config_name="train", overrides=[f"model.compile={str(compiled).lower()}"])
    assert precision.decide_matmul_precision(cfg)
    assert precision.keep_matmul_precision(cfg, {"hyper_parameters": hparams}, file)[0] == (
        hparams.get("device_type") != "cuda" and not compiled)  # whether the run's own products stand
    assert cfg.matmul_precision == kept and torch.get_float32_matmul_precision() == kept


def test_every_training_process_sets_the_runs_products() -> None:
    # A *_spawn strategy's processes start at torch's default: the module sets it in each (setup).
    from chargpt.training.module import CharLM

    module = CharLM(model={"n_layer": 1, "n_embd": 16, "n_head": 2, "block_size": 8}, vocab=list("ab"),
                    matmul_precision="medium")
    torch.set_float32_matmul_precision("highest")
    module.setup("fit")
    assert torch.get_float32_matmul_precision() == "medium"


def test_a_checkpoint_is_scored_in_the_arithmetic_its_run_validated_in(tmp_path: Path) -> None:
    cpu = torch.device("cpu")
    recorded = {"hyper_parameters": {"precision": "bf16-mixed", "matmul_precision": "medium",
                                     "device_type": "cpu"}}
    file = tmp_path / "run" / "checkpoints" / "last.ckpt"
    assert precision.validated_arithmetic(recorded, file, cpu) == ("bf16-mixed", "medium")
    # Trained on a GPU, scored on a CPU; an export (no checkpoint): float32.
    on_gpu = {"hyper_parameters": {**recorded["hyper_parameters"], "device_type": "cuda"}}
    assert precision.validated_arithmetic(on_gpu, file, cpu) == ("32-true", "highest")
    assert precision.validated_arithmetic(None, tmp_path / "export", cpu) == ("32-true", "highest")
    # From before the checkpoint recorded it: its run's saved config says; nothing says: float32.
    old = {"hyper_parameters": {}}
    assert precision.validated_arithmetic(old, file, cpu) == ("32-true", "highest")
    (tmp_path / "run" / ".hydra").mkdir(parents=True)
    (tmp_path / "run" / ".hydra" / "config.yaml").write_text(
        "trainer:\n  precision: bf16-mixed\nmatmul_precision: high\n")
    assert precision.validated_arithmetic(old, file, cpu) == ("bf16-mixed", "high")
