"""A resume whose optimizer cannot take the checkpoint's optimizer state is refused with the setting
that differs, before Lightning's load would fail with torch's traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from chargpt.errors import ConfigError
from chargpt.model import ModelConfig, build_model
from chargpt.training.finetune import freeze
from chargpt.training.optim import build_optimizer, check_optimizer
from chargpt.training.optimizer_state import check_optimizer_state

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


def test_another_optimizer_is_named() -> None:
    told = _refusal(_checkpoint(ADAMW), MUON)
    assert told.startswith(
        "cannot resume from run/checkpoints/last.ckpt with chargpt.training.optim.muon_adamw: it was trained "
        "with torch.optim.AdamW, whose optimizer state does not carry over; resume with the optimizer it was "
        "trained with (torch.optim.AdamW)")


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
