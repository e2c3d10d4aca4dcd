"""The text a checkpoint was trained on, as its run recorded it: found, checked unchanged, and split
as that run split it (chargpt-eval scores it; chargpt-sample check_copy=true compares samples
with its training part)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from chargpt import shell_words
from chargpt.checkpoints import corpus_changes, cut_at_a_fraction, recorded_files, stored_corpus, stored_split
from chargpt.data.corpus import gives_no_text, not_a_file
from chargpt.data.encoding import TextOptions, cache_dir_for, read_as_trained
from chargpt.data.sources.file_hashes import cached_sha256s
from chargpt.data.sources.hf_datasets import is_saved_dataset
from chargpt.data.sources.paths import GLOB_CHARS, expand_path
from chargpt.data.sources.text_files import files_read, text_files
from chargpt.data.text import DEFAULT_TRAIN_FRACTION, CharText, as_its_run_read, rows_as_its_run_read
from chargpt.errors import ConfigError, DataError, UnknownCharactersError
from chargpt.overrides import hydra_quoted


@dataclass(frozen=True)
class Reader:
    """A command that reads a run's text again, as its errors tell the user what to pass."""

    how: str  # ends each error: what to pass instead
    whole: str  # the setting that takes all of a text
    reads_datasets: bool  # a dataset named again with data=hf
    scores_validation: bool  # it reads a run's validation text (eval), not only its training text
    # It takes the reading settings (data.newline, data.normalize, data.separator): a checkpoint that
    # does not record its run's can be read with them; without them, only the text as it is now.
    takes_read_settings: bool


EVAL = Reader("pass the text to evaluate as data.path=FILE, or a dataset as data=hf data.name=NAME",
              "split=all", reads_datasets=True, scores_validation=True, takes_read_settings=True)
# The copy check compares samples with the text as the model's vocabulary writes it; a text named by
# data.path is read as it is, unchecked, which needs no reading settings of its own.
COPY_CHECK = Reader("pass the training text as data.path=FILE", "data.train_fraction=1", reads_datasets=False,
                    scores_validation=False, takes_read_settings=False)


def recorded_data(
    ckpt: dict[str, Any], source: str, overrides: dict[str, str] | set[str], reader: Reader = EVAL
) -> dict[str, Any]:
    """The data settings of the run that wrote `ckpt`: its corpus, checked unchanged, and its split
    (unless data.train_fraction is among the `overrides`), for `reader`."""
    how = reader.how
    corpus = stored_corpus(ckpt) or {}
    if not corpus.get("path"):
        raise DataError(f"{source} does not record the text it was trained on; {how}")
    if corpus.get("dataset") or str(corpus["path"]).startswith("dataset "):
        moved = moved_folder(corpus)
        again = _dataset_overrides(corpus, stored_split(ckpt), moved) if reader.reads_datasets else None
        if moved:
            raise DataError(_moved(source, moved, f"name it where it is now: {again}" if again else how))
        raise DataError(f"{source} was trained on {corpus['path']}, which is read again only when named; "
                        + (f"name it: {again}" if again else how))
    path = Path(str(corpus["path"]))
    split = stored_split(ckpt)
    read_as = recorded_settings(corpus)
    if split.get("val_path"):
        trained = shell_words.quote(f"data.path={path}")
        what = f"{source} was validated on a text of its own (data.val_path={split['val_path']})"
        if reader.scores_validation:
            # With the settings the run read its text with: text named is read with the command's own.
            trained = " ".join(filter(None, [trained, _overrides(read_as)]))
            held_out = shell_words.quote(f"data.val_path={split['val_path']}")
            raise DataError(f"{what}; pass both texts to score it as its run did: {trained} {held_out} (or "
                            f"{trained} {reader.whole} to score the training text)")
        raise DataError(f"{what} and trained on all of {path}; pass that as {trained} {reader.whole}")
    _check_unchanged(path, corpus, source, overrides, reader)
    settings: dict[str, Any] = {"path": str(path), "url": None, "sha256": None}
    settings |= {key: value for key, value in read_as.items() if f"data.{key}" not in overrides}
    if "data.train_fraction" not in overrides and isinstance(split.get("train_fraction"), float):
        settings["train_fraction"] = split["train_fraction"]
    if "data.split" not in overrides and split.get("split") == "files":
        settings["split"] = "files"  # whole files held out, as the run held them out
    return settings | as_its_run_read(corpus)


def _check_unchanged(
    path: Path, corpus: dict[str, Any], source: str, overrides: dict[str, str] | set[str], reader: Reader
) -> None:
    """The text at `path` is still the one its run recorded (`corpus`): its files, or its sha256."""
    how, as_is = reader.how, _as_is(path)
    if corpus.get("files"):
        _check_files(path, corpus, source, how, as_is)
    elif not path.is_file():
        raise DataError(f"{source} was trained on {path}, which is no longer there; {how}")
    elif recorded_settings(corpus) or any(f"data.{key}" in overrides for key in TextOptions().settings()):
        pass  # the sha256 covers the settings too: check_read_alike compares the text as read again
    elif (recorded_sha := corpus.get("sha256")) and (sha := _sha256s([path])[0]) != recorded_sha:
        pass_them = ": pass them" if reader.takes_read_settings else ""
        maybe_read_otherwise = (", or its run read it with data.newline or data.normalize (a checkpoint "
                                f"from before 2026-12-02 does not record them{pass_them})"
                                if unrecorded(corpus) else "")
        raise DataError(
            f"{path} has changed since {source} was trained on it (sha256 {str(recorded_sha)[:12]} then, "
            f"{sha[:12]} now){maybe_read_otherwise}; {how} {as_is}"
        )


def _as_is(path: Path | str) -> str:
    """How a command that reads a run's text again takes the text at `path` as it is now."""
    return f"({shell_words.quote(f'data.path={path}')} takes it as it is now)"


def moved_folder(corpus: dict[str, Any]) -> str | None:
    """The folder a run's saved dataset was recorded at, where there is none now (it was moved or
    deleted since); None for one in place, a hub's and a builder's, and a folder of data files that
    datasets reads (a local name that is there). A saved dataset's folder is recorded absolute
    (before 2026-12-06 as typed: not told apart from a hub name)."""
    dataset = corpus.get("dataset")
    name = dataset.get("name") if isinstance(dataset, dict) else None
    if isinstance(name, str) and Path(name).is_absolute() and not Path(name).exists():
        return name
    return None


def _moved(source: str, folder: str, fix: str) -> str:
    """The error for a run whose saved dataset's `folder` (moved_folder) holds it no longer."""
    return f"{source} was trained on the dataset saved at {folder}, which holds none now (moved or " \
           f"deleted); {fix}"


def _dataset_overrides(corpus: dict[str, Any], split: dict[str, Any], moved: str | None = None) -> str | None:
    """The settings that name a run's dataset again, read and split as the run did; a `moved`
    folder named by a placeholder, the folder it is in now."""
    dataset = corpus.get("dataset")
    if not isinstance(dataset, dict) or isinstance(dataset.get("data_files"), list):
        return None  # not recorded (before 2026-12-03), or several patterns: no one-line override
    defaults = {"split": "train", "text_field": "text"}
    recorded_only = ("label", "empty_rows")  # how its run named and read it: no settings
    given = {k: v for k, v in dataset.items()
             if v is not None and defaults.get(k) != v and k not in recorded_only}
    given |= recorded_settings(corpus)
    if not dataset.get("val_split") and isinstance(split.get("train_fraction"), float):
        given["train_fraction"] = split["train_fraction"]
    # data.name is taken as typed (a path, a hub name); the others are read by Hydra's grammar.
    if moved:
        given["name"] = "FOLDER"
    return " ".join(["data=hf", *(shell_words.quote(f"data.{k}={v if k == 'name' else _setting(v)}")
                                  for k, v in given.items())])


def unrecorded(corpus: dict[str, Any]) -> bool:
    """Whether the checkpoint predates the record of its data settings (2026-12-02): its run may
    have read the text with any of them."""
    return "read_as" not in corpus


def recorded_settings(corpus: dict[str, Any]) -> dict[str, Any]:
    """The data settings (data.separator, data.newline, data.normalize) a run read its text with,
    where they were not the defaults; empty for the defaults and for checkpoints that predate the
    record."""
    read_as = corpus.get("read_as")
    known = TextOptions().settings()
    return {k: v for k, v in read_as.items() if k in known} if isinstance(read_as, dict) else {}


def _sha256s(files: list[Path]) -> list[str]:
    """Each file's sha256, from the digests training keeps (file_hashes) while a file is unchanged:
    a big text was hashed in full each time a command checked it."""
    return cached_sha256s(files, cache_dir_for(None))


def _check_files(path: Path, corpus: dict[str, Any], source: str, how: str, as_is: str) -> None:
    """A text of several files (a folder or a glob): each file as the run read it."""
    try:
        reading = as_its_run_read(corpus)
        how_read = [reading.get(key, False) for key in ("read_empty_files", "read_links_twice",
                                                        "read_hard_links_twice")]
        files, _ = files_read(text_files(str(path), "data.path"), *how_read)
    except DataError:
        raise DataError(f"{source} was trained on {path}, which no longer names its files; {how}") from None
    now = [[str(f), sha] for f, sha in zip(files, _sha256s(files), strict=True)]
    if recorded_files({"files": now}) == recorded_files(corpus):
        return
    raise DataError(
        f"{path} has changed since {source} was trained on it{corpus_changes(corpus, {'files': now})}; "
        f"{how} {as_is}"
    )


def split_ids(ids: np.ndarray, split: str, cut: int, path: str) -> np.ndarray:
    """One split of the ids, validation from `cut` (CharText.val_start) on."""
    part = {"val": ids[cut:], "train": ids[:cut], "all": ids}[split]
    if len(part) < 2:
        fix = "a longer text" if split == "all" else "split=all, a longer text or another data.train_fraction"
        raise DataError(f"the {split} split of {path} has {len(part)} character(s), no target to score; "
                        f"use {fix}")
    return part


def check_train_fraction(train_fraction: object) -> None:
    """A fraction to cut the text at given by the user (None: the run's own)."""
    if train_fraction is not None and (isinstance(train_fraction, bool) or not isinstance(
            train_fraction, (int, float)) or not 0.0 < train_fraction <= 1.0):
        raise ConfigError(f"data.train_fraction={train_fraction} must be above 0 and at most 1 (1: the "
                          "whole text), e.g. 0.9")


def training_text(
    ckpt: dict[str, Any] | None, source: str, path: str | None, train_fraction: float | None
) -> tuple[str, Path | str]:
    """The training part of the text a model learned from, and its file (a dataset: its name and
    split): the text the checkpoint records (checked unchanged), or `path` when given; cut at
    `train_fraction`, else at the checkpoint's recorded split, else at training's default 0.9.
    `ckpt` is None for a model without a checkpoint (an export), which needs `path`."""
    how = COPY_CHECK.how
    if path and is_saved_dataset(Path(expand_path(path))):
        # A saved dataset (the run's, moved; an export's): its rows, as the checkpoint records the
        # split and field, not its Arrow files.
        recorded = (stored_corpus(ckpt) or {}).get("dataset") if ckpt is not None else None
        dataset = {**(recorded if isinstance(recorded, dict) else {}), "name": expand_path(path)}
        return _dataset_as_trained(ckpt, source, dataset, train_fraction, named=True)
    if path:
        file = Path(expand_path(path))
    elif ckpt is None:
        raise DataError(f"{source} is an export, which does not record the text it was trained on; {how}")
    elif isinstance(dataset := (stored_corpus(ckpt) or {}).get("dataset"), dict):
        return _dataset_as_trained(ckpt, source, dataset, train_fraction)
    else:
        file = Path(recorded_data(ckpt, source, set(), COPY_CHECK)["path"])
    corpus = (stored_corpus(ckpt) or {}) if ckpt is not None else {}
    train_fraction = _fraction_to_cut_at(ckpt, file, bool(path), train_fraction)
    read_as = recorded_settings(corpus)
    if file.is_dir() or (not file.exists() and any(c in str(file) for c in GLOB_CHARS)) or read_as:
        # A folder or a glob, or a text its run read with other settings: read as training read it
        # (a text given by path with the run's settings too, but not checked against its record).
        return _text_as_trained(file, train_fraction, ckpt, source, read_as, recorded=not path), file
    return _plain_text(file, train_fraction), file


def _fraction_to_cut_at(ckpt: dict[str, Any] | None, file: Path, named: bool, train_fraction: float | None
                        ) -> float:
    """Where the copy check cuts the training text: at `train_fraction`, else at the run's recorded
    split, else at training's default; refused where it would leave out text the run trained on
    (copies from it would go unseen)."""
    split = stored_split(ckpt) if ckpt is not None else {}
    recorded = split.get("train_fraction") if cut_at_a_fraction(split) else None
    recorded = recorded if isinstance(recorded, float) else None
    if train_fraction is None:
        train_fraction = recorded or DEFAULT_TRAIN_FRACTION
    check_train_fraction(train_fraction)
    trained_text = (stored_corpus(ckpt) or {}).get("path") if ckpt is not None else None
    same_text = not named or (trained_text is not None and file.resolve() == Path(trained_text).resolve())
    if recorded is not None and same_text and train_fraction < recorded:
        raise ConfigError(
            f"data.train_fraction={train_fraction:g} would check the samples against only part of the text "
            f"the model trained on (its run split the text at {recorded:g}); leave it out, or pass "
            f"data.train_fraction={recorded:g} or more (1: the whole text)"
        )
    return train_fraction


def _plain_text(file: Path, train_fraction: float) -> str:
    """The training part of one plain file, read as training read it."""
    how = COPY_CHECK.how
    try:
        if gives_no_text(file):  # (a pipe, read once here, serves: `data.path=<(zcat corpus.gz)`)
            raise DataError(not_a_file(file, "data.path"))
        text = read_as_trained(file.read_bytes())
    except (OSError, UnicodeDecodeError) as err:
        reason = getattr(err, "strerror", None) or str(err)
        raise DataError(f"cannot read {file} ({reason}); {how} (a UTF-8 text file)") from None
    if not text:  # a search of nothing would report "0 characters" as if none were copied
        raise DataError(f"{file} is empty: no training text to check the samples against; {how}")
    # One plain file encodes one id per character, so the characters cut where training cut the ids.
    return text[: int(len(text) * train_fraction)]


# CharText takes a fraction below 1 to cut its text at, as training does (the rest validates). Where
# the training part is all of the text (a fraction of 1), or all before a validation split of the
# run's own (a dataset's data.val_split, where CharText cuts), no fraction cuts: this one stands in
# for CharText's check, and nothing reads it.
_NO_FRACTION = 0.5


def _dataset_as_trained(
    ckpt: dict[str, Any] | None, source: str, dataset: dict[str, Any], train_fraction: float | None,
    named: bool = False,
) -> tuple[str, str]:
    """The training part of the dataset split a run trained on, read again as the checkpoint
    records it (as a resume reads it) and checked to be the text the run read; a dataset `named`
    by data.path is read as it is, unchecked. `ckpt` is None for an export."""
    check_train_fraction(train_fraction)
    held_out = dataset.get("val_split")
    if held_out and train_fraction is not None and train_fraction < 1.0:
        # Its run trained on all of its split: any cut leaves copies from the rest unseen.
        raise ConfigError(
            f"data.train_fraction={train_fraction:g} would check the samples against only part of the text "
            f"the model trained on (its run trained on all of its split and validated on "
            f"data.val_split={held_out}); leave it out"
        )
    recorded = stored_split(ckpt).get("train_fraction") if ckpt is not None else None
    if train_fraction is None:
        train_fraction = recorded if isinstance(recorded, float) else DEFAULT_TRAIN_FRACTION
    corpus = (stored_corpus(ckpt) or {}) if ckpt is not None else {}
    whole = train_fraction >= 1.0 and not held_out  # a validation split of its own: cut where it starts
    data = CharText(
        None, block_size=1, train_fraction=_NO_FRACTION if whole or held_out else train_fraction,
        val_max_chars=None,
        name=dataset.get("name"), config=dataset.get("config"), data_files=dataset.get("data_files"),
        split=dataset.get("split") or "train", val_split=held_out,
        text_field=dataset.get("text_field") or "text",
        **recorded_settings(corpus), **(rows_as_its_run_read if named else as_its_run_read)(corpus),
    )
    try:
        ids = data.encoded().ids
    except DataError as err:
        if not named and (moved := moved_folder(corpus)):
            raise DataError(_moved(source, moved, "pass its folder where it is now: data.path=FOLDER")) \
                from None
        # Its own advice names training's settings (data.name=...), which this command does not take.
        reason = str(err).split("; ", 1)[0]
        what = f"cannot read {data.source}" if named else \
            f"{source} was trained on {data.source}, which cannot be read again"
        raise DataError(f"{what} ({reason}); {COPY_CHECK.how}") from None
    if ckpt is not None and not named:
        check_read_alike(data, ckpt, source, COPY_CHECK)
    return data.tokenizer.decode(ids if whole else ids[: data.val_start()]), data.source


def _text_as_trained(
    path: Path, train_fraction: float, ckpt: dict[str, Any] | None, source: str, read_as: dict[str, Any],
    recorded: bool,
) -> str:
    """The training part of a text of several files, or of one read with other settings, read with
    `read_as`, joined and cut as its run did; when it is the `recorded` text of `ckpt`, checked to
    be the text the run read."""
    whole = train_fraction >= 1.0
    split = stored_split(ckpt) if ckpt is not None and recorded else {}
    data = CharText(
        str(path), block_size=1, train_fraction=_NO_FRACTION if whole else train_fraction,
        val_max_chars=None, split="files" if split.get("split") == "files" else None, **read_as,
        **(as_its_run_read(stored_corpus(ckpt)) if ckpt is not None and recorded else {}),
    )
    if ckpt is not None and recorded:
        check_read_alike(data, ckpt, source, COPY_CHECK)
    ids = data.encoded().ids
    return data.tokenizer.decode(ids if whole else ids[: data.val_start()])


def check_read_alike(data: CharText, ckpt: dict[str, Any], source: str, reader: Reader = EVAL) -> None:
    """The text of several files, or one read with other settings, read again, is the text the run
    read: the recorded sha256 covers the files and the settings that change the ids
    (data.separator, data.newline, data.normalize). The fix each error names is one `reader` takes."""
    corpus = stored_corpus(ckpt) or {}
    read_as = recorded_settings(corpus)
    defaults = TextOptions().settings()
    # The fix for a text that changed: the command's own, and a file's path takes it as it is now (a
    # dataset's place is no data.path).
    as_it_is = reader.how if data.name else f"{reader.how} {_as_is(data.source)}"
    try:
        # A dataset's checkpoint from before 2026-12-05 recorded its identity from datasets' fingerprint.
        if not corpus.get("sha256") or corpus["sha256"] in (data.fingerprint["sha256"], data.earlier_sha256):
            return
    except UnknownCharactersError as err:
        raise _never_seen(err, data, corpus, source, reader, as_it_is) from None
    if read_as and not reader.takes_read_settings:  # read with its run's settings: the text changed
        raise DataError(f"{data.source} has changed since {source} was trained on it (read as its run read "
                        f"it, with {_overrides(read_as)}); {as_it_is}")
    if read_as:  # so the text changed, or other settings were given
        raise DataError(
            f"{data.source} has changed since {source} was trained on it, or is read with other data "
            f"settings than its run's ({_overrides(read_as)}); drop any data settings given, or pass "
            "data.path=FILE"
        )
    given = any(v != defaults[k] for k, v in data.options.settings().items())
    if not given and not unrecorded(corpus):
        raise DataError(f"{data.source} has changed since {source} was trained on it; {as_it_is}")
    if not given:  # its files are unchanged (checked before): its run read them with other settings
        fix = ("pass the ones its run used (data.separator, data.newline, data.normalize)"
               if reader.takes_read_settings else as_it_is)
        raise DataError(f"{source} read {data.source} with data settings other than the defaults, which "
                        f"{UNRECORDED} does not record; {fix}")
    unknown = (f" ({UNRECORDED} records none: for one, pass the ones its run used)" if unrecorded(corpus)
               else "")
    raise DataError(
        f"{source} read {data.source} with other data settings than these (data.separator, "
        f"data.newline, data.normalize): the defaults, so drop the ones given{unknown}"
    )


def _never_seen(err: UnknownCharactersError, data: CharText, corpus: dict[str, Any], source: str,
                reader: Reader, as_it_is: str) -> DataError:
    """The error for a text with characters its run never saw: read with other settings than its
    run's (data.newline=keep where it normalized '\r\n'), or the text has changed."""
    read_as, defaults = recorded_settings(corpus), TextOptions().settings()
    other = {k: v for k, v in data.options.settings().items() if v != read_as.get(k, defaults[k])}
    unseen = f"{data.source} has characters {source} never saw ({err.chars})"
    if other:
        theirs = _overrides(read_as) if read_as else "the default data settings" + (
            f" ({UNRECORDED} may have used others)" if unrecorded(corpus) else "")
        return DataError(f"{unseen} when read with {_overrides(other)}: its run read it with {theirs}; drop "
                         f"{_overrides(other)}")
    if read_as or not unrecorded(corpus):
        return DataError(f"{unseen}: it has changed since; {as_it_is}")
    fix = ("pass them (data.newline, data.normalize, data.separator), or data.path=FILE"
           if reader.takes_read_settings else as_it_is)
    return DataError(f"{unseen}: it has changed since, or its run read it with data settings ({UNRECORDED} "
                     f"does not record them); {fix}")


UNRECORDED = "a checkpoint written before 2026-12-02"


def _overrides(settings: dict[str, Any]) -> str:
    return " ".join(shell_words.quote(f"data.{k}={_setting(v)}") for k, v in settings.items())


def _setting(value: object) -> str:
    """A data setting as a Hydra override's value: a number or a boolean as Hydra reads one
    (quoted, 0.9 would be the text '0.9', which a number setting refuses); text bare only when it
    is one word, else quoted for Hydra (a separator may hold spaces or newlines)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return repr(value)
    text = str(value)
    return text if text.isalnum() else hydra_quoted(text) if text.isprintable() else repr(text)
