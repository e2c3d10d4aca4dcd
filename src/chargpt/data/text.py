"""A text read for training: its files (or dataset rows) joined, encoded into cached ids, and split
into training and validation text. No Lightning here: chargpt-eval and the copy check read the
text again with it, and Lightning takes seconds to import."""

from __future__ import annotations

import inspect
import os
import re
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from chargpt.checks import real_number, whole_number
from chargpt.data.encoding import (
    EncodedCorpus,
    TextOptions,
    cache_dir_for,
    encode_parts,
    stats_file_of,
    text_stats,
)
from chargpt.data.sources.hf_datasets import (
    absolute_data_files,
    hf_part,
    is_saved_dataset,
    load_hf,
    row_separator,
    rows_are_lines,
)
from chargpt.data.sources.parts import Part, identity
from chargpt.data.sources.paths import absolute_path, expand_path
from chargpt.data.sources.text_files import EMPTY_SHA256, file_parts, files_read, same_file, text_files
from chargpt.data.tokenizer import CharTokenizer
from chargpt.data.vocabulary import vocabulary_lines
from chargpt.errors import ConfigError, DataError
from chargpt.hydra_run import plain

# Validation scores the whole split up to this many characters, and the first this many beyond
# (a fixed prefix, so every validation and every run scores the same text): on a CPU a tiny
# model scores about 100k characters a second, so a 16M-character split took minutes per check.
DEFAULT_VAL_MAX_CHARS = 1_000_000
SPLITS = ("files",)


DEFAULT_TRAIN_FRACTION = 0.9  # configs/data/*.yaml's train_fraction: the first 90% trains
MIN_CONTEXT = 8  # the shortest model.block_size a too-short text's message offers


def check_text_settings(data: Mapping[str, Any], block_size: int) -> None:
    """CharText's checks of its settings, made on a data config (`data`, as CharDataModule takes it)
    before anything is read: a sweep makes them on each job before it starts, where each job made
    them once the sweep's folder was made."""
    _check_settings(data.get("path"), data.get("name"), block_size,
                    data.get("train_fraction", DEFAULT_TRAIN_FRACTION),
                    data.get("val_max_chars", DEFAULT_VAL_MAX_CHARS), data.get("split"), data.get("val_path"))
    TextOptions(**{key: data[key] for key in ("separator", "normalize", "newline") if key in data})


def _check_settings(
    path: str | None, name: str | None, block_size: int, train_fraction: float, val_max_chars: int | None,
    split: str | None, val_path: str | None,
) -> None:
    """Refuse a text's settings that cannot go together or are out of range, before anything is read."""
    if not path and not name:
        raise ConfigError(
            "no text given: pass data.path=FILE|DIR|GLOB (with data=text), or data.name=DATASET "
            "(with data=hf)"
        )
    real_number("data.train_fraction", train_fraction)
    if not 0.0 < train_fraction < 1.0:
        raise ConfigError(f"data.train_fraction={train_fraction} must be above 0 and below 1 (e.g. 0.9): "
                          "the rest is the validation text")
    whole_number("model.block_size", block_size, low=1)
    if val_max_chars is not None and (not isinstance(val_max_chars, int) or val_max_chars <= block_size):
        raise ConfigError(
            f"data.val_max_chars={val_max_chars} must be an integer above model.block_size "
            f"({block_size}), or null to score the whole validation split"
        )
    if name is None and split is not None and split not in SPLITS:
        raise ConfigError(
            f"data.split={split} is not a split of text files: leave it null (the last "
            "1 - data.train_fraction of the text validates) or pass data.split=files (whole files)"
        )
    if split == "files" and val_path:
        raise ConfigError("data.split=files and data.val_path both choose the validation text; pass one")


class CharText:
    """One file, the files of a directory or glob, or the rows of a Hugging Face dataset split
    (`name`), joined in order with `separator`, encoded and split.

    Validation text: `val_path` (files) or `val_split` (a dataset split) when given; else the last
    (1 - train_fraction) of the characters, or with split="files" the last whole files. Both splits
    must hold a window of `block_size` + 1 characters. `vocab` fixes the vocabulary (e.g. a
    checkpoint's); by default it is the corpus's own. Empty files are left out, unless
    `read_empty_files`, and so are a dataset's rows of no text, unless `read_empty_rows`; a file is
    read once under one name, unless `read_links_twice` (every name) or `read_hard_links_twice`
    (each name that resolves to another path); a dataset's splits are
    identified by its name (a saved one's folder absolute), unless `dataset_label` names them
    otherwise: these read a run's text again as its run read it (as_its_run_read).
    """

    def __init__(
        self,
        path: str | None,
        block_size: int,
        train_fraction: float = DEFAULT_TRAIN_FRACTION,
        url: str | None = None,
        sha256: str | None = None,
        cache_dir: str | None = None,
        vocab: list[str] | None = None,
        val_path: str | None = None,
        split: str | None = None,
        separator: str = "\n\n",
        normalize: str | None = None,
        newline: str = "keep",
        val_max_chars: int | None = DEFAULT_VAL_MAX_CHARS,
        name: str | None = None,
        config: str | None = None,
        data_files: Any = None,
        text_field: str = "text",
        val_split: str | None = None,
        read_empty_files: bool = False,
        read_links_twice: bool = False,
        read_hard_links_twice: bool = False,
        dataset_label: str | None = None,
        read_empty_rows: bool = False,
    ) -> None:
        _check_settings(path, name, block_size, train_fraction, val_max_chars, split, val_path)
        self.options = TextOptions(separator, normalize, newline)  # checks the three settings
        # Absolute: a folder's files are named in checkpoints, and must match from any directory.
        self.path = absolute_path(path) if path else None
        self.val_path = absolute_path(val_path) if val_path else None
        self.url, self.sha256 = url, sha256
        self.cache_dir = expand_path(cache_dir) if cache_dir else None
        self.block_size = block_size
        self.train_fraction = train_fraction
        self.split, self.val_max_chars = split, val_max_chars
        self.name, self.config = name, config
        self.data_files = absolute_data_files(name, plain(data_files)) if name else plain(data_files)
        self.text_field, self.val_split = text_field, val_split
        # The name a dataset's splits are identified by: a saved one's folder absolute, as a file's
        # path is, so its run resumes from any folder; a resumed run's as its run recorded it
        # (before 2026-12-06 a saved dataset's name as typed, relative to where it ran).
        self.dataset_label = dataset_label or self._dataset_place()
        self._vocab = vocab
        self.read_empty_files = read_empty_files
        self.read_links_twice = read_links_twice
        self.read_hard_links_twice = read_hard_links_twice
        self.read_empty_rows = read_empty_rows
        self._empty_left_out = 0  # empty files not read (report_lines says so)
        # What to say of a text too short for one window's context (model=auto chooses the context):
        # {most} is the longest context both splits hold.
        self.context_fix = "a model.block_size of at most {most}"
        self._encoded: EncodedCorpus | None = None
        self._parts: list[Part] = []
        self._place: tuple[str, str, Path | None] | None = None  # _cache_place()
        self._first_pass: dict[str, Any] | None = None  # what characters() read, for encoded()
        self._n_train_parts: int | None = None  # parts before the validation text, when it is given
        self.ids: np.ndarray | None = None
        self.train_ids: np.ndarray | None = None
        self.val_ids: np.ndarray | None = None  # the whole validation split (chargpt-eval scores it)
        self.val_scored_ids: np.ndarray | None = None  # what validation during training scores

    @property
    def source(self) -> str:
        """The text in a few words, for messages."""
        return self._described(self.name)

    @property
    def place(self) -> str:
        """The text named alike from any folder and in a resume (the run's `data` hyperparameter, by
        which runs on different texts differ): a file's path absolute, a dataset's name (a saved
        one's folder absolute) and split."""
        return self._described(self.dataset_label)

    def _described(self, dataset: str | None) -> str:
        if self.name:
            return f"dataset {dataset} ({self.split or 'train'})"
        return str(self.path)

    def _label(self) -> str:
        raw = Path(self.name or self.path or "corpus").name or "corpus"
        return re.sub(r"[^\w.-]+", "_", raw).strip("._") or "corpus"

    def _sources(self) -> list[Part]:
        if self.name:
            split = self.split or "train"
            dataset = load_hf(self.name, self.config, self.data_files, split)
            separator = self._separator()
            hashes = cache_dir_for(None, self.cache_dir)  # where a dataset's ids are cached too
            skip_empty = not (self.read_empty_rows or rows_are_lines(self.name))
            parts = [hf_part(dataset, f"{self.dataset_label}[{split}]", self.text_field, separator, hashes,
                             skip_empty)]
            if self.val_split == split:
                raise DataError(
                    f"data.val_split={split} is also the training split (data.split): validation would score "
                    "the text the model trains on; name another split, or leave data.val_split out (the last "
                    "part of the training split validates, data.train_fraction)"
                )
            if self.val_split:
                val = load_hf(self.name, self.config, self.data_files, self.val_split, "data.val_split")
                label = f"{self.dataset_label}[{self.val_split}]"
                parts.append(hf_part(val, label, self.text_field, separator, hashes, skip_empty))
                self._n_train_parts = 1
            return parts
        assert self.path is not None
        named = text_files(self.path, "data.path", self.url, self.sha256)
        links = self.read_links_twice, self.read_hard_links_twice
        files, self._empty_left_out = files_read(named, self.read_empty_files, *links)
        if self.val_path:
            val_files, val_left_out = files_read(text_files(self.val_path, "data.val_path"),
                                                 self.read_empty_files, *links)
            self._empty_left_out += val_left_out
            # By the file itself: a link (symbolic or hard) or another route to a training file is that
            # file; a run that told files by their resolved path (a hard link's name another file's) too.
            file_of = os.path.realpath if any(links) else same_file
            trained = {file_of(f): f for f in files}
            if overlap := sorted((trained[file_of(f)], f) for f in val_files if file_of(f) in trained):
                train_name, val_name = overlap[0]
                also = "" if val_name == train_name else f" (as {val_name})"
                raise DataError(
                    f"{train_name} is both training text (data.path) and validation text "
                    f"(data.val_path){also}; give them separate files"
                )
            self._n_train_parts = len(files)
            files += val_files
        # Each file's digest kept where a dataset's are: a big text was hashed in full at every start.
        return file_parts(files, cache_dir_for(None, self.cache_dir))

    def _separator(self) -> str:
        """What joins the parts as applied: the `text` builder's rows are joined with a newline
        whatever data.separator says."""
        return row_separator(self.name or "", self.options.separator)

    def _cache_place(self) -> tuple[str, str, Path | None]:
        """The text's parts found (each file hashed, or its digest found in the cache) into `_parts`,
        and where the encoding cache keeps them: its key, its label, and the file it is cached
        beside, if any.
        Once per process, for characters() and encoded() both."""
        if self._place is None:
            self._parts = parts = self._sources()
            single_file = len(parts) == 1 and parts[0].starts_file and not self.options.transforms
            # One plain file keeps its own sha256 as the key (checkpoints of earlier versions match).
            applied = {**self.options.settings(), "separator": self._separator()}
            key = parts[0].sha256 if single_file else identity(parts, applied)
            # Only a file named as itself caches beside it: a cache inside a folder (or matched by
            # a glob) would join the text on the next read.
            beside = Path(parts[0].name) if single_file and self._names_one_file() else None
            label = Path(parts[0].name).name if single_file else self._label()
            self._place = (key, label, beside)
        return self._place

    def characters(self) -> list[str]:
        """The text's distinct characters as it will be encoded, before it is (a fine-tune compares
        them with its checkpoint's vocabulary to make the one it is encoded with). The pass that
        counts them is kept: encoded() reads the text only to write its ids, as a run from scratch
        does."""
        if self._first_pass is None:
            key, label, beside = self._cache_place()
            cached = stats_file_of(label, key, self.cache_dir, beside)
            self._first_pass = text_stats(self._parts, self.options, cached)
        return sorted(self._first_pass["counts"])

    def use_vocab(self, vocab: list[str]) -> None:
        """Encode with `vocab` (a fine-tune's, made after reading characters())."""
        assert self._encoded is None, "the text is encoded already"
        self._vocab = vocab

    def encoded(self) -> EncodedCorpus:
        """The corpus read, hashed and encoded (or found in the cache): once per process."""
        if self._encoded is None:
            key, label, beside = self._cache_place()
            given = CharTokenizer(self._vocab) if self._vocab is not None else None
            self._encoded = encode_parts(self._parts, key, label, given, self.cache_dir, beside, self.options,
                                         self.source, self._first_pass)
        return self._encoded

    @property
    def fingerprint(self) -> dict[str, Any]:
        """What identifies the corpus in checkpoints (a resume on another text is refused): the
        source, one sha256 over its parts and settings, each part's own sha256, and the settings
        that are not the defaults (chargpt-eval and check_copy read the text again with them)."""
        encoded = self.encoded()
        # A file's path made absolute: chargpt-eval and check_copy find it from any working directory.
        where = self.source if self.name else os.path.abspath(self.source)
        fingerprint: dict[str, Any] = {"path": where, "sha256": encoded.sha256}
        if self.name:  # how to name it again (chargpt-eval data=hf ...)
            fingerprint["dataset"] = {
                "name": self._dataset_place(), "config": self.config, "data_files": self.data_files,
                "split": self.split or "train", "val_split": self.val_split, "text_field": self.text_field,
            }
            if not self.read_empty_rows:  # a record without it: read_empty_rows (as_its_run_read)
                fingerprint["dataset"]["empty_rows"] = "left out"
            if self.dataset_label != fingerprint["dataset"]["name"]:
                # A saved dataset resumed where it was moved to: its splits keep the name they were
                # identified by, and the record says where it is now.
                fingerprint["dataset"]["label"] = self.dataset_label
        if len(self._parts) > 1 or not (self.name or self._names_one_file()):
            fingerprint["files"] = [[p.name, p.sha256] for p in self._parts]
        defaults = TextOptions().settings()
        # Recorded even when empty: a checkpoint without it predates the record (2026-12-02).
        fingerprint["read_as"] = {k: v for k, v in self.options.settings().items() if v != defaults[k]}
        return fingerprint

    def _dataset_place(self) -> str | None:
        """Where the dataset is: a saved one's folder absolute, else its name (a hub's, a builder's)."""
        local = Path(expand_path(self.name)) if self.name else None
        return os.path.abspath(local) if local is not None and is_saved_dataset(local) else self.name

    @property
    def earlier_sha256(self) -> str | None:
        """The corpus sha256 as versions before the change of 2026-12-05 computed it for a dataset's
        splits (from datasets' fingerprint), which their checkpoints record; None for a text of files."""
        self.encoded()
        if not any(p.earlier_sha256 for p in self._parts):
            return None
        earlier = [replace(p, sha256=p.earlier_sha256 or p.sha256) for p in self._parts]
        return identity(earlier, {**self.options.settings(), "separator": self._separator()})

    def _names_one_file(self) -> bool:
        """data.path is a file, not a folder or a glob that (today) holds one."""
        return self.path is not None and self.val_path is None and Path(self.path).is_file()

    def val_start(self) -> int:
        """Where validation starts in the joined ids (chargpt-eval scores the splits this cuts)."""
        encoded = self.encoded()
        return self._boundary(len(encoded.ids), encoded.stats.get("starts", [0]))

    def _boundary(self, n: int, starts: list[int]) -> int:
        if self._n_train_parts is not None:
            return starts[self._n_train_parts]
        if self.split == "files":
            if len(starts) < 2:
                raise DataError(
                    f"data.split=files holds out whole files, but {self.source} is one file; pass a "
                    "directory or glob of several files, or leave data.split null"
                )
            target = n * self.train_fraction
            # Only cuts with text on both sides (empty last files are no validation text); not a
            # function of the model's context, so chargpt-eval cuts the same text the same way.
            usable = [i for i in range(1, len(starts)) if 0 < starts[i] < n]
            k = min(usable or range(1, len(starts)), key=lambda i: abs(starts[i] - target))
            return starts[k]
        return int(n * self.train_fraction)

    def split_ids(self) -> None:
        """Encode the text (once) and cut it into train_ids and val_ids, and val_scored_ids, the
        part of val_ids validation during training scores."""
        if self.train_ids is not None:
            return
        encoded = self.encoded()
        self.ids = encoded.ids
        cut = self.val_start()
        self.train_ids, self.val_ids = self.ids[:cut], self.ids[cut:]
        fixes = ["a longer text"]
        most = min(len(self.train_ids), len(self.val_ids)) - 1
        # With a checkpoint's vocabulary (fine-tune, evaluation), its context too; a context of a
        # few characters is no model of a text.
        if self._vocab is None and most >= MIN_CONTEXT:
            fixes.append(self.context_fix.format(most=most))
        # Only where the fraction cuts anywhere (not between whole files) and some cut can do.
        cuts_anywhere = self._n_train_parts is None and self.split != "files"
        if cuts_anywhere and len(self.ids) >= 2 * (self.block_size + 1):
            fixes.append("another data.train_fraction")
        listed = fixes[0] if len(fixes) == 1 else ", ".join(fixes[:-1]) + " or " + fixes[-1]
        self.check_windows_fit(self.block_size, f"use {listed}")
        capped = self.val_max_chars is not None and len(self.val_ids) > self.val_max_chars
        self.val_scored_ids = self.val_ids[: self.val_max_chars] if capped else self.val_ids

    def check_windows_fit(self, block_size: int, fix: str) -> None:
        """Each split holds at least one window of `block_size` + 1 characters (inputs and targets)."""
        for name, part in (("train", self.train_ids), ("val", self.val_ids)):
            if part is not None and len(part) < block_size + 1:
                # A validation text of its own is named for what it is: data.path is not the short one.
                own = name == "val" and self.val_path
                where = f"the validation text data.val_path={self.val_path}" if own else \
                    f"the {name} split of {self.source}"
                raise DataError(
                    f"{where} has {len(part)} characters, fewer than model.block_size + 1 = "
                    f"{block_size + 1}; {fix}"
                )

    @property
    def val_scope(self) -> dict[str, Any]:
        """What validation scores: the whole split, or a fixed prefix of it (data.val_max_chars)."""
        assert self.val_ids is not None and self.val_scored_ids is not None, "setup() runs first"
        scored, total = len(self.val_scored_ids), len(self.val_ids)
        return {"chars": scored, "split_chars": total, "capped": scored < total}

    def report_lines(self) -> list[str]:
        """The start-of-run description of the text: sources, split, vocabulary, warnings."""
        encoded = self.encoded()
        assert self.ids is not None and self.val_ids is not None
        n_parts = len(self._parts)
        unit = "files" if self._parts[0].starts_file else "splits"
        what = self.source
        if self.val_path:  # the files counted are the training and the validation text's
            what = f"{self.source} and data.val_path {self.val_path}"
        elif self.val_split:  # so are the splits
            what = f"{self.source} and data.val_split {self.val_split}"
        counts = [f"{n_parts} {unit}" if n_parts > 1 else f"1 {unit[:-1]}"]
        if left_out := self._empty_left_out:  # not among the files: they add nothing
            counts.append(f"{left_out} empty one{'s' if left_out > 1 else ''} left out")
        if n_parts > 1 or left_out:
            what += f" ({', '.join(counts)})"
        joined = f", joined with {self.options.separator!r}" if n_parts > 1 else ""
        lines = [f"data: {what}{joined}: {len(self.ids):,} characters"]
        starts = encoded.stats.get("starts", [0])
        val_start = len(self.ids) - len(self.val_ids)
        if val_start in starts[1:] and (self._n_train_parts is not None or self.split == "files"):
            first = starts.index(val_start)
            lines.append(
                f"validation: {n_parts - first} of {n_parts} {unit}, from {self._parts[first].name} "
                f"({len(self.val_ids):,} characters)"
            )
            if self.split == "files":
                lines += self._whole_files_warning()
        else:
            share = 1 - self.train_fraction
            lines.append(f"validation: the last {len(self.val_ids):,} characters ({share:.0%})")
        scope = self.val_scope
        if scope["capped"]:
            lines.append(
                f"validation scores the first {scope['chars']:,} of its {scope['split_chars']:,} "
                f"characters (data.val_max_chars={self.val_max_chars}; null scores them all)"
            )
        stats = encoded.stats
        lines += vocabulary_lines(stats.get("counts", {}), self.options.newline, stats.get("bom"),
                                  model_vocab=None if self._vocab is None else len(self._vocab),
                                  dataset=bool(self.name))
        return lines

    def _whole_files_warning(self) -> list[str]:
        # The cut falls between files, so the share can miss the asked one by far (a tiny last file:
        # a noisy validation loss; a huge one: little left to train on). Say so rather than guess.
        assert self.ids is not None and self.val_ids is not None
        held_out, asked = len(self.val_ids) / len(self.ids), 1 - self.train_fraction
        if asked / 2 <= held_out <= asked * 2:
            return []
        return [
            f"warning: whole files make validation {held_out:.1%} of the text, far from the {asked:.0%} "
            f"data.train_fraction={self.train_fraction} asks for; files of more even sizes get closer, "
            "or leave data.split null to cut at that share of the characters"
        ]

    @property
    def tokenizer(self) -> CharTokenizer:
        return self.encoded().tokenizer


def as_its_run_read(corpus: Mapping[str, Any] | None) -> dict[str, Any]:
    """How to read again the text whose corpus fingerprint (`corpus`, a checkpoint's record) this
    is, as its run read it: CharText's settings for what versions before read otherwise, each only
    where the record shows it (empty for a run since, and for none). Resume, chargpt-eval and the
    copy check read a run's text with them, so its ids and its identity are its own:
    - read_empty_files: its folder's empty files (it lists one: versions before 2026-12-06 read them);
    - read_links_twice: a file of its folder under each of its names (it lists two names that resolve
      to one path now: versions before 2026-12-06 read a link to another file of the folder too);
    - read_hard_links_twice: a file under each name that resolves to another path (it lists two
      names of one file, none resolving to one path: versions since read a hard link's name too,
      a file being told by its resolved path, until they told it by its inode);
    - dataset_label: a dataset's splits identified by the name it recorded (before 2026-12-06 a saved
      dataset's name as typed, relative to where it ran);
    - read_empty_rows: a dataset's empty rows (its record does not say they were left out: versions
      before 2026-12-07 joined them)."""
    corpus = corpus or {}
    reading: dict[str, Any] = {}
    files = corpus.get("files")
    entries = [entry for entry in files if isinstance(entry, list | tuple) and len(entry) == 2] \
        if isinstance(files, list) else []
    if any(sha == EMPTY_SHA256 for _, sha in entries):
        reading["read_empty_files"] = True
    found = [Path(name) for name, _ in entries if isinstance(name, str) and os.path.exists(name)]
    if len({os.path.realpath(f) for f in found}) < len(found):
        reading["read_links_twice"] = True
    elif len({same_file(f) for f in found}) < len(found):
        reading["read_hard_links_twice"] = True
    dataset = corpus.get("dataset")
    if isinstance(dataset, Mapping) and isinstance(label := dataset.get("label", dataset.get("name")), str):
        reading["dataset_label"] = label
    if isinstance(dataset, Mapping) and dataset.get("empty_rows") != "left out":
        reading["read_empty_rows"] = True
    return reading


def rows_as_its_run_read(corpus: Mapping[str, Any] | None) -> dict[str, Any]:
    """as_its_run_read's reading of a dataset's rows alone (read_empty_rows), for a dataset named anew
    (moved, or named by the command): it is named by where it is now, but its rows are read as the
    checkpoint's run read them, which a run's loss and copies were of."""
    return {key: value for key, value in as_its_run_read(corpus).items() if key == "read_empty_rows"}


def text_of(settings: Mapping[str, Any], **given: Any) -> CharText:
    """The text a data config describes (`given` settings replacing its own), without what only
    serves windows to a trainer (batch sizes, workers, the seed of the window draw)."""
    takes = inspect.signature(CharText).parameters
    return CharText(**{k: v for k, v in {**settings, **given}.items() if k in takes})
