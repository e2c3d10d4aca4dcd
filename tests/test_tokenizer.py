"""The character vocabulary: the sorted set of the text's characters, encoded and decoded back, its
JSON form, the smallest dtype that holds its ids, and the characters it lacks named."""

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


def test_characters_a_vocabulary_lacks_name_the_reading_that_has_them() -> None:
    import unicodedata

    from chargpt.data.tokenizer import describe_chars, reading_fix

    unknown = set(unicodedata.normalize("NFD", "é\r"))
    assert describe_chars(unknown) == "'\\r', 'e', '\\u0301'"
    assert reading_fix(unknown) == ("pass data.newline=normalize to read '\\r\\n' as '\\n', "
                                    "pass data.normalize=NFC to compose accents written as combining marks, ")
    assert reading_fix({"x"}) == ""
    assert reading_fix(unknown, normalize="NFC") == "pass data.newline=normalize to read '\\r\\n' as '\\n', "
    # A mark NFC composes with no letter (a Devanagari vowel sign) is a character of its own.
    assert reading_fix(set("नमस्ते")) == ""


def test_a_vocabulary_rewrites_only_what_it_lacks_its_own_way() -> None:
    import unicodedata

    tokenizer = CharTokenizer(sorted(set("café thé\nnon\u2126\u03a9한국어")))
    nfd = unicodedata.normalize("NFD", "café\r\nthé 한국어")
    assert tokenizer.as_written_here(nfd) == ("café\nthé 한국어", [
        "its line endings as '\\n'", "its accents and syllables composed (NFC)"])
    # Known characters stay as they are, even where NFC would change them (the Ohm sign).
    assert tokenizer.as_written_here("\u2126 cafe\u0301") == ("\u2126 café", [
        "its accents and syllables composed (NFC)"])
    assert tokenizer.as_written_here("non") == ("non", [])
    # What no writing has stays unknown: the caller refuses it.
    written, _ = tokenizer.as_written_here(unicodedata.normalize("NFD", "caña"))
    assert tokenizer.unknown_chars(written) == {"ñ"}
