"""Encode a corpus file to token ids once, cache the array beside it, and memory-map it on reuse.

Both passes stream the file in chunks, so memory stays flat whatever the corpus size.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import mmap
import os
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.progress import Progress

from chargpt.data.corpus import sha256_of
from chargpt.data.tokenizer import CharTokenizer, describe_chars
from chargpt.errors import DataError
from chargpt.files import atomic_path, write_json_atomic

CACHE_DIR_ENV = "CHARGPT_CACHE_DIR"
_CHUNK_BYTES = 16 << 20
_MAX_CODEPOINT = 0x110000
_PROGRESS_MIN_BYTES = 32 << 20


def cache_dir_for(corpus: Path, cache_dir: str | os.PathLike | None = None) -> Path:
    """Explicit setting, else $CHARGPT_CACHE_DIR, else beside the corpus, else the user cache."""
    if cache_dir:
        return Path(cache_dir).expanduser()
    if os.environ.get(CACHE_DIR_ENV):
        return Path(os.environ[CACHE_DIR_ENV]).expanduser()
    if os.access(corpus.parent, os.W_OK):
        return corpus.parent
    return Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser() / "chargpt"


def _codepoint_chunks(path: Path, progress: Progress | None) -> Iterator[np.ndarray]:
    """Yield the file's code points chunk by chunk; a byte that is not UTF-8 is a DataError."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    task = progress.add_task(f"reading {path.name}", total=path.stat().st_size) if progress else None
    offset = 0
    with path.open("rb") as f:
        while True:
            raw = f.read(_CHUNK_BYTES)
            try:
                text = decoder.decode(raw, final=not raw)
            except UnicodeDecodeError as err:
                raise DataError(
                    f"{path} is not UTF-8 text (bad byte near offset {offset + err.start}); "
                    "convert it to UTF-8, e.g. with iconv"
                ) from None
            if text.isascii():
                yield np.frombuffer(text.encode("ascii"), dtype=np.uint8)
            elif text:
                yield np.frombuffer(text.encode("utf-32-le"), dtype="<u4")
            if not raw:
                return
            offset += len(raw)
            if progress is not None:
                progress.update(task, advance=len(raw))


def _scan(path: Path, progress: Progress | None) -> tuple[list[str], int]:
    """First pass: which characters occur, and how many characters there are."""
    present = np.zeros(_MAX_CODEPOINT, dtype=bool)
    n_chars = 0
    for cps in _codepoint_chunks(path, progress):
        present[cps] = True
        n_chars += len(cps)
    return [chr(c) for c in np.flatnonzero(present)], n_chars


def _write_ids(
    path: Path, out: Path, tokenizer: CharTokenizer, n_chars: int, progress: Progress | None
) -> None:
    """Second pass: map code points to ids through a lookup table into a memory-mapped .npy."""
    lut = np.zeros(_MAX_CODEPOINT, dtype=tokenizer.dtype)
    lut[[ord(c) for c in tokenizer.chars]] = np.arange(tokenizer.vocab_size)
    with atomic_path(out) as partial:  # a reader never sees a half-written array
        ids = np.lib.format.open_memmap(partial, mode="w+", dtype=tokenizer.dtype, shape=(n_chars,))
        pos = 0
        for cps in _codepoint_chunks(path, progress):
            ids[pos : pos + len(cps)] = lut[cps]
            pos += len(cps)
        ids.flush()
        del ids


_HEADER_READERS = {
    (1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0,
}


def open_ids(path: Path) -> tuple[np.ndarray, mmap.mmap]:
    """The cached .npy memory-mapped read-only, with the mapping itself (see paging.py)."""
    with path.open("rb") as f:
        shape, _, dtype = _HEADER_READERS[np.lib.format.read_magic(f)](f)
        offset = f.tell()
        mapping = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    return np.frombuffer(mapping, dtype=dtype, count=int(np.prod(shape)), offset=offset), mapping


@dataclass
class EncodedCorpus:
    ids: np.ndarray  # memory-mapped token ids, one per character
    tokenizer: CharTokenizer
    sha256: str  # of the text file: identifies the corpus in checkpoints
    mapping: mmap.mmap | None = None  # the file mapping behind `ids`


def _loaded(ids_file: Path, tokenizer: CharTokenizer, sha256: str) -> EncodedCorpus:
    ids, mapping = open_ids(ids_file)
    return EncodedCorpus(ids, tokenizer, sha256, mapping)


def load_encoded(
    corpus: Path,
    tokenizer: CharTokenizer | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> EncodedCorpus:
    """Token ids of `corpus` (memory-mapped), the tokenizer that made them and the file's sha256
    (the corpus is read and hashed once here).

    Without a tokenizer, the vocabulary is the corpus's own characters. The cache is keyed by
    the file's sha256 (and the vocabulary when one is given), so an edited file is re-encoded.
    """
    folder = cache_dir_for(corpus, cache_dir)
    sha256 = sha256_of(corpus)
    stem = f"{corpus.name}.{sha256[:16]}"
    if tokenizer is None:
        vocab_file = folder / f"{stem}.vocab.json"
        ids_file = folder / f"{stem}.ids.npy"
        if vocab_file.exists() and ids_file.exists():
            return _loaded(ids_file, CharTokenizer(json.loads(vocab_file.read_text())), sha256)
    else:
        vocab_key = hashlib.sha256("".join(tokenizer.chars).encode()).hexdigest()[:8]
        vocab_file = None
        ids_file = folder / f"{stem}.vocab-{vocab_key}.ids.npy"
        if ids_file.exists():
            return _loaded(ids_file, tokenizer, sha256)

    big = corpus.stat().st_size >= _PROGRESS_MIN_BYTES
    with Progress(transient=True) if big else nullcontext() as progress:
        chars, n_chars = _scan(corpus, progress)
        if tokenizer is None:
            tokenizer = CharTokenizer(chars)
        elif unknown := tokenizer.unknown_chars("".join(chars)):
            raise DataError(
                f"{corpus} has characters the vocabulary lacks: {describe_chars(unknown)}; "
                "remove them from the text"
            )
        try:
            folder.mkdir(parents=True, exist_ok=True)
            _write_ids(corpus, ids_file, tokenizer, n_chars, progress)
            if vocab_file is not None:
                write_json_atomic(vocab_file, tokenizer.to_list())
        except OSError as err:
            raise DataError(
                f"cannot write the encoding cache in {folder} ({err.strerror}); "
                f"set {CACHE_DIR_ENV} to a writable folder"
            ) from None
    return _loaded(ids_file, tokenizer, sha256)


def corpus_chars(corpus: Path) -> list[str]:
    """The sorted distinct characters of a corpus file (streamed)."""
    return _scan(corpus, None)[0]
