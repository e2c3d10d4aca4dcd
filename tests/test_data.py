"""From text to windows: the tutorial's context and targets, the id cache keyed by content, the
training and validation windows, the 90/10 split, and the corpus download checked by its sha256."""

import hashlib
import http.server
import os
import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from chargpt.data import CharDataModule
from chargpt.data.corpus import resolve_corpus
from chargpt.data.encoding import load_encoded
from chargpt.data.windows import IGNORE_INDEX, TrainWindows, ValWindows, gather_windows
from chargpt.errors import ConfigError, DataError


def test_tutorial_context_and_targets() -> None:
    ids = np.array([18, 47, 56, 57, 58, 1, 15, 47, 58], dtype=np.uint8)
    x, y = gather_windows(ids, np.array([0]), block_size=8)
    assert x.tolist() == [[18, 47, 56, 57, 58, 1, 15, 47]]
    assert y.tolist() == [[47, 56, 57, 58, 1, 15, 47, 58]]
    for t in range(8):  # the target of each prefix is the next id
        assert y[0, t] == ids[t + 1]
    assert x.dtype == torch.int64


def test_encoding_is_cached_memory_mapped_and_keyed_by_content(tmp_path: Path) -> None:
    text = tmp_path / "t.txt"
    text.write_text("abcab" * 100)
    cache = tmp_path / "cache"
    encoded = load_encoded(text, cache_dir=cache)
    ids, tok = encoded.ids, encoded.tokenizer
    assert encoded.mapping is not None and not ids.flags.writeable  # read-only, memory-mapped
    assert encoded.sha256 == hashlib.sha256(text.read_bytes()).hexdigest()
    assert tok.decode(ids[:5]) == "abcab"
    assert len(list(cache.glob("*.ids.npy"))) == 1
    text.write_text("xyzxy" * 100)  # edited file: new key, re-encoded
    again = load_encoded(text, cache_dir=cache)
    assert again.tokenizer.decode(again.ids[:5]) == "xyzxy"
    assert len(list(cache.glob("*.ids.npy"))) == 2


@pytest.mark.parametrize("given", [False, True], ids=["own vocabulary", "given vocabulary"])
def test_an_unchanged_text_is_read_from_the_cache_not_encoded_again(tmp_path: Path, given: bool) -> None:
    from chargpt.data.tokenizer import CharTokenizer

    text = tmp_path / "t.txt"
    text.write_text("abcab" * 100)
    tokenizer = CharTokenizer(list("abcd")) if given else None
    load_encoded(text, tokenizer, cache_dir=tmp_path / "cache")
    [ids_file] = (tmp_path / "cache").glob("*.ids.npy")
    written = ids_file.stat()
    again = load_encoded(text, tokenizer, cache_dir=tmp_path / "cache")
    assert again.tokenizer.decode(again.ids[:5]) == "abcab"
    assert again.tokenizer.vocab_size == (4 if given else 3)
    now = ids_file.stat()  # an encoding writes a new file in place of the old
    assert (now.st_ino, now.st_mtime_ns) == (written.st_ino, written.st_mtime_ns)


def test_encoding_handles_non_ascii_and_large_vocabularies(tmp_path: Path) -> None:
    text = "".join(chr(0x4E00 + i) for i in range(300)) + "ascii ☃ mix\n"
    path = tmp_path / "u.txt"
    path.write_text(text * 3, encoding="utf-8")
    encoded = load_encoded(path, cache_dir=tmp_path)
    ids, tok = encoded.ids, encoded.tokenizer
    assert tok.vocab_size > 256 and ids.dtype == np.uint16
    assert tok.decode(ids) == text * 3


def test_given_vocabulary_rejects_unknown_characters(tmp_path: Path) -> None:
    from chargpt.data.tokenizer import CharTokenizer

    path = tmp_path / "t.txt"
    path.write_text("abcQ")
    with pytest.raises(DataError, match="'Q'"):
        load_encoded(path, CharTokenizer(list("abc")), cache_dir=tmp_path)


def test_an_empty_text_and_an_unwritable_cache_are_named(tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(DataError, match=r"empty\.txt has no text; pass a text with content$"):
        load_encoded(empty, cache_dir=tmp_path)
    text = tmp_path / "t.txt"
    text.write_text("abc")
    not_a_folder = tmp_path / "cache"
    not_a_folder.write_text("")
    with pytest.raises(DataError, match=r"cannot write the encoding cache in .*; set CHARGPT_CACHE_DIR"):
        load_encoded(text, cache_dir=not_a_folder)
    assert not_a_folder.read_text() == ""


def test_not_utf8_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "latin1.txt"
    path.write_bytes("caf\xe9 au lait".encode("latin-1"))
    with pytest.raises(DataError, match="not UTF-8"):
        load_encoded(path, cache_dir=tmp_path)


def test_train_windows_are_a_function_of_the_step_and_split_across_ranks() -> None:
    ids = np.arange(1000, dtype=np.uint16)
    single = TrainWindows(ids, block_size=8, batch_size=4, seed=3)
    again = TrainWindows(ids, block_size=8, batch_size=4, seed=3, start=5)
    assert torch.equal(single[7][0], again[2][0])  # batch 7 is batch 7, whatever the start
    assert not torch.equal(single[0][0], single[1][0])
    wide = TrainWindows(ids, block_size=8, batch_size=4, seed=3, world_size=1)
    ranks = [TrainWindows(ids, 8, 2, 3, rank=r, world_size=2) for r in range(2)]
    both = torch.cat([ranks[0][4][0], ranks[1][4][0]])
    assert torch.equal(both, wide[4][0])  # 2 ranks x batch 2 == 1 rank x batch 4
    x, y = single[0]
    assert torch.equal(x[:, 1:], y[:, :-1])


def test_train_windows_draw_every_window_the_split_holds() -> None:
    # A split of block_size + 1 ids (the shortest a run accepts) holds one window; a longer one's
    # last window is the one whose target is its last character.
    shortest = TrainWindows(np.arange(9, dtype=np.uint16), block_size=8, batch_size=2, seed=0)
    x, y = shortest[0]
    assert x.tolist() == [list(range(8))] * 2 and y.tolist() == [list(range(1, 9))] * 2
    windows = TrainWindows(np.arange(12, dtype=np.uint16), block_size=8, batch_size=64, seed=0)
    assert sorted({int(row[0]) for row in windows[0][0]}) == [0, 1, 2, 3]


def test_a_resumed_loader_goes_on_after_the_batches_its_steps_accumulated(corpus: Path) -> None:
    # Step 3 of a run that accumulates 2 batches per step took batches 0-5; its 5 steps take 10.
    datamodule = CharDataModule(str(corpus), block_size=8, batch_size=2)
    datamodule.setup("fit")
    datamodule.trainer = SimpleNamespace(  # what the loader reads of the trainer
        accumulate_grad_batches=2, global_step=3, max_steps=5, global_rank=0, world_size=1, accelerator=None)
    sampler = datamodule.train_dataloader().sampler
    assert list(sampler) == [6, 7, 8, 9] and len(sampler) == 10


@pytest.mark.parametrize("n", [9, 17, 25, 33, 50])  # 9 and 25: no tail window
def test_validation_scores_every_target_exactly_once(n: int) -> None:
    ids = np.arange(n, dtype=np.uint16)
    windows = ValWindows(ids, block_size=8, batch_size=3)
    targets = torch.cat([windows[b][1].reshape(-1) for b in range(len(windows))])
    scored = targets[targets != IGNORE_INDEX]
    assert sorted(scored.tolist()) == list(range(1, n))


def test_datamodule_splits_ninety_ten_and_rejects_short_splits(corpus: Path) -> None:
    dm = CharDataModule(str(corpus), block_size=16, batch_size=4)
    dm.setup()
    assert len(dm.train_ids) == int(0.9 * len(dm.ids))
    assert np.array_equal(np.concatenate([dm.train_ids, dm.val_ids]), dm.ids)
    with pytest.raises(DataError, match=r"val split .* fewer than"):
        CharDataModule(str(corpus), block_size=20000, batch_size=4).setup()
    for fraction in (1.5, 1.0):  # 1 leaves no validation text
        with pytest.raises(ConfigError, match=rf"^data.train_fraction={fraction} must be above 0 and below"):
            CharDataModule(str(corpus), block_size=16, batch_size=4, train_fraction=fraction)


def test_the_shortest_split_a_run_takes_holds_one_window_and_its_target(tmp_path: Path) -> None:
    text = tmp_path / "text.txt"
    text.write_text("abcdefghij" * 2, encoding="utf-8")  # two splits of 10 characters
    CharDataModule(str(text), block_size=9, batch_size=1, train_fraction=0.5).setup()
    with pytest.raises(DataError, match=r"has 10 characters, fewer than model.block_size \+ 1 = 11"):
        CharDataModule(str(text), block_size=10, batch_size=1, train_fraction=0.5).setup()


@pytest.mark.parametrize("setting", ["data.path", "data.val_path"])
def test_a_pipe_as_the_text_is_refused_naming_its_setting_and_the_fix(tmp_path: Path, setting: str) -> None:
    # `data.path=<(cat input.txt)`, `cat input.txt | chargpt-train data.path=/dev/stdin`: said to be
    # "not a file (a FIFO, a device or a socket)", with no word of why nor how to train on it, and as
    # data.path for data.val_path too. A pipe is read once; a run reads its text more than once.
    # (chargpt-eval, which reads it twice too, was told that a run records its sha256 for a resume.)
    from chargpt.data.sources.text_files import text_files

    read_end, write_end = os.pipe()
    try:
        os.write(write_end, b"some text piped in\n")
        with pytest.raises(DataError) as err:
            text_files(f"/dev/fd/{read_end}", setting)
    finally:
        os.close(read_end)
        os.close(write_end)
    assert str(err.value) == (
        f"{setting}=/dev/fd/{read_end} is not a file but a pipe, which can be read only once, where the text "
        "is read more than once (hashed, then encoded, and a training run's again as it resumes): save the "
        f"text to a file first (COMMAND > corpus.txt) and pass {setting}=corpus.txt")


@pytest.mark.skipif(os.name != "posix", reason="a POSIX device")
def test_a_device_as_the_text_is_refused_as_a_device_not_as_a_pipe() -> None:
    # data.path=/dev/null was said to be a device "which can be read only once", to be saved to a file
    # first: a device may be read any number of times, and no text is to be saved from it.
    from chargpt.data.sources.text_files import text_files

    with pytest.raises(DataError) as err:
        text_files(os.devnull, "data.val_path")
    assert str(err.value) == (f"data.val_path={os.devnull} is not a file but a device; pass a text file as "
                              "data.val_path=FILE")


def test_missing_file_without_url_and_directory(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        resolve_corpus(tmp_path / "nope.txt")
    with pytest.raises(DataError, match="directory"):
        resolve_corpus(tmp_path)
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(DataError, match="empty"):
        resolve_corpus(tmp_path / "empty.txt")


@pytest.fixture
def http_file(tmp_path: Path):
    """Serve a folder on 127.0.0.1 for download tests."""
    served = tmp_path / "served"
    served.mkdir()
    (served / "corpus.txt").write_text("some downloadable text\n" * 50)

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **k):
            super().__init__(*a, directory=str(served), **k)

        def log_message(self, *args):  # keep test output clean
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/corpus.txt", served / "corpus.txt"
    server.shutdown()


def test_download_verifies_checksum_and_caches(tmp_path: Path, http_file) -> None:
    url, source = http_file
    sha = hashlib.sha256(source.read_bytes()).hexdigest()
    dest = tmp_path / "data" / "corpus.txt"
    assert resolve_corpus(dest, url, sha) == dest
    assert dest.read_bytes() == source.read_bytes()
    source.unlink()  # cached: a second call does not download again
    assert resolve_corpus(dest, url, sha) == dest


def test_download_with_wrong_checksum_leaves_nothing(tmp_path: Path, http_file) -> None:
    url, _ = http_file
    dest = tmp_path / "data" / "corpus.txt"
    with pytest.raises(DataError, match="sha256"):
        resolve_corpus(dest, url, "0" * 64)
    assert not (tmp_path / "data").exists()  # nor the folder it made for the file


def test_a_failed_download_removes_the_folders_it_made_and_only_those(tmp_path: Path) -> None:
    # A refused download left an empty data/tinyshakespeare/ behind.
    dest = tmp_path / "data" / "tinyshakespeare" / "input.txt"
    with pytest.raises(DataError, match="could not be downloaded"):
        resolve_corpus(dest, "http://127.0.0.1:9/input.txt", "0" * 64)
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "data" / "mine.txt").parent.mkdir()
    (tmp_path / "data" / "mine.txt").write_text("kept")
    with pytest.raises(DataError, match="could not be downloaded"):
        resolve_corpus(dest, "http://127.0.0.1:9/input.txt", "0" * 64)
    assert [p.name for p in (tmp_path / "data").iterdir()] == ["mine.txt"]


def test_a_data_directory_that_is_a_file_is_named_not_a_traceback(tmp_path: Path) -> None:
    # CHARGPT_DATA_DIR=/some/file: making the download's folder ended in NotADirectoryError's traceback.
    data_dir = tmp_path / "corpus.txt"
    data_dir.write_text("kept")
    dest = data_dir / "tinyshakespeare" / "input.txt"
    with pytest.raises(DataError, match=r"no folder for it can be made \(Not a directory: .*"
                       r"set CHARGPT_DATA_DIR to a folder that has it") as err:
        resolve_corpus(dest, "http://127.0.0.1:9/input.txt", "0" * 64)
    assert str(dest) in str(err.value) and "\n" not in str(err.value)
    assert data_dir.read_text() == "kept" and [p.name for p in tmp_path.iterdir()] == ["corpus.txt"]


def test_offline_download_says_where_to_put_the_file(tmp_path: Path) -> None:
    dest = tmp_path / "tinyshakespeare" / "input.txt"
    with pytest.raises(DataError, match=r"put it there.*CHARGPT_DATA_DIR") as err:
        resolve_corpus(dest, "http://127.0.0.1:9/input.txt", "0" * 64)
    assert str(dest) in str(err.value) and "\n" not in str(err.value)


def test_text_data_without_a_path_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match=r"data\.path=FILE"):
        CharDataModule(None, block_size=8, batch_size=2)
