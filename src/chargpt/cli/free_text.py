"""Free-text settings (prompts, data paths and dataset names, checkpoints, a model's name) taken
literally: `key=VALUE` becomes `key='VALUE'` with Hydra's quoting and OmegaConf's escaping, paths
with `~` and environment variables expanded; a sweep of paths or prompts (`choice(...)`) has each
of its items written so that Hydra, and the sweeper that hands them to its jobs, read it as typed.
"""

from __future__ import annotations

import re
from pathlib import Path

from chargpt.cli.hydra_options import group_choices
from chargpt.data.sources.paths import expand_path, path_as_read
from chargpt.errors import ConfigError
from chargpt.overrides import (
    choice_values,
    hydra_quoted,
    is_free_text_key,
    is_path_key,
    is_prompt_key,
    literal_value,
    omegaconf_literal,
    reaches_sweep_job,
    sweep_item,
    without_quotes,
)
from chargpt.plural import ordinal


def literal_override(
    plus: str, key: str, value: str, sweeper: str, checkpoint_sweeps: bool, prompt_sweeps: bool
) -> str | None:
    """A free-text setting's override with its value taken literally (or as a sweep of such values);
    None for any other setting."""
    # null (or nothing) still means "none" for a path or a name; a prompt takes it as text.
    if not is_free_text_key(key) or (not is_prompt_key(key) and value.lower() in ("null", "")):
        return None
    swept = _path_sweep(key, value, sweeper, checkpoint_sweeps)
    if key == "prompt" and prompt_sweeps:
        swept = _prompt_sweep(value)
    return f"{plus}{key}={swept or _free_text(key, value)}"


def _free_text(key: str, value: str) -> str:
    if is_path_key(key):
        value = expand_path(path_as_read(key, value))
        if key.startswith("data.") and "${" in value:
            # Hydra's instantiate resolves the data config twice, and OmegaConf's second pass
            # reads an escaped `${` as an interpolation: such a path cannot arrive intact.
            raise ConfigError(f"{key}={value}: a data path cannot contain '${{'; rename the file or "
                              "link it under another name")
    if key.startswith("callbacks."):
        # Only ever instantiated, which resolves it once more: one more level of escaping.
        return hydra_quoted(omegaconf_literal(value))
    return hydra_quoted(value)


# chargpt's sweepers hand a choice's every text to its job readable: the default (Hydra's basic
# sweeper in chargpt's subclass) and Optuna's (registered under its own name). Hydra's basic sweeper,
# named, escapes only spaces, commas and brackets; another plugin's search is taken to escape nothing.
_READABLE_SWEEPERS = ("quoting", "optuna")




def sweeper_named(argv: list[str]) -> str:
    """The sweeper a command line picks: its `hydra/sweeper=NAME`, else the search it names
    (`hparams_search=optuna`), else chargpt's default."""
    named = group_choices(argv)
    if "hydra/sweeper" in named:
        return named["hydra/sweeper"]
    return named.get("hparams_search", "quoting")


def _path_sweep(
    key: str, value: str, sweeper: str = "quoting", checkpoint_sweeps: bool = False
) -> str | None:
    """A data path's sweep, `choice(a.txt, 'my texts/b.txt')` (or a checkpoint's, with
    `checkpoint_sweeps`), with each path expanded (`~`, $VARS) and written so that Hydra reads it;
    None for a value that is one path (a file named `choice(...)` that exists included). Any other of
    Hydra's functions is refused: it does not name files; so is a name that `sweeper` would hand its
    job unreadable."""
    sweepable = key.startswith("data.") or (checkpoint_sweeps and key == "ckpt_path")
    call = hydra_function_call(value) if sweepable else None
    if call is None or Path(expand_path(path_as_read(key, value))).exists():
        return None
    checkpoints = key == "ckpt_path"
    example = f"-m '{key}=choice(a.ckpt,b.ckpt)'" if checkpoints else f"-m '{key}=choice(a.txt,b.txt)'"
    if call[1] != "choice":
        why = ("picks a config group's options, not files; a pattern such as 'corpus/*.txt' is one corpus of "
               "every file it matches" if call[1] == "glob" else "does not name files")
        once = "to run once per checkpoint" if checkpoints else "to train once per file"
        raise ConfigError(f"{key}={value}: Hydra's {call[1]}(...) {why}; {once}, list the files: {example}")
    paths = [expand_path(path) for path in _choices(key, value)]
    for path in paths:
        if not path or "${" in path:
            raise ConfigError(f"{key}={value}: {path!r} is not a path a sweep can take; list the files "
                              f"by name: {example}")
        if sweeper in _READABLE_SWEEPERS or reaches_sweep_job(key, path, search=sweeper != "basic"):
            continue
        if sweeper == "basic":
            raise ConfigError(f"{key}={value}: hydra/sweeper=basic, Hydra's own sweeper, cannot hand "
                              f"{path!r} to its job (it drops the quotes a non-ASCII letter, a quote or a ~ "
                              "needs); leave hydra/sweeper=basic out: chargpt's default sweeper is "
                              "Hydra's with that mended")
        raise ConfigError(f"{key}={value}: a search's sweeper ({sweeper}) cannot hand {path!r} to its "
                          "job (it drops the quotes such a name needs: spaces, commas, non-ASCII letters, "
                          "quotes, ~, ! ...); link the file under a plain name (ln -s) and list that, or "
                          "train on it without -m")
    return f"choice({','.join(sweep_item(path) for path in paths)})"


def _prompt_sweep(value: str) -> str | None:
    """A sampling sweep's `prompt=choice(ROMEO:, 'Où est, dis')`: one job per prompt, each taken as
    typed (a comma or a quote in one quoted); None for any other prompt, which is text as typed
    (`prompt=a,b` included: a comma is common in a prompt, and the bare form would split it)."""
    if not re.fullmatch(r"\s*choice\s*\(.*\)\s*", value, re.DOTALL):
        return None
    prompts = choice_texts("prompt", value)
    if "" in prompts:  # (a trailing comma, most likely: the job's own refusal said to leave prompt unset)
        raise ConfigError(f"prompt={value}: the sweep's {ordinal(prompts.index('') + 1)} prompt is empty "
                          "(nothing between its commas, or after the last); give each prompt at least one "
                          "character, or drop the empty one")
    return f"choice({','.join(hydra_quoted(prompt) for prompt in prompts)})"


def _choices(key: str, value: str) -> list[str]:
    """The paths in `choice(...)`, as Hydra reads them where it can, else split at the commas outside
    quotes, each quoted one unquoted (`choice(café.txt, 'a, b.txt')`: Hydra refuses the é)."""
    if (values := choice_values(f"{key}={value}")) is not None:
        return [str(path) for path in values]
    return choice_texts(key, value)


def choice_texts(key: str, value: str) -> list[str]:
    """The texts in `choice(...)` as typed, split at the commas outside quotes, each quoted one
    unquoted (`choice(true, 1e3)` are the texts `true` and `1e3`, not Hydra's boolean and number)."""
    inner = re.fullmatch(r"\s*choice\s*\((.*)\)\s*", value, re.DOTALL)
    if inner is None:
        raise ConfigError(f"{key}={value}: write a sweep of files as {key}=choice(FILE,FILE,...), a "
                          "name with commas or spaces in quotes: choice(a.txt,'b, c.txt')")
    # A path's backslash escapes the character after it, as Hydra reads it (`notes\\, v2 é.txt`: one
    # name); a prompt's is text.
    paths = is_path_key(key)
    pieces, quote, piece, escaped = [], "", "", False
    for char in inner[1]:
        # A quote opens only at an item's start: the apostrophe of `it's` is text.
        opens = not quote and not piece.strip()
        if char in "'\"" and (char == quote or opens) and not piece.endswith("\\"):
            quote = "" if quote else char
        if char == "," and not quote and not escaped:
            pieces.append(piece)
            piece = ""
        else:
            piece += char
        escaped = paths and char == "\\" and not escaped
    items = [p.strip() for p in [*pieces, piece]]
    for item in items:
        _refuse_a_doubled_quote(key, value, item)
    return [(path_as_read if paths else without_quotes)(key, item) for item in items]


def _refuse_a_doubled_quote(key: str, value: str, item: str) -> None:
    """`'it''s'`, a quote doubled inside quotes as SQL and YAML write one: Hydra does not read it (it
    refuses it), and taken as typed the text kept both quotes. Refused, naming the escape it reads."""
    quote = item[:1]
    if quote not in ("'", '"') or len(item) < 4 or item[-1] != quote or quote * 2 not in item[1:-1]:
        return
    if literal_value(f"{key}={item}") != item:  # one quoted text after all (`'it\'\'s'`)
        return
    text = item[1:-1].replace(quote * 2, quote)
    other = "'" if quote == '"' else '"'
    fixes = f"write the quote with a backslash, {quote}{text.replace(quote, chr(92) + quote)}{quote}"
    if other not in text:
        fixes += f", or the text in the other quotes, {other}{text}{other}"
    raise ConfigError(f"{key}={value}: {item} doubles its quote, which Hydra does not read as one quote; "
                      f"{fixes}")


def hydra_function_call(value: str) -> re.Match[str] | None:
    """`value` starting as a call of one of Hydra's override functions (choice, interval, tag, ...)."""
    from hydra.core.override_parser.overrides_parser import create_functions  # the error path only

    return re.match(rf"\s*({'|'.join(map(re.escape, create_functions().definitions))})\s*\(", value)
