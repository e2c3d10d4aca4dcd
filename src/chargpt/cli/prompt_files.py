"""`prompt_file=FILE` (or `-` for standard input): the file read into the prompt setting before
Hydra sees the command line, and the file named in an error about the prompt's text."""

from __future__ import annotations

import sys
from pathlib import Path

from chargpt import shell_words
from chargpt.cli.free_text import choice_texts, hydra_function_call
from chargpt.cli.hydra_options import full_options, override_positions
from chargpt.data.corpus import device_or_socket, gives_no_text
from chargpt.data.encoding import BOM, read_as_trained
from chargpt.data.sources.paths import expand_path, path_as_read
from chargpt.errors import ConfigError
from chargpt.overrides import literal_value, split_override

# `prompt_file=FILE` (or `-` for standard input) is read here and becomes the prompt setting.
# The prompt-file settings of each command's config, and the prompt each one fills.
PROMPT_FILES = {"sample": {"prompt_file": "prompt"}, "train": {"sample.prompt_file": "sample.prompt"}}
# The prompt settings this process filled from a file, and the setting as typed (`prompt_file=x.txt`):
# an error about the prompt's text names the file, which is where the user will fix it.
_prompts_from_files: dict[str, str] = {}


def _read_prompt_file(key: str, name: str) -> str:
    try:
        if name == "-":
            stdin = getattr(sys.stdin, "buffer", None)
            return read_as_trained(stdin.read()) if stdin is not None else sys.stdin.read().removeprefix(BOM)
        path = _named_file(key, name)
        if gives_no_text(path):  # (a pipe, and a terminal, are read once as a prompt)
            raise ConfigError(f"{key}={name} is not a file but {device_or_socket(path)}; give a text file, "
                              "or - for standard input")
        return read_as_trained(path.read_bytes())
    except (OSError, UnicodeDecodeError) as err:
        reason = getattr(err, "strerror", None) or str(err)
        raise ConfigError(f"{key}={name}: cannot read it ({reason}); give a readable UTF-8 text file, "
                          "or - for standard input") from None


def _named_file(key: str, name: str) -> Path:
    """The file `key=name` names, as a path setting names one (path_as_read)."""
    return Path(expand_path(path_as_read(key, name)))


def literal_argv(argv: list[str], config_name: str | None = None) -> list[str]:
    """The command line with prompt files read into their prompt setting (still as the shell gave
    it), for a command whose config (`config_name`) has one; elsewhere a prompt file is a setting
    the command does not have, and is not read."""
    out = list(argv)
    _prompts_from_files.clear()  # a new command line: tests run several in one process
    prompt_files = PROMPT_FILES.get(config_name or "", {})
    given = {p[1] for i in override_positions(out) if (p := split_override(out[i]))}
    for i in override_positions(out):
        parts = split_override(out[i])
        if parts is None or parts[1] not in prompt_files:
            continue
        plus, key, name = parts
        target = prompt_files[key]
        if target in given:
            raise ConfigError(f"both {target} and {key} are set; give one of them")
        _refuse_swept_prompt_file(out, i, target)
        out[i] = f"{plus}{target}={_read_prompt_file(key, name)}"
        _prompts_from_files[target] = f"{key}={name}"
    return out


def _refuse_swept_prompt_file(argv: list[str], i: int, target: str) -> None:
    """`-m prompt_file=choice(a.txt, b.txt)` (or `a.txt,b.txt`): a prompt file is read into its
    prompt here, before Hydra sees the command line, so it cannot be swept: the sweep was refused
    as one file name that cannot be read. Refused as a sweep, with the loop that runs each file.
    A file of that name that exists (`a,b.txt`) is one file."""
    plus, key, name = split_override(argv[i]) or ("", "", "")
    multirun = bool({"-m", "--multirun"} & set(full_options(argv)))
    call = hydra_function_call(name)
    # A comma Hydra reads as part of the name (quoted, or escaped: `a\\,b.txt`) lists no files.
    listing = "," in name and literal_value(f"{key}={name}") == name
    if name == "-" or not (call or (multirun and listing)):
        return
    if _named_file(key, name).exists():
        return
    listed = name if call else f"choice({name})"
    files = choice_texts(key, listed) if call is None or call[1] == "choice" else None
    each = shell_words.join(files) if files else "FILE ..."
    why = f"{key}={name}: a sweep cannot take several prompt files (a prompt file is read into {target} " \
          "before the sweep starts)"
    if key == "prompt_file":
        rest = shell_words.join([Path(argv[0]).name, *(a for j, a in enumerate(argv[1:], start=1) if j != i)])
        raise ConfigError(f"{why}; run once per file: for f in {each}; do {rest} {plus}{key}=\"$f\"; done "
                          "(or sweep prompts typed out: -m 'prompt=choice(ROMEO:,JULIET:)')")
    raise ConfigError(f"{why}; train once, then sample the run with each: for f in {each}; do chargpt-sample "
                      "ckpt_path=RUN prompt_file=\"$f\"; done")


def prompt_source(setting: str) -> str:
    """How to name the prompt `setting` in an error: the prompt file it was read from, if any."""
    return _prompts_from_files.get(setting, setting)
