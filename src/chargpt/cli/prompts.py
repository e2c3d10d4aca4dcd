"""Prompts for sampling: checked before a run is built, resolved against the model's vocabulary;
and the output the samples are written to, checked before any text."""

from __future__ import annotations

import sys

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from chargpt import shell_words
from chargpt.checks import utf8_text
from chargpt.cli.exits import stdout_errors_as_started, stdout_writes_any_text
from chargpt.cli.prompt_files import prompt_source
from chargpt.data.text import text_of
from chargpt.data.tokenizer import CharTokenizer, describe_chars
from chargpt.errors import ChargptError, ConfigError, SetupError
from chargpt.inference import start_prompt

# chargpt-train's other way out of an output that cannot write its closing sample.
NO_CLOSING_SAMPLE = ", or sample.max_new_tokens=0 for no closing sample"


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
    written, done = _in_vocabulary(prompt, tokenizer, setting)
    if done:
        print(f"note: the prompt is read with {' and '.join(done)}, as the model's vocabulary writes them",
              file=sys.stderr)
    return written


def check_prompt(
    prompt: object, tokenizer: CharTokenizer, setting: str = "prompt", swept: bool = False
) -> None:
    """resolve_prompt's refusal, without its notes: a sampling sweep checks each job's prompt with its
    model's vocabulary before the first job starts. `swept`: the prompt is one of the sweep's
    several, which the refusal names (`prompt=Zoë has characters ...`)."""
    if prompt is not None:
        named = shell_words.setting_on_one_line(f"{setting}={prompt}")  # (one error line)
        _in_vocabulary(prompt, tokenizer, setting, named if swept else None)


def _in_vocabulary(
    prompt: object, tokenizer: CharTokenizer, setting: str, named: str | None = None
) -> tuple[str, list[str]]:
    """A set prompt as the vocabulary writes it, and what was done to it for that (none: as given); a
    ConfigError naming the characters the vocabulary lacks, and the prompt as `named` where given."""
    check_prompt_text(prompt, setting)
    assert isinstance(prompt, str)  # (check_prompt_text refuses any other value)
    if not tokenizer.unknown_chars(prompt):
        return prompt, []
    # A prompt file saved on Windows, "café" typed as 'e' + U+0301: the model's text, written otherwise.
    written, done = tokenizer.as_written_here(prompt)
    if done and not tokenizer.unknown_chars(written):
        return written, done
    # Named as written the model's way: 'é', not the combining accent of 'e' + U+0301.
    raise ConfigError(f"{named or prompt_source(setting)} has characters not in the model's vocabulary: "
                      f"{describe_chars(tokenizer.unknown_chars(written))}; remove them from it, or "
                      "use a model trained on text that has them"
                      f"{_escape_hint(written, tokenizer, setting)}")


# What `\n` and `\t` typed in a prompt were meant to be.
_ESCAPES = {"\\n": ("\n", "line break"), "\\t": ("\t", "tab")}


def _escape_hint(prompt: str, tokenizer: CharTokenizer, setting: str) -> str:
    r"""For a prompt refused for its backslash, holding `\n` or `\t`: the shell passes those as two
    characters, not as the line break or tab meant, which the vocabulary has."""
    if not tokenizer.unknown_chars("\\"):
        return ""
    for typed, (char, name) in _ESCAPES.items():
        if typed in prompt and not tokenizer.unknown_chars(char):
            if prompt_source(setting) != setting:  # a file: its text is as written there
                return f" ({typed} in it is a backslash and a letter: write the {name} itself)"
            return (f" ({typed} is a backslash and a letter, not a {name}: bash's $'...' quoting reads "
                    f"\\n and \\t as meant, {setting}=$'ROMEO:\\nJULIET:')")
    return ""


def check_prompt_text(prompt: object, setting: str = "prompt") -> None:
    """A set prompt is text of at least one character (None: the model's start prompt). Needs no
    model: a training checks it before any work (the sampler would refuse it after the run)."""
    if prompt is None:
        return
    if not isinstance(prompt, str):
        raise ConfigError(f"{setting}={prompt!r} must be text, e.g. {setting}=ROMEO:")
    utf8_text(setting, prompt)  # typed in a Latin-1 terminal: named as typed, not as a surrogate
    if not prompt:
        if (source := prompt_source(setting)) != setting:
            raise ConfigError(f"{source} is empty; give a file with at least one character, or leave "
                              f"{setting} unset")
        # (No example: the characters of one text may be outside another model's vocabulary.)
        raise ConfigError(f"{setting} is empty; give at least one character of the model's text, or leave "
                          "it unset for the default")



def check_output_writes(tokenizer: CharTokenizer, or_else: str = "") -> None:
    """Refuse, before any text, a standard output whose encoding cannot write every character the
    model may generate (a Latin-1 locale, Windows' cp1252 into a file): else a traceback ends the
    text halfway. An output set to replace what it cannot write (PYTHONIOENCODING=ascii:replace)
    is taken. `or_else`: another way out, said after the fix. A SetupError: the output is the
    launch's, not one run's, so in a sweep it stops the sweep rather than fail job after job."""
    encoding, errors = _output()
    unwritable = [c for c in tokenizer.chars if not _writes(c, encoding, errors)]
    if unwritable:
        # Named in escapes ('\U0001f600'), which any output writes: a sweep's job may log this line
        # to that same output.
        named = describe_chars(unwritable).encode("ascii", "backslashreplace").decode("ascii")
        raise SetupError(f"standard output's encoding ({encoding}) cannot write the model's characters "
                         f"{named}, which its samples may hold; set "
                         f"PYTHONIOENCODING=utf-8 (or PYTHONUTF8=1) to write UTF-8{or_else}")


def check_sweep_output_writes(job: DictConfig) -> None:
    """A sweep's job, composed before the sweep starts: refused as the job itself would refuse its
    closing sample (check_output_writes), before any folder is made, where its text's characters
    can be read. A text that cannot be read is left to the job, which says why when it starts."""
    if stdout_writes_any_text():
        return  # no text to read
    tokens = OmegaConf.select(job, "sample.max_new_tokens", default=None)
    if not isinstance(tokens, int) or tokens <= 0:
        return  # no closing sample (or a setting the job refuses itself)
    try:
        # block_size=1: the characters do not depend on the context, which a job's model may set later
        chars = text_of(job.data, block_size=1).characters()
    except (ChargptError, OmegaConfBaseException, OSError):
        return
    check_output_writes(CharTokenizer(chars), NO_CLOSING_SAMPLE)


def _output() -> tuple[str, str]:
    """Standard output's encoding and error handler, as the command started."""
    return sys.stdout.encoding or "utf-8", stdout_errors_as_started()


def _writes(char: str, encoding: str, errors: str) -> bool:
    try:
        char.encode(encoding, errors)
        return True
    except UnicodeEncodeError:
        return False
