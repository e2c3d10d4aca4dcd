"""Prompts for sampling: checked before a run is built, resolved against the model's vocabulary."""

from __future__ import annotations

import sys
import unicodedata

from chargpt.cli.argv import prompt_source
from chargpt.data.tokenizer import CharTokenizer, describe_chars, is_combining
from chargpt.errors import ConfigError
from chargpt.inference import start_prompt


def resolve_prompt(prompt: object, tokenizer: CharTokenizer, setting: str = "prompt") -> str:
    """The prompt a command samples from, checked before any work: text whose characters the
    vocabulary has, or (unset) the start prompt, with a note when that is not a new line."""
    if prompt is None:
        start = start_prompt(tokenizer)
        if start != "\n":
            print(
                f"note: the model's text has no newline, so samples start from {start!r}; "
                f"{setting}=TEXT starts from another text",
                file=sys.stderr,
            )
        return start
    check_prompt_text(prompt, setting)
    if unknown := tokenizer.unknown_chars(prompt):
        if (same := same_text_in_vocabulary(prompt, unknown, tokenizer)) is not None:
            return same
        raise ConfigError(f"{prompt_source(setting)} has characters not in the model's vocabulary: "
                          f"{describe_chars(unknown)}; remove them from it, or use a model trained on "
                          "text that has them")
    return prompt


def same_text_in_vocabulary(prompt: str, unknown: set[str], tokenizer: CharTokenizer) -> str | None:
    """The prompt with Windows line endings read as new lines and decomposed accents composed (NFC),
    when that leaves no character the vocabulary lacks (a prompt file saved on Windows, "café" typed
    as 'e' + U+0301: the same text as the model's, written otherwise), said in a note; else None."""
    read, how = prompt, []
    if "\r" in unknown:
        read, how = read.replace("\r\n", "\n").replace("\r", "\n"), ["its line endings as '\\n'"]
    if any(is_combining(c) for c in unknown):
        read, how = unicodedata.normalize("NFC", read), [*how, "its accents composed (NFC)"]
    if not how or tokenizer.unknown_chars(read):
        return None
    print(f"note: the prompt is read with {' and '.join(how)}, as the model's vocabulary writes them",
          file=sys.stderr)
    return read


def check_prompt_text(prompt: object, setting: str = "prompt") -> None:
    """A set prompt is text of at least one character (None: the model's start prompt). Needs no
    model: a training checks it before any work (the sampler would refuse it after the run)."""
    if prompt is None:
        return
    if not isinstance(prompt, str):
        raise ConfigError(f"{setting}={prompt!r} must be text, e.g. {setting}=ROMEO:")
    if not prompt:
        if (source := prompt_source(setting)) != setting:
            raise ConfigError(f"{source} is empty; give a file with at least one character, or leave "
                              f"{setting} unset")
        raise ConfigError(f"{setting} is empty; give at least one character, e.g. {setting}=ROMEO:, or "
                          "leave it unset")

