"""Numbers in a message: a count and its noun, "1 run", "3 runs"; a place, "2nd"."""

from __future__ import annotations


def counted(n: int, noun: str, grouped: bool = False) -> str:
    """`n` and its noun, plural unless one: "1 run", "3 runs"; `grouped`: "38,112 runs"."""
    return f"{n:,} {noun}{'s' if n != 1 else ''}" if grouped else f"{n} {noun}{'s' if n != 1 else ''}"


def ordinal(n: int) -> str:
    """`n` as a place in a list: "1st", "2nd", "11th", "23rd"."""
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"
