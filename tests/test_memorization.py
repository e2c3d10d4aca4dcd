"""The longest span of a sample found verbatim in the training text, and chargpt-sample
check_copy=true, which reports it for each sample on stderr."""

from __future__ import annotations

import os
import random
import re
import threading
from pathlib import Path

import pytest
import torch

from chargpt import memorization
from chargpt.checkpoints import RESUME_STATE_KEY
from chargpt.cli import sample as sample_cli
from chargpt.data.corpus import sha256_of
from chargpt.errors import ConfigError, DataError
from chargpt.memorization import TextIndex, longest_copied_span
from chargpt.recorded_text import training_text
from conftest import make_checkpoint, run_main, write_corpus


def brute_force_longest(sample: str, text: str) -> int:
    for length in range(len(sample), 0, -1):
        if any(sample[i : i + length] in text for i in range(len(sample) - length + 1)):
            return length
    return 0


def test_a_planted_span_is_found_with_its_length_and_places() -> None:
    rng = random.Random(0)
    text = "".join(rng.choice("abc \n") for _ in range(5000))
    sample = "".join(rng.choice("xyz") for _ in range(300))  # nothing in common with the text
    planted = text[1234 : 1234 + 23]
    sample = sample[:100] + planted + sample[100:]
    span = longest_copied_span(sample, text)
    assert (span.length, span.text, span.sample_start) == (23, planted, 100)
    assert span.text_start == text.find(planted) <= 1234


def test_accents_and_emoji_are_one_character_each() -> None:
    text = "Là-bas, 😀 café crème ☕ über Straße. " * 3 + "noël 🎄🎄 déjà vu"
    span = longest_copied_span("xx🎄🎄 déjàyy", text)
    assert (span.text, span.length, span.sample_start) == ("🎄🎄 déjà", 7, 2)  # 2 emoji, a space, 4 letters
    assert text[span.text_start : span.text_start + span.length] == span.text
    assert longest_copied_span("ü", text).length == 1 and longest_copied_span("e\u0301", text).length == 1


@pytest.mark.parametrize("seed", range(30))
def test_agrees_with_brute_force(seed: int) -> None:
    rng = random.Random(seed)
    alphabet = rng.choice(["ab", "abc é", "ab😀c\n"])
    text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 300)))
    sample = "".join(rng.choice(alphabet + "z") for _ in range(rng.randint(0, 60)))
    span = longest_copied_span(sample, text)
    assert span.length == brute_force_longest(sample, text)
    assert span.text == sample[span.sample_start : span.sample_start + span.length]
    assert span.text_start == (text.find(span.text) if span.length else -1)


def test_pieces_too_common_to_index_are_searched_for_in_the_whole_text(monkeypatch) -> None:
    monkeypatch.setattr(memorization, "_MAX_CANDIDATES", 3)
    text = "the " * 50 + "then the end"
    index = TextIndex(text)
    for sample in ("the the then", "x the end", "then the the "):
        assert index.longest_copied_span(sample).length == brute_force_longest(sample, text)


@pytest.mark.slow
def test_a_megabyte_text_and_a_2000_character_sample_take_well_under_a_second(shakespeare) -> None:
    import time

    text = shakespeare.read_text(encoding="utf-8")
    rng = random.Random(0)
    sample = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz \n") for _ in range(2000))  # worst case:
    sample = sample[:900] + text[500_000:500_040] + sample[900:1960]  # failed searches everywhere
    started = time.perf_counter()
    span = longest_copied_span(sample, text)
    assert time.perf_counter() - started < 2.0  # about 0.35 s measured; a plain search took 1.8 s
    assert (span.length, span.sample_start) == (40, 900) and span.text_start <= 500_000


# --- chargpt-sample check_copy=true ---------------------------------------------------------


def _checkpoint_of(tmp: Path, text: Path | None, fraction: float = 0.9) -> Path:
    """An untrained checkpoint that records `text` and its split as a run's ResumeState would."""
    file = make_checkpoint(tmp / "model.ckpt")
    ckpt = torch.load(file, weights_only=True)
    corpus = None if text is None else {"path": str(text), "sha256": sha256_of(text)}
    ckpt["callbacks"] = {RESUME_STATE_KEY: {"corpus": corpus, "split": {"train_fraction": fraction}}}
    torch.save(ckpt, file)
    return file


COPY_LINE = re.compile(r'^copy check( \(sample (\d) of (\d)\))?: longest span found in the training text: '
                       r'(\d+) characters? \((".*")\)$')


def test_check_copy_reports_each_sample_on_stderr_and_leaves_stdout_alone(tmp_path, capsys) -> None:
    text = write_corpus(tmp_path / "t.txt", n_chars=2000)
    ckpt = _checkpoint_of(tmp_path, text)
    args = [f"ckpt_path={ckpt}", "device=cpu", "prompt=a", "max_new_tokens=25", "num_samples=2"]
    plain_code, plain, _ = run_main(sample_cli.main, args, capsys)
    code, out, err = run_main(sample_cli.main, [*args, "check_copy=true"], capsys)
    assert plain_code == code == 0 and out == plain  # stdout: the samples only, as without the check
    train = text.read_text()[:1800]
    samples = [s[1:] for s in out.rstrip("\n").split("\n---\n")]  # without the prompt "a"
    said, *lines = err.strip().splitlines()
    assert said == f"sampling from {ckpt}" and len(samples) == len(lines) == 2
    for i, (sample, line) in enumerate(zip(samples, lines, strict=True), start=1):
        match = COPY_LINE.match(line)
        assert match and match.group(2, 3) == (str(i), "2"), line
        assert int(match.group(4)) == brute_force_longest(sample, train) >= 2


def test_a_one_character_span_is_one_character() -> None:
    from chargpt.cli.sample import copy_line
    from chargpt.memorization import CopiedSpan

    assert copy_line(CopiedSpan("3", 0, 5), 1, 1).endswith(": 1 character (\"3\")")
    assert copy_line(CopiedSpan("ab", 0, 5), 2, 3).endswith("(sample 2 of 3): longest span found in the "
                                                             "training text: 2 characters (\"ab\")")


def test_check_copy_uses_the_train_split_the_checkpoint_records(tmp_path) -> None:
    text = write_corpus(tmp_path / "t.txt", n_chars=1000)
    ckpt = torch.load(_checkpoint_of(tmp_path, text, fraction=0.75), weights_only=True)
    assert training_text(ckpt, "m.ckpt", None, None) == (text.read_text()[:750], text)
    assert training_text(ckpt, "m.ckpt", None, 1)[0] == text.read_text()  # data.train_fraction=1
    other = write_corpus(tmp_path / "other.txt", n_chars=100, seed=3)
    assert training_text(None, "export", str(other), None)[0] == other.read_text()[:90]
    # An earlier cut would leave text the model trained on out of the search: a sample copied from
    # it reported 8 characters where it copied 60. Refused, named or not; another text is as asked.
    for named in (None, str(text)):
        refused = (r"^data\.train_fraction=0\.5 would check the samples against only part of the text the "
                   r"model trained on \(its run split the text at 0\.75\); leave it out, or pass "
                   r"data\.train_fraction=0\.75 or more \(1: the whole text\)$")
        with pytest.raises(ConfigError, match=refused):
            training_text(ckpt, "m.ckpt", named, 0.5)
    assert training_text(ckpt, "m.ckpt", str(other), 0.5)[0] == other.read_text()[:50]


def test_check_copy_reads_windows_line_endings_and_a_bom_as_training_did(tmp_path) -> None:
    # data.newline=keep (the default) trains on '\r\n' and drops a leading byte-order mark: the text
    # compared with must hold the same characters, cut at the same place.
    from chargpt.data.text import CharText

    path = tmp_path / "crlf.txt"
    path.write_bytes("\ufeff".encode() + "".join(f"line {i}, café\r\n" for i in range(100)).encode())
    trained = CharText(str(path), block_size=4, train_fraction=0.9)
    trained.split_ids()
    text, _ = training_text(None, "export", str(path), None)
    assert "\r\n" in text and text == trained.tokenizer.decode(trained.train_ids)


def test_check_copy_reads_windows_line_endings_as_a_vocabulary_without_them_writes_them(tmp_path, capsys):
    # An export records no reading settings: its run read a Windows text with data.newline=normalize,
    # but the text given by path was searched with its '\r\n', so no span across a line matched
    # the sample's '\n' (a run's 25 characters came out as 23 for its export).
    rng = random.Random(0)
    lines = ["".join(rng.choice("abc") for _ in range(rng.randint(1, 3))) for _ in range(400)]
    path = tmp_path / "crlf.txt"
    path.write_bytes("\r\n".join(lines).encode())
    ckpt = _checkpoint_of(tmp_path, None)
    args = [f"ckpt_path={ckpt}", "device=cpu", "prompt=a", "max_new_tokens=200", "check_copy=true",
            f"data.path={path}", "data.train_fraction=1"]
    code, out, err = run_main(sample_cli.main, args, capsys)
    assert code == 0, err
    *said, line = err.strip().splitlines()
    match = COPY_LINE.match(line)
    assert match and int(match.group(4)) == brute_force_longest(out[1:].rstrip("\n"), "\n".join(lines))
    assert said[0] == (f"note: the training text {path} is read with its line endings as '\\n', as the "
                       "model's vocabulary writes them")


def test_check_copy_needs_the_training_text_unchanged(tmp_path, capsys) -> None:
    text = write_corpus(tmp_path / "t.txt")
    ckpt = _checkpoint_of(tmp_path, text)
    args = [f"ckpt_path={ckpt}", "device=cpu", "check_copy=true", "max_new_tokens=5"]
    text.write_text(text.read_text() + "more")
    code, out, err = run_main(sample_cli.main, args, capsys)
    assert code == 2 and out == "" and err.count("\n") == 1  # refused before any sample
    assert err.startswith(f"error: {text} has changed since {ckpt} was trained on it")
    assert "pass the training text as data.path=FILE" in err
    code, out, err = run_main(sample_cli.main, [*args, f"data.path={text}"], capsys)  # as it is now
    assert code == 0 and COPY_LINE.match(err.strip().splitlines()[-1])
    ckpt = _checkpoint_of(tmp_path, None)
    code, out, err = run_main(sample_cli.main, args, capsys)
    assert code == 2 and out == ""
    assert "does not record the text it was trained on; pass the training text as data.path=FILE" in err


def test_check_copy_refuses_an_unreadable_text_and_a_bad_fraction(tmp_path) -> None:
    with pytest.raises(DataError, match=r"cannot read .*missing\.txt .*pass the training text as data\.path"):
        training_text(None, "export", str(tmp_path / "missing.txt"), None)
    with pytest.raises(DataError, match=r"export, which does not record the text"):
        training_text(None, "export", None, None)
    with pytest.raises(ConfigError, match=r"data\.train_fraction=1\.5 must be above 0 and at most 1"):
        training_text(None, "export", str(write_corpus(tmp_path / "t.txt")), 1.5)
    empty = tmp_path / "empty.txt"
    empty.write_text("")  # it reported "0 characters", as if nothing had been copied
    with pytest.raises(DataError, match=r"empty\.txt is empty: no training text to check the samples"):
        training_text(None, "export", str(empty), None)


def test_check_copy_refuses_a_device_and_reads_a_pipe(tmp_path) -> None:
    # `data.path=/dev/zero` was read until memory ran out (and /dev/null said to be an empty file).
    for device in ("/dev/null", "/dev/zero"):  # (/dev/null first: without the check, it fails at once)
        with pytest.raises(DataError, match=rf"^data\.path={device} is not a file but a device; pass a text "
                                            r"file as data\.path=FILE$"):
            training_text(None, "export", device, 1.0)
    pipe = tmp_path / "fifo"
    os.mkfifo(pipe)  # what `data.path=<(zcat corpus.gz)` names: read once, as the copy check needs
    writer = threading.Thread(target=pipe.write_text, args=("to be or not",))
    writer.start()
    try:
        assert training_text(None, "export", str(pipe), 1.0)[0] == "to be or not"
    finally:
        writer.join()


def test_check_copy_settings_are_checked_before_the_model_loads(tmp_path, capsys) -> None:
    missing = tmp_path / "nowhere.ckpt"  # loading it would be the error, were the settings not first
    for setting, message in (("check_copy=maybe", "check_copy='maybe' must be true or false"),
                             ("data.train_fraction=1.5", "data.train_fraction=1.5 must be above 0")):
        extra = [setting] if setting.startswith("check_copy") else ["check_copy=true", setting]
        code, out, err = run_main(sample_cli.main, [f"ckpt_path={missing}", *extra], capsys)
        assert code == 2 and out == "" and err.startswith(f"error: {message}") and err.count("\n") == 1
