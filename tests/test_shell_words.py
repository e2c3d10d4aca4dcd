"""Commands printed to be pasted into a shell paste as the words they were built from, and a word
holding a carriage return (a Windows prompt file) or a tab keeps the command one line; a newline is
quoted as shlex quotes it."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess

import pytest

from chargpt import shell_words
from chargpt.runs.resume import resume_command
from chargpt.training.auto_size.choice import rerun_words

WORDS = ["sample.prompt=ROMEO:\r\nWhat, art thou\r\n", "data.separator=a\tb", "l'été\r «x»", "\x1b[31m\\red",
         "plain", "with space", "it's", "", "emoji 🎭\x7f"]


def _as_bash_reads(command: str) -> list[str]:
    """The words bash makes of `command` (as a pasted line: the shell reads it, nothing runs)."""
    out = subprocess.run(["bash", "-c", f"for w in {command}; do printf '%s\\0' \"$w\"; done"],
                         capture_output=True, check=True).stdout
    return out.decode().split("\0")[:-1]


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_a_word_with_a_control_character_is_one_line_that_bash_reads_back_as_it_was() -> None:
    line = shell_words.join(WORDS)
    assert not re.search(r"[\x00-\x1f\x7f]", line), line  # a carriage return, tab, newline, escape, DEL
    assert _as_bash_reads(line) == WORDS


def test_words_without_control_characters_are_quoted_as_shlex_quotes_them() -> None:
    plain = ["sample.prompt=Le cœur, dit l'été", "with space", "a\nb", "x=1"]
    assert shell_words.join(plain) == shlex.join(plain)


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_a_resume_command_of_a_windows_prompt_is_one_line() -> None:
    # Hydra records `sample.prompt_file`'s text as the override sample.prompt='...' with its \r\n;
    # the command gives it as typed (chargpt-train quotes a prompt itself).
    command = resume_command("/runs/a b", ["model=tiny", "sample.prompt='ROMEO:\r\nWhat, art'"], cwd="/runs")
    assert "\r" not in command and "\n" not in command
    assert _as_bash_reads(command) == ["chargpt-train", "model=tiny", "sample.prompt=ROMEO:\r\nWhat, art",
                                       "ckpt_path=/runs/a b"]


def test_a_model_auto_record_gives_back_its_words_from_its_list_or_an_older_records_command() -> None:
    words = ["chargpt-train", "sample.prompt='a\r\nb'", "model.n_layer=3"]
    assert rerun_words({"rerun_with": shell_words.join(words), "rerun_words": words}) == words
    older = ["chargpt-train", "sample.prompt='a b'", "model.n_layer=3"]  # written by shlex.join
    assert rerun_words({"rerun_with": shlex.join(older)}) == older


def test_assignments_refuse_a_name_that_would_be_read_as_shell_code() -> None:
    words = shell_words.assignments({"PYTHONPATH": "/my code", "_X1": ""})
    assert words == ["PYTHONPATH='/my code'", "_X1=''"]
    for name in ("touch ~/owned; X", "1X", "X Y", "X=Y", "X\n", ""):
        with pytest.raises(ValueError, match="not a shell variable name"):
            shell_words.assignments({name: "1"})
