"""Text from files, folders, globs and Hugging Face datasets; how it is cleaned, split and reported."""

from __future__ import annotations

import errno
import functools
import hashlib
import json
import logging
import os
import re
import shlex
import shutil
import time
import unicodedata
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

from chargpt.cli.argv import hydra_argv
from chargpt.data import CharDataModule
from chargpt.data.sources.text_files import CACHE_FILE, text_files
from chargpt.errors import ChargptError, CheckpointError, ConfigError, DataError
from chargpt.model import ModelConfig
from chargpt.overrides import choice_values
from chargpt.training.resume_checks import check_resumable
from conftest import lacks, run_cli, train_args


def text_of(dm: CharDataModule, which: str = "ids") -> str:
    dm.setup()
    return dm.tokenizer.decode(getattr(dm, which))


def module(path: Path | str, **kwargs) -> CharDataModule:
    return CharDataModule(str(path), block_size=kwargs.pop("block_size", 4), batch_size=2, **kwargs)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "my corpus"  # a space in the path
    (root / "b").mkdir(parents=True)
    (root / ".git").mkdir()
    (root / "a.txt").write_text("first file, with \"quotes\" and café\n")
    (root / "b" / "c.md").write_text("third 😀 file\n")
    (root / "b" / "a.txt").write_text("second file\n")
    (root / ".git" / "HEAD").write_text("hidden: left out\n")
    (root / ".notes.txt").write_text("hidden: left out\n")
    return root


def test_directory_is_every_file_under_it_in_sorted_order_joined_by_the_separator(folder: Path) -> None:
    dm = module(folder)
    assert text_of(dm) == (
        "first file, with \"quotes\" and café\n\n\nsecond file\n\n\nthird 😀 file\n"
    )
    assert [Path(name).name for name, _ in dm.fingerprint["files"]] == ["a.txt", "a.txt", "c.md"]
    assert text_of(module(folder, separator="<|>")).count("<|>") == 2


def test_an_unreadable_text_file_is_named(tmp_path: Path, unreadable) -> None:
    # A traceback: PermissionError, from sniffing the file's first bytes.
    text = tmp_path / "my text.txt"
    text.write_text("some text\n" * 20)
    unreadable(text)
    for value in (text, tmp_path / "my*.txt"):
        with pytest.raises(DataError) as err:
            text_of(module(value))
        assert str(err.value) == (f"cannot read {text} (Permission denied); make it readable "
                                  f"(chmod u+r '{text}')")


def test_an_unreadable_folder_in_the_text_is_an_error_not_left_out(folder: Path, unreadable) -> None:
    # os.walk passed over it: the text was trained without its files, and nothing said so.
    unreadable(folder / "b")
    with pytest.raises(DataError) as err:
        text_of(module(folder))
    inside = folder / "b"
    assert str(err.value) == (f"cannot read {inside} (Permission denied); make it readable (chmod u+rx "
                              f"'{inside}'), or move it out of {folder} (or name the other files by a glob "
                              "that does not go into it): its files would be left out of the text")
    unreadable(folder)  # the folder itself: a traceback from the look for a saved dataset's files
    with pytest.raises(DataError, match=r"^cannot read .*my corpus \(Permission denied\); make it "
                       r"readable \(chmod u\+rx '.*my corpus'\)$"):
        text_of(module(folder))


def test_an_unreadable_folder_a_glob_goes_into_is_an_error_not_left_out(folder: Path, unreadable) -> None:
    # glob.glob passed over it in silence: `my corpus/**/*.txt` trained on a.txt alone.
    inside = folder / "b"
    unreadable(inside)
    for pattern in ("**/*.txt", "*/*.txt", "[b]/*", "b/*.txt", "b/deeper/*.txt", "b/a.txt"):
        value = f"{folder}/{pattern}"
        with pytest.raises(DataError) as err:
            text_of(module(value))
        fix = (f"change data.path={value} so it does not go into it: its files would be left out of the text"
               if pattern[0] != "b" else "")  # inside the folder: the chmod is the one way out
        assert str(err.value).removesuffix(f", or {fix}") == (
            f"cannot read {inside} (Permission denied); make it readable (chmod u+rx '{inside}')")
    # A pattern that does not go into it reads the others; so does one that matches no folder there.
    for pattern in ("*.txt", "[a]*"):
        assert text_files(f"{folder}/{pattern}", "data.path") == [folder / "a.txt"]


@pytest.mark.parametrize(("pattern", "locked"), [
    ("**/deeper/*.txt", "b/c/deeper"),  # `**` goes into b, then c, to reach it
    ("**/.git/*", ".git"),  # `**` matches no folder, and a part that starts with '.' names a hidden one
    ("b/**/*.txt", "b/deeper"),
])
def test_a_globstar_reaches_the_unreadable_folder_glob_would_pass_over(
    folder: Path, unreadable, pattern: str, locked: str
) -> None:
    (folder / locked).mkdir(parents=True, exist_ok=True)
    unreadable(folder / locked)
    blocked = re.escape(str(folder / locked))
    with pytest.raises(DataError, match=rf"^cannot read {blocked} \(Permission denied\)"):
        text_files(f"{folder}/{pattern}", "data.path")


def test_an_unreadable_folder_in_a_run_folder_a_glob_goes_into_is_no_error(folder: Path, unreadable) -> None:
    # A run folder's train.log and checkpoints are no text: a folder in it is not the text's either.
    run = folder / "b" / "run"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "config.yaml").write_text("seed: 1\n")
    (run / "locked").mkdir()
    unreadable(run / "locked")
    assert text_files(f"{folder}/**/*.txt", "data.path") == [folder / "a.txt", folder / "b" / "a.txt"]


def test_a_folder_readable_but_not_searchable_is_an_error_not_left_out(folder: Path, unreadable) -> None:
    # `chmod a-x`: its names are listed, but none can be looked up. Read as a folder, a traceback
    # (PermissionError, from the look for a run's records in it); matched by a glob (`*`), the same;
    # and where pathlib takes a file it cannot look up for none, its files left out in silence.
    inside = folder / "b"
    (inside / "deeper").mkdir()
    (inside / "deeper" / "d.txt").write_text("fourth file\n")
    unreadable(inside, listable=True)
    chmod = f"cannot read {inside} (Permission denied); make it readable (chmod u+rx '{inside}')"
    with pytest.raises(DataError) as err:
        text_of(module(folder))
    assert str(err.value) == (f"{chmod}, or move it out of {folder} (or name the other files by a glob that "
                              "does not go into it): its files would be left out of the text")
    for pattern in ("**/*.txt", "*/*.txt", "*", "[b]", "b*/*", "**", "b/*.txt", "b"):
        value = f"{folder}/{pattern}"
        with pytest.raises(DataError) as err:
            text_of(module(value))
        fix = f"change data.path={value} so it does not go into it: its files would be left out of the text"
        inside_it = pattern in ("b/*.txt", "b")  # the chmod is the one way out
        assert str(err.value) == (chmod if inside_it else f"{chmod}, or {fix}"), pattern
    assert text_files(f"{folder}/*.txt", "data.path") == [folder / "a.txt"]  # a glob that does not go into it


def test_a_folder_matched_whole_is_searched_by_the_globs_own_check(
    folder: Path, unreadable, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `corpus/*` matching b whole, b listable but not searchable: the glob's check passed over b
    # (nothing to look up past it) and only the run-folder look in b refused it, by chance of a
    # pathlib that raises there (from Python 3.14 its is_dir answers False instead).
    from chargpt.data.sources import text_files as module

    unreadable(folder / "b", listable=True)
    monkeypatch.setattr(module, "is_run_folder", lambda path: False)
    with pytest.raises(DataError, match=r", or change data\.path=.*/\* so it does not go into it"):
        text_files(f"{folder}/*", "data.path")


@pytest.fixture
def link_into_unsearchable(folder: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """b/sub, a link into a folder this user may not search (returned): its files cannot be looked up."""
    secret = folder.parent / "secret"
    (secret / "inner").mkdir(parents=True)
    (secret / "inner" / "c.txt").write_text("behind\n")
    (folder / "b" / "sub").symlink_to(secret / "inner")
    stat = os.stat

    def unsearchable_secret(path: object, *args: object, **kwargs: object) -> os.stat_result:
        if kwargs.get("follow_symlinks", True):
            real = Path(os.path.realpath(os.fspath(path)))  # type: ignore[arg-type]
            if real != secret and real.is_relative_to(secret):
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(path))  # type: ignore[arg-type]
        return stat(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "stat", unsearchable_secret)
    return secret


@pytest.mark.parametrize("pattern", ["*/sub/*.txt", "*/*/*.txt", "b/sub/*.txt", "b/*"])
def test_a_link_into_a_folder_one_may_not_search_is_named_where_it_leads(
    folder: Path, link_into_unsearchable: Path, pattern: str
) -> None:
    # `corpus/*/sub/*.txt` named b, whose chmod changes nothing; `corpus/*/*.txt` (b listed, sub found
    # in it) passed over sub as glob does, its files left out of the text in silence;
    # `corpus/b/sub/*.txt` named the corpus.
    secret = re.escape(str(link_into_unsearchable))
    with pytest.raises(DataError, match=rf"^cannot read {secret} \(Permission denied\)"):
        text_files(f"{folder}/{pattern}", "data.path")


@pytest.mark.parametrize(("pattern", "read"), [("*/*.txt", ["b/a.txt"]), ("b/[ac]*", ["b/a.txt", "b/c.md"]),
                                              ("b/*.txt", ["b/a.txt"])])
def test_a_glob_that_passes_over_a_link_into_a_folder_one_may_not_search_reads_the_rest(
    folder: Path, link_into_unsearchable: Path, pattern: str, read: list[str]
) -> None:
    # b/sub is no name these patterns match or go into (glob passes over it): it was asked whether it
    # is a folder all the same, and the text refused, "cannot read .../secret (Permission denied)".
    assert text_files(f"{folder}/{pattern}", "data.path") == [folder / name for name in read]


def test_a_folder_read_whole_with_a_link_into_a_folder_one_may_not_search_names_that_folder(
    folder: Path, link_into_unsearchable: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Listing b tells its link sub no folder (its target cannot be looked up), and asking whether it
    # is a file ended the read of `corpus` in a PermissionError traceback.
    secret, scandir = link_into_unsearchable, os.scandir

    class Listed:
        """A listing whose link into the secret folder is no folder, as the kernel tells it."""

        def __init__(self, path: object) -> None:
            with scandir(path) as entries:  # type: ignore[call-overload]
                self.entries = iter([Unreachable(e) if e.path == str(folder / "b" / "sub") else e
                                     for e in entries])

        def __enter__(self) -> Listed:
            return self

        def __exit__(self, *exc: object) -> None:
            pass

        def __iter__(self) -> Listed:
            return self

        def __next__(self) -> os.DirEntry:
            return next(self.entries)

    class Unreachable:
        def __init__(self, entry: os.DirEntry) -> None:
            self.entry = entry

        def __getattr__(self, name: str) -> object:
            return getattr(self.entry, name)

        def is_dir(self, *, follow_symlinks: bool = True) -> bool:
            return False if follow_symlinks else self.entry.is_dir(follow_symlinks=False)

    monkeypatch.setattr(os, "scandir", Listed)
    with pytest.raises(DataError) as err:
        text_files(str(folder), "data.path")
    assert str(err.value).startswith(f"cannot read {secret} (Permission denied); "), err.value
    assert f", or remove the link {folder / 'b' / 'sub'} " in str(err.value), err.value


def test_a_folder_one_may_search_but_not_list_is_read_where_a_glob_names_what_is_in_it(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # chmod 711: glob looks b/a.txt up without listing b, and finds it; it was refused as unreadable.
    scandir, inside = os.scandir, folder / "b"

    def unlistable(path: object = ".") -> object:
        if isinstance(path, (str, os.PathLike)) and Path(os.fspath(path)) == inside:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(path))
        return scandir(path)

    monkeypatch.setattr(os, "scandir", unlistable)
    assert text_files(f"{folder}/*/a.txt", "data.path") == [inside / "a.txt"]
    with pytest.raises(DataError, match=r"^cannot read .*my corpus/b \(Permission denied\)"):
        text_files(f"{folder}/*/*.txt", "data.path")  # one it must list: its files would be left out


def test_a_glob_typed_in_a_folder_with_brackets_in_its_name_matches_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Named absolute, the folder's own `[v2]` read as a wildcard: `*.txt` matched no files there.
    from chargpt.data.sources.hf_datasets import absolute_data_files

    here = tmp_path / "notes [v2]"
    here.mkdir()
    (here / "a.txt").write_text("first file\n" * 3)
    (here / "b.txt").write_text("second file\n" * 3)
    monkeypatch.chdir(here)
    escaped = f"{tmp_path}/notes [[]v2]"
    assert text_of(module("*.txt")) == "first file\n" * 3 + "\n\n" + "second file\n" * 3
    assert module("*.txt").path == f"{escaped}/*.txt" and module("a.txt").path == str(here / "a.txt")
    # datasets reads even a file's name as a glob.
    assert absolute_data_files("text", {"train": "a.txt", "validation": ["b*.txt"]}) == \
        {"train": f"{escaped}/a.txt", "validation": [f"{escaped}/b*.txt"]}
    # Typed absolute through it, unescaped: the error says why it matches nothing, and the pattern
    # escaped, whole. Also from a folder inside it, which has none in its own name: that was said to.
    (here / "plays").mkdir()
    (here / "plays" / "c.txt").write_text("third file\n")
    for pattern in ("*.txt", "plays/*.txt", "**/c.txt"):
        with pytest.raises(DataError) as err:
            text_files(f"{here}/{pattern}", "data.path")
        assert str(err.value) == (
            f"data.path={here}/{pattern} matches no files; the pattern reads the glob characters of the "
            f"folder name 'notes [v2]' as wildcards: escape them, data.path={escaped}/{pattern} (quote it "
            "on the command line: data.path='corpus/*.txt')")
        assert text_files(f"{escaped}/{pattern}", "data.path")  # the escape named matches
    with pytest.raises(DataError, match=r"matches no files; check the path or pattern \(quote"):
        text_files(f"{here}/*.nothing", "data.path")  # escaped, it would match nothing either


def test_glob_picks_the_matching_files(folder: Path) -> None:
    assert text_of(module(f"{folder}/**/*.txt")) == "first file, with \"quotes\" and café\n\n\nsecond file\n"


def test_a_changed_file_in_the_folder_refuses_resume_naming_it(folder: Path) -> None:
    before = module(folder)
    before.setup()
    (folder / "b" / "a.txt").write_text("second file, edited\n")
    (folder / "d.txt").write_text("a new file\n")
    after = module(folder)
    after.setup()
    assert after.fingerprint["sha256"] != before.fingerprint["sha256"]
    model = ModelConfig(n_layer=1, n_head=2, n_embd=32, block_size=4)
    ckpt = {
        "hyper_parameters": {"vocab": after.tokenizer.to_list(), "model": model.to_dict()},
        "callbacks": {"ResumeState": {"corpus": before.fingerprint}},
    }
    with pytest.raises(CheckpointError, match=r"changed: .*b/a\.txt; added: .*d\.txt"):
        check_resumable(ckpt, "last.ckpt", model, after.tokenizer.to_list(), after.fingerprint)
    ckpt["callbacks"]["ResumeState"]["corpus"] = after.fingerprint
    check_resumable(ckpt, "last.ckpt", model, after.tokenizer.to_list(), after.fingerprint)
    # A record without its sha256 names no text: it is not taken for this one.
    ckpt["callbacks"]["ResumeState"]["corpus"] = {"path": "/elsewhere/other.txt"}
    with pytest.raises(CheckpointError, match="not on"):
        check_resumable(ckpt, "last.ckpt", model, after.tokenizer.to_list(), after.fingerprint,
                        earlier_sha256=None)


def test_a_folder_given_relative_is_the_same_text_as_given_absolute(folder: Path, monkeypatch) -> None:
    # Its files are named in checkpoints: eval, check_copy and a resume read the folder again by its
    # absolute path, and must find the files the run named.
    from chargpt.recorded_text import recorded_data

    monkeypatch.chdir(folder.parent)
    relative = module(folder.name)
    relative.setup()
    absolute = module(folder)
    absolute.setup()
    assert relative.fingerprint == absolute.fingerprint
    ckpt = {"hyper_parameters": {}, "callbacks": {"ResumeState": {"corpus": relative.fingerprint}}}
    assert recorded_data(ckpt, "last.ckpt", set())["path"] == str(folder)
    # A run before files were named absolute named them relative to where it ran: still the same.
    old = {**relative.fingerprint, "files": [[str(Path(n).relative_to(folder.parent)), sha]
                                             for n, sha in relative.fingerprint["files"]], "sha256": "0" * 64}
    ckpt["callbacks"]["ResumeState"]["corpus"] = old
    recorded_data(ckpt, "last.ckpt", set())
    model = ModelConfig(n_layer=1, n_head=2, n_embd=32, block_size=4)
    ckpt["hyper_parameters"] = {"vocab": absolute.tokenizer.to_list(), "model": model.to_dict()}
    check_resumable(ckpt, "last.ckpt", model, absolute.tokenizer.to_list(), absolute.fingerprint)


def test_run_folders_inside_the_data_folder_are_left_out(folder: Path, caplog) -> None:
    # `chargpt-train data.path=.` from the folder itself: its runs' logs and checkpoints are not text.
    run = folder / "outputs" / "2026-12-03" / "07-25-53"
    (run / ".hydra").mkdir(parents=True)
    (run / "train.log").write_text("[INFO] - step 10: val loss 2.5\n")
    sweep = folder / "multirun" / "x"
    (sweep / "0").mkdir(parents=True)
    (sweep / "multirun.yaml").write_text("hydra: {}\n")
    (sweep / "0" / "metrics.json").write_text("{}")
    # Launched without Hydra's records (hydra.output_subdir=null): a checkpoint, or a status and log.
    bare = folder / "bare run"
    (bare / "checkpoints").mkdir(parents=True)
    (bare / "checkpoints" / "last.ckpt").write_bytes(b"PK\x03\x04\0\0")
    (bare / "train.log").write_text("[INFO] - step 10: val loss 2.5\n")
    failed = folder / "failed bare run"
    failed.mkdir()
    (failed / "status.json").write_text('{"status": "failed"}')
    (failed / "train.log").write_text("[ERROR] - data file not found\n")
    # A metrics.json alone is anyone's: a folder of notes holding one is read.
    (folder / "notes").mkdir()
    (folder / "notes" / "n.txt").write_text("my notes\n")
    (folder / "notes" / "metrics.json").write_text('{"words": 2}')
    with caplog.at_level(logging.WARNING):
        files = [Path(name).name for name, _ in module(folder).fingerprint["files"]]
        assert [Path(name).name for name, _ in module(f"{folder}/**/*").fingerprint["files"]] == files
    assert files == ["a.txt", "a.txt", "c.md", "metrics.json", "n.txt"]
    assert "left out 4 run folder(s) inside it" in caplog.text


@pytest.mark.slow
def test_links_to_folders_are_followed_once_and_dead_links_are_named(folder: Path, tmp_path: Path,
                                                                   caplog) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "e.txt").write_text("linked text\n")
    (folder / "linked").symlink_to(elsewhere, target_is_directory=True)
    (folder / "b" / "loop").symlink_to(folder, target_is_directory=True)  # a cycle: read once
    (folder / "gone.txt").symlink_to(tmp_path / "missing.txt")
    (folder / "also linked").symlink_to(elsewhere, target_is_directory=True)  # one file, two names
    for given in (folder, f"{folder}/**/*"):
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            files = [Path(name).relative_to(folder).as_posix()
                     for name, _ in module(given).fingerprint["files"]]
        assert files == ["a.txt", "also linked/e.txt", "b/a.txt", "b/c.md"], given
        assert "left out 1 link(s) that lead nowhere: " in caplog.text and "gone.txt" in caplog.text


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_a_pipe_in_a_folder_or_glob_is_named_as_left_out(tmp_path: Path, caplog) -> None:
    # A FIFO was left out without a word; one a glob matched alone was "matches no files".
    folder = tmp_path / "my texts, é"
    folder.mkdir()
    (folder / "a.txt").write_text("some text\n")
    os.mkfifo(folder / "b 😀.txt")  # nothing writes to it: reading it would wait for ever
    for given in (str(folder), f"{folder}/*.txt"):
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            assert text_files(given, "data.path") == [folder / "a.txt"]
        assert (f"left out 1 pipe(s), socket(s) or device(s), which are not files (to train on what one "
                f"gives, save it to a file first: COMMAND > corpus.txt): {folder / 'b 😀.txt'}"
                ) in caplog.text
    (folder / "a.txt").unlink()
    for given in (str(folder), f"{folder}/b*"):
        with pytest.raises(DataError) as err:
            text_files(given, "data.path")
        assert str(err.value) == (f"data.path={given} names no file, only pipe(s), socket(s) or device(s): "
                                  f"{folder / 'b 😀.txt'}; to train on what one gives, save it to a file "
                                  "first: COMMAND > corpus.txt")
    # A link that leads nowhere beside it was named by a warning before; the error left it unsaid.
    (folder / "c, é.txt").symlink_to(tmp_path / "gone.txt")
    for given in (str(folder), f"{folder}/*"):
        with pytest.raises(DataError) as err:
            text_files(given, "data.path")
        assert str(err.value) == (f"data.path={given} names no file, only pipe(s), socket(s) or device(s): "
                                  f"{folder / 'b 😀.txt'}, and 1 link(s) that lead nowhere: "
                                  f"{folder / 'c, é.txt'}; to train on what one gives, save it to a file "
                                  "first: COMMAND > corpus.txt")


def test_val_path_validates_and_all_of_path_trains(folder: Path, tmp_path: Path) -> None:
    held_out = tmp_path / "held out.txt"
    held_out.write_text("the held-out play\n")
    dm = module(folder / "a.txt", val_path=str(held_out))
    assert text_of(dm, "train_ids") == "first file, with \"quotes\" and café\n\n\n"
    assert text_of(dm, "val_ids") == "the held-out play\n"
    assert dm.report_lines()[0].startswith(f"data: {folder / 'a.txt'} and data.val_path {held_out} (2 files)")
    with pytest.raises(DataError, match="both training text"):
        module(folder, val_path=str(folder / "a.txt")).setup()
    # A link elsewhere to a training file is that file: validation would score text it trains on
    # (a hard link, whose path is its own, validated on it).
    (tmp_path / "held").mkdir()
    (tmp_path / "held" / "linked.txt").symlink_to(folder / "b" / "a.txt")
    (tmp_path / "hard link.txt").hardlink_to(folder / "b" / "a.txt")
    for val_path in (tmp_path / "held", tmp_path / "held" / "linked.txt", tmp_path / "hard link.txt"):
        as_named = val_path / "linked.txt" if val_path.is_dir() else val_path
        named = re.escape(f"{folder / 'b' / 'a.txt'} is both training text (data.path) and validation text "
                          f"(data.val_path) (as {as_named})")
        with pytest.raises(DataError, match=f"^{named}"):
            module(folder, val_path=str(val_path)).setup()
    held_out.write_text("ab")  # too short for one window: the error names it, not data.path
    named = re.escape(f"the validation text data.val_path={held_out} has 2 characters, fewer than ")
    with pytest.raises(DataError, match=rf"^{named}model.block_size \+ 1 = 5"):
        module(folder / "a.txt", val_path=str(held_out)).setup()


def test_split_files_holds_out_the_last_whole_files(tmp_path: Path) -> None:
    for i in range(10):
        (tmp_path / f"{i:02d}.txt").write_text(f"file {i} " * 20)
    dm = module(tmp_path, split="files", separator="")
    assert text_of(dm, "val_ids") == "file 9 " * 20  # 10% of the characters: the last file
    dm7 = module(tmp_path, split="files", separator="", train_fraction=0.7)
    assert text_of(dm7, "val_ids").startswith("file 7 ")
    (tmp_path / "zz empty.txt").write_text("")  # last in order: holding it out would validate on nothing
    dm97 = module(tmp_path, split="files", separator="", train_fraction=0.97)  # nearest cut: before it
    assert text_of(dm97, "val_ids") == "file 9 " * 20
    with pytest.raises(DataError, match="one file"):
        module(tmp_path / "00.txt", split="files").setup()


def test_split_files_warns_when_whole_files_miss_the_share_asked_for(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("a long first file " * 200)
    (tmp_path / "b.txt").write_text("short end\n")
    dm = module(tmp_path, split="files", separator="")
    dm.setup()
    [warning] = [line for line in dm.report_lines() if line.startswith("warning:")]
    assert "validation 0.3% of the text, far from the 10%" in warning
    assert "data.split null" in warning
    even = tmp_path / "even"
    even.mkdir()
    for i in range(10):
        (even / f"{i}.txt").write_text(f"file {i} " * 20)
    dm = module(even, split="files", separator="")
    dm.setup()
    assert not [line for line in dm.report_lines() if line.startswith("warning:")]
    with pytest.raises(ConfigError, match=r"data\.split=tail"):
        module(tmp_path, split="tail")


def test_unicode_normalization(tmp_path: Path) -> None:
    path = tmp_path / "u.txt"
    path.write_text("cafe\u0301 \ufb01ne " * 20)  # e + combining accent; the fi ligature
    raw = text_of(module(path))
    assert "\u0301" in raw and "\ufb01" in raw
    nfc = text_of(module(path, normalize="NFC"))
    assert "é" in nfc and "\u0301" not in nfc and "\ufb01" in nfc
    nfkc = text_of(module(path, normalize="NFKC"))
    assert "fine" in nfkc and "\ufb01" not in nfkc
    with pytest.raises(ConfigError, match=r"data\.normalize=NFX"):
        module(path, normalize="NFX")


@pytest.mark.parametrize(
    "line", ["e\u0301" * 400, "e\u0301 " * 400, "\u1100\u1161\u11a8" * 300, "\u0bc6\u0bbe" * 400],
    ids=["combining marks", "words", "hangul jamo", "tamil vowel signs"])
def test_a_line_longer_than_a_chunk_normalizes_as_a_whole(line: str, tmp_path: Path, monkeypatch) -> None:
    # A line with no newline is read in several chunks: none may end inside a character's sequence.
    from chargpt.data.sources import text_files

    monkeypatch.setattr(text_files, "_CHUNK_BYTES", 61)  # cuts inside sequences, as a 16 MB line would
    path = tmp_path / "one line.txt"
    path.write_text(line)
    assert text_of(module(path, normalize="NFC")) == unicodedata.normalize("NFC", line)


def test_one_carriage_return_or_byte_order_mark_is_counted_as_one(tmp_path: Path) -> None:
    # "the text has 1 carriage returns", "1 byte-order marks": a count and its noun disagreed.
    path = tmp_path / "one.txt"
    path.write_text("a line\r\nand a \ufeff mark inside\n" + "more text\n" * 20, newline="")
    dm = module(path)
    dm.setup()
    report = "\n".join(dm.report_lines())
    assert ("the text has 1 carriage return ('\\r', Windows line endings): it is a vocabulary character "
            "and samples will contain it;") in report
    assert ("the text has 1 byte-order mark ('\\ufeff') inside it (not at the start of a file): it is a "
            "vocabulary character") in report


def test_windows_line_endings_are_reported_and_normalized_and_a_bom_is_dropped(tmp_path: Path) -> None:
    path = tmp_path / "win.txt"
    path.write_bytes(b"\xef\xbb\xbf" + b"line one\r\nline two\r\n" * 10)
    dm = module(path)
    text = text_of(dm)
    assert not text.startswith("\ufeff") and "\r\n" in text
    report = "\n".join(dm.report_lines())
    assert "20 carriage returns" in report and "data.newline=normalize" in report
    assert "byte-order mark" in report
    clean = module(path, newline="normalize")
    assert text_of(clean) == "line one\nline two\n" * 10
    assert "carriage" not in "\n".join(clean.report_lines())


def test_vocabulary_report_counts_characters_and_shows_the_rarest(
    corpus: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "t.txt"
    path.write_text(corpus.read_text()[:5000] + "§")
    dm = module(path)
    with caplog.at_level(logging.INFO, logger="chargpt.data"):
        dm.setup("fit")
    line = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("vocabulary:"))
    assert f"{dm.tokenizer.vocab_size} distinct characters" in line
    assert "rarest: '§' x1" in line


def test_the_rarest_characters_name_a_combining_mark_by_its_code_point(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # One accent written as a combining mark (NFD): the rarest were shown by repr, the mark itself,
    # which a terminal draws on the quote before it; an unknown one is named '\u0301' (describe_chars).
    path = tmp_path / "café, naïve 🙂.txt"
    path.write_text("the cafe is open, " * 200 + "cafe\u0301", encoding="utf-8")
    dm = module(path)
    with caplog.at_level(logging.INFO, logger="chargpt.data"):
        dm.setup("fit")
    line = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("vocabulary:"))
    assert "rarest: '\\u0301' x1, " in line and "\u0301" not in line, line


def test_paths_expand_home_and_environment_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("CORPORA", str(tmp_path / "corpora"))
    monkeypatch.delenv("CHARGPT_CACHE_DIR")
    (tmp_path / "corpora").mkdir()
    (tmp_path / "train.txt").write_text("training text " * 10)
    (tmp_path / "corpora" / "val.txt").write_text("validation text " * 5)
    dm = CharDataModule(
        "~/train.txt", block_size=4, batch_size=2, val_path="${CORPORA}/val.txt", cache_dir="~/ids cache"
    )
    assert text_of(dm, "val_ids") == "validation text " * 5
    assert list((tmp_path / "ids cache").glob("*.ids.npy"))


def test_a_path_that_exists_as_typed_keeps_its_dollar_sign(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "elsewhere"))
    text = tmp_path / "songs $HOME" / "a.txt"
    text.parent.mkdir()
    text.write_text("a song " * 10)
    assert text_of(module(text.parent)) == "a song " * 10
    # On the command line too: the value reaches the run as typed.
    assert hydra_argv(["chargpt-train", f"data.path={text.parent}"])[1] == f"data.path='{text.parent}'"
    # And a glob in that folder: its variable is not expanded either ...
    assert text_of(module(text.parent / "*.txt")) == "a song " * 10
    # ... while a variable in a glob's own pattern, in a folder that exists, still is.
    monkeypatch.setenv("SONG", "a")
    assert text_of(module(f"{text.parent}/$SONG*.txt")) == "a song " * 10
    # A file named with a glob's brackets and a dollar sign is taken as named.
    named = tmp_path / "y [1] $HOME.txt"
    named.write_text("named so " * 10)
    assert text_of(module(named)) == "named so " * 10


def test_val_max_chars_scores_a_fixed_prefix_of_a_big_split(corpus: Path) -> None:
    dm = module(corpus, block_size=16, val_max_chars=1000)
    dm.setup()
    assert dm.val_scope == {"chars": 1000, "split_chars": len(dm.val_ids), "capped": True}
    assert dm.val_scored_ids.tolist() == dm.val_ids[:1000].tolist()  # the first 1,000, as reported below
    loader_targets = sum(int((y != -100).sum()) for _, y in dm.val_dataloader())
    assert loader_targets == 999
    assert any("first 1,000" in line for line in dm.report_lines())
    whole = module(corpus, block_size=16, val_max_chars=None)
    whole.setup()
    assert whole.val_scope["capped"] is False
    small = module(corpus, block_size=16)  # the default: exact for a split under a million chars
    small.setup()
    assert small.val_scope["capped"] is False
    with pytest.raises(ConfigError, match="val_max_chars"):
        module(corpus, block_size=16, val_max_chars=8)


@pytest.mark.parametrize(
    ("files", "given", "message"),
    [
        ({}, "{root}", r"has no files \(hidden ones are left out\)"),
        ({}, "{root}/*.nothing", "matches no files"),
        ({b"a.txt": "", b"b.txt": ""}, "{root}", r"its 2 file\(s\) are all empty"),
        ({b"caf\xe9.txt": "x\n"}, "{root}", r"the file name .*caf\\xe9\.txt is not UTF-8; rename it"),
    ],
    ids=["empty folder", "glob matching nothing", "empty files", "a name not UTF-8"],
)
def test_empty_sources_are_one_clear_error(tmp_path: Path, files: dict[bytes, str], given: str,
                                           message: str) -> None:
    root = tmp_path / "empty"
    root.mkdir()
    (root / ".hidden").write_text("left out\n")
    for name, text in files.items():
        (root / os.fsdecode(name)).write_text(text)
    with pytest.raises(DataError, match=message):
        module(given.format(root=root)).setup()


def test_empty_files_in_a_folder_are_left_out_and_said(folder: Path) -> None:
    # Each was read as a file: one more separator in the text, and a file in the count.
    from chargpt.data.text import as_its_run_read
    from chargpt.recorded_text import recorded_data

    (folder / "b" / "empty.txt").write_text("")
    (folder / "z.txt").write_text("")
    dm = module(folder)
    assert text_of(dm) == "first file, with \"quotes\" and café\n\n\nsecond file\n\n\nthird 😀 file\n"
    assert [Path(name).name for name, _ in dm.fingerprint["files"]] == ["a.txt", "a.txt", "c.md"]
    assert dm.report_lines()[0].startswith(f"data: {folder} (3 files, 2 empty ones left out), joined")
    assert as_its_run_read(dm.fingerprint) == {}
    # As versions before read them: what a run they trained recorded, and reads again.
    before = module(folder, read_empty_files=True)
    assert text_of(before) == text_of(dm) + "\n\n" * 2 and len(before.fingerprint["files"]) == 5
    assert as_its_run_read(before.fingerprint) == {"read_empty_files": True}
    assert before.fingerprint["sha256"] != dm.fingerprint["sha256"]
    for fingerprint, reads_them in ((dm.fingerprint, False), (before.fingerprint, True)):
        ckpt = {"hyper_parameters": {}, "callbacks": {"ResumeState": {"corpus": fingerprint}}}
        assert recorded_data(ckpt, "last.ckpt", set()).get("read_empty_files", False) is reads_them


@pytest.mark.parametrize("link", ["symlink_to", "hardlink_to"])
def test_a_file_linked_inside_its_folder_is_read_once_and_never_holds_itself_out(
    folder: Path, link: str
) -> None:
    # A folder read a file under each of its names: its text twice, and with data.split=files the
    # link (last by name) validated on a text it trained on. A glob read it once; a hard link (its
    # own path, even resolved) both read it twice.
    getattr(folder / "zz link.txt", link)(folder / "a.txt")
    (folder / "b" / "empty.txt").write_text("")
    dm = module(folder, split="files", train_fraction=0.8)
    names = [Path(name).relative_to(folder).as_posix() for name, _ in dm.fingerprint["files"]]
    assert names == ["a.txt", "b/a.txt", "b/c.md"]
    assert [Path(n).relative_to(folder).as_posix()
            for n, _ in module(f"{folder}/**/*").fingerprint["files"]] == names
    assert text_of(dm, "val_ids") == "third 😀 file\n"
    assert dm.report_lines()[0].startswith(f"data: {folder} (3 files, 1 empty one left out), joined")
    from chargpt.data.text import as_its_run_read
    from chargpt.recorded_text import recorded_data

    assert as_its_run_read(dm.fingerprint) == {}
    # As versions before read it: what a run they trained recorded, and reads again.
    before = module(folder, split="files", train_fraction=0.8, read_links_twice=True)
    assert [Path(n).name for n, _ in before.fingerprint["files"]][-1] == "zz link.txt"
    # A hard link's name resolves to a path of its own: read again by resolved path, which keeps it.
    reading = "read_links_twice" if link == "symlink_to" else "read_hard_links_twice"
    assert as_its_run_read(before.fingerprint) == {reading: True}
    again = module(folder, split="files", train_fraction=0.8, **{reading: True})
    assert again.fingerprint == before.fingerprint
    assert before.fingerprint["sha256"] != dm.fingerprint["sha256"]
    for fingerprint, reads_them in ((dm.fingerprint, False), (before.fingerprint, True)):
        ckpt = {"hyper_parameters": {}, "callbacks": {"ResumeState": {"corpus": fingerprint}}}
        assert recorded_data(ckpt, "last.ckpt", set()).get(reading, False) is reads_them


def _read_by_resolved_path(files: list[Path], keep_empty: bool = False, *_: bool) -> tuple[list[Path], int]:
    """files_read as it was between 2026-12-06's two link changes: a file told by its resolved path."""
    first: dict[str, Path] = {}
    for file in sorted(files):
        first.setdefault(os.path.realpath(file), file)
    named = sorted(first.values())
    kept = named if keep_empty else [f for f in named if f.stat().st_size]
    return kept, len(named) - len(kept)


def test_a_run_that_told_files_by_resolved_path_reads_its_hard_link_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A folder with a hard link (h.txt, to a.txt) and a symbolic link (s.txt, to b.txt), trained
    # while files were told by their resolved path: its record lists h.txt and not s.txt. Two of
    # its names lead to one file, so it was read again under every name, s.txt too: "has changed
    # ... (added: .../s.txt)" from eval, resume and the copy check.
    from chargpt.data import text
    from chargpt.data.text import CharText, as_its_run_read

    root = tmp_path / "hs"
    root.mkdir()
    (root / "a.txt").write_text("alpha text\n")
    (root / "b.txt").write_text("beta text\n")
    (root / "h.txt").hardlink_to(root / "a.txt")
    (root / "s.txt").symlink_to(root / "b.txt")
    with monkeypatch.context() as patched:
        patched.setattr(text, "files_read", _read_by_resolved_path)
        before = CharText(str(root), block_size=4).fingerprint
    assert [Path(name).name for name, _ in before["files"]] == ["a.txt", "b.txt", "h.txt"]
    reading = as_its_run_read(before)
    assert reading == {"read_hard_links_twice": True}
    assert CharText(str(root), block_size=4, **reading).fingerprint["sha256"] == before["sha256"]
    # Read now, a.txt and b.txt once each.
    assert [Path(name).name for name, _ in CharText(str(root), block_size=4).fingerprint["files"]] == \
        ["a.txt", "b.txt"]


def test_files_on_a_file_system_without_inode_numbers_are_each_read(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Where every file's inode number is 0 (some of Windows' file systems), all were one file: a
    # folder read its first file alone.
    from chargpt.data.sources import text_files

    real_stat = os.stat

    def no_inodes(path, *args, **kwargs):
        found = real_stat(path, *args, **kwargs)
        times = {name: getattr(found, name) for name in ("st_atime", "st_mtime", "st_ctime", "st_atime_ns",
                                                         "st_mtime_ns", "st_ctime_ns")}
        return os.stat_result((found.st_mode, 0, *tuple(found)[2:]), times)

    monkeypatch.setattr(text_files.os, "stat", no_inodes)
    names = [Path(name).relative_to(folder).as_posix() for name, _ in module(folder).fingerprint["files"]]
    assert names == ["a.txt", "b/a.txt", "b/c.md"]


def test_a_run_that_validated_on_a_hard_link_to_its_text_reads_it_again(tmp_path: Path) -> None:
    # Trained before a hard link was told from its file's path, a validation text hard-linked to the
    # training text was taken as another text; read again, it was refused as the training text.
    from chargpt.data.text import CharText, as_its_run_read

    (tmp_path / "train.txt").write_text("some training text\n" * 4)
    (tmp_path / "val.txt").hardlink_to(tmp_path / "train.txt")
    record = {"files": [[str(tmp_path / name), "0" * 64] for name in ("train.txt", "val.txt")]}
    reading = as_its_run_read(record)
    assert reading == {"read_hard_links_twice": True}
    read = CharText(str(tmp_path / "train.txt"), block_size=4, val_path=str(tmp_path / "val.txt"), **reading)
    assert [Path(name).name for name, _ in read.fingerprint["files"]] == ["train.txt", "val.txt"]
    with pytest.raises(DataError, match="is both training text"):
        CharText(str(tmp_path / "train.txt"), block_size=4, val_path=str(tmp_path / "val.txt")).encoded()


def test_a_run_that_read_its_empty_files_reads_them_with_a_validation_text_of_its_own(
    folder: Path, tmp_path: Path
) -> None:
    # The training files' list was extended with the validation files in place: every validation
    # file then counted as training text too, and the resume was refused ("is both training text
    # (data.path) and validation text").
    (folder / "b" / "empty.txt").write_text("")
    held_out = tmp_path / "held out.txt"
    held_out.write_text("validation text, a file of its own\n")
    dm = module(folder, val_path=str(held_out), read_empty_files=True)
    dm.setup()
    names = [Path(name).name for name, _ in dm.fingerprint["files"]]
    assert names == ["a.txt", "a.txt", "c.md", "empty.txt", "held out.txt"]
    assert dm.tokenizer.decode(dm.val_ids) == held_out.read_text()


def test_the_cache_beside_one_text_never_joins_its_folder(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Trained on alone, a text gets its cache beside it; its folder and a glob of it read as before.
    monkeypatch.delenv("CHARGPT_CACHE_DIR")
    before, globbed = text_of(module(folder)), text_of(module(f"{folder}/*"))
    files = set(folder.iterdir())
    module(folder / "a.txt", block_size=2).setup()
    module(folder / "a.txt", block_size=2, vocab=sorted(set(before))).setup()  # a fine-tune's vocabulary
    cached = set(folder.iterdir()) - files
    assert len(cached) == 4 and all(CACHE_FILE.search(p.name) for p in cached), cached
    assert text_of(module(folder)) == before and text_of(module(f"{folder}/*")) == globbed


@pytest.mark.parametrize("name", ["my corpus", "notes [2024]", "weird 'q', a=b"])
def test_a_binary_file_in_a_directory_is_named_with_a_glob_that_works(tmp_path: Path, name: str) -> None:
    folder = tmp_path / name
    (folder / "b").mkdir(parents=True)
    (folder / "a.txt").write_text("first text\n" * 5)
    (folder / "b" / "c.txt").write_text("second text\n" * 5)
    (folder / "b" / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR")
    with pytest.raises(DataError, match=r"logo\.png inside .* holds NUL bytes") as err:
        module(folder).setup()
    # The example, as a shell hands it over, names the texts and leaves the picture out.
    (setting,) = shlex.split(str(err.value).split("e.g. ", 1)[1])
    joined = "first text\n" * 5 + "\n\n" + "second text\n" * 5
    assert text_of(module(setting.removeprefix("data.path="))) == joined


def test_a_utf16_text_without_a_byte_order_mark_is_named_alone_and_in_a_folder(tmp_path: Path) -> None:
    # Its bytes are valid UTF-8, but every other character would train as a NUL.
    text = tmp_path / "notes" / "diary.txt"
    text.parent.mkdir()
    text.write_bytes("Dear diary, today was long.\n".encode("utf-16-le") * 20)
    with pytest.raises(DataError, match=r"diary\.txt holds NUL bytes \(UTF-16 text, or a binary file\?\); "
                                        r"if it is text, convert it to UTF-8 \(iconv -f UTF-16 -t UTF-8\)$"):
        module(text).setup()
    # In a folder: a glob of *.txt would keep it, so none is offered.
    with pytest.raises(DataError, match=r"diary\.txt inside .* holds NUL bytes .*; if it is text, convert it "
                                        r"to UTF-8 .*, or remove it$"):
        module(text.parent).setup()


def test_utf16_cjk_text_has_no_nul_byte_and_still_gets_utf16_advice(tmp_path: Path) -> None:
    # Its byte-order mark says UTF-16; the Latin-1 advice would have made it garbled text that trains.
    text = tmp_path / "notes" / "poem.txt"
    text.parent.mkdir()
    text.write_bytes(("人大中国天下" * 50).encode("utf-16"))  # one line: a newline would be 0A 00
    assert b"\0" not in text.read_bytes()
    for given in (text, text.parent):
        with pytest.raises(DataError, match=r"poem\.txt (inside .* )?starts with a UTF-16 byte-order mark "
                                            r"\(UTF-16 text\); if it is text, convert it to UTF-8 \(iconv -f "
                                            r"UTF-16 -t UTF-8\)"):
            module(given).setup()


def test_a_latin1_text_in_a_folder_gets_latin1_advice_and_a_glob_that_leaves_it_out(tmp_path: Path) -> None:
    # The advice was UTF-16's, which a file of one-byte accents never is.
    folder = tmp_path / "my texts"
    folder.mkdir()
    (folder / "a.txt").write_text("first text\n" * 5)
    (folder / "old.md").write_bytes("café crème, señor\n".encode("latin-1") * 5)
    advice = (r"old\.md inside .* is not UTF-8 text .*; if it is text, convert it to UTF-8 \(iconv -f CP1252 "
              r"-t UTF-8, .*\), or remove it, or give data\.path a glob that leaves it out, e\.g\. "
              r"'data\.path=.*/my texts/\*\*/\*\.txt'$")
    with pytest.raises(DataError, match=advice):
        module(folder).setup()


def test_a_latin1_text_in_a_folder_or_glob_is_worded_as_alone(tmp_path: Path) -> None:
    # Alone it named the bad byte's offset; in a folder or glob it asked "(another encoding, or a
    # binary file?)" instead.
    folder = tmp_path / "textes é 🚀"
    folder.mkdir()
    (folder / "a.txt").write_text("first text\n" * 5)
    (folder / "b.txt").write_bytes("café crème\n".encode("latin-1"))
    said = r"b\.txt{} is not UTF-8 text \(bad byte near offset 3\); if it is text, convert it to UTF-8"
    glob_words = r" \(matched by .*\)"
    for given, where in ((folder / "b.txt", ""), (folder, r" inside .*"), (folder / "*.txt", glob_words)):
        with pytest.raises(DataError, match=said.format(where)):
            module(given).setup()


def test_the_encoding_advised_for_a_windows_text_reads_it_back_as_written(tmp_path: Path) -> None:
    # The advice named LATIN1, which reads Windows' quotes, dashes and euro sign (bytes 0x80-0x9f) as
    # control characters: the converted file then trained on them without a word.
    written = "Café crème — “quoted” for €5, naïve résumé.\r\n" * 5
    text = tmp_path / "notes.txt"
    text.write_bytes(written.encode("cp1252"))
    with pytest.raises(DataError, match=r"iconv -f (\S+) -t UTF-8") as err:
        module(text).setup()
    advised = re.search(r"iconv -f (\S+) -t UTF-8", str(err.value)).group(1)
    assert text.read_bytes().decode(advised) == written
    assert "caf\xe9".encode("latin-1").decode(advised) == "café"  # a Latin-1 text reads alike


def test_a_nul_byte_past_the_head_of_a_file_is_named_with_its_offset(tmp_path: Path) -> None:
    # Only the first bytes were checked: a late NUL trained as a character of the vocabulary.
    text = tmp_path / "log.txt"
    head = "plain text line\n" * 2000
    text.write_bytes(head.encode() + b"tail\0end\n")
    with pytest.raises(DataError, match=re.escape(f"{text} holds a NUL byte at offset {len(head) + 4}")):
        module(text).setup()



def test_a_stray_nul_in_utf8_text_is_named_with_its_offset_not_as_utf16(tmp_path: Path) -> None:
    # One NUL in the first bytes of UTF-8 text got UTF-16's advice (iconv -f UTF-16), which would
    # have turned the whole file into garbage.
    text = tmp_path / "notes.txt"
    text.write_bytes(b"plain text line\n" * 50 + b"tail\0end\n" + b"more text\n" * 50)
    for given in (text, tmp_path):
        with pytest.raises(DataError, match=re.escape(f"{text} holds a NUL byte at offset {16 * 50 + 4}")):
            module(given).setup()


def test_a_short_file_with_one_nul_is_not_taken_for_utf16(tmp_path: Path) -> None:
    # One NUL in a file under 100 bytes was "UTF-16 text" (iconv -f UTF-16 would garble it): a short
    # text with a stray NUL is named with its offset, a short binary file as one.
    text = tmp_path / "texts" / "line.txt"
    text.parent.mkdir()
    text.write_bytes(b"To be, or not to be:\0 that is the question.\n")
    for given in (text, text.parent):
        with pytest.raises(DataError, match=re.escape(f"{text} holds a NUL byte at offset 20")):
            module(given).setup()
    blob = tmp_path / "blob.dat"
    blob.write_bytes(b"\x89\x50\x4e\x47\x0d\x0a\x1a\x0a\0\x11\x22\x33\x44\x55\x66\x77\x7f")
    binary = r"blob\.dat holds NUL bytes and is not UTF-8 text \(a binary file\?\); if it is text, convert it"
    with pytest.raises(DataError, match=binary) as err:
        module(blob).setup()
    assert "UTF-16" not in str(err.value)


def test_chinese_in_utf16_without_a_mark_gets_the_utf16_advice(tmp_path: Path) -> None:
    # Its NULs are only the high bytes of its newlines and ASCII spaces: few, but all at one parity.
    poem = tmp_path / "poem.txt"
    lines = "春眠不覺曉，處處聞啼鳥。夜來風雨聲，花落知多少。\n" * 30 + "床前明月光 疑是地上霜\n"
    poem.write_bytes(lines.encode("utf-16-le"))
    with pytest.raises(DataError, match=re.escape("holds NUL bytes (UTF-16 text, or a binary file?); "
                                                  "if it is text, convert it to UTF-8 (iconv -f UTF-16")):
        module(poem).setup()


# -- Hugging Face datasets -------------------------------------------------------------------------

needs_datasets = pytest.mark.skipif(lacks("datasets"), reason="the hf extra is not installed")


@pytest.fixture
def datasets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The datasets library, its cache in this test's folder."""
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")
    return datasets


def save_dataset(datasets: ModuleType, folder: Path, lines: list[str], held_out: int = 100) -> None:
    """`lines` saved as a dataset: a train split, and the last `held_out` lines as validation."""
    datasets.DatasetDict({
        "train": datasets.Dataset.from_dict({"text": lines[:-held_out]}),
        "validation": datasets.Dataset.from_dict({"text": lines[-held_out:]}),
    }).save_to_disk(str(folder))


def hf_module(name: Path | str, **kwargs) -> CharDataModule:
    return CharDataModule(None, block_size=4, batch_size=2, name=str(name), **kwargs)


@needs_datasets
def test_a_saved_dataset_named_relative_is_the_same_text_from_any_folder(
    tmp_path: Path, datasets: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Its splits were identified by the name as typed: the resume command, which names the folder
    # absolute to run from anywhere, was refused ("added: /.../my data/saved[train]; removed:
    # saved[train]"), and chargpt-eval's advice named it relative to where the run was launched.
    from chargpt.checkpoints import stored_corpus
    from chargpt.data.text import as_its_run_read
    from chargpt.recorded_text import training_text

    saved = tmp_path / "my data" / "saved"
    datasets.DatasetDict({
        "train": datasets.Dataset.from_dict({"text": [f"row {i}" for i in range(30)]}),
        "validation": datasets.Dataset.from_dict({"text": ["held out"] * 3}),
    }).save_to_disk(str(saved))
    monkeypatch.chdir(saved.parent)
    typed = hf_module("saved", val_split="validation").fingerprint
    monkeypatch.chdir(tmp_path)
    absolute = hf_module(saved, val_split="validation").fingerprint
    assert typed["sha256"] == absolute["sha256"] and typed["dataset"]["name"] == str(saved)
    # A run before 2026-12-06 identified them as typed: its resume names them as it did.
    monkeypatch.chdir(saved.parent)
    before = hf_module("saved", val_split="validation", dataset_label="saved").fingerprint
    assert before["sha256"] != absolute["sha256"] and before["dataset"]["label"] == "saved"
    before["dataset"] = {**before["dataset"], "name": "saved"}  # as those runs recorded it: no label
    del before["dataset"]["label"]
    monkeypatch.chdir(tmp_path)
    ckpt = {"hyper_parameters": {}, "callbacks": {"ResumeState": {"corpus": before}}}
    resumed = hf_module(saved, val_split="validation", **as_its_run_read(stored_corpus(ckpt)))
    assert resumed.fingerprint["sha256"] == before["sha256"]
    # The copy check reads it as its resume does, from where it ran (refused as changed, its splits
    # identified by the folder absolute).
    monkeypatch.chdir(saved.parent)
    text, read = training_text(ckpt, "last.ckpt", None, None)
    assert text == "\n\n".join(f"row {i}" for i in range(30)) + "\n\n" and read == "dataset saved (train)"


@needs_datasets
def test_the_text_a_run_trained_on_is_named_alike_from_any_folder(
    tmp_path: Path, datasets: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The trackers' `data` hyperparameter: runs on different texts, all else alike, had the same
    # row; a file or a saved dataset named relative names the same text from any folder.
    saved, corpus = tmp_path / "my data" / "saved, é 🎭", tmp_path / "my data" / "corpus é.txt"
    datasets.Dataset.from_dict({"text": [f"row {i}" for i in range(30)]}).save_to_disk(str(saved))
    corpus.write_text("some text " * 50)
    monkeypatch.chdir(saved.parent)
    assert hf_module(saved.name).place == f"dataset {saved} (train)"
    assert CharDataModule(corpus.name, block_size=4, batch_size=2).place == str(corpus)
    assert hf_module("some/hub-name", split="test").place == "dataset some/hub-name (test)"


@needs_datasets
def test_a_saved_dataset_resumed_where_it_was_moved_to_is_recorded_there(
    tmp_path: Path, datasets: ModuleType
) -> None:
    # The resume read it at its new folder, but its checkpoints still named the old one: every later
    # chargpt-eval said it "holds none now (moved or deleted)" again.
    from chargpt.data.text import as_its_run_read
    from chargpt.recorded_text import moved_folder, recorded_data

    saved = tmp_path / "saved"
    datasets.DatasetDict({"train": datasets.Dataset.from_dict({"text": [f"row {i}" for i in range(30)]})}) \
        .save_to_disk(str(saved))
    first = hf_module(saved).fingerprint
    moved = saved.rename(tmp_path / "moved here")
    assert moved_folder(first) == str(saved)
    resumed = hf_module(moved, **as_its_run_read(first)).fingerprint
    # The same text (its splits keep the name they were identified by), recorded where it is now.
    assert resumed["sha256"] == first["sha256"] and moved_folder(resumed) is None
    assert resumed["dataset"]["name"] == str(moved) and resumed["dataset"]["label"] == str(saved)
    again = hf_module(moved, **as_its_run_read(resumed)).fingerprint
    assert again == resumed  # the next resume reads it as the first did
    ckpt = {"hyper_parameters": {}, "callbacks": {"ResumeState": {"corpus": resumed}}}
    with pytest.raises(DataError) as err:
        recorded_data(ckpt, "last.ckpt", set())
    assert str(err.value).endswith(f"name it: data=hf 'data.name={moved}'")


@needs_datasets
def test_saved_dataset_rows_are_joined_and_a_named_split_validates(
    tmp_path: Path, datasets: ModuleType
) -> None:
    rows = [f"row {i}: «text»" for i in range(30)]
    saved = tmp_path / "saved dataset"
    datasets.DatasetDict({
        "train": datasets.Dataset.from_dict({"text": rows, "id": list(range(30))}),
        "validation": datasets.Dataset.from_dict({"text": ["held out"] * 3, "id": [0, 1, 2]}),
    }).save_to_disk(str(saved))
    dm = hf_module(saved, split="train", val_split="validation", separator="\n")
    assert text_of(dm, "train_ids") == "\n".join(rows) + "\n"
    assert text_of(dm, "val_ids") == "held out\nheld out\nheld out"
    assert dm.fingerprint["sha256"] and "saved dataset[train]" in dm.fingerprint["path"] + str(dm.fingerprint)
    with pytest.raises(DataError, match="no field 'content'; its fields are: text, id"):
        hf_module(saved, split="train", text_field="content").setup()
    splits = "its splits are: train, validation; pass"
    with pytest.raises(DataError, match=re.escape(f"no split 'test'; {splits} data.split=")):
        hf_module(saved, split="test").setup()
    with pytest.raises(DataError, match=re.escape(f"no split 'valid'; {splits} data.val_split=")):
        hf_module(saved, split="train", val_split="valid").setup()
    # Validating on the training split was accepted: the model was scored on text it trained on.
    with pytest.raises(DataError, match=re.escape("data.val_split=train is also the training split")):
        hf_module(saved, split="train", val_split="train").setup()


@needs_datasets
def test_a_split_saved_again_unchanged_is_not_named_as_changed(tmp_path: Path, datasets: ModuleType) -> None:
    # datasets' fingerprint changes when a split is saved again: a resume after the training split
    # was cut named the untouched validation split as changed too.
    import shutil

    saved, edited = tmp_path / "saved ds", tmp_path / "edited"
    datasets.DatasetDict({
        "train": datasets.Dataset.from_dict({"text": [f"row {i}" for i in range(30)]}),
        "validation": datasets.Dataset.from_dict({"text": ["held out"] * 3}),
    }).save_to_disk(str(saved))

    def parts() -> dict[str, str]:
        dm = hf_module(saved, split="train", val_split="validation")
        dm.setup()
        return {Path(name).name: sha for name, sha in dm.fingerprint["files"]}

    before = parts()
    loaded = datasets.load_from_disk(str(saved))
    datasets.DatasetDict({"train": loaded["train"].select(range(20)), "validation": loaded["validation"]}
                         ).save_to_disk(str(edited))
    del loaded
    shutil.rmtree(saved)
    edited.rename(saved)
    after = parts()
    assert before.keys() == after.keys() == {"saved ds[train]", "saved ds[validation]"}
    assert before["saved ds[validation]"] == after["saved ds[validation]"]
    assert before["saved ds[train]"] != after["saved ds[train]"]


@needs_datasets
@pytest.mark.parametrize("val_split", [None, pytest.param("validation", marks=pytest.mark.slow)],
                         ids=["one split", "two splits"])
def test_a_checkpoint_of_an_earlier_version_resumes_on_the_unchanged_dataset(
    tmp_path: Path, corpus: Path, datasets: ModuleType, monkeypatch, capsys, val_split: str | None
) -> None:
    # Before 2026-12-05 a split's identity came from datasets' fingerprint: a run trained then
    # resumes on the same saved dataset, and another dataset is still refused.
    from chargpt.cli.train import main
    from chargpt.data.sources import hf_datasets

    lines = corpus.read_text()[:20000].splitlines()
    saved = tmp_path / "saved ds é"
    save_dataset(datasets, saved, lines)
    run = tmp_path / "run"
    named = ["data=hf", f"data.name={saved}", *([f"data.val_split={val_split}"] if val_split else [])]
    args = [*[a for a in train_args(corpus, run, "sample.max_new_tokens=0", "logger=none")
              if not a.startswith(("data.path=", "trainer.max_steps=")) and a != "data=text"], *named]
    with monkeypatch.context() as then:  # the formula of those versions, which joined empty rows
        then.setattr(hf_datasets, "_content_id", lambda dataset, hash_cache=None: dataset._fingerprint)
        assert run_cli(main, *args, "trainer.max_steps=2", "+data.read_empty_rows=true") == 0
    now = hf_module(saved, split="train", val_split=val_split, read_empty_rows=True)  # as it is resumed
    now.setup()
    recorded = json.loads((run / "metrics.json").read_text())
    assert now.earlier_sha256 is not None and now.earlier_sha256 != now.fingerprint["sha256"]
    capsys.readouterr()
    assert run_cli(main, *args, "trainer.max_steps=4", f"ckpt_path={run}") == 0, capsys.readouterr().err
    assert json.loads((run / "metrics.json").read_text())["step"] == 4 != recorded["step"]
    # Another dataset under the same name: refused, whatever the earlier formula gives for it.
    shutil.rmtree(saved)
    save_dataset(datasets, saved, [*lines[:-101], *lines[-100:]], held_out=100)
    assert run_cli(main, *args, "trainer.max_steps=6", f"ckpt_path={run}") == 2
    assert "cannot resume" in capsys.readouterr().err


@needs_datasets
def test_a_dataset_without_rows_is_one_clear_error(tmp_path: Path, datasets: ModuleType, monkeypatch) -> None:
    # datasets' own IndexError and StopIteration came out as tracebacks.
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf cache"))
    saved = tmp_path / "empty dataset"
    datasets.Dataset.from_dict({"text": []}).save_to_disk(str(saved))
    with pytest.raises(DataError, match=re.escape(f"the dataset at {saved} holds no rows")):
        hf_module(saved, split="train").setup()
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(DataError, match=re.escape("empty.jsonl holds no rows (its files are empty)")):
        hf_module("json", data_files=str(tmp_path / "empty.jsonl"), split="train").setup()


@needs_datasets
def test_a_dataset_saved_as_one_split_has_no_other_split_to_name(
    tmp_path: Path, datasets: ModuleType
) -> None:
    # Its split settings were ignored: data.val_split=validation validated on a copy of the training text.
    rows = [f"row {i}" for i in range(40)]
    saved = tmp_path / "one split"
    datasets.Dataset.from_dict({"text": rows}, split="train").save_to_disk(str(saved))
    assert text_of(hf_module(saved, split="train"), "train_ids").startswith("row 0\n\nrow 1")
    for settings, named in (({"val_split": "validation"}, "data.val_split=validation"),
                            ({"split": "banana"}, "data.split=banana")):
        expected = f"was saved as one split (train), so {named} names none"
        with pytest.raises(DataError, match=re.escape(expected)):
            hf_module(saved, **{"split": "train", **settings}).setup()


@needs_datasets
def test_text_builder_on_local_files_works_offline_with_the_lines_as_they_were(
    tmp_path: Path, datasets: ModuleType
) -> None:
    (tmp_path / "lines.txt").write_text("\n".join(f"line {i}" for i in range(20)))
    dm = hf_module("text", data_files=str(tmp_path / "*.txt"), split="train")  # the default separator
    assert text_of(dm) == "\n".join(f"line {i}" for i in range(20))  # its rows are lines: no blank ones
    # What is hashed (the cache key, the checkpoint's record) is the text as read: the same either way.
    same = hf_module("text", data_files=str(tmp_path / "*.txt"), split="train", separator="\n")
    assert same.fingerprint["sha256"] == dm.fingerprint["sha256"]


@needs_datasets
def test_a_datasets_rows_of_no_text_are_left_out_as_empty_files_are(
    tmp_path: Path, datasets: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    # None rows were left out, but an empty row was joined: two separators where one stood.
    from chargpt.data.sources import hf_datasets
    from chargpt.data.text import as_its_run_read

    saved = tmp_path / "lignes é 🚀"
    rows = ["café, crème", "", "naïve 🚀", None, "", "fin"]
    save_dataset(datasets, saved, [*rows, "held out"], held_out=1)
    dm = hf_module(saved, val_split="validation")
    assert text_of(dm) == "café, crème\n\nnaïve 🚀\n\nfin\n\nheld out"
    assert as_its_run_read(dm.fingerprint).get("read_empty_rows") is None
    with monkeypatch.context() as rows_apart:  # a batch of nothing but a row of no text
        rows_apart.setattr(hf_datasets, "_HF_BATCH_ROWS", 1)
        assert text_of(hf_module(saved, val_split="validation", cache_dir=str(tmp_path / "c"))) == text_of(dm)
    # A run from before reads its rows as it did (its record does not say they were left out), so
    # it resumes on, and is scored with, the text it trained on; its identity is that text's.
    record = dict(dm.fingerprint, dataset={k: v for k, v in dm.fingerprint["dataset"].items()
                                           if k != "empty_rows"})
    before = hf_module(saved, val_split="validation", **as_its_run_read(record))
    assert text_of(before) == "café, crème\n\n\n\nnaïve 🚀\n\n\n\nfin\n\nheld out"
    assert before.fingerprint["sha256"] != dm.fingerprint["sha256"]
    # The text builder's empty rows are blank lines of its files: kept.
    lines = "\n".join(["line one", "", "line two"] * 5)
    (tmp_path / "lines.txt").write_text(lines, encoding="utf-8")
    assert text_of(hf_module("text", data_files=str(tmp_path / "lines.txt"), split="train")) == lines


@needs_datasets
def test_local_builders_files_are_recorded_absolute(
    tmp_path: Path, datasets: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Recorded as typed (corpus/*.txt), chargpt-eval's advice and the copy check read the files of
    # the folder they ran in: another text scored as the run's, or "has changed since".
    (tmp_path / "my corpus").mkdir()
    (tmp_path / "my corpus" / "lines.txt").write_text("\n".join(f"line {i}" for i in range(20)))
    monkeypatch.chdir(tmp_path)
    typed = hf_module("text", data_files="my corpus/*.txt", split="train").fingerprint
    assert typed["dataset"]["data_files"] == str(tmp_path / "my corpus" / "*.txt")
    listed = hf_module("text", data_files={"train": ["my corpus/lines.txt"]}, split="train").fingerprint
    assert listed["dataset"]["data_files"] == {"train": [str(tmp_path / "my corpus" / "lines.txt")]}
    # The same text, as a run before recorded it: its identity does not depend on how it was named.
    monkeypatch.chdir(tmp_path / "my corpus")
    assert hf_module("text", data_files="*.txt", split="train").fingerprint["sha256"] == typed["sha256"]
    # A hub dataset's files are named inside it, a URL anywhere: as given.
    from chargpt.data.sources.hf_datasets import absolute_data_files

    assert absolute_data_files("wikitext", "data/train-*.parquet") == "data/train-*.parquet"
    assert absolute_data_files("csv", "https://example.org/a.csv") == "https://example.org/a.csv"
    # An empty one names no files (it named the folder it ran in, and loaded that).
    with pytest.raises(DataError, match=re.escape("data.data_files= matches no files")):
        hf_module("text", data_files="", split="train").setup()


@needs_datasets
@pytest.mark.parametrize(("files", "message"), [
    ("none/*.txt", "matches no files"),
    ("empty/*.txt", "holds no text (its files are empty)"),
    ("latin1.txt", "/latin1.txt) is not UTF-8 text (bad byte near offset 3); if it is text, convert it"),
])
def test_text_builder_problems_are_one_clear_error(tmp_path: Path, datasets: ModuleType, files: str,
                                                   message: str, monkeypatch) -> None:
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf cache"))
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "a.txt").write_text("")
    (tmp_path / "latin1.txt").write_bytes("café\n".encode("latin-1"))
    with pytest.raises(DataError, match=re.escape(message)):
        hf_module("text", data_files=str(tmp_path / files), split="train").setup()


@needs_datasets
def test_text_builder_names_the_file_that_is_not_utf8_and_its_encodings_advice(
    tmp_path: Path, datasets: ModuleType, monkeypatch
) -> None:
    # The error said only "holds a file that is not UTF-8 text": which of the matched files, and
    # whether UTF-16 or a one-byte encoding, was left to guess.
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf cache"))
    notes = tmp_path / "my notes é"
    notes.mkdir()
    (notes / "a good 😀.txt").write_text("fine text 😀\n" * 20, encoding="utf-8")
    (notes / "b late.txt").write_bytes(("x" * 9000 + "café\n").encode("latin-1"))  # past the first 8 KB
    (notes / "c wide.txt").write_bytes("wide text\n".encode("utf-16"))
    pattern = str(notes / "*.txt")
    with pytest.raises(DataError, match=re.escape(
        f"{notes / 'b late.txt'} (matched by data.data_files={pattern}) is not UTF-8 text (bad byte near "
        "offset 9003); if it is text, convert it to UTF-8 (iconv -f CP1252 -t UTF-8, naming its own "
        "encoding if another), or leave it out of data.data_files"
    )):
        hf_module("text", data_files=pattern, split="train").setup()
    (notes / "b late.txt").unlink()
    with pytest.raises(DataError, match=re.escape(
        f"{notes / 'c wide.txt'} (matched by data.data_files={pattern}) holds NUL bytes (UTF-16 text, or a "
        "binary file?); if it is text, convert it to UTF-8 (iconv -f UTF-16 -t UTF-8)"
    )):
        hf_module("text", data_files=pattern, split="train").setup()


@needs_datasets
def test_text_builder_error_passes_over_a_matched_file_it_cannot_read(
    tmp_path: Path, datasets: ModuleType, monkeypatch
) -> None:
    # Looking for the file datasets could not decode, an unreadable one before it (no permission)
    # must not turn the error into a traceback.
    from chargpt.data.sources import text_files

    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf cache"))
    (tmp_path / "a locked.txt").write_text("text\n")
    (tmp_path / "b latin1.txt").write_bytes("café\n".encode("latin-1"))
    real = text_files.not_utf8

    def locked(path: Path) -> str | None:
        if path.name == "a locked.txt":
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(text_files, "not_utf8", locked)
    with pytest.raises(DataError, match=re.escape("b latin1.txt (matched by data.data_files=")):
        hf_module("text", data_files=str(tmp_path / "*.txt"), split="train").setup()


@needs_datasets
def test_text_builder_keeps_a_files_byte_order_mark_and_the_warning_says_so(
    tmp_path: Path, datasets: ModuleType, monkeypatch
) -> None:
    # datasets' text builder keeps the mark that starts a file; the warning said it was "not at the
    # start of a file", which sent the user looking inside their files for it.
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf cache"))
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "windows.txt").write_bytes(b"\xef\xbb\xbf" + "saved by Notepad 😀\n".encode() * 30)
    dm = hf_module("text", data_files=str(tmp_path / "notes" / "*.txt"), split="train")
    assert text_of(dm).startswith("\ufeff")
    report = "\n".join(dm.report_lines())
    assert "not at the start of a file" not in report
    assert ("warning: the text has 1 byte-order mark ('\\ufeff') in it (data=hf keeps one that starts a "
            "file or a row): it is a vocabulary character; remove it, or read text files with data=text, "
            "which drops the one a file starts with") in report


@needs_datasets
def test_hf_rows_stream_in_batches_without_joining_the_whole_text(
    tmp_path: Path, datasets: ModuleType
) -> None:
    from chargpt.data.sources import hf_datasets

    rows = [f"line {i}" for i in range(2500)]
    saved = tmp_path / "big"
    datasets.Dataset.from_dict({"text": rows}).save_to_disk(str(saved))
    part = hf_datasets.hf_part(datasets.load_from_disk(str(saved)), "big", "text", "\n")
    chunks = list(part.chunks())
    assert len(chunks) == 3 and sum(units for _, units in chunks) == 2500  # 1024-row batches
    assert "".join(text for text, _ in chunks) == "\n".join(rows)


@needs_datasets
def test_a_saved_datasets_files_are_hashed_once_not_at_every_start(
    tmp_path: Path, datasets: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Its Arrow files were read whole at every start to name its content (seconds for a big one).
    real_time_ns = time.time_ns
    monkeypatch.setattr(time, "time_ns", lambda: real_time_ns() + 10**10)  # the files settled 10 s ago
    saved = tmp_path / "saved"
    save_dataset(datasets, saved, [f"line {i}" for i in range(300)])
    opened: list[str] = []
    real_open = Path.open

    def counting_open(path: Path, *args, **kwargs):  # type: ignore[no-untyped-def]
        if path.suffix == ".arrow":
            opened.append(path.name)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(Path, "open", counting_open)
    first = hf_module(saved, split="train", val_split="validation", cache_dir=str(tmp_path / "cache"))
    first.setup()
    assert len(opened) == 2  # each split's file, hashed once
    again = hf_module(saved, split="train", val_split="validation", cache_dir=str(tmp_path / "cache"))
    again.setup()
    assert len(opened) == 2 and again.fingerprint == first.fingerprint


def test_text_files_are_hashed_once_not_at_every_start(folder: Path, tmp_path: Path, monkeypatch) -> None:
    # A text's identity is each file's sha256: a big one was hashed in full at every start.
    from chargpt.data.sources import file_hashes, text_files

    real_time_ns = time.time_ns
    monkeypatch.setattr(time, "time_ns", lambda: real_time_ns() + 10**10)  # the files settled 10 s ago
    hashed: list[str] = []

    def counting(path: Path) -> str:
        hashed.append(Path(path).name)
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()

    for where in (file_hashes, text_files):  # (wherever a text file's digest is made)
        monkeypatch.setattr(where, "sha256_of", counting, raising=False)
    first = module(folder, cache_dir=str(tmp_path / "cache"))
    first.setup()
    assert sorted(hashed) == ["a.txt", "a.txt", "c.md"]
    again = module(folder, cache_dir=str(tmp_path / "cache"))
    again.setup()
    assert len(hashed) == 3 and again.fingerprint == first.fingerprint  # the same identity: runs resume
    assert first.fingerprint["files"][0][1] == hashlib.sha256((folder / "a.txt").read_bytes()).hexdigest()
    (folder / "a.txt").write_text("first file, edited\n")
    edited = module(folder, cache_dir=str(tmp_path / "cache"))
    edited.setup()
    assert hashed[3:] == ["a.txt"] and edited.fingerprint["sha256"] != first.fingerprint["sha256"]


def test_a_file_hashed_once_is_hashed_again_once_written(tmp_path: Path, monkeypatch) -> None:
    from chargpt.data.sources import file_hashes

    monkeypatch.setattr(file_hashes, "_SETTLED_NS", 0)
    data = tmp_path / "data.arrow"
    data.write_bytes(b"first version")
    cache = tmp_path / "cache"
    [before] = file_hashes.cached_sha256s([data], cache)
    assert before == hashlib.sha256(b"first version").hexdigest()
    assert file_hashes.cached_sha256s([data], cache) == [before]
    stamp = data.stat().st_mtime_ns
    data.write_bytes(b"other version")  # the same size, maybe in the same clock tick: the time set apart
    os.utime(data, ns=(stamp + 10**9, stamp + 10**9))
    assert file_hashes.cached_sha256s([data], cache) == [hashlib.sha256(b"other version").hexdigest()]
    # Just written (within the clock's tick of a later write): hashed, not recorded.
    monkeypatch.setattr(file_hashes, "_SETTLED_NS", 10**12)
    fresh = tmp_path / "fresh.arrow"
    fresh.write_bytes(b"new")
    file_hashes.cached_sha256s([fresh], cache)
    assert os.path.realpath(fresh) not in json.loads((cache / file_hashes.HASHES_FILE).read_text())


def test_the_digest_record_drops_files_gone_or_rewritten_when_it_is_written(tmp_path: Path, monkeypatch):
    # It only grew: the entries of a folder deleted or moved stayed (2,000 files made it 488 kB).
    from chargpt.data.sources import file_hashes

    monkeypatch.setattr(file_hashes, "_SETTLED_NS", 0)
    cache = tmp_path / "cache"
    record = cache / file_hashes.HASHES_FILE
    kept, gone, rewritten, moved = (tmp_path / f"{n}.txt" for n in ("kept", "gone", "rewritten", "moved"))
    for file in (kept, gone, rewritten, moved):
        file.write_text(f"the text of {file.name}\n")
    file_hashes.cached_sha256s([kept, gone, rewritten, moved], cache)
    assert len(json.loads(record.read_text())) == 4
    gone.unlink()
    moved.rename(tmp_path / "moved away.txt")
    stamp = rewritten.stat().st_mtime_ns
    rewritten.write_text("the text of rewritten.txt, edited\n")
    os.utime(rewritten, ns=(stamp + 10**9, stamp + 10**9))
    # A start that hashes nothing writes nothing, and looks at no other entry to do so.
    before = record.read_bytes()
    monkeypatch.setattr(file_hashes, "_still_matches", lambda *_: pytest.fail("an entry was checked"),
                        raising=False)
    file_hashes.cached_sha256s([kept], cache)
    assert record.read_bytes() == before
    monkeypatch.undo()
    monkeypatch.setattr(file_hashes, "_SETTLED_NS", 0)
    new = tmp_path / "new.txt"
    new.write_text("a file read for the first time\n")
    file_hashes.cached_sha256s([new], cache)
    assert set(json.loads(record.read_text())) == {os.path.realpath(kept), os.path.realpath(new)}


@pytest.mark.parametrize("named", ["file", "folder"])
def test_a_stale_digest_record_is_refused_once_then_the_file_hashed_afresh(
    folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, named: str
) -> None:
    # An entry whose stamp matches and whose sha256 is not the file's (a damaged record, or a file
    # system whose times cannot be trusted): every later run said the file "changed while it was
    # read", for ever, the entry never dropped.
    from chargpt.data.sources import file_hashes

    monkeypatch.setattr(file_hashes, "_SETTLED_NS", 0)
    file = folder / "a.txt"
    file.write_text(file.read_text() * 5)
    path, cache = (file if named == "file" else folder), tmp_path / "cache"
    text = text_of(module(path, cache_dir=str(cache)))
    record = cache / file_hashes.HASHES_FILE
    entries = json.loads(record.read_text())
    entries[os.path.realpath(file)]["sha256"] = hashlib.sha256(b"another text").hexdigest()
    record.write_text(json.dumps(entries))
    with pytest.raises(DataError, match=r"a\.txt changed while it was read \(.*; run again once nothing"):
        text_of(module(path, cache_dir=str(cache)))
    assert text_of(module(path, cache_dir=str(cache))) == text
    assert json.loads(record.read_text())[os.path.realpath(file)]["sha256"] == file_hashes.sha256_of(file)


def test_a_text_refused_as_written_to_keeps_the_digest_another_run_recorded_of_it_since(
    folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Written to once this run hashed it, and hashed again by another run meanwhile: the refusal
    # dropped the file's entry whichever it was by then, the other run's, of the file as it now is.
    from chargpt.data.sources import file_hashes, text_files

    monkeypatch.setattr(file_hashes, "_SETTLED_NS", 0)
    file, cache = folder / "a.txt", tmp_path / "cache"

    def written_to_and_hashed_by_another_run() -> None:
        file.write_text("the text as it is now\n")
        file_hashes.cached_sha256s([file], cache)

    _meanwhile(monkeypatch, text_files, "cached_sha256s", written_to_and_hashed_by_another_run)
    with pytest.raises(DataError, match=r"a\.txt changed while it was read"):
        text_of(module(file, cache_dir=str(cache)))
    record = json.loads((cache / file_hashes.HASHES_FILE).read_text())
    assert record[os.path.realpath(file)]["sha256"] == hashlib.sha256(b"the text as it is now\n").hexdigest()


def _meanwhile(monkeypatch: pytest.MonkeyPatch, where: ModuleType, name: str,
               act: Callable[[], object]) -> None:
    """`act` done once, as `where.name` returns (the first time it is called)."""
    real, acts = getattr(where, name), [act]

    def then_act(*args, **kwargs):
        result = real(*args, **kwargs)
        if acts:
            acts.pop()()
        return result

    monkeypatch.setattr(where, name, then_act)


@pytest.mark.parametrize("named", ["file", "folder", "glob"])
def test_a_text_written_to_after_it_is_hashed_is_refused_not_cached_as_the_text_hashed(
    folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, named: str
) -> None:
    # Hashed, then read again to be encoded: a file saved in between was trained on as its new text,
    # and the encoding cache kept that text's ids under the old text's sha256; every later run on
    # the old text trained on them, and a resume of the run was refused, its text "changed".
    from chargpt.data.sources import text_files

    file = folder / "a.txt"
    old = file.read_text() * 5  # long enough for each split to hold a window
    file.write_text(old)
    path = {"file": file, "folder": folder, "glob": f"{folder}/**/*.txt"}[named]
    saved_since = "the text saved since\n" * 5
    _meanwhile(monkeypatch, text_files, "cached_sha256s", lambda: file.write_text(saved_since))
    cache = tmp_path / "cache"
    with pytest.raises(DataError) as err:
        text_of(module(path, cache_dir=str(cache)))
    assert str(err.value) == (f"{file} changed while it was read (it was written to after its sha256 was "
                              "taken); run again once nothing writes to it")
    assert not list(cache.glob("*.ids.npy"))
    file.write_text(old)  # the text hashed, back: read as itself
    assert text_of(module(path, cache_dir=str(cache))).startswith(old)


@pytest.mark.parametrize("saved", ["first file, longer now\n" * 9, "first\n" * 12, ("x" * 28 + "\n") * 5])
def test_a_text_written_to_between_the_encodings_two_reads_is_refused(
    folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, saved: str
) -> None:
    # Its characters counted, then its ids written: longer, a traceback (could not broadcast);
    # shorter, ids of the first character padded on; of other characters, those ids too, cached.
    from chargpt.data import encoding

    file = folder / "a.txt"
    file.write_text("first file, as it was hashed\n" * 5)  # the same size as the last text saved
    _meanwhile(monkeypatch, encoding, "_scan", lambda: file.write_text(saved))
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match=r" changed while it was read \("):
        text_of(module(file, cache_dir=str(cache)))
    assert not list(cache.glob("*"))
    assert text_of(module(file, cache_dir=str(cache))) == saved


@pytest.mark.parametrize("when", ["listed", "hashing another file", "hashed", "counted"])
def test_a_text_file_removed_while_the_text_is_read_is_named_not_a_traceback(
    folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, when: str
) -> None:
    # Listed, then gone: a traceback (FileNotFoundError); gone between the encoding's two reads, the
    # error blamed the cache: "cannot write the encoding cache in ... set CHARGPT_CACHE_DIR"; gone
    # before its first bytes were checked to be text: "cannot read ...; make it readable".
    from chargpt.data import encoding
    from chargpt.data.sources import file_hashes, text_files

    file = folder / "b" / "a.txt"
    # (listed: gone before its first bytes are checked to be text)
    where = {"listed": (text_files, "_walk"), "hashing another file": (file_hashes, "sha256_of"),
             "hashed": (text_files, "cached_sha256s"), "counted": (encoding, "_scan")}[when]
    _meanwhile(monkeypatch, *where, file.unlink)
    with pytest.raises(DataError) as err:
        text_of(module(folder, cache_dir=str(tmp_path / "cache")))
    assert str(err.value) == (f"{file} changed while it was read (it was moved or removed after it was "
                              "listed); run again once nothing writes to it")


@needs_datasets
def test_a_saved_dataset_written_to_after_it_is_hashed_is_refused_not_cached_as_the_one_hashed(
    tmp_path: Path, datasets: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    # save_to_disk writes a split's Arrow files in place: saved again once they were hashed, its new
    # rows were encoded and cached under the old rows' sha256, and every later run on the old rows
    # trained on the new ones from the cache. (New rows of the old rows' lengths: the reader maps the
    # files, and its old offsets into rows of other lengths, saved under it, could crash the process.)
    from chargpt.data.sources import hf_datasets

    saved, cache = tmp_path / "saved", tmp_path / "cache"
    old = datasets.Dataset.from_dict({"text": [f"old row {i} " * 5 for i in range(50)]})
    old.save_to_disk(str(saved))
    new = datasets.Dataset.from_dict({"text": [f"new row {i} " * 5 for i in range(50)]})
    _meanwhile(monkeypatch, hf_datasets, "cached_sha256s", lambda: new.save_to_disk(str(saved)))
    with pytest.raises(DataError) as err:
        text_of(hf_module(saved, cache_dir=str(cache)))
    assert str(err.value) == (f"{saved}[train] changed while it was read (its files were written to after "
                              "their sha256 was taken); run again once nothing writes to it")
    assert not list(cache.glob("*.ids.npy"))
    assert text_of(hf_module(saved, cache_dir=str(cache))).startswith("new row 0")


def test_missing_datasets_package_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "datasets", None)
    with pytest.raises(ChargptError, match=r"in chargpt's folder: pip install -e '\.\[hf\]'$"):
        hf_module("anything").setup()


# -- through chargpt-train -------------------------------------------------------------------------


@pytest.mark.slow
def test_training_on_a_folder_reports_the_validation_scope(
    folder: Path, tmp_path: Path, corpus: Path
) -> None:
    from chargpt.cli.train import main

    (folder / "z.txt").write_text(corpus.read_text()[:20000])
    run = tmp_path / "run"
    args = train_args(
        folder, run, "trainer.max_steps=2", "sample.max_new_tokens=0", "data.val_max_chars=500",
        "callbacks.attention_maps.save_png=true",
    )
    assert run_cli(main, *args) == 0
    assert (run / "attention_maps" / "step-000002.png").read_bytes()[:4] == b"\x89PNG"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["validation"]["capped"] is True and metrics["validation"]["chars"] == 500
    log = (run / "train.log").read_text()
    assert "4 files" in log and "vocabulary:" in log


@pytest.mark.slow
def test_a_run_that_read_its_empty_files_resumes_and_is_scored_reading_them(
    folder: Path, tmp_path: Path, corpus: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    # Its checkpoint's text identity counts them: leaving them out would refuse its resume.
    import chargpt.data.text
    from chargpt.cli import eval as eval_cli
    from chargpt.cli.train import main

    (folder / "z.txt").write_text(corpus.read_text()[:20000])
    (folder / "b" / "empty.txt").write_text("")
    run = tmp_path / "run"
    args = train_args(folder, run, "sample.max_new_tokens=0", "logger=none")
    with monkeypatch.context() as earlier:  # trained as versions before read a folder
        earlier.setattr(chargpt.data.text, "files_read", lambda files, *how: (list(files), 0))
        assert run_cli(main, *args, "trainer.max_steps=2") == 0
    assert "(5 files)" in (run / "train.log").read_text()
    capsys.readouterr()
    assert run_cli(main, *args, "trainer.max_steps=4", f"ckpt_path={run}") == 0, capsys.readouterr().err
    assert json.loads((run / "metrics.json").read_text())["step"] == 4
    capsys.readouterr()
    assert run_cli(eval_cli.main, f"ckpt_path={run}") == 0, capsys.readouterr().err
    val_loss = json.loads((run / "metrics.json").read_text())["val_loss"]
    assert json.loads(capsys.readouterr().out)["loss"] == pytest.approx(val_loss, abs=1e-4)


@needs_datasets
@pytest.mark.parametrize(
    "held_out", ["data.val_split=validation", pytest.param("data.train_fraction=0.8", marks=pytest.mark.slow)]
)
def test_a_run_on_a_dataset_is_evaluated_by_naming_the_dataset(
    held_out: str, tmp_path: Path, corpus: Path, datasets: ModuleType, capsys
) -> None:
    # Split by a fraction, the command to paste quoted it ('data.train_fraction='0.8''): the text
    # "0.8", which a number setting refuses.
    from chargpt.cli import eval as eval_cli
    from chargpt.cli.train import main

    lines = corpus.read_text()[:30000].splitlines()
    saved = tmp_path / "saved, dataset é"
    save_dataset(datasets, saved, lines)
    run = tmp_path / "run"
    named = ["data=hf", f"data.name={saved}", held_out]
    args = [a for a in train_args(corpus, run, "trainer.max_steps=2", "sample.max_new_tokens=0",
                                  "logger=none") if not a.startswith("data.path=") and a != "data=text"]
    assert run_cli(main, *args, *named) == 0
    capsys.readouterr()
    # Without the dataset named: the error says how to name it.
    assert run_cli(eval_cli.main, f"ckpt_path={run}") == 2
    err = capsys.readouterr().err
    assert "a dataset" not in err and "which is read again only when named; name it: data=hf" in err
    again = shlex.split(err.split("name it: ", 1)[1])
    assert run_cli(eval_cli.main, f"ckpt_path={run}", *again) == 0
    result = json.loads(capsys.readouterr().out)
    val_loss = json.loads((run / "metrics.json").read_text())["val_loss"]
    assert result["loss"] == pytest.approx(val_loss, abs=1e-4) and "saved, dataset" in result["data"]
    assert again == named
    # The split scored is the one named: the dataset's validation split, or the train split's end.
    by_split = "val_split" in held_out
    assert result["data"].endswith("(validation)" if by_split else "(train)"), result["data"]
    assert ("and data.val_split validation (2 splits)" in (run / "train.log").read_text()) == by_split
    # Moved since: the advice named the folder it left. Now it asks for the one it is in, in its place
    # (the copy check too: test_check_copy_reads_the_dataset_a_run_trained_on).
    moved = saved.rename(tmp_path / "moved")
    gone = f"{run / 'checkpoints' / 'last.ckpt'} was trained on the dataset saved at {saved}, which holds"
    assert run_cli(eval_cli.main, f"ckpt_path={run}") == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {gone} none now (moved or deleted); name it where it is now: data=hf "
                          "data.name=FOLDER")
    again = [a.replace("FOLDER", str(moved)) for a in shlex.split(err.split("where it is now: ", 1)[1])]
    assert again == ["data=hf", f"data.name={moved}", held_out]
    assert run_cli(eval_cli.main, f"ckpt_path={run}", *again) == 0
    assert json.loads(capsys.readouterr().out)["loss"] == pytest.approx(val_loss, abs=1e-4)


@pytest.mark.parametrize("second", ["c.txt", "it's.txt", "café.txt"])
def test_files_listed_with_a_comma_are_pointed_to_a_sweep_the_command_line_takes(
    second: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The advised choice(...) names the files themselves, and the command line takes it as printed:
    # a name with a quote or an é too, which chargpt's sweeper hands to its job quoted.
    from chargpt.data.sources.text_files import text_files

    monkeypatch.chdir(tmp_path)
    for name in ("a.txt", second):
        (tmp_path / name).write_text("some text\n", encoding="utf-8")
    with pytest.raises(DataError) as err:
        text_files(f"a.txt,{second}", "data.path")
    advised = shlex.split(str(err.value).rpartition("sweep over them: ")[2])
    assert advised[0] == "-m" and advised[1].startswith("data.path=choice(a.txt,")
    assert second in advised[1] or second.replace("'", "\\'") in advised[1]
    taken = hydra_argv(advised)[-1]  # taken, not refused
    assert choice_values(taken) == ["a.txt", second]  # each file, as Hydra reads the sweep back


def test_files_listed_in_a_folder_whose_name_holds_a_comma_are_pointed_to_a_sweep(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Split at every comma, no piece was a file: it said only "data file not found".
    from chargpt.data.sources.text_files import text_files

    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "a, b é 🚀"
    folder.mkdir()
    for name in ("x.txt", "y, z.txt"):
        (folder / name).write_text("some text\n", encoding="utf-8")
    for listed in ("a, b é 🚀/x.txt,a, b é 🚀/y, z.txt", "a, b é 🚀/x.txt, a, b é 🚀/y, z.txt"):
        with pytest.raises(DataError) as err:
            text_files(listed, "data.path")
        assert "is one path, commas included, not a list" in str(err.value)
        advised = shlex.split(str(err.value).rpartition("sweep over them: ")[2])
        assert choice_values(hydra_argv(advised)[-1]) == ["a, b é 🚀/x.txt", "a, b é 🚀/y, z.txt"]


def test_files_listed_with_a_newline_in_a_name_are_named_on_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The listed path was named as it is: its newline broke the one error line in two.
    from chargpt.data.sources.text_files import text_files

    monkeypatch.chdir(tmp_path)
    (tmp_path / "a é.txt").write_text("some text\n", encoding="utf-8")
    with pytest.raises(DataError) as err:
        text_files("a é.txt,b\nc 🚀.txt", "data.path")
    said = str(err.value)
    assert len(said.splitlines()) == 1 and "is one path, commas included, not a list" in said
    assert said.startswith("data file not found: 'a é.txt,b\\nc 🚀.txt'; data.path is one path")


@needs_datasets
def test_a_saved_dataset_given_as_a_path_is_pointed_to_data_hf(tmp_path: Path, datasets: ModuleType) -> None:
    # Its Arrow files were refused as binary text, with a glob of '**/*.txt' to try: no text at all.
    from chargpt.data.sources.text_files import text_files
    from chargpt.data.text import CharText

    saved = tmp_path / "my dataset"
    save_dataset(datasets, saved, ["café 😀\r", "naïve", "line"], held_out=1)
    with pytest.raises(DataError) as err:
        text_files(str(saved), "data.path")
    assert str(err.value) == (f"data.path={saved} is a dataset saved with save_to_disk, not a folder of "
                              f"text; pass it as data=hf {shlex.quote(f'data.name={saved}')}")
    with pytest.raises(DataError, match=r"data\.val_path=.* data=hf data\.val_split=SPLIT$"):
        text_files(str(saved), "data.val_path")
    # As advised, it reads.
    text = CharText(None, block_size=1, name=str(saved))
    assert text.tokenizer.decode(text.encoded().ids) == "café 😀\r\n\nnaïve"


@pytest.mark.slow
@needs_datasets
def test_a_run_on_a_dataset_named_relative_resumes_from_another_folder(
    tmp_path: Path, corpus: Path, datasets: ModuleType, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    # With the folder absolute, as its resume command names it; and a run before 2026-12-06, which
    # identified the dataset by the name as typed, resumes so too.
    from chargpt.cli.train import main

    init = CharDataModule.__init__
    saved = tmp_path / "my data" / "saved"
    save_dataset(datasets, saved, corpus.read_text()[:20000].splitlines())
    for run, before in ((tmp_path / "run", False), (tmp_path / "earlier run", True)):
        args = [a for a in train_args(corpus, run, "sample.max_new_tokens=0", "logger=none",
                                      "data=hf", "data.val_split=validation")
                if not a.startswith(("data.path=", "trainer.max_steps=")) and a != "data=text"]
        monkeypatch.chdir(saved.parent)
        with monkeypatch.context() as earlier:
            if before:  # identified as typed, as versions before did
                earlier.setattr(CharDataModule, "__init__", functools.wraps(init)(
                    lambda self, *a, **k: init(self, *a, **{**k, "dataset_label": k["name"]})))
            assert run_cli(main, *args, "data.name=saved", "trainer.max_steps=2") == 0
        monkeypatch.chdir(tmp_path)
        capsys.readouterr()
        resumed = run_cli(main, *args, f"data.name={saved}", "trainer.max_steps=4", f"ckpt_path={run}")
        assert resumed == 0, capsys.readouterr().err


@pytest.mark.slow
@needs_datasets
@pytest.mark.parametrize("held_out", ["data.val_split=validation", "data.train_fraction=0.8"])
def test_check_copy_reads_the_dataset_a_run_trained_on(
    held_out: str, tmp_path: Path, corpus: Path, datasets: ModuleType, capsys
) -> None:
    # It told the user to pass data.path=FILE, which a dataset run has none of, and the saved folder
    # passed as data.path was refused for its Arrow files: the copy check had no way to read it.
    import torch

    from chargpt.cli import sample
    from chargpt.cli.train import main
    from chargpt.recorded_text import training_text

    lines = [f"{line} café 😀\r" for line in corpus.read_text()[:20000].splitlines()]
    saved = tmp_path / "saved, dataset é"
    save_dataset(datasets, saved, lines)
    run = tmp_path / "run"
    args = [a for a in train_args(corpus, run, "trainer.max_steps=2", "sample.max_new_tokens=0",
                                  "logger=none") if not a.startswith("data.path=") and a != "data=text"]
    assert run_cli(main, *args, "data=hf", f"data.name={saved}", held_out) == 0
    capsys.readouterr()
    assert run_cli(sample.main, f"ckpt_path={run}", "check_copy=true", "max_new_tokens=20") == 0
    err = capsys.readouterr().err
    assert "copy check: longest span found in the training text: " in err, err
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    joined = "\n\n".join(lines[:-100])  # the train split
    # Not its validation text: the first 80%, or the training split with the separator that follows it.
    trained = joined[: int(len(joined) * 0.8)] if "fraction" in held_out else joined + "\n\n"
    assert training_text(ckpt, "RUN", None, None) == (trained, f"dataset {saved} (train)")
    if "val_split" in held_out:  # its run trained on all of its split: a cut would miss copies
        assert training_text(ckpt, "RUN", None, 1)[0] == trained
        # A checkpoint from before 2026-12-05 recorded the identity datasets' fingerprint made, as
        # its resume accepts.
        from chargpt.checkpoints import stored_corpus
        from chargpt.data.text import CharText

        as_before = {"val_split": "validation", "read_empty_rows": True}
        earlier = CharText(None, 8, name=str(saved), **as_before).earlier_sha256
        recorded = stored_corpus(ckpt)
        assert recorded and earlier and earlier != recorded["sha256"]
        recorded["sha256"] = earlier
        del recorded["dataset"]["empty_rows"]  # recorded since 2026-12-07
        assert training_text(ckpt, "RUN", None, None)[0] == trained
        with pytest.raises(ConfigError, match=r"data\.val_split=validation"):
            training_text(ckpt, "RUN", None, 0.5)
        return
    # Saved again with other rows: refused, and the advice printed works as given.
    shutil.rmtree(saved)
    save_dataset(datasets, saved, lines[:-1])
    assert run_cli(sample.main, f"ckpt_path={run}", "check_copy=true", "max_new_tokens=20") == 2
    err = capsys.readouterr().err
    # (A dataset's place is no data.path: no "data.path=... takes it as it is now".)
    assert "has changed since" in err and err.rstrip().endswith("; pass the training text as data.path=FILE")
    text_file = tmp_path / "trained on.txt"
    text_file.write_text(joined, newline="")
    assert run_cli(sample.main, f"ckpt_path={run}", "check_copy=true", "max_new_tokens=20",
                   f"data.path={text_file}") == 0
    # Moved: one line, its reason, and what this command takes instead; the saved folder passed as
    # data.path is read as the dataset it is (its Arrow files were refused as binary text).
    shutil.rmtree(saved)
    save_dataset(datasets, saved, lines)
    moved = saved.rename(tmp_path / "moved dataset")
    assert run_cli(sample.main, f"ckpt_path={run}", "check_copy=true", "max_new_tokens=20") == 2
    err = capsys.readouterr().err
    assert f"the dataset saved at {saved}, which holds none now (moved or deleted)" in err, err
    assert err.rstrip().endswith("where it is now: data.path=FOLDER") and "data.name" not in err
    assert run_cli(sample.main, f"ckpt_path={run}", "check_copy=true", "max_new_tokens=20",
                   f"data.path={moved}") == 0, capsys.readouterr().err
    assert training_text(ckpt, "RUN", str(moved), None)[0] == trained
    assert training_text(None, "export", str(moved), None)[0] == joined[: int(len(joined) * 0.9)]


def test_a_local_folder_of_data_files_is_not_said_moved(tmp_path: Path) -> None:
    # A folder datasets reads as data files (data/train.txt), not save_to_disk's, was said to hold
    # "none now (moved or deleted)" while it was there.
    from chargpt.recorded_text import moved_folder, recorded_data

    folder = tmp_path / "local repo"
    (folder / "data").mkdir(parents=True)
    (folder / "data" / "train.txt").write_text("some text\n")
    corpus = {"path": f"dataset {folder} (train)", "sha256": "0" * 64, "dataset": {"name": str(folder)}}
    ckpt = {"hyper_parameters": {}, "callbacks": {"ResumeState": {"corpus": corpus}}}
    assert moved_folder(corpus) is None
    with pytest.raises(DataError, match=re.escape(f"which is read again only when named; name it: data=hf "
                                                  f"'data.name={folder}'")):
        recorded_data(ckpt, "last.ckpt", set())
    shutil.rmtree(folder)
    assert moved_folder(corpus) == str(folder)


@pytest.mark.slow
def test_resume_after_the_folder_changed_is_one_error_line(
    folder: Path, tmp_path: Path, corpus: Path
) -> None:
    import subprocess
    import sys

    (folder / "z.txt").write_text(corpus.read_text()[:20000])
    run = tmp_path / "run"

    command = [sys.executable, "-m", "chargpt.cli.train"]
    first = train_args(folder, run, "trainer.max_steps=2")
    subprocess.run([*command, *first], check=True, capture_output=True)
    (folder / "b" / "a.txt").write_text("edited\n")
    done = subprocess.run(
        [*command, *train_args(folder, run, "trainer.max_steps=4", f"ckpt_path={run}")],
        capture_output=True, text=True,
    )
    assert done.returncode == 2
    assert done.stderr.strip().startswith("error: cannot resume") and "changed: " in done.stderr
    assert "Traceback" not in done.stderr


def test_data_hf_without_a_name_is_one_clear_error(tmp_path: Path) -> None:
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from chargpt.cli import CONFIG_PATH

    with initialize_config_dir(config_dir=CONFIG_PATH, version_base="1.3"):
        cfg = compose(config_name="train", overrides=["data=hf", f"paths.output_dir={tmp_path}"])
    with pytest.raises(Exception, match=r"data\.name=DATASET \(with data=hf\)"):  # Hydra wraps it
        instantiate(cfg.data)


@pytest.mark.parametrize("given", ["folder", "glob"])
def test_a_folder_or_glob_with_unknown_characters_is_named_as_given(tmp_path: Path, given: str) -> None:
    folder = tmp_path / "my corpus"
    folder.mkdir()
    for name, text in (("a.txt", "abc abc\n" * 20), ("b.txt", "abc zé\n" * 20)):
        (folder / name).write_text(text, encoding="utf-8")
    path = str(folder) if given == "folder" else str(folder / "*.txt")
    data = CharDataModule(path=path, block_size=4, batch_size=2, vocab=list("\n abc"))
    with pytest.raises(DataError, match=f"^{re.escape(path)} has characters the vocabulary lacks: 'z', 'é'"):
        data.encoded()


def test_a_file_emptied_since_the_run_is_named_emptied_not_removed(tmp_path: Path) -> None:
    # An empty file is not read, so it left the text's fingerprint as a removed one would: the
    # refusal said "removed: c.txt" of a file still in the folder.
    from chargpt.checkpoints import corpus_changes

    kept, emptied, gone = (str(tmp_path / n) for n in ("a.txt", "c.txt", "d.txt"))
    Path(kept).write_text("text")
    Path(emptied).write_text("")
    old = {"files": [[kept, "1"], [emptied, "2"], [gone, "3"]]}
    said = corpus_changes(old, {"files": [[kept, "1"]]})
    assert said == f" (removed: {gone}; emptied, so not read: {emptied})"


def test_a_missing_file_of_ones_own_is_not_filled_with_the_default_corpus(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    # data.path given on the default data preset kept its data.url: a mistyped path of one's own
    # was downloaded into as Tiny Shakespeare, under the user's file name, and trained on.
    import urllib.request

    from chargpt.cli.train import main

    asked: list[object] = []

    def urlopen(request: object, *args: object, **kwargs: object) -> None:
        asked.append(request)
        raise OSError("offline")

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    monkeypatch.setenv("CHARGPT_DATA_DIR", str(tmp_path / "no data here"))
    mine = tmp_path / "my texts" / "mine.txt"
    run = tmp_path / "run"
    capsys.readouterr()
    assert run_cli(main, "model=tiny", f"data.path={mine}", f"hydra.run.dir={run}") == 2
    err = capsys.readouterr().err
    assert f"error: data file not found: {mine}" in err and "Traceback" not in err
    assert asked == [] and not mine.exists() and not mine.parent.exists()

    # The preset itself still downloads its corpus to its own path (offline here: the error says so).
    assert run_cli(main, "model=tiny", f"hydra.run.dir={run}-default") == 2
    err = capsys.readouterr().err
    assert len(asked) == 1 and "tinyshakespeare/input.txt is missing and could not be downloaded" in err
