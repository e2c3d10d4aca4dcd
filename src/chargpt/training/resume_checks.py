"""Whether a run may resume from a checkpoint: the same data, split and architecture.

`check_resumable` compares what the checkpoint's run recorded (chargpt.checkpoints reads it) with
what this run asks for, and refuses a resume that would not continue that run.
"""

from __future__ import annotations

from typing import Any

from chargpt.checkpoints import (
    corpus_changes,
    cut_at_a_fraction,
    model_config,
    recorded_files,
    resume_state,
    stored_corpus,
    stored_split,
)
from chargpt.checks import shown
from chargpt.data.tokenizer import describe_chars
from chargpt.errors import CheckpointError
from chargpt.model import ModelConfig


def check_resumable(
    ckpt: dict[str, Any], source: str, model: ModelConfig, vocab: list[str], corpus: dict[str, Any] | None,
    fix: str | None = None, train_fraction: float | None = None, data_seed: int | None = None,
    earlier_sha256: str | None = None,
) -> None:
    """Refuse, with the reason and the fix, a resume whose data, split or architecture differ from
    the checkpoint's. Settings that are not architecture (ModelConfig.architecture) may change. `fix`,
    when the caller knows better (a fine-tune resumed without its settings), replaces the usual one.
    `earlier_sha256`: the corpus's identity as earlier versions recorded it (CharText.earlier_sha256)."""
    _check_data_seed(ckpt, source, data_seed)
    _check_split(ckpt, source, train_fraction)
    _check_vocabulary(ckpt, source, vocab, fix)
    _check_corpus(ckpt, source, corpus, earlier_sha256)
    _check_architecture(ckpt, source, model, fix)


def _check_data_seed(ckpt: dict[str, Any], source: str, data_seed: int | None) -> None:
    drew = resume_state(ckpt).get("data_seed")
    if isinstance(drew, int) and data_seed is not None and data_seed != drew:
        # The batches from here on would not be the run's own: the resume would not be exact.
        raise CheckpointError(
            f"cannot resume from {source} with data.seed={data_seed}: its run drew its batches with "
            f"{drew}; resume with seed={drew} (the data seed follows it), or start a new run without "
            "ckpt_path"
        )


def _check_split(ckpt: dict[str, Any], source: str, train_fraction: float | None) -> None:
    split = stored_split(ckpt)
    recorded = split.get("train_fraction")
    if cut_at_a_fraction(split) and isinstance(recorded, float) and train_fraction is not None and \
            float(train_fraction) != recorded:
        # The validation text would change: it could hold text the run trained on, and the best
        # checkpoint's loss was scored on the other one.
        raise CheckpointError(
            f"cannot resume from {source} with data.train_fraction={train_fraction}: its run split the text "
            f"at {recorded}; resume with data.train_fraction={recorded}, or start a new run without ckpt_path"
        )


def _check_vocabulary(ckpt: dict[str, Any], source: str, vocab: list[str], fix: str | None) -> None:
    old_vocab = list(ckpt["hyper_parameters"]["vocab"])
    if old_vocab != list(vocab):
        diff = []
        if missing := set(vocab) - set(old_vocab):
            diff.append(f"this data adds {describe_chars(missing)}")
        if extra := set(old_vocab) - set(vocab):
            diff.append(f"this data lacks {describe_chars(extra)}")
        detail = "; ".join(diff) or "same characters in another order"
        trained_on = (stored_corpus(ckpt) or {}).get("path")
        how = fix or "resume with the data it was trained on" + (f" ({trained_on})" if trained_on else "")
        raise CheckpointError(
            f"cannot resume from {source}: it was trained on another vocabulary ({len(old_vocab)} "
            f"characters, this data has {len(vocab)}: {detail}); {how}, or start a new run without ckpt_path"
        )


def _check_corpus(
    ckpt: dict[str, Any], source: str, corpus: dict[str, Any] | None, earlier_sha256: str | None
) -> None:
    old_corpus = stored_corpus(ckpt)
    recorded = (old_corpus or {}).get("sha256")
    same_text = recorded is not None and recorded in {(corpus or {}).get("sha256"), earlier_sha256} - {None}
    if old_corpus and corpus and not same_text and not (
        # A folder given by a relative path before its files were named absolute (2026-12-03).
        recorded_files(old_corpus) and recorded_files(old_corpus) == recorded_files(corpus)
        and (old_corpus.get("read_as") or {}) == (corpus.get("read_as") or {})
    ):
        raise CheckpointError(
            f"cannot resume from {source}: it was trained on {old_corpus.get('path')} "
            f"(sha256 {str(old_corpus.get('sha256'))[:12]}), not on {corpus['path']} "
            f"(sha256 {corpus['sha256'][:12]}){corpus_changes(old_corpus, corpus)}; resume with the data "
            "it was trained on, or start a new run without ckpt_path"
        )


def _check_architecture(ckpt: dict[str, Any], source: str, model: ModelConfig, fix: str | None) -> None:
    old, new = model_config(ckpt).architecture(), model.architecture()
    changed = sorted(k for k in old if old[k] != new[k])
    if changed:
        # As typed on the command line (null, true): Python's None would be the text "None" there.
        was = ", ".join(f"model.{k}={shown(old[k])}" for k in changed)
        now = ", ".join(f"model.{k}={shown(new[k])}" for k in changed)
        how = fix or "pass the same model settings as the run that wrote it"
        if isinstance(ckpt["hyper_parameters"].get("auto"), dict):
            how = ("it was sized by model=auto: add model=auto and its budget_seconds, as the resume command "
                   "it printed does")
        raise CheckpointError(
            f"cannot resume from {source}: its model has {was} but this run asks for {now}; "
            f"{how}, or start a new run without ckpt_path"
        )
