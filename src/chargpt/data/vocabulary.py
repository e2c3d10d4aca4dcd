"""What a corpus is made of, said at the start of a run: size, distinct characters, the rarest
ones (where a stray symbol shows), and characters that are probably not meant as text."""

from __future__ import annotations

from collections.abc import Mapping

from chargpt.data.tokenizer import shown_char
from chargpt.plural import counted

RAREST_SHOWN = 8


def _vocabulary_characters(n: int) -> str:
    return "it is a vocabulary character" if n == 1 else "they are vocabulary characters"


def _them(n: int) -> str:
    return "it" if n == 1 else "them"


def vocabulary_lines(
    counts: Mapping[str, int], newline: str = "keep", bom_parts: list[str] | None = None,
    model_vocab: int | None = None, dataset: bool = False,
) -> list[str]:
    """Lines for the start-of-run report, first the summary, then any warnings (prefixed).
    `model_vocab`: the size of a vocabulary given from outside the text (a fine-tune's), which the
    text's own count does not show. `dataset`: the text is data=hf's, which keeps the mark that
    starts a file (datasets' `text` builder reads files so) or a row."""
    total = sum(counts.values())
    rarest = sorted(counts.items(), key=lambda item: (item[1], item[0]))[:RAREST_SHOWN]
    shown = ", ".join(f"{shown_char(c)} x{n:,}" for c, n in rarest)
    model = f" (the model's vocabulary: {model_vocab})" if model_vocab not in (None, len(counts)) else ""
    lines = [f"vocabulary: {len(counts)} distinct characters in {total:,}{model}; rarest: {shown}"]
    if (returns := counts.get("\r", 0)) and newline == "keep":
        lines.append(
            f"warning: the text has {counted(returns, 'carriage return', grouped=True)} ('\\r', Windows "
            f"line endings): {_vocabulary_characters(returns)} and samples will contain {_them(returns)}; "
            "pass data.newline=normalize "
            "to turn '\\r\\n' and '\\r' into '\\n'"
        )
    if (marks := counts.get("\ufeff", 0)) and dataset:
        lines.append(
            f"warning: the text has {counted(marks, 'byte-order mark', grouped=True)} ('\\ufeff') in it "
            f"(data=hf keeps one that starts a file or a row): {_vocabulary_characters(marks)}; remove "
            f"{_them(marks)}, or read text files with data=text, which drops the one a file starts with"
        )
    elif marks:
        lines.append(
            f"warning: the text has {counted(marks, 'byte-order mark', grouped=True)} ('\\ufeff') inside it "
            f"(not at the start of a file): {_vocabulary_characters(marks)}"
        )
    if bom_parts:
        names = ", ".join(bom_parts[:3]) + (f" and {len(bom_parts) - 3} more" if len(bom_parts) > 3 else "")
        lines.append(f"dropped a leading byte-order mark (U+FEFF) from {names}")
    return lines
