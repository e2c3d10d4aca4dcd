"""Encode a corpus (files or dataset rows, joined) to token ids once, cache the array, and
memory-map it on reuse.

Both passes stream the text in chunks, so memory stays flat whatever the corpus size.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
import unicodedata
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.progress import Progress

from chargpt.data.sources.parts import Part, changed_while_read
from chargpt.data.sources.paths import expand_path
from chargpt.data.sources.text_files import file_parts
from chargpt.data.tokenizer import CharTokenizer, describe_chars, reading_fix
from chargpt.errors import ConfigError, DataError, UnknownCharactersError
from chargpt.files import atomic_path, write_json_atomic

CACHE_DIR_ENV = "CHARGPT_CACHE_DIR"
_MAX_CODEPOINT = 0x110000
_PROGRESS_MIN_BYTES = 32 << 20
_PROGRESS_MIN_ROWS = 100_000


def cache_dir_for(corpus: Path | None, cache_dir: str | os.PathLike | None = None) -> Path:
    """Explicit setting, else $CHARGPT_CACHE_DIR, else beside a single corpus file, else the user cache.

    Several files (a directory, a glob) or a dataset are cached in the user cache, never beside
    them: a cache inside a corpus folder would become part of the corpus.
    """
    if cache_dir:
        return Path(expand_path(cache_dir))
    if os.environ.get(CACHE_DIR_ENV):
        return Path(expand_path(os.environ[CACHE_DIR_ENV]))
    if corpus is not None and os.access(corpus.parent, os.W_OK):
        return corpus.parent
    return Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser() / "chargpt"


@dataclass(frozen=True)
class TextOptions:
    """How the parts' text becomes the character stream (each changes the ids, so the cache key)."""

    separator: str = "\n\n"  # between two parts (files, or dataset rows)
    normalize: str | None = None  # a unicodedata form: NFC, NFKC, NFD, NFKD
    newline: str = "keep"  # "normalize": \r\n and lone \r become \n

    def __post_init__(self) -> None:
        if self.normalize not in (None, *NORMAL_FORMS):
            raise ConfigError(
                f"data.normalize={self.normalize} is not one of {', '.join(NORMAL_FORMS)} or null"
            )
        if self.newline not in NEWLINE_MODES:
            raise ConfigError(f"data.newline={self.newline} is not one of {', '.join(NEWLINE_MODES)}")
        if not isinstance(self.separator, str):
            typed = "null" if self.separator is None else repr(self.separator)  # as written in the config
            raise ConfigError(f"data.separator={typed} must be text (quote it)")

    @property
    def transforms(self) -> bool:
        return self.normalize is not None or self.newline != "keep"

    def settings(self) -> dict[str, Any]:
        return {"separator": self.separator, "normalize": self.normalize, "newline": self.newline}


NORMAL_FORMS = ("NFC", "NFKC", "NFD", "NFKD")
NEWLINE_MODES = ("keep", "normalize")
BOM = "\ufeff"


def read_as_trained(data: bytes) -> str:
    """A file's bytes as training reads a plain text file with the default settings: strict UTF-8
    (a bad byte raises UnicodeDecodeError, naming it), '\r\n' kept, a leading byte-order mark dropped."""
    return data.decode("utf-8").removeprefix(BOM)


def _cut_without_newline(text: str) -> int:
    """Where a chunk with no newline may end: before its last space, else before the last character
    that joins neither the one before it (a combining mark; a Hangul or Tamil vowel sign, which
    compose) nor follows a \r."""
    if (space := text.rfind(" ")) > 0:
        return space
    for i in range(len(text) - 1, 0, -1):
        pair = text[i - 1 : i + 1]
        joins = (unicodedata.combining(text[i]) or 0x1160 <= ord(text[i]) <= 0x11FF  # Hangul V, T jamo
                 or unicodedata.normalize("NFC", pair) != pair)
        if not joins and text[i - 1] != "\r":
            return i
    return len(text)  # one sequence throughout: nothing better to cut at


def _line_aligned(chunks: Iterator[tuple[str, int]]) -> Iterator[tuple[str, int]]:
    """Re-cut chunks after their last newline, so that a \r\n pair or a combining sequence is
    never split between two chunks (normalisation then sees whole lines)."""
    carry = ""
    for text, units in chunks:
        text = carry + text
        cut = text.rfind("\n") + 1
        if cut == 0:  # no newline in a whole chunk (a 16 MB line)
            cut = _cut_without_newline(text)
        carry = text[cut:]
        yield text[:cut], units
    if carry:
        yield carry, 0


def _clean(part: Part, options: TextOptions, boms: list[str]) -> Iterator[str | int]:
    """The part's text as it enters the stream, with progress units in between."""
    chunks = part.chunks()
    if options.transforms:
        chunks = _line_aligned(chunks)
    first = part.starts_file
    for text, units in chunks:
        if first and text:
            if text.startswith(BOM):  # a byte-order mark is an encoding marker, not text
                text = text[1:]
                boms.append(part.name)
            first = False
        if options.newline == "normalize":
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        if options.normalize is not None:
            text = unicodedata.normalize(options.normalize, text)
        yield text
        yield units


def _codepoints(text: str) -> np.ndarray:
    if text.isascii():
        return np.frombuffer(text.encode("ascii"), dtype=np.uint8)
    return np.frombuffer(text.encode("utf-32-le"), dtype="<u4")


def _stream(
    parts: list[Part], options: TextOptions, progress: Progress | None, boms: list[str]
) -> Iterator[tuple[int, np.ndarray]]:
    """(part index, code points) of the joined text: the parts in order, the separator between."""
    total = sum(p.size for p in parts)
    task = progress.add_task(f"reading {_describe(parts)}", total=total) if progress else None
    separator = _codepoints(options.separator)
    for i, part in enumerate(parts):
        if i and len(separator):
            yield i - 1, separator  # the separator ends the part before it
        for item in _clean(part, options, boms):
            if isinstance(item, int):
                if progress is not None:
                    progress.update(task, advance=item)
            elif item:
                yield i, _codepoints(item)


def _describe(parts: list[Part]) -> str:
    return Path(parts[0].name).name if len(parts) == 1 else f"{len(parts)} files"


def _scan(parts: list[Part], options: TextOptions, progress: Progress | None) -> dict[str, Any]:
    """First pass: how often each character occurs, and where each part starts in the stream."""
    counts = np.zeros(_MAX_CODEPOINT, dtype=np.int64)
    part_chars = [0] * len(parts)
    boms: list[str] = []
    for i, cps in _stream(parts, options, progress, boms):
        if cps.dtype == np.uint8:
            counts[:256] += np.bincount(cps, minlength=256)
        else:
            found = np.bincount(cps)
            counts[: len(found)] += found
        part_chars[i] += len(cps)
    starts = np.concatenate([[0], np.cumsum(part_chars)[:-1]]).tolist() if parts else []
    present = np.flatnonzero(counts)
    return {
        "counts": {chr(c): int(counts[c]) for c in present},
        "starts": [int(s) for s in starts],
        "n_chars": int(sum(part_chars)),
        "bom": boms,
    }


def _write_ids(
    parts: list[Part], options: TextOptions, out: Path, tokenizer: CharTokenizer, n_chars: int,
    progress: Progress | None,
) -> None:
    """Second pass: map code points to ids through a lookup table into a memory-mapped .npy."""
    lut = np.zeros(_MAX_CODEPOINT, dtype=tokenizer.dtype)
    lut[[ord(c) for c in tokenizer.chars]] = np.arange(tokenizer.vocab_size)
    with atomic_path(out) as partial:  # a reader never sees a half-written array
        ids = np.lib.format.open_memmap(partial, mode="w+", dtype=tokenizer.dtype, shape=(n_chars,))
        pos = 0
        for i, cps in _stream(parts, options, progress, []):
            if pos + len(cps) > n_chars:  # more text than the first pass counted: a file grew since
                raise changed_while_read(parts[i].name)
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
    sha256: str  # of the text file (or of the parts and settings): identifies the corpus
    mapping: mmap.mmap | None = None  # the file mapping behind `ids`
    # counts: {char: occurrences}; starts: each part's first position in `ids`;
    # bom: the parts a leading byte-order mark was dropped from
    stats: dict[str, Any] = field(default_factory=dict)


def _loaded(ids_file: Path, tokenizer: CharTokenizer, sha256: str, stats: dict[str, Any]) -> EncodedCorpus:
    ids, mapping = open_ids(ids_file)
    return EncodedCorpus(ids, tokenizer, sha256, mapping, stats)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def encode_parts(
    parts: list[Part],
    key: str,
    label: str,
    tokenizer: CharTokenizer | None = None,
    cache_dir: str | os.PathLike | None = None,
    beside: Path | None = None,
    options: TextOptions | None = None,
    source: str | None = None,
    first_pass: dict[str, Any] | None = None,
) -> EncodedCorpus:
    """Token ids of the parts joined (memory-mapped), cached under `label` and the first 16 hex
    digits of `key` (which must change whenever the text does). `source` names the text in
    messages (the folder or glob given), `label` where it is not given. `first_pass`: the text's
    `text_stats`, when the caller has them already (the text is then read only to write its ids).

    Without a tokenizer, the vocabulary is the text's own characters; with one, a character it
    lacks is an error and the cache is keyed by the vocabulary too.
    """
    options = options or TextOptions()
    files = _cache_files(stats_file_of(label, key, cache_dir, beside), _stem(label, key), tokenizer)
    if (cached := _cached(files, tokenizer, key)) is not None:
        return cached
    where = _where(parts, source or label)
    with Progress(transient=True) if _shows_progress(parts) else nullcontext() as progress:
        stats = first_pass if first_pass is not None else _scan(parts, options, progress)
        tokenizer = _tokenizer_for(stats, tokenizer, where, options)
        _write_cache(parts, options, files, tokenizer, stats, progress)
    return _loaded(files.ids, tokenizer, key, stats)


@dataclass(frozen=True)
class _CacheFiles:
    """The files one encoding is cached in."""

    stats: Path  # the first pass: counts, starts, bom
    ids: Path
    vocab: Path | None  # the text's own vocabulary; None when one is given (its key is in `ids` instead)


def _cache_files(stats_file: Path, stem: str, tokenizer: CharTokenizer | None) -> _CacheFiles:
    folder = stats_file.parent
    if tokenizer is None:
        return _CacheFiles(stats_file, folder / f"{stem}.ids.npy", folder / f"{stem}.vocab.json")
    vocab_key = hashlib.sha256("".join(tokenizer.chars).encode()).hexdigest()[:8]
    return _CacheFiles(stats_file, folder / f"{stem}.vocab-{vocab_key}.ids.npy", None)


def _cached(files: _CacheFiles, tokenizer: CharTokenizer | None, key: str) -> EncodedCorpus | None:
    """The encoding from the cache, or None where any of its files is missing or unreadable."""
    stats = _read_json(files.stats)
    if not isinstance(stats, dict) or not files.ids.exists():
        return None
    if tokenizer is None:
        vocab = _read_json(files.vocab) if files.vocab else None
        if not isinstance(vocab, list):
            return None
        tokenizer = CharTokenizer(vocab)
    return _loaded(files.ids, tokenizer, key, stats)


def _shows_progress(parts: list[Part]) -> bool:
    """Whether encoding takes long enough to show a progress bar: many bytes of files, or many rows."""
    return sum(p.size for p in parts if p.starts_file) >= _PROGRESS_MIN_BYTES or any(
        not p.starts_file and p.size >= _PROGRESS_MIN_ROWS for p in parts
    )


def _tokenizer_for(
    stats: dict[str, Any], tokenizer: CharTokenizer | None, where: str, options: TextOptions
) -> CharTokenizer:
    """The text's own vocabulary, or the one given once it is checked to hold every character."""
    chars = sorted(stats["counts"])
    if not chars:
        raise DataError(f"{where} has no text; pass a text with content")
    if tokenizer is None:
        return CharTokenizer(chars)
    if unknown := tokenizer.unknown_chars("".join(chars)):
        named = describe_chars(unknown)
        endings = reading_fix(unknown, options.normalize)
        raise UnknownCharactersError(
            f"{where} has characters the vocabulary lacks: {named}; "
            f"{endings}{'or ' if endings else ''}remove them from the text", named,
        )
    return tokenizer


def _write_cache(
    parts: list[Part], options: TextOptions, files: _CacheFiles, tokenizer: CharTokenizer,
    stats: dict[str, Any], progress: Progress | None,
) -> None:
    folder = files.stats.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _write_ids(parts, options, files.ids, tokenizer, stats["n_chars"], progress)
        write_json_atomic(files.stats, stats)
        if files.vocab is not None:
            write_json_atomic(files.vocab, tokenizer.to_list())
    except OSError as err:
        raise DataError(
            f"cannot write the encoding cache in {folder} ({err.strerror}); "
            f"set {CACHE_DIR_ENV} to a writable folder"
        ) from None


def _where(parts: list[Part], label: str) -> str:
    return parts[0].name if len(parts) == 1 else label


def load_encoded(
    corpus: Path,
    tokenizer: CharTokenizer | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> EncodedCorpus:
    """Token ids of one text file (memory-mapped), the tokenizer that made them and the file's
    sha256 (the corpus is read and hashed once here). The cache is keyed by the file's sha256, so
    an edited file is re-encoded. A run reads its text through CharText; this is one file's ids
    without a run's config (a tokenizer's ids of a new text, the tests, the benchmarks)."""
    part = file_parts([corpus])[0]
    return encode_parts([part], part.sha256, corpus.name, tokenizer, cache_dir, beside=corpus)


def _stem(label: str, key: str) -> str:
    return f"{label}.{key[:16]}"


def stats_file_of(
    label: str, key: str, cache_dir: str | os.PathLike | None = None, beside: Path | None = None
) -> Path:
    """Where `encode_parts` keeps a text's first pass (its `text_stats`) in the encoding cache."""
    return cache_dir_for(beside, cache_dir) / f"{_stem(label, key)}.stats.json"


def text_stats(parts: list[Part], options: TextOptions, cached: Path) -> dict[str, Any]:
    """The first pass over a text as it is encoded (parts joined, options applied): how often each
    character occurs, where each part starts. From the encoding cache (`cached`, `stats_file_of`)
    when an earlier encoding of the same text wrote it, else streamed, nothing written."""
    stats = _read_json(cached)
    if isinstance(stats, dict) and isinstance(stats.get("counts"), dict):
        return stats
    return _scan(parts, options, None)
