"""The error for an override Hydra cannot parse: what was probably meant (spaces around '=', a
trailing comma, `model:tiny`, a run's folder given bare) and the quoted form that works."""

from __future__ import annotations

import os
import re
from pathlib import Path

from chargpt import shell_words
from chargpt.cli.free_text import hydra_function_call
from chargpt.data.sources.paths import expand_path
from chargpt.overrides import hydra_quoted, parses, split_override

_KEY = re.compile(r"[+~]{0,2}[A-Za-z_][\w.\-/@]*")  # a setting's or a group's name, as typed


def spaced_around_equals(argv: list[str], i: int) -> str | None:
    """`seed = 3`, `model =tiny`, `seed= 3`: an override typed with spaces around its '=', which the
    shell handed over as several words, the one at `i` unreadable: the error naming the override
    meant. None where argv[i] is no such word."""
    word, before = argv[i], argv[i - 1] if i > 1 else ""
    after = argv[i + 1] if i + 1 < len(argv) else None
    if _KEY.fullmatch(word) and after is not None and after.startswith("="):  # `seed = 3`, `model =tiny`
        typed = after.lstrip("=")  # (`seed == 3`, '==' as a comparison is written: one '=' meant)
        value = argv[i + 2] if not typed and i + 2 < len(argv) and "=" not in argv[i + 2] else None
        words = [word, after] if value is None else [word, after, value]
        meant = f"{word}={typed or value or 'VALUE'}"
    elif "=" not in word and _KEY.fullmatch(before[:-1]) and before.endswith("=") and before.count("=") == 1:
        words = [before, word]  # `seed= 3`: the first word, set to nothing, read; this one not
        meant = before + word
    else:
        return None
    return (f"{shell_words.join(words)}: the shell splits it at its spaces into {len(words)} words; write it "
            f"without spaces around '=': {shell_words.quote(meant)}")


def unparsable(arg: str, group_dirs: list[Path], reads_checkpoint: bool = False) -> str:
    """The error for an override Hydra cannot read; `group_dirs`: the config groups' folders;
    `reads_checkpoint`: whether the command reads a run (chargpt-sample, -eval, -export)."""
    parts = split_override(arg)
    if parts is None:
        if reads_checkpoint and os.path.exists(expand_path(arg.strip())):  # `chargpt-sample my_run`
            return (f"cannot read the override {arg!r}: overrides are key=value; to read the run or "
                    f"checkpoint it names, give its setting: {shell_words.quote(f'ckpt_path={arg.strip()}')}")
        yaml_like = ":" in arg and _KEY.fullmatch(arg.partition(":")[0])  # `model:tiny`, as YAML writes it
        meant = f" ({arg.replace(':', '=', 1)}?)" if yaml_like else ""
        return (f"cannot read the override {arg!r}: overrides are key=value{meant}; "
                "see the command's --help")
    plus, key, value = parts
    if match := hydra_function_call(value):
        # Meant as a sweep or search expression: quoting it would make it text, which no setting takes.
        return (f"cannot read the override {arg!r}: its value starts as Hydra's {match[1]}(...) but does not "
                "parse; check its parentheses, commas and numbers, e.g. "
                f"'{key}=tag(log, interval(1e-4, 1e-2))'")
    works = shell_words.quote_in_double_quotes(f"{plus}{key}={hydra_quoted(value)}")
    meant = value.rstrip().removesuffix(",")
    if meant != value.rstrip() and meant and parses(f"{plus}{key}={meant}"):
        # `model=tiny,`: quoted, the value is a text, which a group's option (or a number) is not.
        dropped = (f"cannot read the override {arg!r}: it ends with a comma, and no value follows it (a "
                   f"comma separates the values a sweep runs); drop the comma: "
                   f"{shell_words.quote(f'{plus}{key}={meant}')}")
        if any((folder / key).is_dir() for folder in group_dirs) or not parses(f"{key}={meant}", True):
            return dropped
        return f"{dropped} (or, for a text that ends with a comma, quote the value: {works})"
    reserved = (f"cannot read the override {arg!r} (Hydra's override syntax reserves characters such as "
                "spaces, commas, quotes and brackets)")
    items = [item.strip() for item in value[1:-1].split(",")] if value[:1] + value[-1:] == "[]" else []
    listed = f"{plus}{key}=[{', '.join(hydra_quoted(item) for item in items)}]"
    if items and parses(listed):
        # A list (hydra.searchpath=[file://my configs]): the whole value quoted is one text, which
        # a list setting refuses; each item quoted keeps the list.
        each = shell_words.quote_in_double_quotes(listed)
        return f"{reserved}; quote each item of the list: {each} (or the whole value, for a text: {works})"
    return f"{reserved}; quote the value: {works}"
