"""Free text on the command line: prompts, data paths and checkpoints arrive exactly as the shell
handed them over (commas, quotes, brackets, `=`, `${...}`, newlines, any Unicode); any other
override Hydra cannot read is one `error:` line that shows the quoted form."""

from __future__ import annotations

import contextlib
import io
import os
import random
import re
import shlex
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.utils import instantiate
from omegaconf import OmegaConf

from chargpt.cli.argv import hydra_argv
from chargpt.cli.prompt_files import literal_argv
from chargpt.cli.sample import main as sample_main
from chargpt.cli.train import main as train_main
from chargpt.data.sources.hf_datasets import LOCAL_BUILDERS
from chargpt.errors import ConfigError
from chargpt.overrides import (
    as_typed,
    choice_values,
    hydra_quoted,
    launched_from,
    literal_value,
    readable_choices,
    readable_trial_override,
)
from chargpt.runs.resume import resume_command, resume_overrides
from conftest import TINY_MODEL, run_cli, run_main

SRC = Path(__file__).resolve().parents[1] / "src"
LONG = "the king of love " * 117 + "night"  # 2,000 characters
IN_VOCAB = [
    "Hello, world", "What's this?", "O Romeo, Romeo! wherefore art thou", "a=b", "${x}", "'${x}'",
    "\\${x}", "a\\\\${x}", "[Enter]", "人中", "line one\nline two", "\ttab", "emoji 😀!", "שלום עולם",
    '"double" and \'single\'', "back\\slash\\", "{a: 1, b: [2]}", "~/home $HOME #d", "x,y,z", LONG,
]
OUT_OF_VOCAB = {"Zebra^": "'Z', '^'", "中文": "'文'", "日本": "'日', '本'"}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model trained on a corpus that holds every in-vocabulary prompt's characters, from a
    path with spaces, a comma and accents, with free-text prompts for the callbacks and sample."""
    rng = random.Random(0)
    words = "the king of love night Hello world What this O Romeo wherefore art thou".split()
    lines = [" ".join(rng.choice(words) for _ in range(8)) + "." for _ in range(400)]
    special = "".join(sorted(set("".join(IN_VOCAB)) - set("".join(lines))))
    folder = tmp_path_factory.mktemp("free text") / "my corpora"
    folder.mkdir()
    corpus = folder / "données,v1.txt"
    corpus.write_text("\n".join(lines) + "\n" + special * 50 + "\n", encoding="utf-8")
    run_dir = tmp_path_factory.mktemp("runs") / "run"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = run_cli(
            train_main, "data=text", f"data.path={corpus}", f"hydra.run.dir={run_dir}", *TINY_MODEL,
            "trainer.max_steps=2", "trainer.val_check_interval=2", "logger=none",
            "callbacks.progress_bar=null", "trainer.enable_model_summary=false",
            "sample.prompt=a=b, [Enter] ${x}", "sample.max_new_tokens=3",
            "callbacks.attention_maps.prompt=O Romeo, 人中", "callbacks.sample_text.prompt='${x}'",
        )
    assert code == 0, out.getvalue()
    assert "\na=b, [Enter] ${x}" in out.getvalue()  # the closing sample starts with its prompt
    config = OmegaConf.load(run_dir / ".hydra" / "config.yaml")
    assert config.data.path == str(corpus)
    for callback, prompt in (("attention_maps", "O Romeo, 人中"), ("sample_text", "'${x}'")):
        # The prompt as instantiate gives it to the callback (the rest of the node refers to
        # Hydra's runtime settings, unset outside a run).
        stored = config.callbacks[callback]._get_node("prompt")._value()  # as written, unresolved
        node = OmegaConf.create({"_target_": "builtins.dict", "prompt": stored})
        assert instantiate(node)["prompt"] == prompt
    return run_dir


# A representative few in the default run; the whole table in the slow set (under a second each).
DEFAULT_RUN = {"Hello, world", "${x}", "[Enter]", "人中", "line one\nline two", '"double" and \'single\''}


@pytest.mark.parametrize("prompt", [
    pytest.param(p, id=repr(p)[:30], marks=() if p in DEFAULT_RUN else pytest.mark.slow) for p in IN_VOCAB
])
def test_prompt_is_echoed_exactly(run: Path, prompt: str, capsys) -> None:
    code = run_cli(sample_main, f"ckpt_path={run}", f"prompt={prompt}", "max_new_tokens=4", "device=cpu")
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out.startswith(prompt) and len(out) == len(prompt) + 4 + 1  # 4 new characters, a newline


@pytest.mark.parametrize("prompt", OUT_OF_VOCAB)
def test_out_of_vocabulary_prompt_names_its_characters(run: Path, prompt: str, capsys) -> None:
    code = run_cli(sample_main, f"ckpt_path={run}", f"prompt={prompt}", "device=cpu")
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err == f"error: prompt has characters not in the model's vocabulary: {OUT_OF_VOCAB[prompt]}; " \
        "remove them from it, or use a model trained on text that has them\n"


def test_prompt_file_and_standard_input(run: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    text = "O Romeo,\n\t人中 ${x} 'a=b'\n"
    (tmp_path / "prompt.txt").write_text(text, encoding="utf-8")
    assert run_cli(sample_main, f"ckpt_path={run}", f"prompt_file={tmp_path / 'prompt.txt'}",
                   "max_new_tokens=2", "device=cpu") == 0
    assert capsys.readouterr().out.startswith(text)
    monkeypatch.setattr(sys, "stdin", io.StringIO(text))
    assert run_cli(sample_main, f"ckpt_path={run}", "prompt_file=-", "max_new_tokens=2", "device=cpu") == 0
    assert capsys.readouterr().out.startswith(text)

    assert run_cli(sample_main, f"ckpt_path={run}", "prompt_file=missing.txt") == 2
    assert capsys.readouterr().err.startswith("error: prompt_file=missing.txt: cannot read it")
    assert run_cli(sample_main, f"ckpt_path={run}", "prompt=a", "prompt_file=-") == 2
    assert capsys.readouterr().err == "error: both prompt and prompt_file are set; give one of them\n"
    # Quoted for Hydra, as a data.path may be; and standard input that is not UTF-8 says so.
    assert run_cli(sample_main, f"ckpt_path={run}", f"prompt_file='{tmp_path / 'prompt.txt'}'",
                   "max_new_tokens=2", "device=cpu") == 0
    assert capsys.readouterr().out.startswith(text)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"\xff\xfe")))
    assert run_cli(sample_main, f"ckpt_path={run}", "prompt_file=-") == 2
    assert "error: prompt_file=-: cannot read it ('utf-8' codec can't decode" in capsys.readouterr().err


def test_a_device_as_the_prompt_file_is_refused_and_a_pipe_is_read(run: Path, tmp_path: Path, capsys) -> None:
    # `prompt_file=/dev/zero` was read until memory ran out (a MemoryError traceback under a limit).
    for device in ("/dev/null", "/dev/zero"):  # (/dev/null first: without the check, it fails at once)
        code, out, err = run_main(sample_main, [f"ckpt_path={run}", f"prompt_file={device}"], capsys)
        assert (code, out) == (2, "")
        assert err == f"error: prompt_file={device} is not a file but a device; give a text file, or - for " \
            "standard input\n", err
    sock = tmp_path / "sock"
    with socket.socket(socket.AF_UNIX) as listening:  # a socket was named a device
        listening.bind(str(sock))
        code, out, err = run_main(sample_main, [f"ckpt_path={run}", f"prompt_file={sock}"], capsys)
    said = f"prompt_file={sock} is not a file but a socket; give a text file, or - for standard input"
    assert (code, out, err) == (2, "", f"error: {said}\n")
    pipe = tmp_path / "fifo"
    os.mkfifo(pipe)  # what `prompt_file=<(command)` names: read once
    writer = threading.Thread(target=pipe.write_text, args=("O Romeo",))
    writer.start()
    try:
        code, out, err = run_main(sample_main, [f"ckpt_path={run}", f"prompt_file={pipe}", "max_new_tokens=2",
                                                "device=cpu"], capsys)
    finally:
        writer.join()
    assert code == 0 and out.startswith("O Romeo"), (out, err)


def test_a_terminal_as_the_prompt_file_is_read_to_its_end(run: Path, capsys) -> None:
    # A terminal is a device too, and `prompt_file=/dev/stdin` typed at one (the prompt typed, then
    # Ctrl-D) was refused as /dev/zero is.
    pty = pytest.importorskip("pty")
    typing, terminal = pty.openpty()
    try:
        os.write(typing, b"O Romeo\n\x04")  # the line, then Ctrl-D at the start of the next: the end
        code, out, err = run_main(sample_main, [f"ckpt_path={run}", f"prompt_file={os.ttyname(terminal)}",
                                                "max_new_tokens=2", "device=cpu"], capsys)
    finally:
        os.close(typing)
        os.close(terminal)
    assert code == 0 and out.startswith("O Romeo\n"), (out, err)


def test_an_unusable_prompt_file_is_named_in_its_error(run: Path, tmp_path: Path, capsys) -> None:
    # The user fixes the file, not a `prompt` setting they never typed.
    (tmp_path / "zebra.txt").write_text("Zebra^", encoding="utf-8")
    (tmp_path / "empty.txt").write_text("", encoding="utf-8")
    assert run_cli(sample_main, f"ckpt_path={run}", f"prompt_file={tmp_path / 'zebra.txt'}") == 2
    assert capsys.readouterr().err == (
        f"error: prompt_file={tmp_path / 'zebra.txt'} has characters not in the model's vocabulary: "
        f"{OUT_OF_VOCAB['Zebra^']}; remove them from it, or use a model trained on text that has them\n")
    assert run_cli(sample_main, f"ckpt_path={run}", f"prompt_file={tmp_path / 'empty.txt'}") == 2
    assert capsys.readouterr().err == (
        f"error: prompt_file={tmp_path / 'empty.txt'} is empty; give a file with at least one character, "
        "or leave prompt unset\n")
    # The next command line of the same process, with the prompt typed, names the setting again.
    assert run_cli(sample_main, f"ckpt_path={run}", "prompt=Zebra^") == 2
    assert capsys.readouterr().err.startswith("error: prompt has characters not in")


def test_a_prompt_file_is_read_as_training_reads_text(tmp_path: Path, monkeypatch) -> None:
    # '\r\n' kept (a model trained with data.newline=keep knows it), a byte-order mark dropped; the
    # file and standard input alike.
    raw = "\ufeffROMEO:\r\nO".encode()
    (tmp_path / "notepad.txt").write_bytes(raw)
    argv = ["chargpt-sample", f"prompt_file={tmp_path / 'notepad.txt'}"]
    assert literal_argv(argv, "sample") == ["chargpt-sample", "prompt=ROMEO:\r\nO"]
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(raw)))
    assert literal_argv(["chargpt-sample", "prompt_file=-"], "sample")[1] == "prompt=ROMEO:\r\nO"


def test_a_prompt_file_on_a_command_without_a_prompt_is_not_read(run: Path, monkeypatch, capsys) -> None:
    from chargpt.cli.eval import main as eval_main

    monkeypatch.setattr(sys, "stdin", io.StringIO("never read"))
    assert run_cli(eval_main, f"ckpt_path={run}", "prompt_file=-") == 2
    assert capsys.readouterr().err.startswith("error: prompt_file is not a setting;")
    assert sys.stdin.read() == "never read"


def test_paths_expand_home_and_variables(run: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("HOME", str(run.parent))
    monkeypatch.setenv("RUNS", str(run.parent))
    for ckpt in (f"~/{run.name}", f"$RUNS/{run.name}", f"${{RUNS}}/{run.name}"):
        code = run_cli(sample_main, f"ckpt_path={ckpt}", "prompt=Hello", "max_new_tokens=1", "device=cpu")
        assert code == 0
        assert capsys.readouterr().out.startswith("Hello")
    args = hydra_argv(["x", "data.path=~/a b.txt", "hydra.run.dir=~/runs/${now:%Y}", "prompt=~/$RUNS"])
    assert args[1] == f"data.path='{run.parent}/a b.txt'"
    assert args[2] == f"hydra.run.dir={run.parent}/runs/${{now:%Y}}"  # interpolation kept
    assert args[3] == "prompt='~/$RUNS'"  # prompts are never expanded
    # The folders runs go under and data is read from, typed as hydra.run.dir is (it was refused).
    args = hydra_argv(["x", "paths.output_root=~/my runs, é", "paths.data_dir=$RUNS/data 🎉",
                       "paths.output_root=${hydra:runtime.cwd}/outs"])
    assert args[1:] == [f"paths.output_root='{run.parent}/my runs, é'",
                        f"paths.data_dir='{run.parent}/data 🎉'",
                        "paths.output_root=${hydra:runtime.cwd}/outs"]  # interpolation kept


def test_a_path_quoted_the_hydra_way_loses_its_quotes(tmp_path: Path, monkeypatch) -> None:
    # "data.path='src/*.py'" is how Hydra's own docs quote a value: the quotes are not the path's.
    monkeypatch.setenv("HOME", str(tmp_path))
    args = hydra_argv(["x", "data.path='corpus/*.txt'", 'data.val_path="~/it\'s.txt"', "prompt='hi'"])
    assert args[1] == "data.path='corpus/*.txt'"
    assert args[2] == f"data.val_path='{tmp_path}/it\\'s.txt'"
    assert args[3] == "prompt='\\'hi\\''"  # a prompt keeps every character it was given
    # Hydra's escape inside its quotes is undone too: the path is it's.txt, quoted again for Hydra.
    assert hydra_argv(["x", "data.path='it\\'s.txt'"])[1] == "data.path='it\\'s.txt'"
    assert literal_value(hydra_argv(["x", "data.path='it\\'s.txt'"])[1]) == "it's.txt"
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "a.txt").write_text("First.\n" * 200)
    (tmp_path / "corpus" / "b.txt").write_text("Second.\n" * 200)
    monkeypatch.chdir(tmp_path)
    code = run_cli(train_main, "data=text", "data.path='corpus/*.txt'", "data.batch_size=4", *TINY_MODEL,
                   "trainer.max_steps=1", "logger=none", "~callbacks.progress_bar", "sample.max_new_tokens=0",
                   f"hydra.run.dir={tmp_path / 'run'}")
    assert code == 0 and (tmp_path / "run" / "metrics.json").exists()


@pytest.mark.parametrize("key", ["data.path", "ckpt_path", "out"])
@pytest.mark.parametrize("multirun", [[], ["-m"]])
def test_a_path_typed_with_hydras_escapes_is_read_as_hydra_reads_it(
    key: str, multirun: list[str], tmp_path: Path, monkeypatch
) -> None:
    # Hydra's docs escape a comma (`\\,`); with an accent Hydra cannot read the value itself, and
    # chargpt quoted it backslash and all: 'notes\\, v2 é.txt' was not found.
    monkeypatch.chdir(tmp_path)
    for typed, path in [("notes\\, v2 é.txt", "notes, v2 é.txt"), ("notes\\, v2.txt", "notes, v2.txt"),
                        ("runs/seed=1\\,lr=0.1 é", "runs/seed=1,lr=0.1 é"),
                        ("'notes, v2 é.txt'", "notes, v2 é.txt")]:
        args = hydra_argv(["x", *multirun, f"{key}={typed}"], checkpoint_sweeps=True)
        assert literal_value(args[1]) == path
    # A file named with the backslash itself is that file.
    (tmp_path / "a\\,b.txt").write_text("x")
    assert literal_value(hydra_argv(["x", *multirun, f"{key}=a\\,b.txt"])[1]) == "a\\,b.txt"


def test_a_sweep_of_paths_typed_with_hydras_escapes_lists_each_path_as_hydra_reads_it() -> None:
    # The accent makes the sweep one Hydra cannot read: chargpt split it at the escaped comma too,
    # into the files 'notes\\' and 'v2 é.txt'.
    args = hydra_argv(["x", "-m", "data.path=choice(notes\\, v2 é.txt, b.txt)"])
    assert choice_values(args[1]) == ["notes, v2 é.txt", "b.txt"]
    args = hydra_argv(["x", "-m", "ckpt_path=choice(runs/seed=1\\,lr=0.1 é, b)"], checkpoint_sweeps=True)
    assert choice_values(args[1]) == ["runs/seed=1,lr=0.1 é", "b"]
    # A prompt's backslash is text, as typed.
    args = hydra_argv(["x", "-m", "prompt=choice(a\\ b, c)"], checkpoint_sweeps=True)
    assert choice_values(args[1]) == ["a\\ b", "c"]


def test_an_unreadable_override_is_one_line_with_the_quoted_form(capsys) -> None:
    assert run_cli(sample_main, "ckpt_path=x", "model.name=[1") == 2
    assert capsys.readouterr().err == (
        "error: cannot read the override 'model.name=[1' (Hydra's override syntax reserves characters "
        "such as spaces, commas, quotes and brackets); quote the value: \"model.name='[1'\"\n"
    )
    # The quoted form shown is one Hydra reads.
    assert OverridesParser.create().parse_override("model.name='[1'").value() == "[1"


@pytest.mark.parametrize(("typed", "fix"), [
    ("model=tiny,", "drop the comma: model=tiny\n"),
    ("seed=1,2,", "drop the comma: seed=1,2\n"),
    ("data.separator=ab,", "drop the comma: data.separator=ab (or, for a text that ends with a comma, quote "
     "the value: \"data.separator='ab,'\")\n"),
])
def test_a_trailing_comma_is_named_with_the_override_without_it(typed, fix, capsys) -> None:
    # It was told to quote the value ("model='tiny,'"), which is no option of model either.
    assert run_cli(train_main, typed, "--cfg", "job") == 2
    assert capsys.readouterr().err == (
        f"error: cannot read the override {typed!r}: it ends with a comma, and no value follows it (a comma "
        f"separates the values a sweep runs); {fix}")


def test_an_unreadable_list_is_advised_with_each_item_quoted(tmp_path: Path, capsys) -> None:
    # A folder of one's own configs with an accent in its path: the advice quoted the whole list,
    # which made it one text, and the command it gave was refused in turn ("hydra.searchpath must
    # be a list of strings").
    folder = tmp_path / "my café configs"
    (folder / "optimizer").mkdir(parents=True)
    (folder / "optimizer" / "my_opt.yaml").write_text("defaults:\n  - adamw\n  - _self_\nlr: 0.002\n")
    typed = f"hydra.searchpath=[file://{folder}]"
    assert run_cli(train_main, typed, "optimizer=my_opt", "--cfg", "job") == 2
    err = capsys.readouterr().err
    listed = f"hydra.searchpath=['file://{folder}']"
    assert err == (
        f"error: cannot read the override {typed!r} (Hydra's override syntax reserves characters such as "
        f"spaces, commas, quotes and brackets); quote each item of the list: \"{listed}\" (or the whole "
        f"value, for a text: \"hydra.searchpath='[file://{folder}]'\")\n"
    )
    # The list it gives is one Hydra reads, and finds the folder's options with.
    assert run_cli(train_main, listed, "optimizer=my_opt", "--cfg", "job") == 0
    assert "lr: 0.002" in capsys.readouterr().out


@pytest.mark.parametrize("value", ["tag(log, interval(3e-4, abc))", "interval(1e-2O, 3)", "choice(1, 2"])
def test_a_broken_search_expression_is_not_told_to_be_quoted(value: str, capsys) -> None:
    # Quoted, it would be text: every trial would then fail on a learning rate that is no number.
    assert run_cli(train_main, "hparams_search=optuna", f"optimizer.lr={value}") == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot read the override 'optimizer.lr={value}': its value starts as "
                          "Hydra's ") and "quote" not in err and err.count("\n") == 1


@pytest.mark.parametrize("arg", ["optimizer=muon-short", "-m optimizer=adamw,muon_shrt"])
def test_a_missing_group_option_is_one_line_naming_the_options(arg: str, tmp_path: Path, capsys) -> None:
    assert run_cli(train_main, *arg.split(), f"hydra.run.dir={tmp_path / 'run'}") == 2
    err = capsys.readouterr().err
    bad = arg.split("=")[1].split(",")[-1]
    options = "adamw, muon, muon_short"
    assert err == (f"error: optimizer={bad} is not an option of optimizer (did you mean "
                   f"optimizer=muon_short?); use one of: {options}\n")
    assert not (tmp_path / "run").exists()
    assert hydra_argv(["x", "optimizer=glob(*)", "+optimizer.x=1", "optimizer=[adamw]"])[1:] == [
        "optimizer=glob(*)", "+optimizer.x=1", "optimizer=[adamw]"]  # values Hydra reads itself pass
    with pytest.raises(ConfigError, match=re.escape("optimizer=null: a config group takes the name of")):
        hydra_argv(["x", "optimizer=null"])  # Hydra's ValueError and traceback


@pytest.mark.parametrize("arg", ["optimizer=my_op", "-m optimizer=adamw,my_op"])
def test_a_missing_group_option_names_the_options_of_a_command_lines_searchpath(
    arg: str, tmp_path: Path, capsys
) -> None:
    # With hydra.searchpath the check was left to Hydra: a sweep's misspelt option was Hydra's
    # message over 13 lines, exit 1; a single run's was one line with its search path dump.
    (tmp_path / "mine" / "optimizer").mkdir(parents=True)
    (tmp_path / "mine" / "optimizer" / "my_opt.yaml").write_text("_target_: torch.optim.AdamW\nlr: 0.002\n")
    searchpath = f"hydra.searchpath=[file://{tmp_path / 'mine'}]"
    code = run_cli(train_main, searchpath, *arg.split(), f"hydra.run.dir={tmp_path / 'run'}",
                   f"hydra.sweep.dir={tmp_path / 'sweep'}")
    assert code == 2
    assert capsys.readouterr().err == (
        "error: optimizer=my_op is not an option of optimizer (did you mean optimizer=my_opt?); use one of: "
        "adamw, muon, muon_short, my_opt\n")
    assert not (tmp_path / "run").exists() and not (tmp_path / "sweep").exists()
    assert hydra_argv(["x", searchpath, "optimizer=my_opt"])[1:] == [searchpath, "optimizer=my_opt"]


def test_quoting_round_trips_any_text() -> None:
    """What the config holds after composition (and after a save and load) is the text typed."""
    rng = random.Random(1)
    alphabet = ["\\", "$", "{", "}", "'", '"', "a", ",", "=", "\n", "人", " ", "~", "[", "]", ":", "%"]
    parser = OverridesParser.create()
    for _ in range(100):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))
        override = hydra_argv(["x", f"+sample.prompt={text}"])[1]
        config = OmegaConf.create({"prompt": parser.parse_override(override).value()})
        assert config.prompt == text
        assert OmegaConf.create(OmegaConf.to_yaml(config)).prompt == text
        assert OmegaConf.to_container(config, resolve=True)["prompt"] == text
        assert literal_value(override) == text  # what the resume command shows
        # A callback's prompt is only read through instantiate (which resolves it once more).
        override = hydra_argv(["x", f"callbacks.sample_text.prompt={text}"])[1]
        value = parser.parse_override(override).value()
        node = OmegaConf.create({"_target_": "builtins.dict", "prompt": value})
        assert instantiate(node)["prompt"] == text


def test_a_data_path_with_an_interpolation_sign_is_refused(capsys) -> None:
    assert run_cli(train_main, "data=text", "data.path=a${x}.txt") == 2
    assert capsys.readouterr().err.startswith("error: data.path=a${x}.txt: a data path cannot contain '${'")


def test_other_overrides_and_options_pass_unchanged() -> None:
    argv = ["x", "optimizer.lr=1e-3,3e-3", "model=tiny", "~callbacks.x", "data.path=null", "ckpt_path=null",
            "hydra.run.dir='a b'", "-m", "--config-name", "train"]
    assert hydra_argv(argv) == argv
    assert literal_argv(argv) == argv
    # Hydra reads the overrides as one run: options typed among them move behind them.
    mixed = ["x", "-m", "optimizer.lr=1e-3,3e-3", "model=tiny", "--config-name", "train", "~callbacks.x",
             "data.path=null", "ckpt_path=null", "hydra.run.dir='a b'"]
    assert hydra_argv(mixed) == argv
    # A bare --info (its topic optional) stays behind the overrides; a topic stays with it.
    assert hydra_argv(["x", "model=tiny", "--info"]) == ["x", "model=tiny", "--info"]
    assert hydra_argv(["x", "-i", "defaults", "model=tiny"]) == ["x", "model=tiny", "-i", "defaults"]


def test_info_after_an_override_prints_the_info(capsys) -> None:
    assert run_cli(train_main, "model=tiny", "--info") == 0
    out = capsys.readouterr().out
    assert "Config search path" in out and "Traceback" not in out


@pytest.mark.parametrize("typed", [("--info", "conf"), ("--info=conf",), ("model=tiny", "-i", "conf")])
def test_a_misspelt_info_topic_is_one_error_line(typed: tuple[str, ...], capsys) -> None:
    # The topic was read as an override ("cannot read the override"), or argparse printed its usage.
    assert run_cli(train_main, *typed) == 2
    out, err = capsys.readouterr()
    assert err == ("error: --info conf: 'conf' is not one of its topics; use one of all, config, defaults, "
                   "defaults-tree, plugins, searchpath, or --info alone for all of them\n")
    assert out == ""


@pytest.mark.parametrize(("typed", "message"), [
    (("-cd", "--multi"), "-cd needs a value after it, e.g. -cd DIR"),
    (("model=tiny", "--cfg"), "--cfg needs a value after it, e.g. --cfg job"),
    (("--config-n", "-m"), "--config-name needs a value after it, e.g. --config-name NAME"),
])
def test_an_option_missing_its_value_is_one_error_line(typed: tuple[str, ...], message: str, capsys) -> None:
    # argparse printed its usage page ("expected one argument").
    assert run_cli(train_main, *typed) == 2
    out, err = capsys.readouterr()
    assert (out, err) == ("", f"error: {message}\n")


@pytest.mark.parametrize(("typed", "message"), [
    (("--foo",), "--foo is not an option of chargpt: settings are given as key=value, without dashes (--help "
                 "lists the options)"),
    (("model=tiny", "-lr=3"), "-lr=3 is not an option of chargpt"),
    (("--cfg", "jobb"), "--cfg jobb: it prints one of job, hydra, all, e.g. --cfg job"),
    (("-c=everything",), "-c everything: it prints one of job, hydra, all"),
])
def test_an_option_hydra_lacks_is_one_error_line(typed: tuple[str, ...], message: str, capsys) -> None:
    # argparse printed its usage page, then its own error line.
    assert run_cli(train_main, *typed) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith(f"error: {message}") and err.count("\n") == 1


@pytest.mark.parametrize("modes", [("-m", "--cfg", "job"), ("--cfg=job", "--multirun"), ("-m", "--info")])
def test_two_of_hydras_modes_are_one_error_line(modes: tuple[str, ...], capsys) -> None:
    # Hydra's own refusal is a ValueError with a traceback.
    assert run_cli(train_main, "seed=1,2", *modes) == 2
    out, err = capsys.readouterr()
    named = [m.partition("=")[0] for m in modes if m.startswith("-")]
    assert err == (f"error: {' and '.join(named)} cannot be combined: a command runs one of -m (a sweep), "
                   "--cfg (print the config), --info, -r (one run), -sc (shell completion); keep one of "
                   "them\n")
    assert out == ""


@pytest.mark.parametrize("typed", [("--cfg", "hydra", "--resolve"), ("--resolve", "-c", "hydra"),
                                   ("--cfg=hydra", "--resolve")])
def test_hydras_own_settings_print_resolved(typed: tuple[str, ...], capsys) -> None:
    # Hydra resolves its part apart from the run's, and hydra.run.dir names paths.output_root:
    # an InterpolationKeyError traceback, exit 1.
    assert run_cli(train_main, "paths.output_root=my runs", *typed) == 0
    out = capsys.readouterr().out
    assert OmegaConf.create(out).run.dir.startswith("my runs/") and "${" not in out


def test_an_abbreviated_option_is_read_as_hydra_reads_it(capsys) -> None:
    # Hydra's parser takes a unique prefix of a long option for it (argparse's abbreviations):
    # `--multi --cfg job` ended in Hydra's traceback, and `--config-d DIR`'s DIR passed for an override.
    assert run_cli(train_main, "seed=1,2", "--multi", "--cfg", "job") == 2
    assert capsys.readouterr().err.startswith("error: --multirun and --cfg cannot be combined: ")
    assert hydra_argv(["x", "--config-d", "my dir", "model=tiny", "--mu"]) == [
        "x", "model=tiny", "--config-dir", "my dir", "--multirun"]
    assert hydra_argv(["x", "--config-n=train"]) == ["x", "--config-name=train"]
    with pytest.raises(ConfigError, match=r"^--c is short for several options \(--cfg, --config-path, "):
        hydra_argv(["x", "--c"])  # ambiguous: argparse printed its usage page


@pytest.mark.parametrize("prefix", ["", "+", "++"])
@pytest.mark.parametrize("named", ["", "/checkpoints/last.ckpt"])  # the run, or a checkpoint inside it
def test_ckpt_path_with_plus_resumes_into_the_run(prefix: str, named: str, tmp_path: Path) -> None:
    run = tmp_path / "a run, 1"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.ckpt").write_bytes(b"")
    args = resume_overrides(["chargpt-train", f"{prefix}ckpt_path={run}{named}"])
    assert args[2] == f"hydra.run.dir='{run.resolve()}'"
    assert args[3].startswith("hydra.output_subdir=.hydra/resume-")


@pytest.mark.parametrize("typed", ["'runs/seed=1,lr=0.1 é'", "runs/seed=1\\,lr=0.1 é"])
def test_ckpt_path_quoted_or_escaped_resumes_into_the_run(typed: str, tmp_path: Path, monkeypatch) -> None:
    # Typed as Hydra's docs say, the run was not found before Hydra read the value: it went on in a
    # new dated folder instead of its own.
    run = tmp_path / "runs" / "seed=1,lr=0.1 é"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.ckpt").write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    args = resume_overrides(["chargpt-train", f"ckpt_path={typed}"])
    assert args[2] == f"hydra.run.dir={hydra_quoted(str(run.resolve()))}"


def test_a_run_folder_typed_with_hydras_escapes_is_named_as_typed() -> None:
    # An accent makes the value one Hydra cannot read: chargpt quoted it, and the run's folder was
    # named 'seed=1\\,lr=0.1 é', backslash and all.
    for typed, folder in [("runs/seed=1\\,lr=0.1 é", "runs/seed=1,lr=0.1 é"),
                          ("runs/seed=1\\,lr=0.1", "runs/seed=1,lr=0.1")]:
        assert literal_value(hydra_argv(["x", f"hydra.run.dir={typed}"])[1]) == folder


@pytest.mark.slow
def test_sample_into_a_closed_pipe_is_quiet(run: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    result = subprocess.run(
        f"{sys.executable} -m chargpt.cli.sample ckpt_path='{run}' prompt=Hello max_new_tokens=100000 "
        "device=cpu | head -c 5; echo \" exit ${PIPESTATUS[0]}\"",
        shell=True, env=env, capture_output=True, text=True, timeout=300, executable="/bin/bash",
    )
    assert result.stdout == "Hello exit 141\n"  # what a command ended by SIGPIPE reports
    assert result.stderr == f"sampling from {run / 'checkpoints' / 'last.ckpt'} (step 2)\n"  # and no more


def test_a_users_config_dir_adds_options_to_the_groups(tmp_path: Path) -> None:
    """`--config-dir DIR` adds DIR's options (Hydra searches it too): they pass, and a name in no
    folder is still one line listing the options of both; another search path is left to Hydra."""
    (tmp_path / "optimizer").mkdir()
    (tmp_path / "optimizer" / "mine.yaml").write_text("defaults:\n  - adamw\n  - _self_\nlr: 2.0e-3\n")
    for given in (["-cd", str(tmp_path)], [f"--config-dir={tmp_path}"]):
        assert hydra_argv(["x", *given, "optimizer=mine"]) == ["x", "optimizer=mine", *given]
        with pytest.raises(ConfigError, match=r"^optimizer=mien is not .*: adamw, mine, muon, muon_short$"):
            hydra_argv(["x", *given, "optimizer=mien"])
    for other in (["-cp", str(tmp_path)], [f"hydra.searchpath=['file://{tmp_path}']"]):
        assert "optimizer=mine" in hydra_argv(["x", *other, "optimizer=mine"])


def test_a_list_of_options_with_ones_own_composes_where_chargpts_own_alone_are_refused(
    tmp_path: Path, capsys
) -> None:
    # `trainer=[default,mine]`: Hydra's way to put one's own config on top of chargpt's; refused
    # with `model=[small,tiny]` (two of chargpt's alternatives merged), which it is not.
    (tmp_path / "trainer").mkdir()
    (tmp_path / "trainer" / "mine.yaml").write_text("max_steps: 7\n")
    assert run_cli(train_main, "-cd", str(tmp_path), "trainer=[default,mine]", "--cfg", "job") == 0
    out = capsys.readouterr().out
    assert "max_steps: 7" in out and "val_check_interval:" in out  # mine over the default, both there
    assert run_cli(train_main, "-cd", str(tmp_path), "trainer=[default,cpu]", "--cfg", "job") == 2
    assert "picks 2 options of trainer at once" in capsys.readouterr().err


def test_shell_completion_offers_the_options_of_the_config_dir_on_the_line_typed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    # `chargpt-train --config-dir DIR model=<TAB>` offered chargpt's models only: Hydra's completion
    # reads its config folders from its own command line (`-sc query=bash`), not the line typed.
    folder = tmp_path / "my_configs"  # (Hydra splits the typed line at spaces, quoted or not)
    (folder / "model").mkdir(parents=True)
    (folder / "model" / "mine.yaml").write_text("defaults:\n  - tiny\n  - _self_\nn_layer: 1\n")
    monkeypatch.chdir(tmp_path)
    for typed in ("--config-dir my_configs", "-cd my_configs", f"--config-dir={folder}", "-cd nowhere", ""):
        monkeypatch.setenv("COMP_LINE", f"chargpt-train {typed} model=")
        mine = "model=mine " if "my_configs" in typed else ""
        offered = f"model=auto model=bigram {mine}model=small model=tiny\n"
        assert run_main(train_main, ["-sc", "query=bash"], capsys)[:2] == (0, offered)


def test_shell_completion_takes_its_action_wherever_it_stands(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    # Hydra takes `install=bash -sc` and `-sc seed=1 query=bash` (its action among the overrides);
    # both were refused as completion with nothing to do.
    code, out, err = run_main(train_main, ["install=bash", "-sc"], capsys)
    assert (code, err) == (0, "") and "-F hydra_bash_completion" in out, out
    monkeypatch.setenv("COMP_LINE", "chargpt-train model=")
    offered = "model=auto model=bigram model=small model=tiny\n"
    assert run_main(train_main, ["-sc", "seed=1", "query=bash"], capsys)[:2] == (0, offered)
    # Two actions, which Hydra refuses with a traceback, are one line naming both.
    code, out, err = run_main(train_main, ["-sc", "install=bash", "uninstall=bash"], capsys)
    assert code == 2 and err.count("\n") == 1, err
    assert err.endswith("; one, not install=bash and uninstall=bash\n"), err


def test_shell_completion_refuses_a_shell_it_lacks_and_a_query_typed_by_hand(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    # `-sc install=tcsh` was Hydra's ValueError traceback, and `-sc query=bash`, which the refusal of
    # `-sc` alone advised, its KeyError: 'COMP_LINE' (the installed completion sets it).
    monkeypatch.delenv("COMP_LINE", raising=False)
    code, out, err = run_main(train_main, ["-sc", "install=tcsh"], capsys)
    assert (code, out) == (2, "")
    assert re.fullmatch(r"error: install=tcsh names no shell that -sc completes for; use install=bash, "
                        r"install=zsh or install=fish, "
                        r'e\.g\. eval "\$\([\w-]+ -sc install=bash\)"\n', err), err
    code, out, err = run_main(train_main, ["--shell-completion", "query=bash"], capsys)
    assert (code, out) == (2, "")
    assert re.fullmatch(r"error: query=bash is what the installed completion runs as Tab is pressed, "
                        r"with the line being completed in COMP_LINE; install it instead: "
                        r'eval "\$\([\w-]+ --shell-completion install=bash\)"\n', err), err
    # A fish user was told to install bash's completion with bash's eval "$(...)", which fish refuses.
    code, out, err = run_main(train_main, ["-sc", "query=fish"], capsys)
    assert (code, out) == (2, "")
    assert re.search(r"; install it instead: [\w-]+ -sc install=fish \| source\n\Z", err), err
    # Typed after '=', it was told to write `-sc query=fish`, which is refused in turn as above.
    code, out, err = run_main(train_main, ["--shell-completion=query=fish"], capsys)
    assert (code, out) == (2, "")
    assert re.fullmatch(r"error: --shell-completion=query=fish: --shell-completion takes what to do as the "
                        r"next word, not after '='; and query=fish is what the installed completion runs "
                        r"as Tab is pressed: install it instead: [\w-]+ --shell-completion install=fish "
                        r"\| source\n", err), err
    code, out, err = run_main(train_main, ["-sc"], capsys)
    assert code == 2 and "query" not in err, err


@pytest.mark.parametrize(("typed", "said"), [
    # Each was "cannot read the override 'query': overrides are key=value", which named no fix.
    (["-sc", "query"], r"query is what the installed completion runs as Tab is pressed, with the line being "
                       r'completed in COMP_LINE; install it instead: eval "\$\([\w-]+ -sc install=bash\)"'),
    (["-sc", "install"], r"install needs the shell it is for: install=bash, install=zsh or install=fish, "
                         r'e\.g\. eval "\$\([\w-]+ -sc install=bash\)"'),
    (["--shell-completion", "uninstall"], r"uninstall needs the shell it is for: uninstall=bash, "
                                          r"uninstall=zsh or uninstall=fish, e\.g\. "
                                          r'eval "\$\([\w-]+ --shell-completion uninstall=bash\)"'),
])
def test_shell_completion_names_the_shell_an_action_typed_alone_needs(
    typed: list[str], said: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.delenv("COMP_LINE", raising=False)
    code, out, err = run_main(train_main, typed, capsys)
    assert (code, out) == (2, "")
    assert re.fullmatch(f"error: {said}\n", err), err


def test_shell_completion_reads_a_config_dir_typed_with_spaces(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    # `--config-dir "my configs" model=<TAB>` printed `error: LexerNoViableAltException: configs";`
    # into the line being typed: Hydra splits the line it completes at spaces and read `configs"`
    # as an override (and `data.path='my text.txt'`, `data.path='my` and `text.txt'`).
    folder = tmp_path / "my configs"
    (folder / "model").mkdir(parents=True)
    (folder / "model" / "mine.yaml").write_text("defaults:\n  - tiny\n  - _self_\nn_layer: 1\n")
    monkeypatch.chdir(tmp_path)
    for typed in ('--config-dir "my configs"', "-cd my\\ configs", "--config-d='my configs'",
                  f"'--config-dir={folder}' optimizer.lr=1e-3"):
        monkeypatch.setenv("COMP_LINE", f"chargpt-train {typed} model=")
        offered = "model=auto model=bigram model=mine model=small model=tiny\n"
        assert run_main(train_main, ["-sc", "query=bash"], capsys)[:2] == (0, offered), typed
    monkeypatch.setenv("COMP_LINE", "chargpt-train data.path='my text.txt' model=")
    offered = "model=auto model=bigram model=small model=tiny\n"
    assert run_main(train_main, ["-sc", "query=bash"], capsys) == (0, offered, "")


@pytest.mark.slow
def test_a_sweep_whose_m_comes_after_an_override_runs_every_job(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("First Citizen: Before we proceed any further, hear me speak.\n" * 60)
    code = run_cli(train_main, "seed=1,2", "-m", "data=text", f"data.path={corpus}", "data.batch_size=4",
                   *TINY_MODEL, "trainer.max_steps=1", "logger=none", "~callbacks.progress_bar",
                   "sample.max_new_tokens=0", f"hydra.sweep.dir={tmp_path / 'sweep'}")
    assert code == 0
    saved = (tmp_path / "sweep").glob("*/checkpoints/last.ckpt")
    assert sorted(p.parent.parent.name for p in saved) == ["0", "1"]


def test_a_recorded_override_is_printed_as_it_was_typed() -> None:
    # Printed commands (a sweep's continuation, a resume, model=auto's override) take Hydra's record
    # back to what was typed: the CLI's own quoting of free text goes, quotes a user typed for
    # Hydra stay (without them Hydra cannot read the value).
    typed = [
        "prompt=Hi, there", "data.path=/tmp/my texts/a, b.txt", "hydra.sweep.dir=/tmp/sweep é",
        "hydra.sweeper.storage='sqlite:////tmp/db dir/o.db'", "hydra.sweeper.study_name='my study, v2'",
        "optimizer.lr=1e-3,3e-3", "model.n_embd=choice(32, 64)",
    ]
    recorded = hydra_argv(["chargpt-train", *typed])[1:]
    assert recorded[:2] != typed[:2]  # the CLI quoted the free text for Hydra
    assert [as_typed(o) for o in recorded] == typed


def test_a_sweep_over_data_files_hands_each_job_its_path(tmp_path: Path, monkeypatch) -> None:
    # `-m 'data.path=choice(...)'` was one path, `choice(a.txt,...)`, not found in its one job.
    monkeypatch.setenv("HOME", str(tmp_path))
    typed = "data.path=choice(~/a.txt, 'my texts/b, c.txt', $HOME/d.txt)"
    swept = hydra_argv(["x", "-m", typed])[1]
    assert swept == f"data.path=choice({tmp_path}/a.txt,'my texts/b, c.txt',{tmp_path}/d.txt)"
    # Hydra's sweeper writes each job's override itself: each must read back as its file.
    parsed = OverridesParser.create().parse_override(swept)
    jobs = [OverridesParser.create().parse_override(f"data.path={value}").value()
            for value in parsed.sweep_string_iterator()]
    assert jobs == [f"{tmp_path}/a.txt", "my texts/b, c.txt", f"{tmp_path}/d.txt"]
    # ... and the job's record is printed back as the file, in its resume command.
    assert [literal_value(f"data.path={value}") for value in parsed.sweep_string_iterator()] == jobs
    # A name Hydra refuses unquoted is split as typed (the é), quoted, and handed to its job quoted:
    # Hydra's own sweeper wrote `data.path=café.txt`, which the job could not read (it was refused).
    swept = hydra_argv(["x", "-m", "data.path=choice(a.txt, café.txt, \"it's.txt\", '~x.txt', 'null')"])[1]
    assert swept == "data.path=choice(a.txt,'café.txt','it\\'s.txt','~x.txt','null')"
    handed = readable_choices(OverridesParser.create().parse_override(swept)).sweep_string_iterator()
    assert [literal_value(f"data.path={value}") for value in handed] == [
        "a.txt", "café.txt", "it's.txt", "~x.txt", "null"]
    # A search's sweeper is Optuna's in chargpt's subclass, which quotes what its trials need quoted
    # (test_sweep_continuation): such names were refused. Hydra's basic sweeper, named, cannot hand
    # them over: refused before the sweep starts, not by each job.
    for search in ("hparams_search=optuna", "hydra/sweeper=optuna"):
        assert hydra_argv(["x", search, "data.path=choice(a.txt,'my texts/b, c.txt', café.txt)"])[2] == \
            "data.path=choice(a.txt,'my texts/b, c.txt','café.txt')"
    assert hydra_argv(["x", "-m", "hydra/sweeper=basic", "data.path=choice(a.txt,'b, c.txt')"])[2] == \
        "data.path=choice(a.txt,'b, c.txt')"  # escaped by Hydra's sweeper: it reaches its job
    refused = r"hydra/sweeper=basic, Hydra's own sweeper, cannot hand 'café\.txt' to its job .*; leave"
    with pytest.raises(ConfigError, match=refused):
        hydra_argv(["x", "-m", "hydra/sweeper=basic", "data.path=choice(a.txt, café.txt)"])
    # Another plugin's search is taken to escape nothing, as Optuna's own sweeper did.
    with pytest.raises(ConfigError, match=r"a search's sweeper \(ax\) cannot hand 'b, c\.txt' to its job"):
        hydra_argv(["x", "-m", "hydra/sweeper=ax", "data.path=choice(a.txt, 'b, c.txt')"])
    # One path, commas included, stays one path; so does an existing file named like a sweep.
    assert hydra_argv(["x", "data.path=a.txt,b.txt"])[1] == "data.path='a.txt,b.txt'"
    monkeypatch.chdir(tmp_path)
    (tmp_path / "choice(a.txt).txt").write_text("x")
    assert hydra_argv(["x", "data.path=choice(a.txt).txt"])[1] == "data.path='choice(a.txt).txt'"


def test_a_search_hands_each_trial_its_text_readable() -> None:
    # Optuna's sweeper writes a trial's override as f"{name}={value}": `data.path=café.txt` and
    # `data.path=b, c.txt`, which the job could not read. Texts that need it are written quoted;
    # numbers, plain names and the command's fixed settings (written by Hydra already) as they were.
    drawn = {"data.path": "café.txt", "data.val_path": "b, c.txt", "model.n_embd": 64, "data.name": "null"}
    trial = ["data.path=café.txt", "data.val_path=b, c.txt", "model.n_embd=64", "data.name=null",
             "sample.prompt='Hi, there'", "optimizer.lr=0.001"]
    written = [readable_trial_override(o, {**drawn, "optimizer.lr": 0.001}) for o in trial]
    assert written == ["data.path='café.txt'", "data.val_path='b, c.txt'", "model.n_embd=64",
                       "data.name='null'", "sample.prompt='Hi, there'", "optimizer.lr=0.001"]
    assert [literal_value(o) for o in written[:2]] == ["café.txt", "b, c.txt"]
    assert readable_trial_override("data.path=a.txt", {"data.path": "a.txt"}) == "data.path=a.txt"


@pytest.mark.parametrize(("value", "said"), [
    ("glob(*.txt)", "Hydra's glob(...) picks a config group's options, not files; a pattern such as "
                    "'corpus/*.txt' is one corpus of every file it matches; to train once per file"),
    ("range(1,3)", "Hydra's range(...) does not name files; to train once per file, list the files: "
                   "-m 'data.path=choice(a.txt,b.txt)'"),
    ("interval(0,1)", "Hydra's interval(...) does not name files"),
])
def test_a_sweep_of_a_data_path_that_names_no_files_is_one_error_line(value: str, said: str, capsys) -> None:
    # Each was taken as a file name, and the job failed with 'data file not found: .../glob(*.txt)'.
    assert run_cli(train_main, "-m", "data=text", f"data.path={value}") == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: data.path={value}: {said}") and err.count("\n") == 1


def test_a_recorded_path_is_printed_as_the_file_it_named(tmp_path: Path) -> None:
    # A recorded path was read as a command line's: 'a, b.txt', moved since, became
    # choice(/home/me/a,/home/me/b.txt) in a resume or continue command (Hydra refuses that sweep
    # without -m), and a file named '$x.txt' (read as that file where it launched, as chargpt reads
    # a path that exists as typed) stayed relative: another file or none from another folder.
    (tmp_path / "$x.txt").write_text("x")
    recorded = ["data.path='a, b.txt'", "data.path='$x.txt'", "data.val_path='~x.txt'"]
    assert launched_from(recorded, str(tmp_path), LOCAL_BUILDERS) == [
        f"data.path={tmp_path}/a, b.txt", f"data.path={tmp_path}/$x.txt", f"data.val_path={tmp_path}/~x.txt"]
    assert shlex.split(resume_command("/runs/1", recorded[:2], str(tmp_path)))[1:3] == [
        f"data.path={tmp_path}/a, b.txt", f"data.path={tmp_path}/$x.txt"]
    # A variable, or a home folder, names a file from anywhere, as before.
    assert launched_from(["data.path=$x/a.txt", "data.path=~/a.txt"], str(tmp_path), LOCAL_BUILDERS) == [
        "data.path=$x/a.txt", "data.path=~/a.txt"]


def test_a_sweep_over_files_is_printed_with_each_file_named_from_anywhere(tmp_path: Path) -> None:
    # The continue command named the sweep as one file: data.path=/launch/dir/choice(a.txt,...).
    recorded = ["data.path=choice(a.txt,'my texts/b, c.txt',/data/d.txt,$DATA/e.txt)"]
    assert launched_from(recorded, "/home/me", LOCAL_BUILDERS) == [
        "data.path=choice(/home/me/a.txt,'/home/me/my texts/b, c.txt',/data/d.txt,$DATA/e.txt)"]
    # data.name: a folder saved with save_to_disk where the sweep was launched is named absolute
    # (kept as typed, `dir B` was looked up on the hub from another folder); a hub name stays.
    (tmp_path / "dir B").mkdir()
    named = ["data.name=choice(dir\\ B,karpathy/tiny_shakespeare)", "data.name=dir\\ B"]
    assert launched_from(named, str(tmp_path), LOCAL_BUILDERS) == [
        f"data.name=choice({tmp_path}/dir B,karpathy/tiny_shakespeare)", f"data.name={tmp_path}/dir B"]
    # A file named like a sweep, where it was launched, is that file.
    (tmp_path / "choice(a.txt)").write_text("x")
    assert launched_from(["data.path='choice(a.txt)'"], str(tmp_path), LOCAL_BUILDERS) == [
        f"data.path={tmp_path}/choice(a.txt)"]
