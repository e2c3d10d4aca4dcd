"""A resume whose optimizer cannot take the checkpoint's optimizer state is refused with the setting
that differs, before Lightning's load would fail with torch's traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

from chargpt.cli import CONFIG_PATH
from chargpt.errors import ConfigError
from chargpt.model import ModelConfig, build_model
from chargpt.training import optimizer_state
from chargpt.training.finetune import freeze
from chargpt.training.optim import build_optimizer, check_optimizer
from chargpt.training.optimizer_state import check_optimizer_state, optimizer_named

MUON = {"_target_": "chargpt.training.optim.muon_adamw", "lr": 0.02, "adamw": {"lr": 3e-3}}
ADAMW = {"_target_": "torch.optim.AdamW", "lr": 1e-3}


def _optimizer(config: dict, frozen_blocks: int = 0):
    model = build_model(ModelConfig(n_layer=2, n_embd=32, n_head=2, block_size=16), 13)
    freeze(model, embeddings=False, blocks=frozen_blocks)
    return build_optimizer(model, config)


def _checkpoint(config: dict, frozen_blocks: int = 0) -> dict:
    return {"optimizer_states": [_optimizer(config, frozen_blocks).state_dict()],
            "hyper_parameters": {"optimizer": config}}


def _refusal(ckpt: dict, config: dict, frozen_blocks: int = 0) -> str:
    with pytest.raises(ConfigError) as caught:
        check_optimizer_state(ckpt, Path("run/checkpoints/last.ckpt"), _optimizer(config, frozen_blocks),
                              config, lambda: "FREEZE FIX")
    return str(caught.value)


def test_the_same_optimizer_and_frozen_set_resume() -> None:
    for config in (ADAMW, MUON):
        check_optimizer_state(_checkpoint(config, 1), Path("last.ckpt"), _optimizer(config, 1), config,
                              lambda: pytest.fail("asked for a fix"))


def test_another_optimizer_is_named_as_a_user_picks_it(monkeypatch: pytest.MonkeyPatch) -> None:
    # Without a launch record (the run's .hydra folder gone) both were named by their _target_:
    # now by the options that build them, those with the checkpoint's very settings first.
    composed: list[str] = []
    real_compose = optimizer_state.compose

    def noting_compose(app: str, overrides: list[str]) -> object:
        composed.append(overrides[-1])
        return real_compose(app, overrides)

    with initialize_config_dir(config_dir=CONFIG_PATH, version_base="1.3"):  # inside chargpt-train
        HydraConfig.instance().set_config(compose("train", return_hydra_config=True))
        try:
            with monkeypatch.context() as patch:
                patch.setattr(optimizer_state, "compose", noting_compose)
                told = _refusal(_checkpoint(ADAMW), MUON)
            short = OmegaConf.to_container(compose("train", ["optimizer=muon_short"]).optimizer, resolve=True)
            told_short = _refusal(_checkpoint(short), ADAMW)
            sgd = {"_target_": "torch.optim.SGD", "lr": 0.1}
            named_sgd = optimizer_named(sgd["_target_"], None, sgd)
            named_adamw = optimizer_named("torch.optim.AdamW", "muon", ADAMW)
        finally:
            HydraConfig.instance().cfg = None
    # Both names come from one composition of each option (each takes as long as a launch's).
    assert "optimizer=muon" in composed and sorted(composed) == sorted(set(composed))
    assert told.startswith(
        "cannot resume from run/checkpoints/last.ckpt with optimizer=muon (or muon_short): it was trained "
        "with optimizer=adamw, whose optimizer state does not carry over; resume with optimizer=adamw, or "
        "start a new run from its weights with init_from=run/checkpoints/last.ckpt in place of ckpt_path")
    assert "trained with optimizer=muon_short, whose" in told_short
    assert named_sgd is None  # no option builds it: it keeps its _target_, what was typed to get it
    assert named_adamw == "optimizer=adamw"  # not the option this launch chose, which builds another
    # Outside a Hydra app (chargpt used as a library) the _target_ it was given names it.
    assert optimizer_named("torch.optim.AdamW", None, ADAMW) is None


@pytest.mark.slow
def test_an_option_of_a_command_lines_searchpath_is_named(tmp_path: Path) -> None:
    # `hydra.searchpath=[file://my_configs] optimizer=my_opt`: Hydra's loader lists a group's options
    # without the command line's searchpath, so a run trained with my_opt was told to resume with
    # optimizer=adamw (another learning rate), the one listed option that builds AdamW.
    (tmp_path / "optimizer").mkdir()
    (tmp_path / "optimizer" / "my_opt.yaml").write_text("_target_: torch.optim.AdamW\nlr: 0.002\n")
    mine = {"_target_": "torch.optim.AdamW", "lr": 0.002}
    with initialize_config_dir(config_dir=CONFIG_PATH, version_base="1.3"):  # inside chargpt-train
        searchpath = f"hydra.searchpath=[file://{tmp_path}]"
        HydraConfig.instance().set_config(compose("train", [searchpath], return_hydra_config=True))
        try:
            told = _refusal(_checkpoint(mine), MUON)
            named = optimizer_named("torch.optim.AdamW", None, mine)
        finally:
            HydraConfig.instance().cfg = None
    assert "it was trained with optimizer=my_opt, whose" in told and "resume with optimizer=my_opt," in told
    assert named == "optimizer=my_opt"


def test_other_parameters_frozen_with_the_same_optimizer_is_a_freeze_difference() -> None:
    # Muon with every hidden matrix frozen is AdamW alone: another layout, the same optimizer.
    for trained, now in ((2, 1), (1, 2), (0, 1)):
        told = _refusal(_checkpoint(MUON, trained), MUON, now)
        assert "it was trained with other parameters frozen" in told and told.endswith("; FREEZE FIX"), told


def test_a_checkpoint_without_optimizer_state_is_left_to_lightning() -> None:
    check_optimizer_state({"state_dict": {}}, Path("last.ckpt"), _optimizer(ADAMW), ADAMW,
                          lambda: pytest.fail("asked for a fix"))


def test_fused_and_foreach_together_are_one_setting_error() -> None:
    # torch raised its own RuntimeError from inside the optimizer's constructor.
    with pytest.raises(ConfigError, match=r"optimizer\.adamw\.fused=true and optimizer\.adamw\.foreach=true"):
        check_optimizer({**MUON, "adamw": {"fused": True, "foreach": True}})
