"""The network: causal (a later token never changes an earlier logit), its loss, weight tying, the
bigram baseline, the positional encodings, and settings checked before anything is built."""

import dataclasses
import re

import pytest
import torch

from chargpt.errors import ConfigError
from chargpt.model import GPT, BigramLM, ModelConfig, build_model, count_parameters
from chargpt.model.blocks import Block

SMALL = dict(block_size=16, n_layer=2, n_head=2, n_embd=32)


@pytest.mark.parametrize("pos", ["learned", "sinusoidal", "rope"])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_changing_a_later_token_never_changes_earlier_logits(pos: str, activation: str) -> None:
    torch.manual_seed(0)
    model = GPT(ModelConfig(**SMALL, pos_encoding=pos, activation=activation), vocab_size=11).eval()
    idx = torch.randint(0, 11, (2, 16))
    changed = idx.clone()
    changed[:, 9] = (changed[:, 9] + 1) % 11
    a, _ = model(idx)
    b, _ = model(changed)
    assert torch.allclose(a[:, :9], b[:, :9], atol=1e-6)
    assert not torch.allclose(a[:, 9:], b[:, 9:])  # the change is seen from position 9 on


def test_loss_is_next_token_cross_entropy_and_starts_near_uniform() -> None:
    torch.manual_seed(0)
    model = GPT(ModelConfig(**SMALL), vocab_size=65)
    idx, targets = torch.randint(0, 65, (2, 4, 16))
    logits, loss = model(idx, targets)
    assert logits.shape == (4, 16, 65)
    assert abs(loss.item() - torch.log(torch.tensor(65.0)).item()) < 0.3
    manual = torch.nn.functional.cross_entropy(logits.reshape(-1, 65), targets.reshape(-1))
    assert torch.allclose(loss, manual)


def test_weight_tying_shares_the_embedding() -> None:
    tied = GPT(ModelConfig(**SMALL, tie_weights=True), vocab_size=11)
    untied = GPT(ModelConfig(**SMALL, tie_weights=False), vocab_size=11)
    assert tied.head.weight is tied.tok_emb.weight
    assert untied.num_params() - tied.num_params() == 11 * 32


@pytest.mark.parametrize("settings", [
    dict(n_layer=5),
    dict(n_layer=3, tie_weights=False, pos_encoding="rope", activation="swiglu", norm="rmsnorm",
         qk_norm=True),
    dict(n_layer=4, bias=False, pos_encoding="sinusoidal", mlp_ratio=2.5),
    dict(n_layer=1),
    dict(arch="bigram"),
])
def test_the_parameters_are_counted_as_the_model_built_holds_them(settings, monkeypatch) -> None:
    config = ModelConfig(**{**SMALL, **settings})
    expected = build_model(config, vocab_size=11).num_params()  # tied weights counted once
    built = []
    init = Block.__init__

    def counted(self: Block, *args: object) -> None:
        built.append(args)
        init(self, *args)

    monkeypatch.setattr(Block, "__init__", counted)
    assert count_parameters(config, vocab_size=11) == expected
    # Each layer built, even on the meta device, made model.n_layer=100000 a count of minutes.
    assert len(built) <= 3  # one model of one layer and one of two


def test_sequence_longer_than_context_is_refused() -> None:
    model = GPT(ModelConfig(**SMALL), vocab_size=11)
    with pytest.raises(ValueError, match="exceeds the context"):
        model(torch.zeros(1, 17, dtype=torch.long))


def test_bigram_reads_logits_from_its_table() -> None:
    model = build_model(ModelConfig(arch="bigram", block_size=8), vocab_size=5)
    assert isinstance(model, BigramLM)
    logits, _ = model(torch.tensor([[3]]))
    assert torch.equal(logits[0, 0], model.table.weight[3])


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (dict(n_embd=30, n_head=4), "not divisible"),
        (dict(n_layer=0), "whole number >= 1"),
        (dict(block_size=-1), "whole number >= 1"),
        (dict(dropout=1.0), r"\[0, 1\)"),
        (dict(dropout=-0.1), r"\[0, 1\)"),
        (dict(pos_encoding="alibi"), "one of learned, sinusoidal, rope"),
        (dict(n_embd=12, n_head=4, pos_encoding="rope"), "even head size"),
        # Hydra reads yes/no as text, which would otherwise count as true.
        (dict(bias="no"), "model.bias='no' must be true or false"),
        (dict(tie_weights="off"), "model.tie_weights='off' must be true or false"),
    ],
)
def test_invalid_settings_are_clear_errors(settings: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ModelConfig(**settings)


def test_a_setting_added_later_is_checked_by_its_declared_type() -> None:
    # A new field needs no entry in a list of checks: `model.parallel=abc` would otherwise build a
    # model that reads the text as true.
    @dataclasses.dataclass(frozen=True)
    class Extended(ModelConfig):
        parallel: bool = False
        n_groups: int = 1

    with pytest.raises(ConfigError, match=re.escape("model.parallel='abc' must be true or false")):
        Extended(parallel="abc")
    with pytest.raises(ConfigError, match=re.escape("model.n_groups=0 must be a whole number >= 1")):
        Extended(n_groups=0)


def test_unknown_setting_is_named() -> None:
    with pytest.raises(ConfigError, match="n_layers"):
        ModelConfig.from_dict({"n_layers": 3})


@pytest.mark.parametrize("init_std", [0.02, 0.5])
def test_learned_positions_follow_init_std(init_std: float) -> None:
    torch.manual_seed(0)
    model = GPT(ModelConfig(n_layer=1, n_head=2, n_embd=64, block_size=256, init_std=init_std), 10)
    table = model.positions.table  # (block_size, C): 16k draws
    assert table.std().item() == pytest.approx(init_std, rel=0.05)


@pytest.mark.parametrize("positions", ["none", "shared", "per_sequence"])
def test_rotary_complex_form_is_the_real_rotation(positions: str) -> None:
    # float32 in eager mode takes the complex product; other dtypes, compiled graphs and ONNX the
    # real form. Both must rotate the same pairs by the same angles, with the same gradient.
    from chargpt.model.positional import Rotary

    torch.manual_seed(0)
    rotary = Rotary(block_size=32, head_dim=8)
    qkv = torch.randn(3, 12, 3 * 2 * 8, requires_grad=True)  # (B, T, 3C)
    q = qkv[..., :16].unflatten(-1, (2, 8)).transpose(1, 2)  # strided (B, heads, T, hd), as in attention
    pos = {"none": None, "shared": torch.arange(20, 32), "per_sequence": torch.randint(0, 32, (3, 12))}
    pos = pos[positions]
    fast, real = rotary(q, pos), rotary.rotate_real(q, pos)
    assert torch.equal(fast, rotary.rotate_complex(q, pos))
    assert torch.equal(rotary(q.double(), pos), rotary.rotate_real(q.double(), pos))
    assert not torch.allclose(fast, q)  # it did rotate
    torch.testing.assert_close(fast, real, rtol=0, atol=1e-6)
    weights = torch.randn_like(fast)
    (fast_grad,) = torch.autograd.grad((fast * weights).sum(), qkv)
    (real_grad,) = torch.autograd.grad((real * weights).sum(), qkv)
    torch.testing.assert_close(fast_grad, real_grad, rtol=0, atol=1e-6)
    lengths = fast.unflatten(-1, (-1, 2)).norm(dim=-1)  # a rotation keeps each pair's length
    torch.testing.assert_close(lengths, q.unflatten(-1, (-1, 2)).norm(dim=-1))


def test_rotary_keeps_rotating_after_a_cast_and_takes_the_real_form_when_traced(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from chargpt.model.positional import Rotary

    torch.manual_seed(0)
    x = torch.randn(2, 2, 12, 8)
    reference = Rotary(block_size=16, head_dim=8).rotate_real(x)
    rotary = Rotary(block_size=16, head_dim=8).to(torch.float32)  # Module.to(dtype), as precision plugins do
    torch.testing.assert_close(rotary(x), reference, rtol=0, atol=1e-6)
    forms: list[str] = []
    for form in ("real", "complex"):
        method = getattr(Rotary, f"rotate_{form}")
        monkeypatch.setattr(Rotary, f"rotate_{form}", lambda self, x, pos=None, form=form, method=method: (
            forms.append(form), method(self, x, pos))[1])
    rotary(x), rotary(x.double()), rotary(x.bfloat16())
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)  # compiled and exported graphs
    rotary(x)
    assert forms == ["complex", "real", "real", "real"]


def test_flops_per_token_counts_weights_but_not_a_learned_position_table() -> None:
    # nanoGPT's estimate, which the MFU figures of the benchmarks and the GPU check rest on.
    config = ModelConfig(n_layer=2, n_head=2, n_embd=16, block_size=8, pos_encoding="learned")
    model = GPT(config, vocab_size=10)
    weights = model.num_params() - 8 * 16  # the position table is looked up, not multiplied
    assert model.flops_per_token() == 6 * weights + 12 * 2 * 8 * 16
    rope = GPT(ModelConfig(n_layer=2, n_head=2, n_embd=16, block_size=8, pos_encoding="rope"), vocab_size=10)
    assert rope.flops_per_token() == 6 * rope.num_params() + 12 * 2 * 8 * 16
    assert BigramLM(ModelConfig(arch="bigram"), vocab_size=10).flops_per_token() == 0  # the bench crashed
