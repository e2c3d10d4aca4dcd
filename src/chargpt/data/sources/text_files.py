"""Text files as a source: the files a path setting names (a file, a folder read recursively, or a
glob), each checked to be UTF-8 text, chargpt's own run folders and caches left out; and their
Parts, read chunk by chunk."""

from __future__ import annotations

import fnmatch
import functools
import glob
import hashlib
import logging
import os
import re
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NoReturn

from chargpt import shell_words
from chargpt.data.corpus import resolve_corpus
from chargpt.data.sources.file_hashes import cached_sha256s, forget_sha256
from chargpt.data.sources.hf_datasets import is_saved_dataset
from chargpt.data.sources.parts import Part, changed_while_read
from chargpt.data.sources.paths import GLOB_CHARS, expand_path, no_match_advice, split_glob
from chargpt.errors import DataError, cannot_read, exists, spaces_around, visible
from chargpt.overrides import sweep_item
from chargpt.run_layout import is_run_folder

log = logging.getLogger(__package__)  # one name for what the sources say, whichever module says it

_CHUNK_BYTES = 16 << 20
_SNIFF_BYTES = 8192


def file_chunks(
    path: Path, sha256: str, hash_cache: Path | None = None
) -> Callable[[], Iterator[tuple[str, int]]]:
    """The file's text chunk by chunk (bytes read as progress); bad UTF-8 names the file. The bytes
    read are hashed as they are: other than those `sha256` identifies (the file written to since it
    was hashed), they are an error before the last chunk, so no text is taken for another's; and
    `sha256`'s entry in `hash_cache` is dropped, so that running again hashes the file afresh."""
    import codecs

    def chunks() -> Iterator[tuple[str, int]]:
        decoder = codecs.getincrementaldecoder("utf-8")()
        digest = hashlib.sha256()
        offset = 0
        try:
            opened = path.open("rb")
        except OSError as err:
            raise _unreadable_now(path, err) from None
        with opened as f:
            while True:
                raw = f.read(_CHUNK_BYTES)
                digest.update(raw)
                if not raw and digest.hexdigest() != sha256:
                    forget_sha256(path, sha256, hash_cache)
                    raise changed_while_read(str(path))
                try:
                    text = decoder.decode(raw, final=not raw)
                except UnicodeDecodeError as err:
                    why = not_utf8_at(offset + err.start)
                    raise DataError(f"{path} {why}; {convert_advice(why)}") from None
                if (nul := raw.find(b"\0")) >= 0:  # past the head the file was first checked by
                    raise DataError(f"{path} holds a NUL byte at offset {offset + nul} (a binary part?); no "
                                    "text holds one: remove it, or leave the file out")
                yield text, len(raw)
                if not raw:
                    return
                offset += len(raw)

    return chunks


NUL_BYTES = "holds NUL bytes (UTF-16 text, or a binary file?)"
UTF16_MARK = "starts with a UTF-16 byte-order mark (UTF-16 text)"
BINARY = "holds NUL bytes and is not UTF-8 text (a binary file?)"


def not_utf8_at(offset: int) -> str:
    """Bad UTF-8 with no NUL byte (most often a one-byte encoding), named where it is: alone, in a
    folder or in a glob alike."""
    return f"is not UTF-8 text (bad byte near offset {offset})"


def convert_advice(why: str) -> str:
    """The one advice for a file that is no UTF-8 text, wherever it was named: NUL bytes where UTF-16
    puts them or a UTF-16 mark are UTF-16, other bad bytes most often a one-byte encoding (which has
    no NUL: with NULs, the encoding is anyone's guess). Of those, Windows' CP1252: it reads Latin-1
    text alike, while Latin-1 reads its quotes, dashes and euro sign (0x80-0x9f) as control
    characters, which then train as text without a word."""
    if why in (NUL_BYTES, UTF16_MARK):
        return "if it is text, convert it to UTF-8 (iconv -f UTF-16 -t UTF-8)"
    if why == BINARY:
        return "if it is text, convert it to UTF-8 from its encoding (iconv -f ENCODING -t UTF-8)"
    return "if it is text, convert it to UTF-8 (iconv -f CP1252 -t UTF-8, naming its own encoding if another)"


def not_utf8(path: Path) -> str | None:
    """What makes a file, read whole, no UTF-8 text, and the advice, as the words after its name in
    an error (None: it is UTF-8). For files another reader found fault with (datasets' `text`
    builder), which does not say which file."""
    import codecs

    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    with path.open("rb") as f:
        while True:
            raw = f.read(_CHUNK_BYTES)
            try:
                decoder.decode(raw, final=not raw)
            except UnicodeDecodeError as err:
                why = _not_text(path) or not_utf8_at(offset + err.start)
                return f"{why}; {convert_advice(why)}"
            if not raw:
                return None
            offset += len(raw)


def _head(path: Path) -> bytes:
    try:
        with path.open("rb") as f:
            return f.read(_SNIFF_BYTES)
    except OSError as err:  # no read permission (chmod 000), an unreadable disk; or removed since listed
        raise _unreadable_now(path, err) from None


def _not_text(path: Path) -> str | None:
    """Why the file, by its first bytes, is no UTF-8 text (None: it is). NUL bytes are valid UTF-8,
    but no text holds them: a UTF-16 file without a byte-order mark would train as every other
    character a NUL."""
    head = _head(path)
    if _utf16_like(head):
        return NUL_BYTES
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):  # UTF-16 by its mark (CJK text has no NUL)
        return UTF16_MARK
    if b"\0" not in head:
        return None if (bad := _bad_byte(head)) is None else not_utf8_at(bad)
    # A stray NUL in UTF-8 text (counted against 100 bytes at least: one in a short file is stray
    # too): no advice, which would garble it; reading names its offset (file_chunks).
    if head.count(b"\0") * 100 <= max(len(head), 100) and _bad_byte(head) is None:
        return None
    return BINARY


def _utf16_like(head: bytes) -> bool:
    """NULs where UTF-16 puts them: the high byte of each ASCII character (every other byte of
    English; of Chinese or Japanese, only each newline and ASCII space, which may be few), so
    several, nearly all at one parity. A stray NUL, or a binary file's (at any offset), is not."""
    even, odd = head[0::2].count(0), head[1::2].count(0)
    most = max(even, odd)
    return most >= 3 and most * 10 >= (even + odd) * 9


def _bad_byte(head: bytes) -> int | None:
    """The offset of the first byte of a file's first bytes that is not UTF-8, or None (a character
    cut at the sniff's end is no error; at the end of a shorter file, one is)."""
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as err:
        return None if len(head) == _SNIFF_BYTES and err.start >= len(head) - 4 else err.start
    return None


# The cache files chargpt writes beside a single text (chargpt.data.encoding names them LABEL.KEY.
# stats.json, .vocab.json, .ids.npy and .vocab-VOCABKEY.ids.npy, KEY 16 hex digits): never part
# of a corpus, so a folder or glob that holds a text trained on alone still reads as its texts.
CACHE_FILE = re.compile(r"\.[0-9a-f]{16}\.(stats\.json|vocab\.json|ids\.npy|vocab-[0-9a-f]+\.ids\.npy)$")


def _walk(root: Path) -> tuple[list[Path], list[Path], list[Path]]:
    """The non-hidden files under `root`, recursively, following links to folders (each folder
    once); the run folders left out; the other names left out (links that lead nowhere, pipes,
    sockets, devices: _say_left_out names them). A folder that cannot be read is
    an error: os.walk passes over it, and the text would be trained without its files."""
    files, runs, broken, seen = [], [], [], set()
    unreadable = functools.partial(_unreadable_folder, root)
    for folder, dirs, names in os.walk(root, followlinks=True, onerror=unreadable):
        here = Path(folder)
        try:
            _check_searchable(here, [*dirs, *names])
        except PermissionError as err:
            unreadable(err)
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
            try:
                if path.is_file():
                    files.append(path)
                elif _no_text_file(path):
                    broken.append(path)
            except PermissionError as err:  # a link into a folder this user may not search
                raise DataError(f"{cannot_read(_first_unsearchable(path), err)}, or remove the link {path} "
                                "(or name the other files by a glob that does not go into it): its files "
                                "would be left out of the text") from None
    return sorted(files), runs, broken


def _check_searchable(folder: Path, names: list[str]) -> None:
    """PermissionError naming `folder` where it can be listed but not searched (`chmod a-x`): its
    names are there, but none can be looked up, so none would be told a file and read (os.walk and
    glob list them all the same)."""
    if names:
        try:
            os.lstat(folder / names[0])
        except PermissionError as err:
            raise PermissionError(err.errno, err.strerror, str(folder)) from None


def _unreadable_folder(root: Path, err: OSError) -> NoReturn:
    folder = str(err.filename)
    if Path(folder) == root:
        raise DataError(cannot_read(folder, err)) from None
    raise DataError(f"{cannot_read(folder, err)}, or move it out of {root} (or name the other files by a "
                    "glob that does not go into it): its files would be left out of the text") from None


def _refuse_unreadable_globbed_folders(fixed: Path, pattern: str, setting: str, value: str) -> None:
    """glob.glob passes over a folder it may not list (or lists but may not search), and the text
    would be trained without its files, nothing said: each folder the pattern goes into or matches
    (below its fixed part, by glob's rules for hidden names; run folders left out) is listed and
    searched here, and one that cannot be is an error."""
    glob_parts = _GlobParts(pattern)
    seen: set[tuple[str, frozenset[int]]] = set()
    stack = [(fixed, glob_parts.past_globstars({0}))]
    while stack:
        folder, states = stack.pop()
        if (os.path.realpath(folder), frozenset(states)) in seen:  # a loop of links, or a second way in
            continue
        seen.add((os.path.realpath(folder), frozenset(states)))
        try:
            names = _folders_in(folder, states, glob_parts)
            if folder != fixed and is_run_folder(folder):  # chargpt's own: its matches are left out
                continue
        except (FileNotFoundError, NotADirectoryError):  # no such folder: the glob matches nothing there
            continue
        except OSError as err:
            # (the folder a link in it leads into, where that is the one that cannot be searched)
            past = err.filename is not None and not Path(os.fsdecode(err.filename)).is_relative_to(folder)
            blocked = Path(os.fsdecode(err.filename)) if past else folder
            raise DataError(f"{cannot_read(blocked, err)}, or change {setting}={value} so it does not go "
                            "into it: its files would be left out of the text") from None
        for name in names:
            if inner := glob_parts.into(states, name):  # one it goes into, or matches (and reads whole)
                stack.append((folder / name, inner))


class _GlobParts:
    """A glob pattern's parts, matched folder by folder: a folder is at a set of states, each the
    index of the part its next name must match (len(parts): the pattern matched whole)."""

    def __init__(self, pattern: str) -> None:
        separators = r"[\\/]" if os.altsep else re.escape(os.sep)
        self.parts = [part for part in re.split(separators, pattern) if part]

    def past_globstars(self, states: set[int]) -> set[int]:
        """`states`, and past each `**` they are at: it also matches no folder at all."""
        out = set(states)
        for i in states:
            while i < len(self.parts) and self.parts[i] == "**":
                i += 1
                out.add(i)
        return out

    def into(self, states: set[int], name: str) -> set[int]:
        """The states in the folder `name`; empty where the pattern neither goes into it nor matches it."""
        hidden = name.startswith(".")  # matched only by a part that starts with '.', as glob has it
        after = set()
        for i in (i for i in states if i < len(self.parts)):
            if self.parts[i] == "**" and not hidden:
                after.add(i)
            elif (not hidden or self.parts[i].startswith(".")) and fnmatch.fnmatch(name, self.parts[i]):
                after.add(i + 1)
        return self.past_globstars(after)

    def looked_up(self, states: set[int]) -> list[str] | None:
        """The names the pattern goes to next, where none is a wildcard: glob looks them up in the
        folder without listing it; None where it lists the folder."""
        named = [self.parts[i] for i in states if i < len(self.parts)]
        return None if any(c in part for part in named for c in GLOB_CHARS) else named


def _folders_in(folder: Path, states: set[int], glob_parts: _GlobParts) -> list[str]:
    """The folders in `folder` the pattern may go into, found as glob finds them: an OSError where
    this user may not list `folder` (when glob lists it) or search it."""
    if named := glob_parts.looked_up(states):  # not listed: search permission is enough
        return [name for name in named if _is_folder_at(folder / name)]
    # (a folder matched whole too: listed and searched, its files to be read)
    with os.scandir(folder) as entries:
        listed = list(entries)
    _check_searchable(folder, [entry.name for entry in listed])
    # Only a name the pattern goes into or matches is asked whether it is a folder: a link it passes
    # over (`corpus/*.txt` beside a link into a folder one may not search) is no part of the text, and
    # asking would refuse it.
    return [entry.name for entry in listed
            if glob_parts.into(states, entry.name) and _is_folder_at(folder / entry.name)]


def _first_unsearchable(path: Path) -> Path:
    """The outermost folder above `path`, where its links lead, that this user may not search (a name
    in it cannot be looked up), else `path` itself: the one whose chmod lets it be read."""
    absolute = Path(os.path.realpath(path))
    for name in (*reversed(absolute.parents), absolute):
        try:
            os.stat(name)
        except PermissionError:
            return name.parent
        except OSError:
            break
    return absolute


def _is_folder_at(path: Path) -> bool:
    """Whether `path` is a folder; a name not there is none. A folder this user may not search,
    above it or where its link leads, raises PermissionError naming that folder."""
    try:
        return stat.S_ISDIR(os.stat(path).st_mode)
    except (FileNotFoundError, NotADirectoryError):
        return False
    except PermissionError as err:  # its parent was searched: the trouble is past it (a link's target)
        blocked = _first_unsearchable(path)
        raise PermissionError(err.errno, err.strerror, str(blocked)) from None


def _directory_files(root: Path, setting: str) -> tuple[list[Path], list[Path], list[Path]]:
    """Every non-hidden file under `root`, recursively, sorted by path (a binary one is an error);
    the run folders and dead links left out."""
    files, runs, broken = _walk(root)
    for path in files:
        if why := _not_text(path):
            # As typed in a shell, with the folder's own glob characters ('[2024]') escaped.
            example = shell_words.quote(f"{setting}={glob.escape(str(root))}/**/*.txt")
            leave_out = f", or give {setting} a glob that leaves it out, e.g. {example}"
            if path.suffix == ".txt":  # that glob would keep it
                leave_out = ""
            raise DataError(f"{path} inside {root} {why}; {convert_advice(why)}, or remove it{leave_out}")
    return files, runs, broken


def _no_text_file(path: Path) -> bool:
    """A name that is neither file nor folder: a link that leads nowhere, or a pipe, socket or
    device (which a walk or a glob would read no text from, or wait on for ever: a FIFO)."""
    return (path.is_symlink() and _leads_nowhere(path)) or path.exists()


_SAVE_IT = "to train on what one gives, save it to a file first: COMMAND > corpus.txt"


def _refuse_only_special(setting: str, value: str, left_out: list[Path]) -> None:
    """A folder or glob with no file, only pipes, sockets or devices: one error naming them (the
    warning that leaves them out, then "has no files", was two lines that did not meet)."""
    dead, special = (sorted(paths) for paths in _dead_and_special(left_out))
    if special:
        also = f", and {len(dead)} link(s) that lead nowhere: {_first_and_more(dead)}" if dead else ""
        raise DataError(f"{setting}={value} names no file, only pipe(s), socket(s) or device(s): "
                        f"{_first_and_more(special)}{also}; {_SAVE_IT}")


def _say_left_out(where: str, runs: list[Path], left_out: list[Path]) -> None:
    """One warning line per kind of what a folder or glob held and its text leaves out."""
    dead, special = _dead_and_special(left_out)
    for paths, what in ((runs, "run folder(s) inside it (chargpt's own output)"),
                        (dead, "link(s) that lead nowhere"),
                        (special, f"pipe(s), socket(s) or device(s), which are not files ({_SAVE_IT})")):
        if paths:
            log.warning("%s: left out %d %s: %s", where, len(paths), what, _first_and_more(paths))


def _dead_and_special(left_out: list[Path]) -> tuple[list[Path], list[Path]]:
    """What a folder or glob left out (_no_text_file), in two: the links that lead nowhere, and the
    pipes, sockets and devices."""
    return [path for path in left_out if not path.exists()], [path for path in left_out if path.exists()]


def _first_and_more(paths: list[Path]) -> str:
    """"a/p and 2 more": the first of `paths`, and how many others."""
    return f"{paths[0]}" + (f" and {len(paths) - 1} more" if len(paths) > 1 else "")


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
    except PermissionError:  # it leads into a folder this user may not search: the caller says so
        raise
    except OSError:  # reached through a loop of links too deep to follow: not judged here
        return False
    return False


def same_file(path: Path | str) -> tuple[int, int] | str:
    """What a name leads to, as one value for every name of it: the file itself (its device and
    inode), which a symbolic link and a hard link share (their paths differ, a hard link's even
    resolved); for a dead link, where it points."""
    try:
        found = os.stat(path)
    except OSError:
        return os.path.realpath(path)
    if not found.st_ino:  # a file system with no inode numbers (some of Windows'): every file's is 0
        return os.path.realpath(path)
    return found.st_dev, found.st_ino


def _once_each(files: set[Path], by: Callable[[Path], object] = os.path.realpath) -> set[Path]:
    """One name per file (or dead link), `by` what a name leads to: a glob reaches a file once per
    link to its folder (and a loop of links many times); the shortest name is kept. A text reads
    a file hard-linked under two names once too (files_read, by same_file); a glob's matches are
    found by path, as they always were, so a run that read both names can read them again."""
    kept: dict[object, Path] = {}
    for path in sorted(files, key=lambda p: (len(p.parts), p)):  # the shortest name: no loop in it
        kept.setdefault(by(path), path)
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
    _refuse_unsearchable_or_dataset(path, value, setting)
    if path.is_dir():
        return _folder_text_files(path, value, setting)
    if not path.exists() and any(c in expanded for c in GLOB_CHARS):
        return _globbed_text_files(expanded, value, setting)
    if url is None and not exists(path):  # (one to download: its folder's trouble is the download's to say)
        _refuse_missing(path, expanded, setting)
    file = resolve_corpus(path, url, sha256, setting)
    if why := _not_text(file):
        raise DataError(f"{file} {why}; {convert_advice(why)}")
    return [file]


def _refuse_unsearchable_or_dataset(path: Path, value: str, setting: str) -> None:
    """Refuse a path inside a folder this user may not search, and a dataset saved with save_to_disk
    (not a folder of text)."""
    try:
        os.stat(path)
    except PermissionError as err:  # inside a folder this user may not search (chmod 000): name that folder
        raise DataError(cannot_read(_first_unsearchable(path), err)) from None
    except OSError:  # not there (a glob, or a file to download): _text_files says so
        pass
    if is_saved_dataset(path):  # its Arrow files would be refused as binary, with a glob of text to try
        fix = (f"pass it as data=hf {shell_words.quote(f'data.name={value}')}" if setting == "data.path" else
               "a dataset's validation split is data=hf data.val_split=SPLIT")
        raise DataError(f"{setting}={value} is a dataset saved with save_to_disk, not a folder of text; "
                        f"{fix}")


def _folder_text_files(path: Path, value: str, setting: str) -> list[Path]:
    """A folder's text files, recursively; what it leaves out said; none is an error."""
    files, runs, broken = _directory_files(path, setting)
    if not files:
        _refuse_only_special(setting, value, broken)
    _say_left_out(str(path), runs, broken)
    if not files:
        raise DataError(f"{setting}={value}: the directory {path} has no files (hidden ones are left "
                        "out); put text files in it")
    return files


def _globbed_text_files(expanded: str, value: str, setting: str) -> list[Path]:
    """The text files a glob matches (a matched folder read whole), each once; what it leaves out
    said; none, or one that is no text, is an error."""
    fixed_part, pattern = split_glob(expanded)
    fixed = Path(fixed_part or ".")  # the folders before the first wildcard
    _refuse_unreadable_globbed_folders(fixed, pattern, setting, value)
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
        elif _no_text_file(match):
            left_broken.add(match)
    found = _once_each(found)
    if not found:
        _refuse_only_special(setting, value, sorted(_once_each(left_broken)))
    _say_left_out(value, sorted(left_runs), sorted(_once_each(left_broken)))
    if not found:
        raise DataError(
            f"{setting}={value} matches no files; {no_match_advice(expanded, setting)} (quote it on the "
            f"command line: {setting}='corpus/*.txt')"
        )
    for match in sorted(found):
        if why := _not_text(match):
            raise DataError(f"{match} (matched by {setting}={value}) {why}; {convert_advice(why)}, "
                            "or leave it out of the pattern")
    return sorted(found)


def _refuse_missing(path: Path, expanded: str, setting: str) -> NoReturn:
    """A data file that is not there: spaces typed around its name, a comma-separated list (one
    path, or a sweep over several), or simply no such file."""
    if (spaces := spaces_around(path, setting)) is not None:  # the file is there without them
        raise DataError(f"data file not found: {visible(path)}{spaces}")
    pieces = [piece.strip(" '\"") for piece in expanded.split(",")]
    found = _listed_files(expanded.split(","))
    if "," in expanded and (found or any(Path(piece).exists() for piece in pieces)):  # a list, or a sweep
        # The files themselves where all exist (chargpt's sweeper hands a quote or an é to its job),
        # named alike: the command line makes the whole value absolute, and so its first file alone.
        listed = found or ["a.txt", "b.txt"]
        if any(Path(piece).is_absolute() for piece in listed):
            listed = [str(Path(piece).absolute()) for piece in listed]
        sweep = f"{setting}=choice({','.join(sweep_item(piece) for piece in listed)})"
        raise DataError(
            f"data file not found: {visible(path)}; {setting} is one path, commas included, not a list: "
            f"to train on the files together, put them in one folder or name them by a glob "
            f"({setting}='corpus/*.txt'); to train once on each, sweep over them: -m "
            f"{shell_words.quote(sweep)}"
        )
    raise DataError(
        f"data file not found: {visible(path)}; pass an existing text file, directory or glob as "
        f"{setting}=..."
    )


def _listed_files(pieces: list[str]) -> list[str] | None:
    """The files a comma-separated list names, every one there, from the pieces between its commas:
    neighbours joined again where a name holds a comma (a folder `a, b`); None where no such reading
    names only files that are there."""
    @functools.cache
    def from_piece(first: int) -> tuple[str, ...] | None:
        if first == len(pieces):
            return ()
        for last in range(len(pieces), first, -1):  # the longest name first
            name = ",".join(pieces[first:last]).strip(" '\"")
            if Path(name).exists() and (rest := from_piece(last)) is not None:
                return (name, *rest)
        return None

    found = from_piece(0)
    return list(found) if found and len(found) > 1 else None


EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()  # an empty file's, as a corpus fingerprint records it


def files_read(
    files: list[Path], keep_empty: bool = False, keep_links: bool = False, keep_hard_links: bool = False
) -> tuple[list[Path], int]:
    """The files a text reads, and how many empty ones it left out: each file once, under one name
    (a symbolic or hard link inside a folder to another of its files would read that text twice,
    and could hold it out for validation as well as train on it), and its empty ones left out
    (each only put a separator between its neighbours). Versions before 2026-12-06 read both
    (`keep_links`), then for a while a hard link's name too, a file being told by its resolved path
    (`keep_hard_links`), and empty files (`keep_empty`): a run they trained reads its files so again
    where it resumes or is scored (the ids, and the identity, are its own). A new list either way: a
    caller that extends it must not extend `files` too."""
    if keep_links:
        named = list(files)
    else:
        named = sorted(_once_each(set(files), os.path.realpath if keep_hard_links else same_file))
    kept = named if keep_empty else [f for f in named if f.stat().st_size]
    return kept, len(named) - len(kept)


def file_parts(files: list[Path], hash_cache: Path | None = None) -> list[Part]:
    """The files as Parts, each identified by the sha256 of its bytes; `hash_cache`: where those
    digests are kept between starts (file_hashes), None to hash every file every time."""
    try:
        digests = cached_sha256s(files, hash_cache)
        sizes = [f.stat().st_size for f in files]
    except (FileNotFoundError, PermissionError) as err:  # (each names its file)
        raise _unreadable_now(Path(err.filename), err) from None
    return [Part(str(f), sha, file_chunks(f, sha, hash_cache), size)
            for f, sha, size in zip(files, digests, sizes, strict=True)]


def _unreadable_now(path: Path, err: OSError) -> DataError:
    """A file listed as the text's, which cannot be read now: moved or removed since, or made
    unreadable."""
    if isinstance(err, FileNotFoundError):
        return changed_while_read(str(path), "it was moved or removed after it was listed")
    return DataError(cannot_read(path, err))
