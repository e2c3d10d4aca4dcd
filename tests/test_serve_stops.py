"""Stop sequences on their own: a choice ends where its text first contains one, its text stops
before it, and while it streams only what could still begin one is held back."""

from __future__ import annotations

import random

import pytest

from chargpt.serving.stops import StopSequences
from conftest import cut_at_stop


def held_back(text: str, stops: list[str]) -> int:
    """How many of the text's last characters could still begin a sequence: the most held back."""
    ends = [text[len(text) - k :] for k in range(len(text) + 1)]
    return max(len(end) for end in ends if any(len(end) < len(s) and s.startswith(end) for s in stops))


def scan(text: str, stops: list[str]) -> tuple[list[str], bool]:
    """What a scanner lets out after each character (a flush at the end if no sequence came)."""
    scanner = StopSequences(stops, longest=100).scanner()
    sent: list[str] = []
    for char in text:
        released, stopped = scanner.push(char)
        sent.append(released)
        if stopped:
            return sent, True
    sent.append(scanner.flush())
    return sent, False


@pytest.mark.parametrize(("text", "stops", "expected"), [
    ("hello\nworld", ["\n"], ("hello", True)),
    ("abcabd", ["abd"], ("abc", True)),  # a partial match that fails, then a whole one within it
    ("aaab", ["aab"], ("a", True)),  # KMP's fallback: the match restarts inside the failed one
    ("xabc", ["abc", "b"], ("xa", True)),  # "b" is complete first
    ("xabc", ["bc", "abc"], ("x", True)),  # both end at 'c': the text stops before the earlier start
    ("ab", ["abc"], ("ab", False)),  # never completed: flushed at the end
    ("abc", ["é😀", "zz"], ("abc", False)),
])
def test_a_choice_ends_before_its_first_stop_sequence(text: str, stops: list[str],
                                                      expected: tuple[str, bool]) -> None:
    sent, stopped = scan(text, stops)
    assert ("".join(sent), stopped) == expected
    assert cut_at_stop(text, stops)[:2] == (expected[0], "stop" if stopped else "length")


def test_streaming_holds_back_exactly_what_could_begin_a_sequence() -> None:
    # Random texts and sequences over a small alphabet, so that partial matches are everywhere.
    rng = random.Random(0)

    def word(longest: int) -> str:
        return "".join(rng.choice("abc") for _ in range(rng.randint(1, longest)))

    for _ in range(2000):
        text, stops = word(20), [word(5) for _ in range(rng.randint(1, 4))]
        sent, stopped = scan(text, stops)
        assert ("".join(sent), "stop" if stopped else "length") == cut_at_stop(text, stops)[:2], (text, stops)
        for i in range(len(sent) - 1):  # each character before the last step (a stop, or the flush)
            # Everything is out but the tail that could still begin a sequence.
            made = text[: i + 1]
            assert "".join(sent[: i + 1]) == made[: len(made) - held_back(made, stops)], (text, stops, i)


def test_sequences_that_cannot_complete_are_left_out() -> None:
    # Longer than the characters a choice may generate, or repeated: nothing to follow.
    stops = StopSequences(["ab", "abcdef", "ab", "xyz"], longest=3)
    assert stops.sequences == ("ab", "xyz")
