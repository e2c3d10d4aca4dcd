"""Architecture, optimizer and schedule options: each one trains, and Muon+AdamW behaves as one optimizer."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch.optim.lr_scheduler import LambdaLR

from chargpt.errors import ConfigError
from chargpt.model import ModelConfig, build_model
from chargpt.training.muon import Muon, orthogonalize
from chargpt.training.optim import MuonWithAdamW, build_optimizer, hidden_matrices
from chargpt.training.schedules import WarmupCosine, WarmupStableDecay

ADAMW = {"_target_": "torch.optim.AdamW", "lr": 1e-2, "weight_decay": 0.1}
MUON = {"_target_": "chargpt.training.optim.muon_adamw", "lr": 0.02, "adamw": {"lr": 1e-2}}
TINY = {"n_layer": 1, "n_head": 2, "n_embd": 32, "block_size": 16}


def periodic_batches(steps: int, vocab: int = 12, batch: int = 8, block: int = 16):
    """A learnable stream: each character is the previous one plus one (mod vocab)."""
    gen = torch.Generator().manual_seed(0)
    for _ in range(steps):
        start = torch.randint(0, vocab, (batch, 1), generator=gen)
        seq = (start + torch.arange(block + 1)) % vocab
        yield seq[:, :-1], seq[:, 1:]


def train_losses(config: ModelConfig, optimizer: dict, steps: int = 40) -> list[float]:
    torch.manual_seed(0)
    model = build_model(config, 12)
    opt = build_optimizer(model, optimizer)
    losses = []
    for x, y in periodic_batches(steps):
        _, loss = model(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


OPTIONS = [
    {"pos_encoding": "learned"}, {"pos_encoding": "sinusoidal"}, {"pos_encoding": "rope"},
    {"norm": "layernorm"}, {"norm": "rmsnorm"}, {"qk_norm": True}, {"bias": False},
    {"activation": "relu"}, {"activation": "gelu"}, {"activation": "relu2"}, {"activation": "swiglu"},
    {"tie_weights": False}, {"init_std": 0.05}, {"logit_softcap": 15.0},
]


# Every option with AdamW; Muon with the preset's choices and the gated feed-forward.
CASES = [(o, ADAMW) for o in OPTIONS] + [
    (o, MUON) for o in ({}, {"pos_encoding": "rope"}, {"activation": "swiglu", "bias": False},
                        {"zero_init_residual": True})
]


IDS = [("muon-" if opt is MUON else "adamw-") + "-".join(f"{k}={v}" for k, v in o.items())
       for o, opt in CASES]


# The default run trains one case per kind of option (positions, norms, activations, Muon); the
# rest, each also built and exported in tests/test_export.py, train in the slow set.
FAST = {"adamw-pos_encoding=rope", "adamw-norm=rmsnorm", "adamw-activation=swiglu", "muon-",
        "muon-zero_init_residual=True"}
PARAMS = [
    pytest.param(*case, id=name, marks=() if name in FAST else pytest.mark.slow)
    for case, name in zip(CASES, IDS, strict=True)
]


@pytest.mark.parametrize(("option", "optimizer"), PARAMS)
def test_every_option_trains(option: dict, optimizer: dict) -> None:
    losses = train_losses(ModelConfig(**TINY, **option), optimizer)
    assert all(math.isfinite(v) for v in losses)
    assert sum(losses[-5:]) / 5 < 0.75 * sum(losses[:5]) / 5, (losses[:5], losses[-5:])


def test_logit_softcap_bounds_the_logits() -> None:
    model = build_model(ModelConfig(**TINY, logit_softcap=2.0, init_std=1.0), 12)
    logits, _ = model(torch.randint(0, 12, (2, 16)))
    assert logits.abs().max() <= 2.0  # tanh reaches exactly 1.0 in float32 for large inputs
    assert logits.abs().max() > 1.0  # a large init really hits the cap


def test_init_std_sets_the_weight_scale() -> None:
    stds = [
        build_model(ModelConfig(**TINY, init_std=s), 12).blocks[0].attn.qkv.weight.std().item()
        for s in (0.01, 0.1)
    ]
    assert stds[0] == pytest.approx(0.01, rel=0.1) and stds[1] == pytest.approx(0.1, rel=0.1)


def test_zero_init_residual_starts_every_block_as_the_identity() -> None:
    two_layers = {**TINY, "n_layer": 2, "bias": False}
    config = ModelConfig(**two_layers, zero_init_residual=True)
    model = build_model(config, 12)
    outs = [m for b in model.blocks for m in (b.attn.proj, b.mlp.down)]
    assert all(m.weight.count_nonzero() == 0 for m in outs)
    assert all(b.attn.qkv.weight.std() > 0.01 for b in model.blocks)  # only the outputs start at zero
    x = torch.randn(2, 16, 32)
    assert torch.equal(model.blocks[1](model.blocks[0](x)), x)
    # Init only: a checkpoint of either init loads into the other.
    assert config.architecture() == ModelConfig(**two_layers).architecture()


@pytest.mark.parametrize("optimizer", [MUON, ADAMW], ids=["muon", "adamw"])
def test_zero_initialised_blocks_leave_the_identity_when_trained(optimizer: dict) -> None:
    # The output projection's zero blocks every gradient to the weights before it at the first
    # step; from the second on they must train (else the model is embeddings and head alone).
    torch.manual_seed(0)
    model = build_model(ModelConfig(**TINY, zero_init_residual=True), 12)
    block = model.blocks[0]
    inner = {"qkv": block.attn.qkv.weight, "up": block.mlp.up.weight}
    start = {name: w.detach().clone() for name, w in inner.items()}
    opt = build_optimizer(model, optimizer)
    for x, y in periodic_batches(3):
        opt.zero_grad(set_to_none=True)
        model(x, y)[1].backward()
        opt.step()
    assert block.attn.proj.weight.count_nonzero() > 0 and block.mlp.down.weight.count_nonzero() > 0
    assert all(not torch.equal(w, start[name]) for name, w in inner.items())


@pytest.mark.parametrize("bad", [{"init_std": 0.0}, {"logit_softcap": -1.0}, {"zero_init_residual": "yes"}])
def test_bad_init_or_cap_is_a_config_error(bad: dict) -> None:
    with pytest.raises(ConfigError):
        ModelConfig(**TINY, **bad)


def test_muon_takes_hidden_matrices_and_adamw_the_rest() -> None:
    model = build_model(ModelConfig(**TINY, tie_weights=False), 12)
    opt = build_optimizer(model, MUON)
    assert isinstance(opt, MuonWithAdamW)
    muon, adamw = opt.optimizers
    muon_ids = {id(p) for g in muon.param_groups for p in g["params"]}
    adamw_ids = {id(p) for g in adamw.param_groups for p in g["params"]}
    assert muon_ids == {id(p) for p in hidden_matrices(model)}
    assert id(model.head.weight) in adamw_ids and id(model.tok_emb.weight) in adamw_ids
    assert id(model.blocks[0].attn.qkv.weight) in muon_ids
    assert muon_ids.isdisjoint(adamw_ids)
    assert muon_ids | adamw_ids == {id(p) for p in model.parameters()}


def test_muon_step_updates_hidden_and_other_weights() -> None:
    model = build_model(ModelConfig(**TINY), 12)
    opt = build_optimizer(model, MUON)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    x, y = next(periodic_batches(1))
    model(x, y)[1].backward()
    opt.step()
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert "blocks.0.attn.qkv.weight" in changed and "blocks.0.mlp.down.weight" in changed  # Muon
    assert "tok_emb.weight" in changed and "norm.weight" in changed  # AdamW
    opt.zero_grad(set_to_none=True)
    assert all(p.grad is None for p in model.parameters())


def test_one_scheduler_scales_both_optimizers_and_survives_a_state_round_trip() -> None:
    model = build_model(ModelConfig(**TINY), 12)
    opt = build_optimizer(model, MUON)
    scheduler = LambdaLR(opt, lambda step: 0.5)
    muon, adamw = opt.optimizers
    assert muon.param_groups[0]["lr"] == pytest.approx(0.01)
    assert adamw.param_groups[0]["lr"] == pytest.approx(5e-3)
    x, y = next(periodic_batches(1))
    model(x, y)[1].backward()
    opt.step()
    scheduler.step()
    state = opt.state_dict()
    fresh = build_optimizer(model, MUON)
    fresh.load_state_dict(state)
    assert fresh.param_groups[0]["lr"] == pytest.approx(0.01)  # the scheduled rate, not the base
    assert fresh.param_groups[0] is fresh.optimizers[0].param_groups[0]  # still shared after loading
    buf = next(iter(fresh.optimizers[0].state.values()))["momentum_buffer"]
    assert torch.equal(buf, next(iter(muon.state.values()))["momentum_buffer"])


def test_muon_falls_back_to_adamw_without_hidden_matrices() -> None:
    model = build_model(ModelConfig(arch="bigram", block_size=8), 12)
    assert isinstance(build_optimizer(model, MUON), torch.optim.AdamW)


def test_wsd_shape() -> None:
    wsd = WarmupStableDecay(warmup_steps=10, decay_fraction=0.2, min_lr_ratio=0.0)
    total = 100
    values = [wsd(s, total) for s in range(total + 1)]
    assert values[0] == pytest.approx(0.1) and values[9] == pytest.approx(1.0)  # linear warmup
    assert all(v == 1.0 for v in values[10:80])  # stable
    decay = values[80:]
    assert all(a > b for a, b in itertools.pairwise(decay))  # strictly decreasing
    assert values[90] == pytest.approx(0.5) and values[100] == 0.0  # linear to the floor at the end
    sqrt = WarmupStableDecay(warmup_steps=10, decay_fraction=0.2, min_lr_ratio=0.1, decay_shape="sqrt")
    assert sqrt(90, total) == pytest.approx(0.1 + 0.9 * (1 - math.sqrt(0.5)))
    assert sqrt(100, total) == pytest.approx(0.1)


def test_schedules_follow_a_total_decided_late() -> None:
    # The budget fixes the total after calibration: the decay adapts, the stable part does not move.
    wsd = WarmupStableDecay(warmup_steps=5, decay_fraction=0.5)
    assert wsd(20, 1000) == wsd(20, 60) == 1.0
    assert wsd(60, 60) == 0.0 and wsd(1000, 1000) == 0.0
    cos = WarmupCosine(warmup_steps=5, min_lr_ratio=0.0)
    assert cos(60, 60) == pytest.approx(0.0) and cos(1000, 1000) == pytest.approx(0.0)


@pytest.mark.parametrize("bad", [{"decay_fraction": 1.5}, {"decay_shape": "cubic"}, {"warmup_steps": -1},
                                 {"min_lr_ratio": 1.5}, {"decay_fraction": "half"}])
def test_bad_wsd_settings_are_config_errors(bad: dict) -> None:
    with pytest.raises(ConfigError):
        WarmupStableDecay(**bad)


@pytest.mark.parametrize("nesterov", [True, False])
def test_muon_in_bfloat16_is_torchs_muon_bit_for_bit(nesterov: bool) -> None:
    torch.manual_seed(0)
    weights = [torch.randn(24, 8), torch.randn(8, 20), torch.randn(16, 16)]  # no two of one shape
    ours = [w.clone().requires_grad_() for w in weights]
    theirs = [w.clone().requires_grad_() for w in weights]
    kwargs = {"lr": 0.02, "weight_decay": 0.1, "nesterov": nesterov, "adjust_lr_fn": "match_rms_adamw"}
    ours_opt, theirs_opt = Muon(ours, ns_dtype="bfloat16", **kwargs), torch.optim.Muon(theirs, **kwargs)
    for _ in range(3):
        grads = [torch.randn_like(w) for w in weights]
        for params, opt in ((ours, ours_opt), (theirs, theirs_opt)):
            for p, g in zip(params, grads, strict=True):
                p.grad = g.clone()
            opt.step()
    assert all(torch.equal(a, b) for a, b in zip(ours, theirs, strict=True))
    buffer = theirs_opt.state[theirs[0]]["momentum_buffer"]
    assert torch.equal(ours_opt.state[ours[0]]["momentum_buffer"], buffer)
    # The state is torch's: a checkpoint of either loads into the other.
    loaded = Muon([w.clone().requires_grad_() for w in weights], **kwargs)
    loaded.load_state_dict(theirs_opt.state_dict())
    assert torch.equal(loaded.state[loaded.param_groups[0]["params"][0]]["momentum_buffer"], buffer)


@pytest.mark.parametrize("nesterov", [True, False])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_muon_orthogonalises_matrices_of_one_shape_together_as_each_alone(dtype: str, nesterov: bool) -> None:
    torch.manual_seed(0)
    # Two tall and one wide matrix of one shape up to a transpose are one batch; 16 x 16 is alone.
    weights = [torch.randn(24, 8), torch.randn(8, 24), torch.randn(24, 8), torch.randn(16, 16)]
    together = [w.clone().requires_grad_() for w in weights]
    alone = [w.clone().requires_grad_() for w in weights]
    kwargs = {"lr": 0.02, "weight_decay": 0.1, "ns_dtype": dtype, "nesterov": nesterov}
    together_opt, alone_opts = Muon(together, **kwargs), [Muon([w], **kwargs) for w in alone]
    for _ in range(3):
        grads = [torch.randn_like(w) for w in weights]
        for p, q, g in zip(together, alone, grads, strict=True):
            p.grad, q.grad = g.clone(), g.clone()
        together_opt.step()
        for opt in alone_opts:
            opt.step()
    for a, b, start in zip(together, alone, weights, strict=True):
        moved = (b - start).abs().max()
        # The same update to the rounding of the orthogonalisation's dtype; a wrong transpose or
        # learning rate would move the weights by as much as the step itself.
        tolerance = 1e-6 if dtype == "float32" else 2e-3 * moved
        assert moved > 0.02 and (a - b).abs().max() <= tolerance


def test_orthogonalize_takes_a_stack_of_matrices_each_on_its_own() -> None:
    torch.manual_seed(0)
    stack = torch.randn(3, 32, 96)
    together = orthogonalize(stack, (3.4445, -4.775, 2.0315), 5, 1e-7, torch.float32)
    tall_together = orthogonalize(stack.mT, (3.4445, -4.775, 2.0315), 5, 1e-7, torch.float32)
    for i, matrix in enumerate(stack):
        alone = orthogonalize(matrix, (3.4445, -4.775, 2.0315), 5, 1e-7, torch.float32)
        torch.testing.assert_close(together[i], alone, rtol=0, atol=1e-5)
        torch.testing.assert_close(tall_together[i], alone.T, rtol=0, atol=1e-5)


def test_muon_in_float32_orthogonalises_more_exactly_than_bfloat16() -> None:
    torch.manual_seed(0)
    update = torch.randn(32, 96)
    exact = torch.linalg.svd(update, full_matrices=False)
    polar = exact.U @ exact.Vh  # what Newton–Schulz approximates (up to its spread of singular values)
    fp32 = orthogonalize(update, (3.4445, -4.775, 2.0315), 5, 1e-7, torch.float32)
    bf16 = orthogonalize(update, (3.4445, -4.775, 2.0315), 5, 1e-7, torch.bfloat16)
    assert fp32.dtype == torch.float32 and bf16.dtype == torch.bfloat16
    assert torch.nn.functional.cosine_similarity(fp32.flatten(), polar.flatten(), dim=0) > 0.9
    assert (fp32 - bf16.float()).norm() / fp32.norm() < 0.05  # the same iteration, two precisions
    assert not torch.equal(fp32, bf16.float())


def test_muon_auto_dtype_follows_the_cpus_bf16_units(monkeypatch: pytest.MonkeyPatch) -> None:
    opt = Muon([torch.zeros(4, 4, requires_grad=True)])
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    assert opt.dtype_for(torch.device("cpu")) == torch.float32
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True)
    assert opt.dtype_for(torch.device("cpu")) == torch.bfloat16
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (8, 0))  # Ampere
    assert opt.dtype_for(torch.device("cuda")) == torch.bfloat16
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 0))  # Volta
    assert opt.dtype_for(torch.device("cuda")) == torch.float32
    fp32 = Muon([torch.zeros(4, 4, requires_grad=True)], ns_dtype="float32")
    assert fp32.dtype_for(torch.device("cuda")) == torch.float32


def test_muon_refuses_an_unknown_orthogonalisation_dtype() -> None:
    model = build_model(ModelConfig(**TINY), 12)
    with pytest.raises(ConfigError, match=r"optimizer.ns_dtype='fp8' is not one of auto, bfloat16, float32"):
        build_optimizer(model, {**MUON, "ns_dtype": "fp8"})
