"""Commands printed for a user to paste into a shell (a resume, a sweep's continuation, a re-run).

Quoted as `shlex` quotes, except a word holding a control character other than a newline: a
carriage return from a Windows text or a prompt file, a tab, an escape. A terminal acts on those
when the command is printed (a carriage return overwrites the line) and changes them when it is
pasted (a carriage return arrives as a newline, a tab asks for completion). Such a word is written
in ANSI-C quoting, `$'...'`, which bash, zsh and ksh read back as the same characters.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable

_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f]")  # a newline (\x0a) prints and pastes as itself
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")  # a shell variable's name (POSIX)
_ESCAPED = {"\\": "\\\\", "'": "\\'", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def quote(word: str) -> str:
    """`word` as one shell word that pastes as itself: in `$'...'` (newlines escaped too, so one
    line) when it holds a control character but a newline; else as shlex quotes it, newlines and all."""
    if not _CONTROL.search(word):
        return shlex.quote(word)
    return _ansi_c_quoted(word)


def _ansi_c_quoted(word: str) -> str:
    return "$'" + "".join(_ESCAPED.get(c) or (f"\\x{ord(c):02x}" if _CONTROL.match(c) else c)
                          for c in word) + "'"


def setting_on_one_line(setting: str) -> str:
    """A `key=value` setting as typed, shown in a line of output (a sweep job's heading, an error):
    as it is, unless its value holds a line break or another control character, which would break
    or garble the line; then that value in `$'...'` (`prompt=$'a\\nb'`), as bash reads it back."""
    key, equals, value = setting.partition("=")
    if not (_CONTROL.search(value) or "\n" in value):
        return setting
    return f"{key}{equals}{_ansi_c_quoted(value)}" if equals else _ansi_c_quoted(setting)


def quote_in_double_quotes(word: str) -> str:
    """`word` as `quote` writes it, but in double quotes where those need no escapes (no `"`, `$`,
    backquote, backslash or `!` in it), which reads more easily around Hydra's single quotes."""
    if re.search(r'["$`\\!]', word) or _CONTROL.search(word):
        return quote(word)
    return f'"{word}"'


def join(words: Iterable[str]) -> str:
    """`words` as one command line (shlex.join, with `quote`'s words)."""
    return " ".join(quote(word) for word in words)


def assignments(variables: dict[str, str]) -> list[str]:
    """`NAME=value` words that set `variables` for the command after them. A name that is no shell
    variable's is refused (ValueError): unquoted before `=`, it would be read as shell code."""
    if bad := [name for name in variables if not _NAME.fullmatch(name)]:
        raise ValueError(f"not a shell variable name: {bad[0]!r}")
    return [f"{name}={quote(value)}" for name, value in variables.items()]
