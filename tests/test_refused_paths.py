"""Paths the file system refuses to look up at all (a name too long, a symbolic link loop, a file
taken for a folder), a `~user` with no such user, and a FIFO: each command says one error line
naming the setting, and writes nothing, where these were tracebacks or a read waiting for ever."""

from __future__ import annotations

import errno
import os
import sys
from pathlib import Path

import pytest

from chargpt.checkpoints import resolve_checkpoint
from chargpt.cli import export as export_cli
from chargpt.cli import report as report_cli
from chargpt.cli import sample as sample_cli
from chargpt.cli import train as train_cli
from chargpt.errors import CheckpointError
from conftest import bare_train_args, make_checkpoint, run_main, write_corpus

LONG_NAME = "a" * 300  # a name longer than any common file system takes (255 bytes)
LONG_PATH = "/".join(["b" * 200] * 25)  # each name fits; the whole is longer than a path may be


@pytest.fixture
def odd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder holding a symbolic link to itself (`loop`), a file (`afile`) and a checkpoint; the
    commands run in it."""
    (tmp_path / "loop").symlink_to("loop")
    (tmp_path / "afile").write_text("not a folder")
    make_checkpoint(tmp_path / "model.ckpt")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _one_error_line(code: int, out: str, err: str, *expected: str) -> None:
    assert code == 2, (code, out, err)
    assert "Traceback" not in out + err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for part in expected:
        assert part in lines[0], lines[0]


REFUSED = [
    (LONG_NAME, "a name in it is 300 bytes long, more than the file system takes; give a shorter path"),
    (LONG_PATH, "more than the file system takes; give a shorter path"),
    ("loop", "its symbolic links lead round in a loop"),
    ("afile/x", "afile is a file, not a folder"),
]


@pytest.mark.parametrize(("value", "why"), REFUSED, ids=["long name", "long path", "loop", "through a file"])
def test_sample_names_the_refused_ckpt_path(value, why, odd, capsys):
    _one_error_line(*run_main(sample_cli.main, [f"ckpt_path={value}", "max_new_tokens=5"], capsys),
                    f"error: ckpt_path={value[:60]}", why)


@pytest.mark.parametrize(("value", "why"), REFUSED[:2], ids=["long name", "long path"])
def test_export_names_the_refused_ckpt_path_and_out(value, why, odd, capsys):
    _one_error_line(*run_main(export_cli.main, [f"ckpt_path={value}", "out=exported"], capsys),
                    f"error: ckpt_path={value[:60]}", why)
    _one_error_line(*run_main(export_cli.main, ["ckpt_path=model.ckpt", f"out={value}"], capsys),
                    f"error: out={value[:60]}", why)
    assert sorted(p.name for p in odd.iterdir()) == ["afile", "loop", "model.ckpt"]  # nothing written


@pytest.mark.parametrize("value", ["afile/new\nline é 🚀.ckpt", f"{LONG_NAME} é 🚀\n"],
                         ids=["newline", "long"])
def test_a_refused_path_is_named_alike_by_the_cli_and_the_python_api(value, odd, capsys):
    # chargpt.load named it raw, a long name whole; both split the one error line at a newline.
    import chargpt

    code, out, err = run_main(sample_cli.main, [f"ckpt_path={value}", "max_new_tokens=5"], capsys)
    _one_error_line(code, out, err, f"error: ckpt_path={repr(value)[:50]}")
    with pytest.raises(chargpt.CheckpointError) as raised:
        chargpt.load(value)
    assert str(raised.value) == err.strip().removeprefix("error: ckpt_path=")


def test_a_home_of_no_user_is_a_path_as_typed(odd, capsys):
    """`~nouser/x`: no such user's home, so (as a shell and data.path read it) a folder named `~nouser`
    here, which is not there: not Path.expanduser's "Could not determine home directory" traceback."""
    _one_error_line(*run_main(sample_cli.main, ["ckpt_path=~nouser/x", "max_new_tokens=5"], capsys),
                    "error: checkpoint not found: ~nouser/x")
    _one_error_line(*run_main(export_cli.main, ["ckpt_path=~nouser/x", "out=exported"], capsys),
                    "error: checkpoint not found: ~nouser/x")
    assert not (odd / "exported").exists()


def test_a_fifo_checkpoint_is_refused_before_it_is_read(odd):
    """Reading a FIFO waits for a writer, for ever: the command hung."""
    os.mkfifo(odd / "fifo")
    with pytest.raises(CheckpointError, match=r"fifo is not a file \(a FIFO, a device or a socket\)"):
        resolve_checkpoint(odd / "fifo")


@pytest.mark.slow
def test_train_names_the_refused_init_from_run_dir_and_data_path(odd, capsys):
    corpus = write_corpus(odd / "corpus.txt")
    base = bare_train_args(corpus, None, "trainer.max_steps=2", f"paths.output_root={odd / 'outputs'}")
    _one_error_line(*run_main(train_cli.main, [*base, f"init_from={LONG_NAME}"], capsys),
                    f"error: init_from={LONG_NAME[:60]}", REFUSED[0][1])
    _one_error_line(*run_main(train_cli.main, [*base, f"hydra.run.dir={LONG_NAME}"], capsys),
                    f"error: hydra.run.dir={LONG_NAME[:60]}", REFUSED[0][1])
    os.mkfifo(odd / "fifo")  # its size, 0, said it was an empty file
    _one_error_line(*run_main(train_cli.main, [*base, "data.path=fifo"], capsys),
                    "is not a file but a pipe, which can be read only once, where the text")
    _one_error_line(*run_main(train_cli.main, [*base, "data.path=loop"], capsys),  # "not found"
                    "error: data.path=loop: its symbolic links lead round in a loop")
    assert not (odd / "outputs").exists()


@pytest.mark.parametrize("args", [[LONG_NAME], ["~nouser/x"]], ids=["long folder", "no such user"])
def test_report_says_a_refused_path_in_one_line(args, odd, capsys):
    code, _, err = run_main(report_cli.main, args, capsys)
    assert code == 2 and "Traceback" not in err and err.startswith("error: "), (code, err)


def test_the_line_names_the_setting_as_typed(monkeypatch, tmp_path):
    from chargpt.errors import path_refused, refused_path_line

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["chargpt-sample", "prompt=x", f"ckpt_path={LONG_NAME}"])
    file = tmp_path / LONG_NAME / "last.ckpt"
    err = OSError(errno.ENAMETOOLONG, os.strerror(errno.ENAMETOOLONG), str(file))
    line = refused_path_line(err)
    # a file in the folder it named, absolute: its setting still, cut short with its length
    assert line is not None and line.startswith(f"ckpt_path={LONG_NAME[:60]}…"), line
    assert "(300 characters)" in line
    assert path_refused(OSError(errno.ENOENT, "No such file or directory", "x")) is None  # said elsewhere
    assert path_refused(OSError(errno.ELOOP, "loop")) is None  # no path: nothing to name


def test_a_nul_in_a_path_setting_is_named(odd, capsys):
    """No command line holds a NUL, but a config file can ("\\0" in YAML): os's "embedded null
    byte" was a ValueError traceback once the export was made."""
    (odd / "configs").mkdir()
    (odd / "configs" / "mine.yaml").write_text(
        'defaults:\n  - export\n  - _self_\nckpt_path: model.ckpt\nout: "a\\0b"\n')
    _one_error_line(*run_main(export_cli.main, ["--config-dir", "configs", "--config-name", "mine"], capsys),
                    "error: out holds a NUL character (\\0), which no path can hold; remove it")
    assert sorted(p.name for p in odd.iterdir()) == ["afile", "configs", "loop", "model.ckpt"]
