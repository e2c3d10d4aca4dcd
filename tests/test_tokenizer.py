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


def test_a_prompt_written_otherwise_is_read_as_the_models_text(capsys) -> None:
    # "café" typed with a combining accent (NFD), a prompt file saved with Windows line endings:
    # the same text as the model's, refused before as characters it never saw.
    import unicodedata

    from chargpt.cli.prompts import resolve_prompt
    from chargpt.errors import ConfigError

    tokenizer = CharTokenizer(sorted(set("café au lait\nthé\nnon")))
    decomposed = unicodedata.normalize("NFD", "café\r\nthé")
    assert resolve_prompt(decomposed, tokenizer) == "café\nthé"
    assert capsys.readouterr().err == ("note: the prompt is read with its line endings as '\\n' and its "
                                       "accents composed (NFC), as the model's vocabulary writes them\n")
    assert resolve_prompt("café", tokenizer) == "café" and capsys.readouterr().err == ""
    # An accent the vocabulary has in no form: refused, the mark named by its code point.
    with pytest.raises(ConfigError, match=r"not in the model's vocabulary: '\\u0303'; remove them"):
        resolve_prompt(unicodedata.normalize("NFD", "caña"), tokenizer)


def test_characters_a_vocabulary_lacks_name_the_reading_that_has_them() -> None:
    import unicodedata

    from chargpt.data.tokenizer import describe_chars, reading_fix

    unknown = set(unicodedata.normalize("NFD", "é\r"))
    assert describe_chars(unknown) == "'\\r', 'e', '\\u0301'"
    assert reading_fix(unknown) == ("pass data.newline=normalize to read '\\r\\n' as '\\n', "
                                    "pass data.normalize=NFC to compose accents written as combining marks, ")
    assert reading_fix({"x"}) == ""
