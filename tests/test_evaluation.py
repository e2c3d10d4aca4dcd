"""Evaluation in windows `stride` apart (each target scored once, with more context), the loss by
position in the window and by class of character."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from chargpt.data.char_classes import CHAR_CLASSES, char_class, class_table
from chargpt.data.windows import IGNORE_INDEX, ValWindows
from chargpt.errors import ConfigError
from chargpt.evaluation import check_stride, evaluate_text, min_context
from chargpt.model import ModelConfig, build_model

VOCAB = 5
PERIOD = 6  # the oracle's text repeats every PERIOD characters


class PeriodOracle(nn.Module):
    """A causal model of a text that repeats every PERIOD characters: with PERIOD characters of
    context it knows the next one (it is the character PERIOD - 1 back), with fewer it guesses
    uniformly. So its loss depends only on how much context a target has."""

    def __init__(self, block_size: int = 16) -> None:
        super().__init__()
        self.block_size = block_size
        self.unused = nn.Parameter(torch.zeros(1))  # where the evaluation finds the device

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, None]:
        logits = torch.zeros(*x.shape, VOCAB)
        known = x[:, : x.size(1) - PERIOD + 1]  # target at p (p >= PERIOD - 1) is x[p - PERIOD + 1]
        logits[:, PERIOD - 1 :] = 20.0 * nn.functional.one_hot(known, VOCAB).float()
        return logits, None


def periodic_ids(n: int) -> np.ndarray:
    # One period that no shorter context predicts: 0 follows both 0 and 1.
    return np.resize(np.array([0, 0, 1, 0, 2, 3]), n).astype(np.int64)


def old_evaluate(model: nn.Module, ids: np.ndarray, batch_size: int = 64) -> tuple[float, int]:
    """The evaluation as it was before strides: non-overlapping windows, one cross-entropy sum."""
    windows = ValWindows(ids, min(model.block_size, len(ids) - 1), batch_size)
    total, count = 0.0, 0
    with torch.inference_mode():
        for b in range(len(windows)):
            x, y = windows[b]
            logits, _ = model(x)
            total += float(nn.functional.cross_entropy(
                logits.reshape(-1, logits.size(-1)).float(), y.reshape(-1),
                ignore_index=IGNORE_INDEX, reduction="sum",
            ))
            count += int((y != IGNORE_INDEX).sum())
    return total / count, count


@pytest.fixture(scope="module")
def tiny() -> nn.Module:
    torch.manual_seed(0)
    return build_model(ModelConfig(n_layer=1, n_embd=32, n_head=2, block_size=16), 13).eval()


@pytest.mark.parametrize("n", [17, 40, 101])
@pytest.mark.parametrize(("block_size", "stride"), [(8, 8), (8, 5), (8, 1), (5, 2), (1, 1)])
def test_strided_windows_score_every_target_once_with_the_promised_context(n, block_size, stride) -> None:
    ids = np.arange(n, dtype=np.int64)
    windows = ValWindows(ids, block_size, batch_size=3, stride=stride)
    scored = []
    for b in range(len(windows)):
        x, y = windows[b]
        starts = windows.starts(b)
        assert torch.equal(x, torch.from_numpy(ids[starts[:, None] + np.arange(block_size)]))  # x unmasked
        for row, start in zip(y.tolist(), starts.tolist(), strict=True):
            for p, target in enumerate(row):
                if target != IGNORE_INDEX:
                    scored.append(target)
                    assert start == 0 or p >= block_size - stride  # later windows: only the last `stride`
    assert sorted(scored) == list(range(1, n))


def test_default_stride_equals_the_old_evaluation_exactly(tiny) -> None:
    ids = np.random.default_rng(0).integers(0, 13, 300)  # 299 targets: a tail window too
    old_loss, old_tokens = old_evaluate(tiny, ids, batch_size=7)
    for stride in (None, 16):
        result = evaluate_text(tiny, ids, batch_size=7, stride=stride, chars=list("abcdefghijklm"))
        assert (result.loss, result.tokens, result.stride) == (old_loss, old_tokens, 16)
        assert result.loss_non_overlapping == old_loss
    result = evaluate_text(tiny, ids, batch_size=7, by_position=False)
    assert (result.loss, result.bpc, result.tokens) == (old_loss, old_loss / math.log(2), old_tokens)


def test_stride_1_scores_the_same_targets_once_each(tiny) -> None:
    ids = np.random.default_rng(1).integers(0, 13, 300)
    plain = evaluate_text(tiny, ids, batch_size=32)
    full = evaluate_text(tiny, ids, batch_size=32, stride=1)
    assert full.tokens == plain.tokens == 299
    assert full.loss_non_overlapping == plain.loss and full.loss != plain.loss
    assert full.loss_by_position == plain.loss_by_position  # always from non-overlapping windows


def test_loss_by_position_and_stride_follow_the_context_a_target_has() -> None:
    oracle, n = PeriodOracle(block_size=16), 16 * 20 + 1  # 320 targets, 20 whole windows
    ids = periodic_ids(n)
    guess, sure = math.log(VOCAB), pytest.approx(0.0, abs=1e-6)

    plain = evaluate_text(oracle, ids, batch_size=8)
    assert plain.loss_by_position[: PERIOD - 1] == pytest.approx([guess] * (PERIOD - 1))
    assert plain.loss_by_position[PERIOD - 1 :] == [sure] * (16 - PERIOD + 1)
    assert plain.position_counts == [20] * 16
    assert plain.loss == pytest.approx(guess * (PERIOD - 1) / 16)
    buckets = plain.position_buckets()
    assert list(buckets) == ["0", "1", "2-3", "4-7", "8-15"]
    assert buckets["4-7"] == pytest.approx(guess / 4)  # position 4 guesses, 5-7 know

    # With at least PERIOD - 1 characters of context, only the first window's first targets guess.
    for stride in (1, 16 - PERIOD + 1):
        strided = evaluate_text(oracle, ids, batch_size=8, stride=stride)
        assert strided.tokens == plain.tokens and strided.stride == stride
        assert strided.loss == pytest.approx(guess * (PERIOD - 1) / 320)
        assert strided.loss_non_overlapping == plain.loss
    # One character of context too few: the first target of each later window guesses too.
    strided = evaluate_text(oracle, ids, batch_size=8, stride=16 - PERIOD + 2)
    assert strided.loss > guess * (PERIOD - 1) / 320 + 0.1


def test_a_text_shorter_than_the_context_is_one_window_at_any_stride(tiny) -> None:
    ids = np.arange(10) % 13
    for stride in (None, 4, 16):
        result = evaluate_text(tiny, ids, stride=stride)
        # One window: no stride applies (stride 4 claimed 5 characters of context the first had not).
        assert result.tokens == 9 and result.window == result.stride == 9 and result.windows == 1
        assert len(result.loss_by_position) == 9


@pytest.mark.parametrize(("stride", "typed"), [(0, "0"), (17, "17"), (-1, "-1"), (2.5, "2.5"), (True, "true"),
                                               ("8", "'8'")])
def test_a_stride_outside_the_context_is_refused_with_the_fix(stride, typed) -> None:
    with pytest.raises(ConfigError, match=rf"^stride={typed} must be a whole number from 1 to the model's "
                                          r"context length 16: e\.g\. stride=8 .*leave stride unset"):
        check_stride(stride, 16)


@pytest.mark.parametrize("stride", [1, 5, 8, 16])
def test_the_stride_hint_states_the_context_the_windows_give(stride) -> None:
    """The hint's figure is what the windows give: the fewest characters before a scored target,
    over the targets after the first block_size characters (the first window's have only those
    of the text before them)."""
    block, ids = 16, np.arange(103) % VOCAB
    windows = ValWindows(ids, block, batch_size=len(ids), stride=stride)  # one batch
    _, y = windows[0]
    position = torch.arange(block).expand_as(y)  # the target at position p has p + 1 characters before it
    index = torch.from_numpy(windows.starts(0))[:, None] + position + 1  # the target's index in ids
    scored = y != IGNORE_INDEX
    assert sorted(index[scored].tolist()) == list(range(1, len(ids)))  # each target once
    assert int(position[scored & (index >= block)].min()) + 1 == min_context(stride, block)
    if stride == 8:
        with pytest.raises(ConfigError, match="stride=8 gives every character after the first 16 at least 9 "
                                              "characters before it;"):
            check_stride(0, 16)


def test_loss_by_class_adds_up_to_the_loss(tiny) -> None:
    chars = ["\n", " ", "!", "7", "A", "É", "a", "é", "中", "😀", "\t", "²", "¿"]
    ids = np.random.default_rng(2).integers(0, len(chars), 300)
    result = evaluate_text(tiny, ids, batch_size=16, stride=5, chars=chars)
    expected = {name: 0 for name in CHAR_CLASSES}
    for i in ids[1:]:
        expected[char_class(chars[i])] += 1
    assert result.class_counts == expected and sum(expected.values()) == result.tokens
    weighted = sum(result.class_losses[c] * n for c, n in result.class_counts.items() if n)
    assert weighted / result.tokens == pytest.approx(result.loss, rel=1e-6)


def test_no_class_is_reported_as_a_loss_when_it_never_occurs(tiny) -> None:
    result = evaluate_text(tiny, np.array([6, 7, 6, 1, 6]), chars=list("\n abcdefghijk"))
    assert result.class_counts["digit"] == 0 and result.class_losses["digit"] is None
    assert result.class_counts["letter"] == 3 and result.class_counts["space"] == 1


def test_a_class_met_once_has_that_targets_loss(tiny) -> None:
    # One space in the text (a digit, a newline in a short validation text) is a loss, not "never met".
    ids = np.array([6, 7, 6, 1, 6])
    result = evaluate_text(tiny, ids, chars=list("\n abcdefghijk"))
    logits, _ = tiny(torch.from_numpy(ids[:-1])[None])
    space_loss = -torch.log_softmax(logits[0, 2].double(), -1)[1].item()  # target ids[3], after ids[:3]
    assert result.class_counts["space"] == 1
    assert result.class_losses["space"] == pytest.approx(space_loss, rel=1e-5)


@pytest.mark.parametrize(
    ("ch", "cls"),
    [("a", "letter"), ("é", "letter"), ("ß", "letter"), ("中", "letter"), ("A", "upper"),
     ("É", "upper"), ("Ω", "upper"), ("7", "digit"), ("٣", "digit"), ("²", "other"), (" ", "space"),
     ("\t", "other"), ("\xa0", "other"), ("\n", "newline"), ("\r", "newline"), (".", "punctuation"),
     ("'", "punctuation"), ("¿", "punctuation"), ("…", "punctuation"), ("«", "punctuation"),
     ("$", "other"), ("+", "other"), ("😀", "other"), ("\u0301", "other")],
)
def test_each_character_has_the_class_the_docstring_gives(ch, cls) -> None:
    assert char_class(ch) == cls
    assert CHAR_CLASSES[int(class_table([ch])[0])] == cls


def test_a_trained_model_evaluates_a_text_as_chargpt_eval_scores_its_ids(tiny) -> None:
    from chargpt.data.tokenizer import CharTokenizer
    from chargpt.errors import DataError
    from chargpt.inference import TrainedModel

    chars = list("abcdefghijklm")
    trained = TrainedModel(tiny, CharTokenizer(chars))
    text = "".join(np.random.default_rng(3).choice(chars, 200))
    ids = np.array([chars.index(c) for c in text])
    for stride in (None, 4):
        result = trained.evaluate(text, stride=stride, batch_size=7)
        expected = evaluate_text(tiny, ids, batch_size=7, stride=stride, chars=chars)
        assert (result.loss, result.tokens, result.class_counts) == (
            expected.loss, expected.tokens, expected.class_counts
        )
    with pytest.raises(DataError, match=r"characters not in the vocabulary: .*z"):
        trained.evaluate("abz")
