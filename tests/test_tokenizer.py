import json

import numpy as np
import pytest

from chargpt.data.tokenizer import CharTokenizer
from chargpt.errors import DataError


def test_round_trip_and_sorted_vocabulary() -> None:
    tok = CharTokenizer.from_text("hello world")
    assert tok.chars == sorted(set("hello world"))
    assert tok.decode(tok.encode("low hold")) == "low hold"
    assert tok.encode(" ") == [0]  # space sorts first


def test_tiny_shakespeare_has_the_tutorials_65_symbols(shakespeare) -> None:
    tok = CharTokenizer.from_text(shakespeare.read_text())
    assert tok.vocab_size == 65
    assert "".join(tok.chars) == "\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    assert tok.encode("hii there") == [46, 47, 47, 1, 58, 46, 43, 56, 43]  # as in the tutorial


def test_unknown_characters_are_named() -> None:
    tok = CharTokenizer.from_text("abc")
    with pytest.raises(DataError, match=r"'x'.*'é'|'é'.*'x'"):
        tok.encode("abxcé")


def test_serialises_to_plain_json() -> None:
    tok = CharTokenizer.from_text("ünïcödé ☃ text\n")
    restored = CharTokenizer(json.loads(json.dumps(tok.to_list())))
    assert restored == tok


SIZES = [(65, np.uint8), (256, np.uint8), (257, np.uint16), (70000, np.uint32)]


@pytest.mark.parametrize(("n", "dtype"), SIZES)
def test_dtype_fits_vocabulary(n: int, dtype: type) -> None:
    chars = [chr(0x100 + i) for i in range(n)]
    assert CharTokenizer(chars).dtype == np.dtype(dtype)


def test_duplicate_or_multichar_vocabulary_rejected() -> None:
    with pytest.raises(DataError):
        CharTokenizer(["a", "a"])
    with pytest.raises(DataError):
        CharTokenizer(["ab"])
