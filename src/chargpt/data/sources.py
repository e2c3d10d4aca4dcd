"""Where text comes from: a file, a directory, a glob, or a Hugging Face dataset split.

Each source is a list of Parts (a file, or a dataset split), streamed in chunks so that no whole
text is held in memory. Parts are joined in order with a separator into one id stream (see
encoding.py); their identities (path and sha256) make the corpus fingerprint.
"""

from __future__ import annotations

import glob
import hashlib
import json
import logging
import os
import re
import shlex
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chargpt.data.corpus import resolve_corpus, sha256_of
from chargpt.errors import ConfigError, DataError, first_line, needs_extra
from chargpt.run_layout import is_run_folder

log = logging.getLogger(__name__)

_CHUNK_BYTES = 16 << 20
_SNIFF_BYTES = 8192
_HF_BATCH_ROWS = 1024
LOCAL_BUILDERS = ("text", "json", "csv", "parquet", "arrow", "pandas")  # datasets' builders of local files
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
    # A dataset split's identity as versions before the change of 2026-12-05 gave it (from datasets'
    # fingerprint): checkpoints they wrote still resume on the unchanged split (CharText.earlier_sha256).
    earlier_sha256: str | None = field(default=None, compare=False)


def expand_path(value: str | os.PathLike) -> str:
    """`~` and environment variables, as a shell would expand them; a path that exists as typed
    (a folder named 'price $5') is taken as it is, and so is the folder of a glob (its pattern is
    still expanded)."""
    home = os.path.expanduser(str(value))
    if "$" in home and os.path.exists(home):  # also a name with a glob's brackets in it: 'a [1] $5.txt'
        return home
    folder, pattern = split_glob(home)
    if "$" in folder and os.path.exists(folder or "."):
        return folder + os.path.expandvars(pattern)
    return os.path.expandvars(home)


def split_glob(path: str) -> tuple[str, str]:
    """A glob's folders before its first wildcard (with their last separator) and the rest; a path
    with no wildcard is all folder."""
    first = min((i for i in map(path.find, GLOB_CHARS) if i >= 0), default=None)
    if first is None:
        return path, ""
    cut = path.rfind(os.sep, 0, first) + 1
    return path[:cut], path[cut:]


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
                    raise DataError(f"{path} is not UTF-8 text (bad byte near offset {offset + err.start}); "
                                    f"{convert_advice(NOT_UTF8)}") from None
                if (nul := raw.find(b"\0")) >= 0:  # past the head the file was first checked by
                    raise DataError(f"{path} holds a NUL byte at offset {offset + nul} (a binary part?); no "
                                    "text holds one: remove it, or leave the file out")
                yield text, len(raw)
                if not raw:
                    return
                offset += len(raw)

    return chunks


def _file_part(path: Path) -> Part:
    return Part(str(path), sha256_of(path), file_chunks(path), path.stat().st_size)


NUL_BYTES = "holds NUL bytes (UTF-16 text, or a binary file?)"
UTF16_MARK = "starts with a UTF-16 byte-order mark (UTF-16 text)"
NOT_UTF8 = "is not UTF-8 text (another encoding, or a binary file?)"


def convert_advice(why: str) -> str:
    """The one advice for a file that is no UTF-8 text, wherever it was named: NUL bytes or a UTF-16
    mark are UTF-16, other bad bytes most often a one-byte encoding such as Latin-1."""
    if why in (NUL_BYTES, UTF16_MARK):
        return "if it is text, convert it to UTF-8 (iconv -f UTF-16 -t UTF-8)"
    return "if it is text, convert it to UTF-8 (iconv -f LATIN1 -t UTF-8, naming its own encoding if another)"


def _head(path: Path) -> bytes:
    with path.open("rb") as f:
        return f.read(_SNIFF_BYTES)


def _not_text(path: Path) -> str | None:
    """Why the file, by its first bytes, is no UTF-8 text (None: it is). NUL bytes are valid UTF-8,
    but no text holds them: a UTF-16 file without a byte-order mark would train as every other
    character a NUL."""
    head = _head(path)
    if b"\0" in head or head.startswith((b"\xff\xfe", b"\xfe\xff")):  # UTF-16 (its mark: CJK has no NUL)
        return NUL_BYTES if b"\0" in head else UTF16_MARK
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as err:
        if err.start < len(head) - 4:  # a character cut at the sniff's end is not an error
            return NOT_UTF8
    return None


# The cache files chargpt writes beside a single text (chargpt.data.encoding names them LABEL.KEY.
# stats.json, .vocab.json, .ids.npy and .vocab-VOCABKEY.ids.npy, KEY 16 hex digits): never part
# of a corpus, so a folder or glob that holds a text trained on alone still reads as its texts.
CACHE_FILE = re.compile(r"\.[0-9a-f]{16}\.(stats\.json|vocab\.json|ids\.npy|vocab-[0-9a-f]+\.ids\.npy)$")


def _walk(root: Path) -> tuple[list[Path], list[Path], list[Path]]:
    """The non-hidden files under `root`, recursively, following links to folders (each folder
    once); the run folders left out; the links that lead nowhere."""
    files, runs, broken, seen = [], [], [], set()
    for folder, dirs, names in os.walk(root, followlinks=True):
        here = Path(folder)
        real = os.path.realpath(here)
        run = here != root and is_run_folder(here)  # its train.log and checkpoints are no text
        if real in seen or run:  # read already (a loop, or a second link to it), or chargpt's own
            if run and real not in seen:
                runs.append(here)
            dirs[:] = []
            continue
        seen.add(real)
        # Real folders before links, by name: a folder reached both ways is named the same way on
        # every machine (the names are in checkpoints).
        dirs[:] = sorted((d for d in dirs if not d.startswith(".")),
                         key=lambda d: (os.path.islink(os.path.join(folder, d)), d))
        for name in names:
            path = here / name
            if name.startswith(".") or CACHE_FILE.search(name):
                continue
            if path.is_file():
                files.append(path)
            elif path.is_symlink() and _leads_nowhere(path):
                broken.append(path)  # other kinds (a pipe, a socket) are no text: left out
    return sorted(files), runs, broken


def _directory_files(root: Path, setting: str) -> tuple[list[Path], list[Path], list[Path]]:
    """Every non-hidden file under `root`, recursively, sorted by path (a binary one is an error);
    the run folders and dead links left out."""
    files, runs, broken = _walk(root)
    for path in files:
        if why := _not_text(path):
            # As typed in a shell, with the folder's own glob characters ('[2024]') escaped.
            example = shlex.quote(f"{setting}={glob.escape(str(root))}/**/*.txt")
            leave_out = f", or give {setting} a glob that leaves it out, e.g. {example}"
            if path.suffix == ".txt":  # that glob would keep it
                leave_out = ""
            raise DataError(f"{path} inside {root} {why}; {convert_advice(why)}, or remove it{leave_out}")
    return files, runs, broken


def _say_left_out(where: str, runs: list[Path], broken: list[Path]) -> None:
    for paths, what in ((runs, "run folder(s) inside it (chargpt's own output)"),
                        (broken, "link(s) that lead nowhere")):
        if paths:
            more = f" and {len(paths) - 1} more" if len(paths) > 1 else ""
            log.warning("%s: left out %d %s: %s%s", where, len(paths), what, paths[0], more)


def _run_folder_of(match: Path, fixed: Path) -> Path | None:
    """The run folder a glob's match is, or lies in, below the glob's fixed part (`notes/**/*`
    matches notes/outputs/.../train.log), if any."""
    return next((folder for folder in (match, *match.parents)
                 if folder.is_relative_to(fixed) and folder != fixed and is_run_folder(folder)), None)


def _leads_nowhere(link: Path) -> bool:
    try:
        os.stat(link)
    except FileNotFoundError:
        return True
    except OSError:  # reached through a loop of links too deep to follow: not judged here
        return False
    return False


def _once_each(files: set[Path]) -> set[Path]:
    """One name per file (or dead link): a glob reaches it once per link to its folder (and a loop
    of links many times); the shortest name is kept."""
    kept: dict[str, Path] = {}
    for path in sorted(files, key=lambda p: (len(p.parts), p)):  # the shortest name: no loop in it
        kept.setdefault(os.path.realpath(path), path)
    return set(kept.values())


def text_files(value: str, setting: str, url: str | None = None, sha256: str | None = None) -> list[Path]:
    """The files a path setting names: a file, a directory (recursively) or a glob, in sorted order."""
    files = _text_files(value, setting, url, sha256)
    if all(path.stat().st_size == 0 for path in files):  # only the separators between them would remain
        raise DataError(f"{setting}={value}: its {len(files)} file(s) are all empty; put text in them")
    for path in files:
        try:
            str(path).encode("utf-8")
        except UnicodeEncodeError:  # a name in another encoding: checkpoints and caches record names
            shown = os.fsencode(path).decode("utf-8", "backslashreplace")
            raise DataError(f"the file name {shown} is not UTF-8; rename it (e.g. with convmv)") from None
    return files


def _text_files(value: str, setting: str, url: str | None, sha256: str | None) -> list[Path]:
    expanded = expand_path(value)
    path = Path(expanded)
    if path.is_dir():
        files, runs, broken = _directory_files(path, setting)
        _say_left_out(str(path), runs, broken)
        if not files:
            raise DataError(f"{setting}={value}: the directory {path} has no files (hidden ones are left "
                            "out); put text files in it")
        return files
    if not path.exists() and any(c in expanded for c in GLOB_CHARS):
        fixed = Path(split_glob(expanded)[0] or ".")  # the folders before the first wildcard
        found: set[Path] = set()
        left_runs: set[Path] = set()
        left_broken: set[Path] = set()
        for match in map(Path, glob.glob(expanded, recursive=True)):
            if CACHE_FILE.search(match.name):
                continue
            if (run := _run_folder_of(match, fixed)) is not None:
                left_runs.add(run)
            elif match.is_dir():  # `corpus/**/*` matches folders and their files: each file once
                files, runs, broken = _directory_files(match, setting)
                found.update(files)
                left_runs.update(runs)
                left_broken.update(broken)
            elif match.is_file():
                found.add(match)
            elif match.is_symlink() and _leads_nowhere(match):
                left_broken.add(match)
        found = _once_each(found)
        _say_left_out(value, sorted(left_runs), sorted(_once_each(left_broken)))
        if not found:
            raise DataError(
                f"{setting}={value} matches no files; check the pattern (quote it on the command "
                f"line: {setting}='corpus/*.txt')"
            )
        for match in sorted(found):
            if why := _not_text(match):
                raise DataError(f"{match} (matched by {setting}={value}) {why}; {convert_advice(why)}, "
                                "or leave it out of the pattern")
        return sorted(found)
    if not path.exists() and url is None:
        raise DataError(
            f"data file not found: {path}; pass an existing text file, directory or glob as {setting}=..."
        )
    file = resolve_corpus(path, url, sha256)
    if (why := _not_text(file)) in (NUL_BYTES, UTF16_MARK):  # (other bad bytes: named with their offset)
        raise DataError(f"{file} {why}; {convert_advice(why)}")
    return [file]


def file_parts(files: list[Path]) -> list[Part]:
    return [_file_part(f) for f in files]


def identity(parts: list[Part], settings: dict[str, Any]) -> str:
    """One sha256 for the parts in order and the settings that change the ids."""
    record = {"parts": [[p.name, p.sha256] for p in parts], **settings}
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()


# -- Hugging Face datasets ------------------------------------------------------------------------


def _content_id(dataset: Any) -> str:
    """What the rows are: the sha256 of the Arrow files that hold them (and of the row selection,
    if any), as a text file's is of its bytes. datasets' own fingerprint is not: a split saved
    again unchanged gets a new one. A dataset only in memory has no files: its fingerprint, then."""
    files = [Path(f["filename"]) for f in getattr(dataset, "cache_files", None) or []]
    if files and all(f.is_file() for f in files):
        return ",".join(sha256_of(f) for f in files)
    return getattr(dataset, "_fingerprint", None) or ""


def _datasets() -> Any:
    try:
        import datasets
    except ImportError:
        raise ConfigError(needs_extra("data=hf", "the datasets package", "hf")) from None
    return datasets


def _is_saved_dataset(path: Path) -> bool:
    return path.is_dir() and any(
        (path / name).is_file() for name in ("dataset_dict.json", "state.json", "dataset_info.json")
    )


def load_hf(name: str, config: str | None, data_files: Any, split: str, setting: str = "data.split") -> Any:
    """One split of a dataset: saved with save_to_disk (a local folder), or via load_dataset
    (a hub name, or a builder such as "text" with data_files). `setting` names the split."""
    datasets = _datasets()
    local = Path(expand_path(name))
    if _is_saved_dataset(local):
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
    if isinstance(data_files, str):
        data_files = expand_path(data_files)
        # A builder such as `text` reads local files (a hub dataset's data_files name its own files).
        if name in LOCAL_BUILDERS and "://" not in data_files and not glob.glob(data_files, recursive=True):
            raise DataError(f"data.data_files={data_files} matches no files; check the path or pattern "
                            "(quote it on the command line: data.data_files='corpus/*.txt')")
    try:
        return datasets.load_dataset(name, config, data_files=data_files, split=split)
    except StopIteration:  # a builder (json, csv, ...) that found no row in its files
        raise DataError(f"data.data_files={data_files} holds no rows (its files are empty); give files with "
                        "rows") from None
    except datasets.exceptions.DatasetGenerationError as err:
        # The builder failed on a file: datasets keeps the reason as the cause.
        cause = err.__cause__
        if isinstance(cause, UnicodeDecodeError):
            raise DataError(f"data.data_files={data_files} holds a file that is not UTF-8 text "
                            f"({cause.reason}); convert it to UTF-8 (iconv), or leave it out") from None
        if type(cause).__name__ == "SchemaInferenceError":  # no row at all
            raise DataError(f"data.data_files={data_files} holds no text (its files are empty); "
                            "give files with text") from None
        reason = first_line(cause, 200) if cause is not None and str(cause).strip() else first_line(err, 200)
        raise DataError(f"cannot read the dataset {name!r} split {split!r} ({reason}); check "
                        "data.data_files") from None
    except (FileNotFoundError, ValueError, ConnectionError) as err:
        raise DataError(
            f"cannot load the dataset {name!r} split {split!r} ({first_line(err, 200)}); pass a dataset "
            "saved with save_to_disk, a hub name (online or already cached), or data.name=text "
            "data.data_files=FILES"
        ) from None


def row_separator(name: str, separator: str) -> str:
    """What joins a dataset's rows: the `text` builder's rows are a file's lines (newlines removed),
    so a newline puts them back as they were; other datasets' rows are documents."""
    return "\n" if name == "text" else separator


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

    def sha_of(content: str) -> str:
        return hashlib.sha256(f"{label}\0{text_field}\0{content}\0{len(dataset)}".encode()).hexdigest()

    earlier = sha_of(getattr(dataset, "_fingerprint", None) or "")
    return Part(label, sha_of(_content_id(dataset)), chunks, len(dataset), starts_file=False,
                earlier_sha256=earlier)
