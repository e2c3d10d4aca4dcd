"""Override text: literal text as a Hydra override value and back, an override's key, whether it
sweeps and the values its jobs get, and an override as a user types it.

Hydra's override grammar reserves spaces, commas, quotes, brackets, `~`, non-ASCII letters and
more, and OmegaConf reads `${...}` as an interpolation. A value written by `hydra_quoted` arrives
in the composed config as exactly the text given; `literal_value` reads such a value back.
"""

from __future__ import annotations

import dataclasses
import functools
import glob
import os
import re
from collections.abc import Collection
from typing import Any

from hydra.core.config_loader import ConfigLoader
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import (
    ChoiceSweep,
    IntervalSweep,
    Override,
    Quote,
    QuotedString,
    RangeSweep,
)
from hydra.errors import HydraException
from omegaconf import OmegaConf

from chargpt import shell_words
from chargpt.hydra_internals import escape_special_characters, escaped_characters, override_value, with_value

_PARSER = OverridesParser.create()
# The folders data is read from and runs go under (an MLflow store, a new run's dated folder):
# named relative to where the run was launched, like a data file.
LAUNCH_FOLDERS = ("paths.data_dir", "paths.output_root")


def omegaconf_literal(text: str) -> str:
    """The string OmegaConf reads back as `text`: `${` (and backslashes right before it) escaped."""
    return re.sub(r"(\\*)\$\{", lambda m: m.group(1) * 2 + "\\${", text)


def hydra_quoted(text: str, interpolate: bool = False) -> str:
    """`text` as one quoted Hydra value; `${...}` stays literal unless `interpolate`."""
    value = text if interpolate else omegaconf_literal(text)
    return QuotedString(text=value, quote=Quote.single).with_quotes()


@functools.lru_cache(maxsize=4096)  # a command line's checks ask this of each override several times
def parses(override: str, single_string: bool = False) -> bool:
    """Whether Hydra can read `override`; with `single_string`, as one string (not a list, a
    number or a sweep)."""
    try:
        parsed = _PARSER.parse_override(override)
    except HydraException:
        return False
    return not single_string or (not parsed.is_sweep_override() and isinstance(parsed.value(), str))


def is_sweep(override: str) -> bool:
    """Whether `override` sweeps its setting (`lr=1e-3,3e-3`, `range(...)`, a search's
    `interval(...)`); False for one Hydra cannot read."""
    try:
        return _PARSER.parse_override(override).is_sweep_override()
    except HydraException:
        return False


def is_drawn(override: str) -> bool:
    """Whether `override` is a search's `interval(...)`, whose values are drawn, not typed
    (0.0013372818287411345); False for any other, or one Hydra cannot read."""
    try:
        return isinstance(_PARSER.parse_override(override).value(), IntervalSweep)
    except HydraException:
        return False


def choice_values(override: str) -> list | None:
    """The values of a `key=choice(...)` sweep as Hydra reads them; None for any other override (a
    bare `a,b`, which Hydra reads as a sweep too: in a recorded path, one file's name)."""
    try:
        value = _PARSER.parse_override(override).value()
    except HydraException:
        return None
    if not isinstance(value, ChoiceSweep) or value.shuffle or value.simple_form:
        return None
    return list(value.list)


def typed_numbers(override: str) -> dict[float, str]:
    """The numbers an override gives (`key=3e-3`) or a sweep lists (`key=1e-3,2e-3`,
    `key=choice(1e-3, 2e-3)`), each with its text as typed: {0.001: "1e-3"}. Hydra hands each job
    its value as Python writes it (0.001, 1000000000.0 for 1e9); a table shows it as typed, as
    first typed where one number is typed two ways (`1e-3,0.001`: numbers_typed_twice). Empty for
    any other override, and where the text does not split into Hydra's own values."""
    numbers: dict[float, str] = {}
    for number, item in _typed_items(override):
        numbers.setdefault(number, item)
    return numbers


def numbers_typed_twice(override: str) -> list[list[str]]:
    """The texts of each number that a sweep lists typed two ways or more (`key=1e-3,0.001,3e-3`:
    [["1e-3", "0.001"]]): Hydra runs one job of each, with the same value."""
    texts: dict[float, list[str]] = {}
    for number, item in _typed_items(override):
        if item not in texts.setdefault(number, []):
            texts[number].append(item)
    return [typed for typed in texts.values() if len(typed) > 1]


def _typed_items(override: str) -> list[tuple[float, str]]:
    """typed_numbers' numbers, each with its text, in the order typed."""
    try:
        parsed = _PARSER.parse_override(override)
    except HydraException:
        return []
    value = override_value(parsed)
    text = override.partition("=")[2].strip()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        values = [value]
        items = [text]
    elif not isinstance(value, ChoiceSweep) or value.shuffle or value.tags:
        return []
    else:
        if not value.simple_form:
            text = text.removeprefix("choice(").removesuffix(")")
        items = [item.strip() for item in _top_level_items(text)]
        values = value.list
    if len(items) != len(values):
        return []
    numbers: list[tuple[float, str]] = []
    for item, parsed_item in zip(items, values, strict=True):
        if isinstance(parsed_item, bool) or not isinstance(parsed_item, (int, float)):
            continue
        try:
            if float(item) != parsed_item:
                return []  # split elsewhere than Hydra reads it: no text is known
        except ValueError:
            return []
        numbers.append((float(parsed_item), item))
    return numbers


def _top_level_items(text: str) -> list[str]:
    """`text` split at its commas outside quotes and brackets."""
    items, depth, quote, start, escaped = [], 0, "", 0, False
    for i, char in enumerate(text):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif char == "," and depth == 0:
            items.append(text[start:i])
            start = i + 1
    return [*items, text[start:]]


def literal_value(override: str) -> str:
    """The text a `key=value` override sets: a quoted value unquoted and unescaped, a value with
    Hydra's escapes (`a\\ b.txt`: a sweep's job gets its value so) unescaped, any other as typed."""
    raw = override.partition("=")[2]
    if raw[:1] not in ("'", '"'):
        return _unescaped(override) if "\\" in raw else raw
    try:
        value = _PARSER.parse_override(override).value()
        return str(OmegaConf.create({"x": value}).x) if isinstance(value, str) else raw
    except Exception:  # not one quoted string after all (e.g. a sweep of quoted values)
        return raw


def _unescaped(override: str) -> str:
    """An unquoted value as Hydra reads it (`a\\ b\\,c.txt` -> `a b,c.txt`), where that is one string;
    one Hydra cannot read (an accent: `a\\,b é.txt`) with its escapes read as Hydra reads them (a
    Windows path `C:\\data`, which has none, as typed)."""
    raw = override.partition("=")[2]
    try:
        parsed = _PARSER.parse_override(override)
    except HydraException:
        return re.sub(rf"\\([{re.escape(escaped_characters())}])", r"\1", raw)
    value = parsed.value()
    return omegaconf_text(value) if not parsed.is_sweep_override() and isinstance(value, str) else raw


def omegaconf_text(value: str) -> str:
    """The text OmegaConf reads from `value` where it holds omegaconf_literal's escapes (`\\${x}` ->
    `${x}`); an interpolation is kept as written."""
    return re.sub(r"(\\+)\$\{", lambda m: ("\\" * (len(m[1]) // 2) + "${") if len(m[1]) % 2 else m[0], value)


def reaches_sweep_job(key: str, text: str, search: bool = False) -> bool:
    """Whether the sweeper hands `text`, one value of a sweep of `key`, to its job intact. Hydra's
    basic sweeper writes the job's override unquoted, escaping only spaces, commas, brackets and the
    like (Hydra 1.3), so a quote, a non-ASCII letter or a `~` makes it unreadable, and `null` or
    `1e3` arrive as no text at all; a `search` (Optuna's own sweeper) escapes nothing."""
    try:
        value = _PARSER.parse_override(f"{key}={text if search else escape_special_characters(text)}").value()
    except HydraException:
        return False
    return value == text


def readable_choices(override: Override) -> Override:
    """A `choice(...)` sweep whose values its jobs read back as given: each text that Hydra's basic
    sweeper would hand its job unreadable (reaches_sweep_job) made a quoted string, which it writes
    quoted; any other override as it is."""
    choices = override_value(override)
    if not override.is_choice_sweep() or not isinstance(choices, ChoiceSweep):
        return override
    key = override.get_key_element()
    values = [QuotedString(text=value, quote=Quote.single)
              if isinstance(value, str) and not reaches_sweep_job(key, value) else value
              for value in choices.list]
    return with_value(override, dataclasses.replace(choices, list=values))


def swept_values(override: Override) -> list[str]:
    """The values a discrete sweep's jobs get, each as the sweeper hands it to its job
    (readable_choices) and as a command line writes it: true, not Python's True (Hydra reads both
    as the same value); none for any other override (a search's interval(...) has no list of them)."""
    parsed = readable_choices(override)
    if not parsed.is_discrete_sweep():
        return []
    return [str(value).lower() if isinstance(value, bool) else text
            for value, text in zip(parsed.sweep_iterator(), parsed.sweep_string_iterator(), strict=True)]


def parsed_override(override: str, config_loader: ConfigLoader | None = None) -> Override:
    """`override` as Hydra reads it (a HydraException where it cannot); with the `config_loader`
    composing the config, which a glob(...) of a group's options needs to list them (Hydra's
    parse_overrides gives each override its own so; its parse_override none)."""
    parsed = _PARSER.parse_override(override)
    parsed.config_loader = config_loader
    return parsed


def readable_trial_override(override: str, params: dict) -> str:
    """One override of a search's trial, `key=value` as Optuna's sweeper writes it (a text value bare,
    escaped in no way), readable by its job: where `params` (the trial's drawn values) holds a text
    that Hydra reads back as another (a non-ASCII letter, a quote, a comma, `null`), written quoted."""
    key, _, written = override.partition("=")
    value = params.get(key)
    if not isinstance(value, str) or written != value or reaches_sweep_job(key, value, search=True):
        return override
    return f"{key}={QuotedString(text=value, quote=Quote.single).with_quotes()}"


def sweep_item(text: str) -> str:
    """`text` as one value of a Hydra list or sweep: bare where Hydra reads it back as it is, else
    quoted."""
    try:
        if _PARSER.parse_override(f"x=[{text}]").value() == [text]:
            return text
    except HydraException:
        pass
    return hydra_quoted(text)


def swept_as_typed(value: Any) -> str:
    """A value Hydra parsed (as a dict's entry: `{model.dropout: interval(0.0, 0.3)}`) written back
    as the setting's own override takes it, to run as shown: a sweep as Hydra's function of it
    (`interval(0.0,0.3)`, `int(...)` kept where its ends are whole), a list as its items, one run
    each (`1,2`); a word as typed."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return ",".join(map(_item_as_typed, value))
    if isinstance(value, IntervalSweep):
        text = f"interval({value.start},{value.end})"
        text = f"int({text})" if isinstance(value.start, int) and isinstance(value.end, int) else text
    elif isinstance(value, RangeSweep):
        text = f"range({value.start},{value.stop},{value.step})"
    elif isinstance(value, ChoiceSweep):
        items = ",".join(map(_item_as_typed, value.list))
        text = items if value.simple_form else f"choice({items})"
    else:
        return str(value)
    if getattr(value, "shuffle", False):
        text = f"shuffle({text})"
    return f"tag({','.join(sorted(value.tags))},{text})" if value.tags else text


def _item_as_typed(item: Any) -> str:
    """One item of a list or choice, as swept_as_typed writes it: text quoted where Hydra would
    read it otherwise."""
    return sweep_item(item) if isinstance(item, str) else swept_as_typed(item)


def split_override(arg: str) -> tuple[str, str, str] | None:
    """`+key=value` -> ('+', 'key', 'value'); None for anything that is not `key=value`."""
    match = re.match(r"^(\+{0,2})([\w.\-/@]+)=(.*)$", arg, re.DOTALL)
    return (match.group(1), match.group(2), match.group(3)) if match else None



def without_quotes(key: str, value: str) -> str:
    """A value without Hydra's way of quoting it ("data.path='src/*.py'", 'it\\'s.txt')."""
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        unquoted = literal_value(f"{key}={value}")
        return unquoted if unquoted != value else value[1:-1]
    return value


def override_key(override: str) -> str:
    """The setting an override names, without Hydra's `+`, `++` or `~` prefix."""
    return override.partition("=")[0].lstrip("+~")


def removal_key(override: str) -> str:
    """The setting an override names, `~` kept on a removal (`~callbacks.progress_bar`): a removal
    is not the setting given an empty value."""
    key = override_key(override)
    return f"~{key}" if override.startswith("~") else key


def removal_typed(key: str) -> str:
    """The override that removes the config at `key` (`'~callbacks.NAME'`), quoted as it is typed:
    unquoted, zsh reads `~NAME` as a named folder and stops at it."""
    return shell_words.quote(f"~{key}")


def setting_typed(key: str, value: str) -> str:
    """`key=value` as typed; a removal (removal_key) of no value is its key alone, not `~key=`."""
    return key if key.startswith("~") and not value else f"{key}={value}"


def as_typed(override: str) -> str:
    """An override as a user types it on a command line: the CLI quoted free-text values (paths,
    prompts) and run folders for Hydra before Hydra recorded them, so a printed command unquotes
    them to run as shown. Any other value keeps the quotes it was typed with: Hydra needs them."""
    key = override_key(override)
    if "=" not in override or not (is_free_text_key(key) or is_folder_key(key)):
        return override
    return f"{override.partition('=')[0]}={literal_value(override)}"


def is_prompt_key(key: str) -> bool:
    return key.rsplit(".", 1)[-1] == "prompt"


def is_free_text_key(key: str) -> bool:
    """Settings whose value the CLI takes literally (prompts, paths, a model's name)."""
    return is_path_key(key) or is_prompt_key(key) or key == "name"


def is_folder_key(key: str) -> bool:
    """Settings that name a run's folder (a sweep job's included), or the folders runs go under and
    data is read from: taken as typed, interpolations kept."""
    return key in ("hydra.run.dir", "hydra.sweep.dir", "hydra.sweep.subdir", *LAUNCH_FOLDERS)


def is_path_key(key: str) -> bool:
    """Settings that name a file or folder: `~` and environment variables are expanded."""
    last = key.rsplit(".", 1)[-1]
    return key in ("ckpt_path", "init_from", "out", "data.name") or (
        key.startswith("data.") and last.endswith("path"))


def absolute_override(typed: str, cwd: str | None, local_data_files: bool = True) -> str:
    """A typed override whose file or folder is named relative to `cwd` (where it was launched),
    named absolute: a command that works from anywhere. Anything else stays as typed, and
    data.data_files where not `local_data_files` (a hub dataset's, named inside it)."""
    setting, _, value = typed.partition("=")
    key = override_key(typed)
    if key == "hydra.searchpath":
        return _absolute_searchpath(typed, cwd)
    if key == "data.data_files":
        return _absolute_data_files(typed, cwd) if local_data_files else typed
    # A folder's value may be an interpolation (`${oc.env:DATA}`), kept as typed; a file's is literal.
    folder = key in LAUNCH_FOLDERS and not value.startswith("${")
    if cwd is None or not (folder or is_path_key(key)) or not value or value.lower() == "null":
        return typed
    paths = None if os.path.exists(launched_path(value, cwd)) else choice_values(typed)
    if paths is not None and all(isinstance(path, str) for path in paths):
        # A sweep of files (`data.path=choice(a.txt,b.txt)`): each named from `cwd`.
        return f"{setting}=choice({','.join(sweep_item(named_from(key, path, cwd)) for path in paths)})"
    return f"{setting}={named_from(key, value, cwd)}"


def _absolute_data_files(typed: str, cwd: str | None) -> str:
    """data.data_files=PATTERN, a local builder's files (data.name=text) named relative to `cwd`,
    named absolute where it matches files there; so is each pattern of a list or of a mapping of
    splits (`[a/*.txt,b/*.txt]`, `{train:a/*.txt,validation:b/*.txt}`). As typed otherwise: a
    sweep, an interpolation, a value Hydra cannot read."""
    setting = typed.partition("=")[0]
    if cwd is None or not parses(typed):
        return typed
    if not parses(typed, single_string=True):
        parsed = _PARSER.parse_override(typed)
        named = None if parsed.is_sweep_override() or "${" in typed else _each_absolute(parsed.value(), cwd)
        return typed if named is None else f"{setting}={named}"
    value = literal_value(typed)
    if not value:
        return typed
    if named_from_anywhere(value, cwd):
        # Quoted as one named absolute here is: the same pattern typed either way reads as equal.
        # (An interpolation stays as typed: quoting would make it literal.)
        return typed if "${" in value else f"{setting}={hydra_quoted(value)}"
    if not glob.glob(launched_path(value, cwd, pattern=True), recursive=True):
        return typed
    return f"{setting}={hydra_quoted(launched_path(value, cwd, pattern=True))}"


def _each_absolute(value: object, cwd: str) -> str | None:
    """A list or mapping of data_files patterns, in Hydra's grammar, each named absolute where it
    matches files from `cwd`; None for a value that holds anything but patterns."""
    if isinstance(value, str):
        named = launched_path(value, cwd, pattern=True)
        return sweep_item(named if named == value or glob.glob(named, recursive=True) else value)
    if isinstance(value, list):
        items = [_each_absolute(item, cwd) for item in value]
        return None if None in items else f"[{','.join(items)}]"
    if isinstance(value, dict):
        items = {key: _each_absolute(item, cwd) for key, item in value.items()}
        if None in items.values() or not all(isinstance(key, str) for key in items):
            return None
        return "{" + ",".join(f"{key}:{item}" for key, item in items.items()) + "}"
    return None


def named_from(key: str, path: str, cwd: str) -> str:
    """`path`, the value of the setting `key` launched from `cwd`, named absolute (launched_path);
    a data.name that is no folder there as it is: a hub dataset's name."""
    if key == "data.name" and not os.path.isdir(launched_path(path, cwd)):
        return path
    return launched_path(path, cwd)


def launched_path(path: str, cwd: str, pattern: bool | None = None) -> str:
    """`path`, named relative to `cwd`, named absolute; one named_from_anywhere as it is. A glob
    (`pattern`; None: a path with a wildcard that names nothing there as it is) has `cwd`'s own glob
    characters escaped, as chargpt names it when it reads it (absolute_path): a folder `notes [v2]`."""
    if named_from_anywhere(path, cwd):
        return path
    if pattern is None:
        pattern = any(c in path for c in "*?[") and not os.path.exists(os.path.join(cwd, path))
    return os.path.normpath(os.path.join(glob.escape(cwd) if pattern else cwd, path))  # ./a/, a: one


def named_from_anywhere(path: str, cwd: str | None = None) -> bool:
    """An absolute path, `~/corpus.txt` and `$DATA/corpus.txt` (chargpt expands both) name the
    same file from any folder. A name that only starts so is a file in `cwd`, where it was launched,
    as chargpt reads it: `~x.txt` (no user x.txt to expand), `$x.txt` where that file is."""
    if path.startswith("~"):
        return os.path.expanduser(path) != path
    if path.startswith("$"):
        return cwd is None or not os.path.exists(os.path.join(cwd, path))
    return os.path.isabs(path)


def _absolute_searchpath(typed: str, cwd: str | None) -> str:
    """`hydra.searchpath=[file://my_configs, pkg://...]` with each relative folder named from `cwd`
    (Hydra reads it from the folder a command runs in); as typed where there is none, or it cannot
    be read."""
    try:
        folders = _PARSER.parse_override(typed).value()
    except HydraException:
        return typed
    if cwd is None or not isinstance(folders, list) or not all(isinstance(f, str) for f in folders):
        return typed
    named = [f"file://{os.path.normpath(os.path.join(cwd, f[7:]))}" if f.startswith("file://") else f
             for f in folders]
    if named == folders:
        return typed
    return f"{typed.partition('=')[0]}=[{','.join(sweep_item(f) for f in named)}]"


def absolute_overrides(typed: list[str], cwd: str | None, local_builders: Collection[str],
                       data_name: str | None = None) -> list[str]:
    """Typed overrides, each named as absolute_override names it; a data.data_files pattern only
    where data.name is one of `local_builders` (data.name=text: local files), not a hub dataset's,
    whose files are named inside it. data.name is the last one typed (each of a sweep's), else
    `data_name`: the one the config composed (a config file's `name: text`)."""
    typed_names = [o for o in typed if override_key(o) == "data.name"]
    names = _names_set(typed_names[-1]) if typed_names else [data_name]
    local_data_files = all(name in local_builders for name in names)
    return [absolute_override(o, cwd, local_data_files) for o in typed]


def _names_set(override: str) -> list[str | None]:
    """The values a `key=value` override sets: each of a sweep's (`text,json`, `choice(...)`), or
    its one value; [None] for a value that is no name (a range, an unparsable one)."""
    try:
        value = _PARSER.parse_override(override).value()
    except HydraException:
        return [None]
    if isinstance(value, ChoiceSweep):
        return [item if isinstance(item, str) else None for item in value.list]
    return [literal_value(override)]


def launched_from(overrides: list[str], cwd: str | None, local_builders: Collection[str],
                  data_name: str | None = None) -> list[str]:
    """Recorded overrides as typed, with their files and folders named from `cwd` (where they were
    launched; `local_builders`, `data_name`: absolute_overrides): two launches name the same files
    where these are equal."""
    return absolute_overrides([as_typed(o) for o in overrides], cwd, local_builders, data_name)
