"""The sample a run prints and the default prompt: checked before training, never failing a run."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest

from chargpt import load
from chargpt.cli import sample, train
from conftest import bare_train_args, run_main, write_corpus


@pytest.fixture(scope="module")
def one_line_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A text with no newline anywhere, and where its run goes."""
    root = tmp_path_factory.mktemp("oneline")
    return write_corpus(root / "oneline.txt", alphabet="abcdef gh"), root / "run"


def test_a_text_without_newline_trains_samples_and_finishes(one_line_run, capsys) -> None:
    corpus, run = one_line_run
    args = bare_train_args(corpus, run, "trainer.max_steps=5", "sample.max_new_tokens=30")
    code, out, err = run_main(train.main, args, capsys)
    assert code == 0, err
    assert json.loads((run / "status.json").read_text())["status"] == "finished"
    assert "has no newline, so samples start from ' '" in err  # the first character, said once
    sample_text = out.split("--- sample", 1)[1].split("\n", 1)[1].rstrip("\n")
    assert len(sample_text) == 31 and set(sample_text) <= set("abcdef gh")

    # The CLI and the Python API fall back the same way.
    code, out, err = run_main(sample.main, [f"ckpt_path={run}", "max_new_tokens=10"], capsys)
    assert code == 0 and len(out.rstrip("\n")) == 11 and "no newline" in err
    assert len(load(run).generate(max_new_tokens=10, seed=1)[0]) == 10


@pytest.mark.parametrize("prompt", ["42", "Z", "true"])
def test_a_sample_prompt_outside_the_vocabulary_is_refused_before_training(
    one_line_run, prompt: str, tmp_path: Path, capsys
) -> None:
    corpus, _ = one_line_run
    run = tmp_path / "run"
    args = bare_train_args(corpus, run, "trainer.max_steps=5", "sample.max_new_tokens=30")
    code, _, err = run_main(train.main, [*args, f"sample.prompt={prompt}"], capsys)
    assert code == 2
    # Named as the setting: "the text" could be read as the training text.
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: sample.prompt has characters not in the model's vocabulary")
    assert not list(run.rglob("*.ckpt"))  # refused before any training


def test_a_prompt_longer_than_the_context_is_said_to_be_cut(one_line_run, capsys) -> None:
    # Only the prompt's last context-length characters reach the model; it was silent about the rest.
    corpus, run = one_line_run
    if not (run / "checkpoints").is_dir():
        code, _, err = run_main(train.main, bare_train_args(corpus, run, "trainer.max_steps=5"), capsys)
        assert code == 0, err
    context = load(run).model.block_size
    for length, said in ((context, False), (context + 1, True)):
        code, out, err = run_main(sample.main, [f"ckpt_path={run}", f"prompt={'a' * length}",
                                                "max_new_tokens=3"], capsys)
        assert code == 0 and out.startswith("a" * length), err
        note = (f"note: the prompt is {length:,} characters, more than the model's context of {context}: "
                f"samples continue from its last {context}")
        assert (note in err) == said, err


def test_sample_settings_are_checked_before_training(one_line_run, tmp_path: Path, capsys) -> None:
    corpus, _ = one_line_run
    run = tmp_path / "run"
    args = bare_train_args(corpus, run, "trainer.max_steps=5", "sample.max_new_tokens=30")
    code, _, err = run_main(train.main, [*args, "sample.temperature=-1"], capsys)
    assert code == 2 and "temperature=-1 must be a finite number >= 0" in err
    assert not list(run.rglob("*.ckpt"))


def test_a_prompt_written_otherwise_is_read_as_the_models_text(capsys) -> None:
    # "café" typed with a combining accent (NFD), a prompt file saved with Windows line endings:
    # the same text as the model's, refused before as characters it never saw.
    import unicodedata

    from chargpt.cli.prompts import resolve_prompt
    from chargpt.data.tokenizer import CharTokenizer
    from chargpt.errors import ConfigError

    tokenizer = CharTokenizer(sorted(set("café au lait\nthé\nnon")))
    assert resolve_prompt(unicodedata.normalize("NFD", "café\r\nthé"), tokenizer) == "café\nthé"
    assert capsys.readouterr().err == (
        "note: the prompt is read with its line endings as '\\n' and its accents and syllables composed "
        "(NFC), as the model's vocabulary writes them\n")
    assert resolve_prompt("café", tokenizer) == "café" and capsys.readouterr().err == ""
    # An accent the vocabulary has in no form: refused, naming the letter as typed ('ñ'), not the
    # bare mark, and a mark that composes with nothing by its code point.
    with pytest.raises(ConfigError, match=r"not in the model's vocabulary: 'ñ'; remove them"):
        resolve_prompt(unicodedata.normalize("NFD", "caña"), tokenizer)
    with pytest.raises(ConfigError, match=r"not in the model's vocabulary: '\\u0303'; remove them"):
        resolve_prompt("c\u0303", tokenizer)  # (no letter c with a tilde: the mark stays apart)


def test_a_typed_backslash_n_is_refused_with_how_to_type_a_line_break() -> None:
    # prompt="ROMEO:\nJULIET:" is a backslash and an n, not a line break: the error named '\\' alone,
    # which reads as a character missing from the model rather than a line break typed the wrong way.
    from chargpt.cli.prompts import resolve_prompt
    from chargpt.data.tokenizer import CharTokenizer
    from chargpt.errors import ConfigError

    tokenizer = CharTokenizer(sorted(set("ROMEO:\nJULIET:\tyes")))
    with pytest.raises(ConfigError) as err:
        resolve_prompt("ROMEO:\\nJULIET:", tokenizer)
    hint = str(err.value).split("that has them", 1)[1]
    assert "\\n is a backslash and a letter, not a line break" in hint
    typed = hint.split("prompt=$'", 1)[1].split("'", 1)[0]  # the example, as bash's $'...' reads it
    assert resolve_prompt(typed.replace("\\n", "\n"), tokenizer) == "ROMEO:\nJULIET:"
    with pytest.raises(ConfigError, match=r"\\t is a backslash and a letter, not a tab"):
        resolve_prompt("yes\\tyes", tokenizer, "sample.prompt")
    # A backslash the model knows, or a line break it never saw: nothing to point at.
    with pytest.raises(ConfigError, match=r"text that has them$"):
        resolve_prompt("ROMEO:\\nJULIET:", CharTokenizer(sorted(set("ROMEO:JULIET"))))
    assert resolve_prompt("O\\nE", CharTokenizer(sorted(set("OE\\n")))) == "O\\nE"


def test_the_python_api_reads_a_prompt_as_the_command_does() -> None:
    # TrainedModel.generate("ROMEO:\r\n") refused '\r' where chargpt-sample and the server read it as '\n'.
    import unicodedata

    from chargpt.data.tokenizer import CharTokenizer
    from chargpt.inference import TrainedModel
    from chargpt.model import ModelConfig, build_model

    tokenizer = CharTokenizer(sorted(set("café au lait\nthé\nnon")))
    model = build_model(ModelConfig(n_layer=1, n_head=1, n_embd=8, block_size=8), tokenizer.vocab_size)
    trained = TrainedModel(model.eval(), tokenizer)
    written = unicodedata.normalize("NFD", "café\r\nthé")
    assert trained.generate(written, seed=1, max_new_tokens=5) == trained.generate("café\nthé", seed=1,
                                                                                   max_new_tokens=5)
    # A misspelt option is generate()'s error, not stream()'s that the caller never called.
    with pytest.raises(TypeError, match=r"generate\(\) got an unexpected keyword argument 'temprature'"):
        trained.generate("thé", temprature=0.5)


@pytest.mark.parametrize("errors", ["strict", "replace"])
def test_an_output_that_cannot_write_the_models_text_is_refused_before_any_text(
    errors: str, tmp_path: Path, monkeypatch, capsys
) -> None:
    # A Latin-1 terminal, or Windows' cp1252 into a file: the first emoji drawn ended the sample
    # halfway in a UnicodeEncodeError traceback (exit 1); and a run's closing sample so, after the
    # whole run. Refused before any text (before training), unless the output replaces what it
    # cannot write.
    corpus = write_corpus(tmp_path / "emoji.txt", alphabet="ab é😀\n")
    run = tmp_path / "run"
    assert run_main(train.main, bare_train_args(corpus, run, "trainer.max_steps=2"), capsys)[0] == 0
    latin1 = io.TextIOWrapper(io.BytesIO(), encoding="latin-1", errors=errors)
    monkeypatch.setattr(sys, "stdout", latin1)
    fix = "set PYTHONIOENCODING=utf-8 (or PYTHONUTF8=1) to write UTF-8"
    refused = "error: standard output's encoding (latin-1) cannot write the model's characters '\\U0001f600'"
    code, _, err = run_main(sample.main, [f"ckpt_path={run}", "prompt=a", "max_new_tokens=40"], capsys)
    if errors == "strict":
        assert code == 2 and refused in err and fix in err, err
        assert latin1.buffer.getvalue() == b""  # nothing written
    else:
        assert code == 0, err
        assert latin1.buffer.getvalue().startswith(b"a")

    again = tmp_path / "again"
    args = bare_train_args(corpus, again, "trainer.max_steps=2", "sample.max_new_tokens=20")
    code, _, err = run_main(train.main, args, capsys)
    if errors == "strict":
        assert code == 2 and f"{fix}, or sample.max_new_tokens=0 for no closing sample" in err, err
        assert not again.exists()  # refused before training: nothing left
    else:
        assert code == 0, err


@pytest.mark.parametrize("swept", [["seed=1,2"], ["data.normalize=NFKC,null"]])
def test_a_sweep_whose_output_cannot_write_the_models_text_is_refused_before_any_folder(
    swept: list[str], tmp_path: Path, monkeypatch, capsys
) -> None:
    # A single run refused it with exit 2 and left nothing; a sweep launched its jobs, each failed
    # in turn, and it ended with exit 1 and their folders. Refused before the sweep's folder, also
    # where only another value of a swept data setting has the character (NFKC writes 'ﬁ' as "fi").
    corpus = tmp_path / "ligature.txt"
    corpus.write_text("".join(f"{c * 40}\ufb01{c * 40}\n" for c in "abcdefghij" * 5), encoding="utf-8")
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(io.BytesIO(), encoding="latin-1"))
    sweep = tmp_path / "sweep"
    args = ["-m", *bare_train_args(corpus, None, f"hydra.sweep.dir={sweep}", "trainer.max_steps=2",
                                   "sample.max_new_tokens=20", *swept)]
    code, _, err = run_main(train.main, args, capsys)
    assert code == 2, err
    assert err.startswith("error: standard output's encoding (latin-1) cannot write the model's characters "
                          "'\\ufb01'"), err
    assert err.count("\n") == 1 and not sweep.exists()


@pytest.mark.slow
def test_a_sweep_over_experiments_checks_each_ones_sample_before_any_folder(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    # The first experiment draws no closing sample, the second does: only the first was checked
    # before launch, so the sweep trained the first job and stopped at the second.
    experiments = tmp_path / "configs" / "experiment"
    experiments.mkdir(parents=True)
    for name, tokens in (("quiet", 0), ("loud", 20)):
        config = f"# @package _global_\nsample:\n  max_new_tokens: {tokens}\n"
        (experiments / f"{name}.yaml").write_text(config)
    corpus = write_corpus(tmp_path / "emoji.txt", alphabet="ab é😀\n")
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(io.BytesIO(), encoding="latin-1"))
    sweep = tmp_path / "sweep"
    args = [a for a in bare_train_args(corpus, None, f"hydra.sweep.dir={sweep}", "trainer.max_steps=2")
            if not a.startswith("sample.max_new_tokens=")]
    args = ["-m", *args, f"hydra.searchpath=[file://{tmp_path / 'configs'}]", "experiment=quiet,loud"]
    code, _, err = run_main(train.main, args, capsys)
    assert code == 2, err
    assert "cannot write the model's characters '\\U0001f600'" in err and not sweep.exists(), err


def test_a_sweep_job_whose_output_cannot_write_its_text_ends_the_sweep_in_one_line(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    # Where the sweep's check cannot know a job's text before it starts, the job's own refusal ends
    # the sweep (exit 2, its one line), where each job failed in turn. Named in escapes: a message
    # naming the very characters the output cannot write was itself a "--- Logging error ---".
    from chargpt.cli import prompts

    monkeypatch.setattr(prompts, "check_sweep_output_writes", lambda job: None, raising=False)
    corpus = tmp_path / "emoji.txt"
    corpus.write_text("".join(f"{c * 40}{'😀' * 100}{c * 40}\n" for c in "abcdefghij" * 5), encoding="utf-8")
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(io.BytesIO(), encoding="latin-1"))
    sweep = tmp_path / "sweep"
    args = ["-m", *bare_train_args(corpus, None, f"hydra.sweep.dir={sweep}", "trainer.max_steps=2",
                                   "sample.max_new_tokens=20", "seed=1,2")]
    code, _, err = run_main(train.main, args, capsys)
    assert code == 2, err
    assert "Logging error" not in err and "UnicodeEncodeError" not in err, err
    refused = "error: standard output's encoding (latin-1) cannot write the model's characters '\\U0001f600'"
    assert refused in err, err
    assert [p.name for p in sweep.iterdir() if p.is_dir()] == ["0"]  # the second job never started


def test_a_log_line_the_console_cannot_write_is_written_escaped(tmp_path: Path, monkeypatch, capsys) -> None:
    # A rare emoji of the text, listed in the vocabulary's log line, on a Latin-1 console: logging's
    # "--- Logging error ---" traceback, for a run that needs no sample. It is written escaped.
    corpus = write_corpus(tmp_path / "text.txt", alphabet="abcdefgh ijk\n")
    corpus.write_text(corpus.read_text(encoding="utf-8") + "😀\n", encoding="utf-8")
    latin1 = io.TextIOWrapper(io.BytesIO(), encoding="latin-1")
    monkeypatch.setattr(sys, "stdout", latin1)
    args = bare_train_args(corpus, tmp_path / "run", "trainer.max_steps=2")
    code, _, err = run_main(train.main, args, capsys)
    assert code == 0 and "Logging error" not in err, err
    latin1.flush()
    assert "'\\U0001f600' x1" in latin1.buffer.getvalue().decode("latin-1")
