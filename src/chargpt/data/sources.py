"""Where text comes from: a file, a directory, a glob, or a Hugging Face dataset split.

Each source is a list of Parts (a file, or a dataset split), streamed in chunks so that no whole
text is held in memory. Parts are joined in order with a separator into one id stream (see
encoding.py); their identities (path and sha256) make the corpus fingerprint.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chargpt.data.corpus import resolve_corpus, sha256_of
from chargpt.errors import ConfigError, DataError

_CHUNK_BYTES = 16 << 20
_SNIFF_BYTES = 8192
_HF_BATCH_ROWS = 1024
GLOB_CHARS = "*?["


@dataclass(frozen=True)
class Part:
    """One piece of the corpus: its name (in messages and the fingerprint), its content identity,
    and its text as (chunk, progress units) pairs; `size` is the total of those units."""

    name: str
    sha256: str
    chunks: Callable[[], Iterator[tuple[str, int]]] = field(compare=False, repr=False)
    size: int
    starts_file: bool = True  # a leading byte-order mark is dropped


def expand_path(value: str | os.PathLike) -> str:
    """`~` and environment variables, as a shell would expand them."""
    return os.path.expandvars(os.path.expanduser(str(value)))


def file_chunks(path: Path) -> Callable[[], Iterator[tuple[str, int]]]:
    """The file's text chunk by chunk (bytes read as progress); bad UTF-8 names the file."""
    import codecs

    def chunks() -> Iterator[tuple[str, int]]:
        decoder = codecs.getincrementaldecoder("utf-8")()
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
                yield text, len(raw)
                if not raw:
                    return
                offset += len(raw)

    return chunks


def _file_part(path: Path) -> Part:
    return Part(str(path), sha256_of(path), file_chunks(path), path.stat().st_size)


def _looks_binary(path: Path) -> bool:
    with path.open("rb") as f:
        head = f.read(_SNIFF_BYTES)
    if b"\0" in head:
        return True
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as err:
        return err.start < len(head) - 4  # a character cut at the sniff's end is not an error
    return False


# The cache files chargpt writes beside a single text (chargpt.data.encoding names them LABEL.KEY.
# stats.json, .vocab.json, .ids.npy and .vocab-VOCABKEY.ids.npy, KEY 16 hex digits): never part
# of a corpus, so a folder or glob that holds a text trained on alone still reads as its texts.
CACHE_FILE = re.compile(r"\.[0-9a-f]{16}\.(stats\.json|vocab\.json|ids\.npy|vocab-[0-9a-f]+\.ids\.npy)$")


def _is_hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def _directory_files(root: Path, setting: str) -> list[Path]:
    """Every non-hidden file under `root`, recursively, sorted by path; a binary one is an error."""
    files = sorted(
        p for p in root.rglob("*")
        if p.is_file() and not _is_hidden(p, root) and not CACHE_FILE.search(p.name)
    )
    for path in files:
        if _looks_binary(path):
            raise DataError(
                f"{path} inside {root} is not UTF-8 text (a binary file?); remove it, or give "
                f"{setting} a glob that leaves it out, e.g. {setting}='{root}/**/*.txt'"
            )
    return files


def text_files(value: str, setting: str, url: str | None = None, sha256: str | None = None) -> list[Path]:
    """The files a path setting names: a file, a directory (recursively) or a glob, in sorted order."""
    expanded = expand_path(value)
    path = Path(expanded)
    if path.is_dir():
        files = _directory_files(path, setting)
        if not files:
            raise DataError(f"{setting}={value}: the directory {path} has no files; put text files in it")
        return files
    if not path.exists() and any(c in expanded for c in GLOB_CHARS):
        matches = sorted(Path(m) for m in glob.glob(expanded, recursive=True) if not CACHE_FILE.search(m))
        files = []
        for match in matches:
            files += _directory_files(match, setting) if match.is_dir() else [match]
        if not files:
            raise DataError(
                f"{setting}={value} matches no files; check the pattern (quote it on the command "
                f"line: {setting}='corpus/*.txt')"
            )
        for match in files:
            if _looks_binary(match):
                raise DataError(f"{match} (matched by {setting}={value}) is not UTF-8 text; leave it out")
        return files
    if not path.exists() and url is None:
        raise DataError(
            f"data file not found: {path}; pass an existing text file, directory or glob as {setting}=..."
        )
    return [resolve_corpus(path, url, sha256)]


def file_parts(files: list[Path]) -> list[Part]:
    return [_file_part(f) for f in files]


def identity(parts: list[Part], settings: dict[str, Any]) -> str:
    """One sha256 for the parts in order and the settings that change the ids."""
    record = {"parts": [[p.name, p.sha256] for p in parts], **settings}
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()


# -- Hugging Face datasets ------------------------------------------------------------------------


def _datasets() -> Any:
    try:
        import datasets
    except ImportError:
        raise ConfigError(
            "data=hf needs the datasets package; install it with: pip install 'chargpt[hf]'"
        ) from None
    return datasets


def _is_saved_dataset(path: Path) -> bool:
    return path.is_dir() and any(
        (path / name).is_file() for name in ("dataset_dict.json", "state.json", "dataset_info.json")
    )


def load_hf(name: str, config: str | None, data_files: Any, split: str) -> Any:
    """One split of a dataset: saved with save_to_disk (a local folder), or via load_dataset
    (a hub name, or a builder such as "text" with data_files)."""
    datasets = _datasets()
    local = Path(expand_path(name))
    if _is_saved_dataset(local):
        loaded = datasets.load_from_disk(str(local))
        if isinstance(loaded, datasets.DatasetDict):
            if split not in loaded:
                raise DataError(
                    f"the dataset at {local} has no split {split!r}; its splits are: "
                    f"{', '.join(loaded)}; pass data.split=one of them"
                )
            return loaded[split]
        return loaded  # a single saved split
    if isinstance(data_files, str):
        data_files = expand_path(data_files)
    try:
        return datasets.load_dataset(name, config, data_files=data_files, split=split)
    except (FileNotFoundError, ValueError, ConnectionError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DataError(
            f"cannot load the dataset {name!r} split {split!r} ({first[:200]}); pass a dataset saved "
            "with save_to_disk, a hub name (online or already cached), or data.name=text "
            "data.data_files=FILES"
        ) from None


def hf_part(dataset: Any, label: str, text_field: str, separator: str) -> Part:
    """A dataset split's rows joined with the separator, read a batch of rows at a time."""
    if text_field not in dataset.column_names:
        raise DataError(
            f"{label} has no field {text_field!r}; its fields are: {', '.join(dataset.column_names)}; "
            "pass data.text_field=one of them"
        )
    if len(dataset) == 0:
        raise DataError(f"{label} has no rows; pass a split with text")
    column = dataset.select_columns([text_field])

    def chunks() -> Iterator[tuple[str, int]]:
        first = True
        for batch in column.iter(batch_size=_HF_BATCH_ROWS):
            rows = batch[text_field]
            bad = next((r for r in rows if r is not None and not isinstance(r, str)), None)
            if bad is not None:
                raise DataError(
                    f"{label} field {text_field!r} holds {type(bad).__name__} values, not text; "
                    "pass data.text_field=a text field"
                )
            text = separator.join(r for r in rows if r is not None)
            yield ("" if first else separator) + text, len(rows)
            first = False

    fingerprint = getattr(dataset, "_fingerprint", None) or ""  # datasets' own content identity
    sha = hashlib.sha256(f"{label}\0{text_field}\0{fingerprint}\0{len(dataset)}".encode()).hexdigest()
    return Part(label, sha, chunks, len(dataset), starts_file=False)
