"""Hugging Face datasets as a source: one split of a dataset (saved with save_to_disk, a hub name,
or a builder such as `text` with data_files) as a Part, its rows read a batch at a time."""

from __future__ import annotations

import glob
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from chargpt.data.sources.file_hashes import cached_sha256s, file_stamps
from chargpt.data.sources.parts import Part, changed_while_read
from chargpt.data.sources.paths import absolute_path, expand_path, no_match_advice
from chargpt.errors import ConfigError, DataError, first_line, needs_extra

_HF_BATCH_ROWS = 1024
LOCAL_BUILDERS = ("text", "json", "csv", "parquet", "arrow", "pandas")  # datasets' builders of local files


def _arrow_files(dataset: Any) -> list[Path]:
    """The Arrow files that hold a dataset's rows (none for a dataset only in memory)."""
    return [Path(f["filename"]) for f in getattr(dataset, "cache_files", None) or []]


def _content_id(dataset: Any, hash_cache: Path | None = None) -> str:
    """What the rows are: the sha256 of the Arrow files that hold them (and of the row selection,
    if any), as a text file's is of its bytes. datasets' own fingerprint is not: a split saved
    again unchanged gets a new one. A dataset only in memory has no files: its fingerprint, then.
    The files are hashed once, their digests kept in `hash_cache` (a big dataset took seconds)."""
    files = _arrow_files(dataset)
    if files and all(f.is_file() for f in files):
        return ",".join(cached_sha256s(files, hash_cache))
    return getattr(dataset, "_fingerprint", None) or ""


def _datasets() -> Any:
    try:
        import datasets
    except ImportError:
        raise ConfigError(needs_extra("data=hf", "the datasets package", "hf")) from None
    return datasets


def is_saved_dataset(path: Path) -> bool:
    """A folder written by datasets' save_to_disk (one that cannot be read is not: reading it as
    text then says so)."""
    try:
        return path.is_dir() and any(
            (path / name).is_file() for name in ("dataset_dict.json", "state.json", "dataset_info.json")
        )
    except OSError:  # a folder without read or search permission
        return False


def absolute_data_files(name: str, data_files: Any) -> Any:
    """A local builder's data_files (data.name=text, json, ...) named absolute, as a text's files
    are: its checkpoint records them, and chargpt-eval's advice, the copy check and a resume read
    them from any folder (named relative, they read the files of the folder they ran in, or none).
    A hub dataset's name files inside it, and a URL names its own: kept as given."""
    if name not in LOCAL_BUILDERS:
        return data_files
    if isinstance(data_files, dict):  # files per split
        return {split: absolute_data_files(name, files) for split, files in data_files.items()}
    if isinstance(data_files, list):
        return [absolute_data_files(name, files) for files in data_files]
    if not isinstance(data_files, str) or not data_files or "://" in data_files:
        return data_files  # (an empty one: refused as matching no files, not the current folder)
    return absolute_path(data_files, pattern=True)  # datasets reads even a file's name as a glob


def load_hf(name: str, config: str | None, data_files: Any, split: str, setting: str = "data.split") -> Any:
    """One split of a dataset: saved with save_to_disk (a local folder), or via load_dataset
    (a hub name, or a builder such as "text" with data_files). `setting` names the split."""
    local = Path(expand_path(name))
    if is_saved_dataset(local):
        return _saved_split(local, split, setting)
    return _loaded_split(name, config, data_files, split)


def _saved_split(local: Path, split: str, setting: str) -> Any:
    """The split of the dataset saved at `local`: one of its DatasetDict, or the one split it holds."""
    datasets = _datasets()
    try:
        loaded = datasets.load_from_disk(str(local))
    except IndexError:  # what datasets raises for a split saved with no rows (no data file)
        raise DataError(f"the dataset at {local} holds no rows; save one with text in it") from None
    if isinstance(loaded, datasets.DatasetDict):
        if split not in loaded:
            raise DataError(
                f"the dataset at {local} has no split {split!r}; its splits are: "
                f"{', '.join(loaded)}; pass {setting}=one of them"
            )
        return loaded[split]
    # A single saved split: it is the training text (data.split keeps its default, or names the
    # split it was saved from); it has no other split to validate on.
    saved_as = str(getattr(loaded, "split", None) or "")
    if setting != "data.split" or (split != "train" and split != saved_as):
        raise DataError(
            f"the dataset at {local} was saved as one split ({saved_as or 'unnamed'}), so "
            f"{setting}={split} names none of it; leave {setting} out (without data.val_split the last "
            "part of the text validates, data.train_fraction), or save a DatasetDict that has that split"
        )
    return loaded


def _loaded_split(name: str, config: str | None, data_files: Any, split: str) -> Any:
    """The split load_dataset reads (a hub's, a builder's of its data_files), its failures said as
    the settings to change."""
    datasets = _datasets()
    if isinstance(data_files, str):
        data_files = expand_path(data_files)
        # A builder such as `text` reads local files (a hub dataset's data_files name its own files).
        if name in LOCAL_BUILDERS and "://" not in data_files and not glob.glob(data_files, recursive=True):
            advice = no_match_advice(data_files, "data.data_files")
            raise DataError(f"data.data_files={data_files} matches no files; {advice} (quote it on the "
                            "command line: data.data_files='corpus/*.txt')")
    try:
        return datasets.load_dataset(name, config, data_files=data_files, split=split)
    except StopIteration:  # a builder (json, csv, ...) that found no row in its files
        raise DataError(f"data.data_files={data_files} holds no rows (its files are empty); give files with "
                        "rows") from None
    except datasets.exceptions.DatasetGenerationError as err:
        raise _builder_failed(err, name, data_files, split) from None
    except (FileNotFoundError, ValueError, ConnectionError) as err:
        raise DataError(
            f"cannot load the dataset {name!r} split {split!r} ({first_line(err, 200)}); pass a dataset "
            "saved with save_to_disk, a hub name (online or already cached), or data.name=text "
            "data.data_files=FILES"
        ) from None


def _builder_failed(err: Exception, name: str, data_files: Any, split: str) -> DataError:
    """The error for a builder that failed on a file: datasets keeps the reason as the cause."""
    cause = err.__cause__
    if isinstance(cause, UnicodeDecodeError):
        if found := _first_not_utf8(data_files):
            path, words = found
            return DataError(f"{path} (matched by data.data_files={data_files}) {words}, or leave it out "
                             "of data.data_files")
        return DataError(f"data.data_files={data_files} holds a file that is not UTF-8 text "
                         f"({cause.reason}); convert it to UTF-8 (iconv), or leave it out")
    if type(cause).__name__ == "SchemaInferenceError":  # no row at all
        return DataError(f"data.data_files={data_files} holds no text (its files are empty); "
                         "give files with text")
    reason = first_line(cause, 200) if cause is not None and str(cause).strip() else first_line(err, 200)
    return DataError(f"cannot read the dataset {name!r} split {split!r} ({reason}); check data.data_files")


def _first_not_utf8(data_files: Any) -> tuple[Path, str] | None:
    """The first file `data_files` matches (a pattern, a list, or those per split) that is no UTF-8
    text, with what is wrong with it: datasets' error does not say which."""
    from chargpt.data.sources.text_files import not_utf8  # (it imports this module)

    patterns = data_files.values() if isinstance(data_files, dict) else [data_files]
    for each in patterns:
        for pattern in [each] if isinstance(each, str) else list(each or []):
            for match in sorted(glob.glob(expand_path(str(pattern)), recursive=True)):
                try:
                    words = not_utf8(Path(match)) if Path(match).is_file() else None
                except OSError:  # unreadable (no permission): not the file datasets could not decode
                    continue
                if words:
                    return Path(match), words
    return None


def rows_are_lines(name: str) -> bool:
    """Whether a dataset's rows are the lines of files (the `text` builder's, newlines removed)."""
    return name == "text"


def row_separator(name: str, separator: str) -> str:
    """What joins a dataset's rows: the `text` builder's rows are a file's lines (newlines removed),
    so a newline puts them back as they were; other datasets' rows are documents."""
    return "\n" if rows_are_lines(name) else separator


def hf_part(
    dataset: Any, label: str, text_field: str, separator: str, hash_cache: Path | None = None,
    skip_empty: bool = True,
) -> Part:
    """A dataset split's rows joined with the separator, read a batch of rows at a time;
    `hash_cache`: where its files' digests are kept (_content_id). Rows of no text (empty or None)
    are left out where `skip_empty`, as empty files are: each would only add a separator. Versions
    before 2026-12-07 left out None rows alone (not a batch of nothing but those), and a run they
    trained reads its rows so again (as_its_run_read); the `text` builder's rows are lines, its
    empty ones blank lines of its files, kept."""
    if text_field not in dataset.column_names:
        raise DataError(
            f"{label} has no field {text_field!r}; its fields are: {', '.join(dataset.column_names)}; "
            "pass data.text_field=one of them"
        )
    if len(dataset) == 0:
        raise DataError(f"{label} has no rows; pass a split with text")
    column = dataset.select_columns([text_field])
    # Stamped before they are hashed: the rows are read from the files as they are then (datasets
    # maps them, and save_to_disk writes a split into its files in place), so a write from now on
    # would have its rows cached, and a run recorded, under the sha256 of the rows before it.
    files = _arrow_files(dataset)
    stamped = file_stamps(files)

    def unless_written_to() -> None:
        # (Their digest entries are kept: a stamp changed since will not match the one recorded before
        # the write, and one recorded since, by another run, is of the files as they are now.)
        if file_stamps(files) != stamped:
            raise changed_while_read(label, "its files were written to after their sha256 was taken")

    def rows_read() -> Iterator[tuple[str, int]]:
        first = True
        for batch in column.iter(batch_size=_HF_BATCH_ROWS):
            rows = batch[text_field]
            bad = next((r for r in rows if r is not None and not isinstance(r, str)), None)
            if bad is not None:
                raise DataError(
                    f"{label} field {text_field!r} holds {type(bad).__name__} values, not text; "
                    "pass data.text_field=a text field"
                )
            if not skip_empty:
                text = separator.join(r for r in rows if r is not None)
                yield ("" if first else separator) + text, len(rows)
                first = False
                continue
            kept = [r for r in rows if r]
            yield ("" if first or not kept else separator) + separator.join(kept), len(rows)
            first = first and not kept

    def chunks() -> Iterator[tuple[str, int]]:
        # Checked before a row is read too: rows read through a map of files rewritten since can
        # be garbage to Arrow, which may crash the process (SIGSEGV) rather than raise.
        unless_written_to()
        try:
            yield from rows_read()
        except Exception:  # rows read from files rewritten under the reader: garbled (bad UTF-8)
            unless_written_to()
            raise
        unless_written_to()

    def sha_of(content: str) -> str:
        # Rows of no text left out: another text of the same rows, identified (and cached) apart.
        rows = "\0empty rows left out" if skip_empty else ""
        return hashlib.sha256(f"{label}\0{text_field}\0{content}\0{len(dataset)}{rows}".encode()).hexdigest()

    earlier = None if skip_empty else sha_of(getattr(dataset, "_fingerprint", None) or "")
    return Part(label, sha_of(_content_id(dataset, hash_cache)), chunks, len(dataset), starts_file=False,
                earlier_sha256=earlier)
