"""A count and its noun in a message: "1 run", "3 runs"."""

from __future__ import annotations


def counted(n: int, noun: str, grouped: bool = False) -> str:
    """`n` and its noun, plural unless one: "1 run", "3 runs"; `grouped`: "38,112 runs"."""
    return f"{n:,} {noun}{'s' if n != 1 else ''}" if grouped else f"{n} {noun}{'s' if n != 1 else ''}"
