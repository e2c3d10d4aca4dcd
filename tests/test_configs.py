"""Every option of every config group composes, and what it configures can be built."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from chargpt.cli import CONFIG_PATH
from chargpt.hydra_run import plain
from chargpt.model import ModelConfig, build_model
from chargpt.training import CharLM
from chargpt.training.build import build_trainer
from chargpt.training.precision import decide_precision

GROUPS = ["data", "model", "optimizer", "scheduler", "trainer", "callbacks", "logger", "experiment", "debug"]


def options(group: str) -> list[str]:
    if group == "callbacks":  # the other files are single callbacks that default.yaml composes
        return ["default", "none"]
    return sorted(p.stem for p in (Path(CONFIG_PATH) / group).glob("*.yaml"))


def test_default_callbacks_compose_every_callback_file() -> None:
    with initialize_config_dir(config_dir=CONFIG_PATH, version_base="1.3"):
        cfg = compose("train")
        tracked = compose("train", overrides=["logger=[mlflow,wandb]"])
    files = {p.stem for p in (Path(CONFIG_PATH) / "callbacks").glob("*.yaml")}
    # A callback file that default.yaml does not compose (one a run asks for by name,
    # `callbacks=[default,NAME]`) is named here, so none is forgotten there by mistake.
    not_by_default = {"tracker_runs"}  # composed by the loggers that keep a run id
    missing = files - {"default", "none", "essential"} - not_by_default - set(cfg.callbacks)
    assert not missing, f"default.yaml does not compose {sorted(missing)}: add it there or to not_by_default"
    assert set(cfg.callbacks) == files - {"default", "none", "essential"} - not_by_default
    # tracker_runs comes with the loggers that keep a run id, once however many of them there are.
    assert set(tracked.callbacks) == set(cfg.callbacks) | {"tracker_runs"}


ESSENTIAL = ["validate_at_end", "nonfinite_guard", "run_metrics", "resume_state", "graceful_interrupt",
             "time_budget"]


@pytest.mark.parametrize("choice", ["default", "none", "attention_maps", "[progress_bar,hparams]"])
def test_every_callbacks_choice_keeps_the_essential_ones(choice: str) -> None:
    # `callbacks=attention_maps` (one file of the group, as --help lists them) dropped them all: a
    # Ctrl-C then saved nothing, and no NaN guard watched the run.
    with initialize_config_dir(config_dir=CONFIG_PATH, version_base="1.3"):
        cfg = compose("train", overrides=[f"callbacks={choice}"])
        removed = compose("train", overrides=[f"callbacks={choice}", "~callbacks.time_budget"])
    assert list(cfg.callbacks)[-len(ESSENTIAL):] == ESSENTIAL
    assert "time_budget" not in removed.callbacks  # still removed by name


CASES = [(group, option) for group in GROUPS for option in options(group)]


def test_every_group_has_options() -> None:
    for group in GROUPS:
        assert options(group), group


@pytest.mark.parametrize(("group", "option"), CASES, ids=[f"{g}={o}" for g, o in CASES])
def test_option_composes_and_instantiates(group: str, option: str, corpus: Path, tmp_path: Path) -> None:
    overrides = [f"{group}={option}", f"paths.output_dir={tmp_path}"]
    if not (group == "data" and option == "tinyshakespeare"):
        overrides += ["data=text", f"data.path={corpus}"] if group != "data" else [f"data.path={corpus}"]
    if group == "data" and option == "hf":  # a dataset: the text builder on the corpus, offline
        pytest.importorskip("datasets")
        overrides += ["data.name=text", f"data.data_files={corpus}", "data.path=null"]
    with initialize_config_dir(config_dir=CONFIG_PATH, version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides)

    fields = plain(cfg.model)
    fields.pop("auto", None)  # model=auto: the shape is chosen when a run starts (test_auto_size.py)
    model_config = ModelConfig.from_dict(fields)
    model = build_model(model_config, vocab_size=30)
    module = CharLM(model_config.to_dict(), [chr(65 + i) for i in range(30)], plain(cfg.optimizer),
                    plain(cfg.scheduler))
    datamodule = instantiate(cfg.data)
    assert datamodule.block_size == model_config.block_size  # one setting for both
    if group == "data":
        datamodule.setup()
        assert datamodule.tokenizer.vocab_size > 1
    schedule = instantiate(cfg.scheduler)
    assert 0 < schedule(0, 100) <= 1
    if cfg.trainer.get("accelerator") == "gpu" and not torch.cuda.is_available():
        pytest.skip("GPU trainer config composes; building it needs a GPU")
    decide_precision(cfg)  # as a run does first: model=auto's trainer.precision is auto
    trainer = build_trainer(cfg)
    module.trainer = trainer  # configure_optimizers reads max_steps
    optim = module.configure_optimizers()["optimizer"]
    assert sum(len(g["params"]) for g in optim.param_groups) == len(list(module.model.parameters()))
    x = torch.zeros(2, model_config.block_size, dtype=torch.long)
    logits, loss = model(x, x)
    assert logits.shape == (2, model_config.block_size, 30) and torch.isfinite(loss)


@pytest.mark.parametrize("optimizer", options("optimizer"))
def test_an_experiment_takes_every_optimizer_option(optimizer: str) -> None:
    """An experiment's optimizer settings live in its optimizer option, so swapping the option on
    the command line (`experiment=cpu_100s optimizer=adamw`) leaves no keys the other one refuses."""
    from chargpt.training.optim import build_optimizer

    with initialize_config_dir(config_dir=CONFIG_PATH, version_base="1.3"):
        cfg = compose(config_name="train", overrides=["experiment=cpu_100s", f"optimizer={optimizer}"])
        alone = compose(config_name="train", overrides=[f"optimizer={optimizer}"])
    assert set(cfg.optimizer) == set(alone.optimizer)
    model = build_model(ModelConfig(n_layer=1, n_head=2, n_embd=16, block_size=8), vocab_size=10)
    optim = build_optimizer(model, plain(cfg.optimizer))
    assert sum(len(g["params"]) for g in optim.param_groups) == len(list(model.parameters()))


def test_the_short_run_muon_differs_from_muon_only_in_its_rates() -> None:
    with initialize_config_dir(config_dir=CONFIG_PATH, version_base="1.3"):
        short = plain(compose(config_name="train", overrides=["optimizer=muon_short"]).optimizer)
        muon = plain(compose(config_name="train", overrides=["optimizer=muon"]).optimizer)
        preset = plain(compose(config_name="train", overrides=["experiment=cpu_100s"]).optimizer)
    assert (short["momentum"], short["adamw"]["lr"]) == (0.9, 0.02)
    assert (muon["momentum"], muon["adamw"]["lr"]) == (0.95, 0.003)
    for rates in (short, muon):
        del rates["momentum"], rates["adamw"]["lr"]
    assert short == muon
    assert (preset["momentum"], preset["adamw"]["lr"]) == (0.9, 0.02)
