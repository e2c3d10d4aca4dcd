"""Stop sequences (OpenAI's `stop`): where a choice's text ends, and how much of it can be sent yet.

A choice ends as soon as its text contains one of the sequences, and its text is what came before
that sequence. While a choice streams, the characters that could still begin a sequence are held
back, and sent once they cannot: a client never receives a character of a sequence that stopped it.
Each sequence is followed as Knuth-Morris-Pratt does (a constant cost per character on average,
however long the sequence), so a long sequence costs the decoding thread nothing more.
"""

from __future__ import annotations

from collections.abc import Iterable


def _fallbacks(sequence: str) -> list[int]:
    """For each prefix of `sequence`, the length of its longest proper prefix that is also its suffix:
    how much of the sequence is still matched when the next character does not continue it."""
    table, matched = [0] * len(sequence), 0
    for i in range(1, len(sequence)):
        while matched and sequence[i] != sequence[matched]:
            matched = table[matched - 1]
        if sequence[i] == sequence[matched]:
            matched += 1
        table[i] = matched
    return table


class StopSequences:
    """A request's sequences, prepared once for all its choices. Those longer than `longest` (the
    characters a choice may generate) can never be completed, and are left out."""

    def __init__(self, sequences: Iterable[str], longest: int) -> None:
        self.sequences = tuple(s for s in dict.fromkeys(sequences) if 0 < len(s) <= longest)
        self.tables = tuple(_fallbacks(s) for s in self.sequences)

    def scanner(self) -> StopScanner:
        return StopScanner(self)


NO_STOP = StopSequences((), 0)


class StopScanner:
    """One choice's text, a character at a time: what may be sent, and whether a sequence ended it."""

    def __init__(self, stops: StopSequences) -> None:
        self.stops = stops
        self.matched = [0] * len(stops.sequences)  # per sequence: the longest end of the text that begins it
        self.held = ""  # the end of the text not sent yet: it may be the start of a sequence

    def push(self, char: str) -> tuple[str, bool]:
        """Take the next character; return the text that may be sent now, and True if a sequence
        has just ended (the text returned then stops before it, and nothing more is to come)."""
        self.held += char
        ended = 0  # the longest sequence ending here: of all that end here, it starts first
        for i, sequence in enumerate(self.stops.sequences):
            matched = self.matched[i]
            while matched and sequence[matched] != char:
                matched = self.stops.tables[i][matched - 1]
            if sequence[matched] == char:
                matched += 1
            if matched == len(sequence):
                ended = max(ended, matched)
                matched = self.stops.tables[i][matched - 1]
            self.matched[i] = matched
        if ended:
            text, self.held = self.held[: len(self.held) - ended], ""
            return text, True
        keep = max(self.matched, default=0)
        text, self.held = self.held[: len(self.held) - keep], self.held[len(self.held) - keep :]
        return text, False

    def flush(self) -> str:
        """The text held back, at a choice's end by length: no sequence can complete any more."""
        text, self.held = self.held, ""
        return text
