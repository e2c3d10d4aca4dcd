"""chargpt-eval's scoring: a checkpoint's full-split loss and bits per character, with the loss by
position in the context window and by class of character, as one JSON-ready dict.

By default it scores the text the checkpoint was trained on, split as that run split it, in the
arithmetic its validation used; another text only when asked for (data.path=FILE, or a dataset).
It comes after training/ in the layers (docs/layout.md), whose precision module gives the run's arithmetic.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from chargpt.checkpoints import cut_at_a_fraction, stored_corpus, stored_split
from chargpt.checks import whole_number
from chargpt.data.sources.hf_datasets import is_saved_dataset
from chargpt.data.sources.paths import expand_path
from chargpt.data.text import DEFAULT_TRAIN_FRACTION, CharText, as_its_run_read, rows_as_its_run_read, text_of
from chargpt.errors import ConfigError, no_checkpoint_given
from chargpt.evaluation import Evaluation, check_stride, evaluate_text
from chargpt.export_layout import CONFIG_FILE
from chargpt.hydra_run import plain
from chargpt.inference import TrainedModel, load_with_checkpoint, pick_device
from chargpt.model_card import DATASET_READING, card_for_export, dataset_reading, weights_step
from chargpt.recorded_text import check_read_alike, recorded_data, split_ids
from chargpt.spelling import did_you_mean, nearest_name
from chargpt.training.precision import (
    ALIASES,
    MATMUL_PRECISIONS,
    PRECISIONS,
    matmul_precision_for_device,
    precision_for_device,
    precision_plugin,
    validated_arithmetic,
)

if TYPE_CHECKING:
    import numpy as np
    from lightning.pytorch.plugins.precision import Precision

SPLITS = ("val", "train", "all")
# The names other tools give a split, and chargpt-eval's for it: a run holds out one text, its val split.
SPLITS_NAMED_ELSEWHERE = {"test": "val", "dev": "val", "valid": "val", "validation": "val",
                          "training": "train"}


def evaluate_checkpoint(
    ckpt_path: str,
    data: Mapping[str, Any] | None = None,
    split: str = "val",
    batch_size: int = 64,
    stride: int | None = None,
    device: str = "auto",
    precision: str | None = None,
    matmul_precision: str | None = None,
    given: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Score the checkpoint (file, run directory or export) at `ckpt_path` on a whole split, as
    chargpt-eval does, and return its JSON line (report). `data`: the data settings (a data config
    or a dict; without path or name, the run's own text); `precision`, `matmul_precision`: None
    scores in the arithmetic the run validated in. `given`: the data settings set by the user,
    each as typed, for messages and to tell them from a config's defaults (chargpt-eval's
    overrides); None takes every key of `data` as given."""
    check_asked(ckpt_path, split, batch_size)
    settings: dict[str, Any] = dict(plain(data) or {})  # a data config resolved: its paths, interpolations
    overrides = {f"data.{k}": f"data.{k}={v}" for k, v in settings.items()} if given is None else dict(given)
    named = bool(settings.get("path") or settings.get("name"))  # a text (or a dataset) asked for by name
    if settings.get("val_path") and not named:
        # It would join the recorded text, which then no longer matches the checkpoint's record.
        raise ConfigError(f"{overrides.get('data.val_path', 'data.val_path')}: a validation text is scored "
                          "with the text it belongs to, data.path=FILE; to score this one alone, pass it as "
                          "data.path with split=all")
    trained, ckpt, file = load_with_checkpoint(ckpt_path)
    if settings.get("path") and is_saved_dataset(Path(expand_path(settings["path"]))):
        settings = _as_dataset(settings, ckpt, file)  # else refused, with the data=hf setting to pass
    if ckpt is None and not named:
        raise ConfigError(f"{file} is an export, which does not record the text it was trained on; "
                          "pass the text to score as data.path=FILE")
    stride = None if stride is None else check_stride(stride, trained.model.block_size)
    on = torch.device(pick_device(device))
    forward, products = _scoring_arithmetic(ckpt, file, on, precision, matmul_precision)
    arithmetic = _placed_in(trained, forward, on)
    if named:
        recorded_settings = _named_texts_settings(settings, ckpt, split, overrides)
    else:
        assert ckpt is not None  # an export without data.path was refused above
        recorded_settings = _recorded_text_settings(settings, ckpt, file, split, overrides)
    # The checkpoint's vocabulary encodes the text; characters it never saw are an error.
    text = text_of(settings, **recorded_settings, block_size=trained.model.block_size,
                   vocab=trained.tokenizer.to_list())
    if ckpt is not None and not named:
        check_read_alike(text, ckpt, file)
    ids = split_ids(text.encoded().ids, split, text.val_start(), text.source)
    result = _scored(trained, ids, batch_size, stride, arithmetic, products)
    if stride is not None and result.stride != stride:
        print(f"note: the {split} split holds {len(ids):,} characters, no more than the model's context: "
              f"scored as one window of {result.window}, where stride={stride} does not apply",
              file=sys.stderr)
    arithmetic_used = {"precision": forward, "matmul_precision": products}
    # Which weights: a run still training rewrites its last.ckpt, and the next eval scores another step.
    step = weights_step(ckpt, file)
    asked = trained.model.block_size if stride is None else stride  # (unset: the context, the default)
    return report(result, split, scored_text(text, split), file, arithmetic_used, step, asked)


def check_asked(ckpt_path: str, split: str, batch_size: int) -> None:
    """The settings of an evaluation that need no checkpoint read: each in its range."""
    if not ckpt_path:
        raise no_checkpoint_given("chargpt-eval")
    if split not in SPLITS:
        raise ConfigError(f"split={split!r} is not one of {', '.join(SPLITS)}{_split_meant(split)}")
    whole_number("batch_size", batch_size, low=1)


def _split_meant(split: str) -> str:
    """` (did you mean split=val?)` for a split misspelt or named as elsewhere (`tset`, `validation`)."""
    near = nearest_name(split, [*SPLITS, *SPLITS_NAMED_ELSEWHERE])
    if near is None:
        return ""
    meant = SPLITS_NAMED_ELSEWHERE.get(near, near)
    # (A held-out split of its own is no `val` under another name: said so, not just corrected.)
    held_out = near in ("test", "dev")
    why = f"the text a run holds out is its val split: there is no {near} split" if held_out else ""
    return did_you_mean(f"split={meant}", why=why)


def _placed_in(trained: TrainedModel, forward: str, on: torch.device) -> Precision | None:
    """The model moved to `on` and converted for the `forward` precision; Lightning's plugin for it,
    as the run's validation used it (float32 needs none, nor Lightning's import)."""
    arithmetic = precision_plugin(forward, on) if forward != "32-true" else None
    trained.model = trained.model.to(on)
    if arithmetic is not None:
        trained.model = arithmetic.convert_module(trained.model)
    return arithmetic


def _scored(
    trained: TrainedModel, ids: np.ndarray, batch_size: int, stride: int | None, arithmetic: Precision | None,
    products: str,
) -> Evaluation:
    """`ids` scored in the `arithmetic`'s forward and the matmul precision `products`; for the scoring
    only: a Python caller's own matmul precision is put back."""
    caller_products = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision(products)
    try:
        with arithmetic.forward_context() if arithmetic is not None else contextlib.nullcontext():
            return evaluate_text(trained.model, ids, batch_size, stride, trained.tokenizer.chars)
    finally:
        torch.set_float32_matmul_precision(caller_products)


def _scoring_arithmetic(ckpt: dict[str, Any] | None, file: Path, on: torch.device, precision: str | None,
                        matmul_precision: str | None) -> tuple[str, str]:
    """The precision and matmul_precision to score in on `on`: as the run's validation scored (its
    val_loss), unless asked otherwise (not None)."""
    exported = card_for_export(file).val_arithmetic if ckpt is None else None
    own_forward, own_products = validated_arithmetic(ckpt, file, on, exported)
    if precision is None:
        _check_recorded("precision", own_forward, PRECISIONS, file, ckpt)
    if matmul_precision is None:
        _check_recorded("matmul_precision", own_products, MATMUL_PRECISIONS, file, ckpt)
    forward = precision_for_device(own_forward if precision is None else precision, on, setting="precision")
    products = matmul_precision_for_device(own_products if matmul_precision is None else matmul_precision, on)
    return forward, products


def _named_texts_settings(settings: dict[str, Any], ckpt: dict[str, Any] | None, split: str,
                          overrides: dict[str, str]) -> dict[str, Any]:
    """The data settings a text named by data.path (or data.name) is read with besides `settings`:
    none, unless it is the run's own training text with its validation text, read as the run read
    them. Its val split cut earlier than its run cut it is refused (refuse_val_in_training_text). A
    dataset (data.path=SAVED too) has its rows read as the checkpoint's run read them: a run from
    before 2026-12-07 joined its empty rows, and was scored on that text."""
    if settings.get("name"):
        return rows_as_its_run_read(stored_corpus(ckpt)) if ckpt is not None else {}
    recorded = (stored_corpus(ckpt) or {}).get("path") if ckpt is not None else None
    path = Path(expand_path(settings["path"])).resolve() if settings.get("path") else None
    if not recorded or path != Path(recorded).resolve():
        return {}
    # The training text, named: cut as asked.
    train_fraction = settings.get("train_fraction", DEFAULT_TRAIN_FRACTION)
    refuse_val_in_training_text(split, train_fraction, overrides, stored_split(ckpt), named=True)
    if _its_validation_text(settings.get("val_path"), stored_split(ckpt)):
        # Both texts, as recorded_data's advice names them: read as the run read them (a
        # validation text hard-linked to the training text, taken by its run as another).
        return as_its_run_read(stored_corpus(ckpt))
    return {}


def _recorded_text_settings(settings: dict[str, Any], ckpt: dict[str, Any], file: Path, split: str,
                            overrides: dict[str, str]) -> dict[str, Any]:
    """The data settings that read the text the checkpoint's run trained on again (none named), with
    a note where the checkpoint does not record how that text was split."""
    recorded_settings = recorded_data(ckpt, file, overrides)
    train_fraction = settings.get("train_fraction", DEFAULT_TRAIN_FRACTION)
    refuse_val_in_training_text(split, train_fraction, overrides, stored_split(ckpt), named=False)
    unrecorded = "train_fraction" not in recorded_settings or (
        "split" not in stored_split(ckpt) and (stored_corpus(ckpt) or {}).get("files"))
    if split != "all" and unrecorded and not {"data.train_fraction", "data.split"} & set(overrides):
        cut = recorded_settings.get("train_fraction", train_fraction)
        print(f"note: {file} does not record how its text was split; splitting at "
              f"data.train_fraction={cut}", file=sys.stderr)
    return recorded_settings


def _check_recorded(
    setting: str, value: str, known: tuple[str, ...], file: str, ckpt: dict[str, Any] | None
) -> None:
    """A recorded arithmetic that is none (a hand-edited card's precision "bananas") is an error
    naming where it is recorded: it was refused as if typed, `precision=bananas`, which nobody had."""
    if value == "auto" or ALIASES.get(value, value) in known:
        return
    where = f"{Path(file) / CONFIG_FILE}'s card" if ckpt is None else str(file)
    raise ConfigError(f"{where} records its validation loss as measured in {setting}={value}, which is no "
                      f"such value; pass {setting}=VALUE (one of {', '.join(known)}) to score in one, or "
                      "correct it there")


def _as_dataset(settings: dict[str, Any], ckpt: dict[str, Any] | None, file: Path) -> dict[str, Any]:
    """A dataset saved with save_to_disk, given as data.path, read as data=hf reads it (data.name)
    with the split and field its checkpoint's run read (an export's card records them), where it
    took a second command, data=hf data.name=...; `settings` as they are where nothing records them
    (a run on a text, an export from before the record)."""
    reading = card_for_export(file).dataset if ckpt is None else dataset_reading(stored_corpus(ckpt) or {})
    if not isinstance(reading, dict) or not reading:  # (a hand-edited card: anything)
        return settings
    read_as = {key: value for key, value in reading.items() if key in DATASET_READING and value}
    return {**settings, "path": None, "name": expand_path(settings["path"]), **read_as}


def _its_validation_text(val_path: str | None, split: dict[str, Any]) -> bool:
    """Whether `val_path`, named with a run's training text, is the validation text it recorded."""
    recorded = split.get("val_path")
    return bool(val_path and recorded) and \
        Path(expand_path(str(val_path))).resolve() == Path(str(recorded)).resolve()



def scored_text(text: CharText, split: str) -> str:
    """The text a split scored, for the JSON line: the validation text's own file or dataset split
    when data.val_path or data.val_split gave it."""
    if text.val_path:
        both = f"{text.path} and {text.val_path}"
        return {"val": str(text.val_path), "train": str(text.path)}.get(split, both)
    if text.val_split:
        train = text.split or "train"
        scored = {"val": text.val_split, "train": train}.get(split, f"{train} and {text.val_split}")
        return f"dataset {text.name} ({scored})"
    return str(text.path or text.source)


def refuse_val_in_training_text(split: str, train_fraction: object, overrides: Mapping[str, str],
                                recorded_split: dict[str, Any], named: bool) -> None:
    """The val split of the text the run trained on, cut earlier than its run cut it, would score
    characters the model trained on as held-out text. `named`: the text was given by data.path,
    where the split is data.train_fraction's even when left at its default."""
    trained_on = recorded_split.get("train_fraction")
    if not cut_at_a_fraction(recorded_split):
        return
    asked = named or "data.train_fraction" in overrides  # else the recorded fraction is used
    if split != "val" or not isinstance(trained_on, float) or not asked:
        return
    if isinstance(train_fraction, (int, float)) and train_fraction < trained_on:
        typed = overrides.get("data.train_fraction", f"data.train_fraction={train_fraction} (the default)")
        raise ConfigError(
            f"{typed} would score text the model trained on as its val split (its run split the text at "
            f"{trained_on:g}); pass data.train_fraction={trained_on:g} (or leave data.path out) to score the "
            "held-out text, or split=all to score the whole text"
        )


def report(result: Evaluation, split: str, data: str, checkpoint: str,
           arithmetic: dict[str, str] | None = None, step: int | None = None,
           stride: int | None = None) -> dict[str, Any]:
    """The JSON line: the headline figures first, the long per-position list last. `stride`: the
    one asked for (default: the one used); the windows say what was scored: a text no longer than
    the context is one window, which a stride does not change."""
    out: dict[str, Any] = {
        "loss": round(result.loss, 5),
        "bpc": round(result.bpc, 5),
        "tokens": result.tokens,
        "stride": result.stride if stride is None else stride,
        "window": result.window,
        "windows": result.windows,
    }
    if result.stride < result.window:
        out["loss_non_overlapping"] = round(result.loss_non_overlapping, 5)
        out["bpc_non_overlapping"] = round(result.bpc_non_overlapping, 5)
    out.update(split=split, data=data, checkpoint=checkpoint, step=step, **(arithmetic or {}))
    out["by_class"] = {
        name: {"loss": None if loss is None else round(loss, 4), "count": result.class_counts[name]}
        for name, loss in result.class_losses.items()
    }
    out["loss_by_position_buckets"] = {k: round(v, 4) for k, v in result.position_buckets().items()}
    out["loss_by_position"] = [round(v, 4) for v in result.loss_by_position]
    return out
