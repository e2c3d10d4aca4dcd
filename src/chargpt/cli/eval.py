"""chargpt-eval: full-split loss and bits per character of a checkpoint, as one JSON line, with the
loss by position in the context window and by class of character.

By default it scores the text the checkpoint was trained on, split as that run split it; another
text only when asked for (data.path=FILE, or data=tinyshakespeare). stride=N scores every
character with up to a full context behind it (see chargpt.evaluation).
"""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import Any

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf

from chargpt.checkpoints import cut_at_a_fraction, stored_corpus, stored_split
from chargpt.checks import whole_number
from chargpt.cli import CONFIG_PATH
from chargpt.cli.common import cli_task, quiet_known_warnings, run_main, use_threads
from chargpt.cli.recorded_text import check_read_alike, recorded_data, split_ids
from chargpt.data.sources.paths import expand_path
from chargpt.data.text import CharText, text_of
from chargpt.errors import ConfigError, exit_on_user_error
from chargpt.evaluation import Evaluation, check_stride, evaluate_text
from chargpt.hydra_run import as_written
from chargpt.inference import load_with_checkpoint, pick_device
from chargpt.model_card import weights_step
from chargpt.overrides import as_typed
from chargpt.training.precision import (
    matmul_precision_for_device,
    precision_for_device,
    precision_plugin,
    validated_arithmetic,
)

CONFIG_NAME = "eval"  # configs/eval.yaml

SPLITS = ("val", "train", "all")
# Settings chargpt-eval does not use (the model comes from the checkpoint; scoring draws no random
# numbers): passing one would silently do nothing, so it is refused with what to do instead.
UNUSED = {
    "model": "the model and its context length come from the checkpoint",
    "data.block_size": "the context length comes from the checkpoint",
    "data.batch_size": "the evaluation batch is batch_size=N",
    "data.val_batch_size": "the evaluation batch is batch_size=N",
    "data.val_max_chars": "every character of the split is scored",
    "data.num_workers": "the evaluation reads the text in this process",
    "data.seed": "the evaluation draws no random numbers",
    "seed": "the evaluation draws no random numbers",
}


def overridden_keys() -> dict[str, str]:
    """The keys (and groups) set on the command line, each with the override as typed."""
    typed = as_written(HydraConfig.get().overrides.task)
    parsed = OverridesParser.create().parse_overrides(typed)
    return {o.key_or_group: as_typed(text) for o, text in zip(parsed, typed, strict=True)}


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name=CONFIG_NAME)
@cli_task
@exit_on_user_error
def _hydra_main(cfg: DictConfig) -> None:
    use_threads(cfg.threads)
    quiet_known_warnings()
    overrides = overridden_keys()
    if not cfg.ckpt_path:
        raise ConfigError("ckpt_path is required: chargpt-eval ckpt_path=RUN_DIR_OR_CKPT_FILE")
    if cfg.split not in SPLITS:
        raise ConfigError(f"split={cfg.split!r} is not one of {', '.join(SPLITS)}")
    whole_number("batch_size", cfg.batch_size, low=1)
    named = bool(cfg.data.path or cfg.data.get("name"))  # a text (or a dataset) asked for by name
    if cfg.data.get("val_path") and not named:
        # It would join the recorded text, which then no longer matches the checkpoint's record.
        raise ConfigError(f"{overrides.get('data.val_path', 'data.val_path')}: a validation text is scored "
                          "with the text it belongs to, data.path=FILE; to score this one alone, pass it as "
                          "data.path with split=all")
    trained, ckpt, file = load_with_checkpoint(cfg.ckpt_path)
    if ckpt is None and not named:
        raise ConfigError(f"{file} is an export, which does not record the text it was trained on; "
                          "pass the text to score as data.path=FILE")
    stride = None if cfg.stride is None else check_stride(cfg.stride, trained.model.block_size)
    device = torch.device(pick_device(cfg.device))
    # As the run's validation scored (its val_loss), unless asked otherwise.
    own_forward, own_products = validated_arithmetic(ckpt, file, device)
    forward = precision_for_device(
        own_forward if cfg.precision is None else cfg.precision, device, setting="precision")
    products = matmul_precision_for_device(
        own_products if cfg.matmul_precision is None else cfg.matmul_precision, device)
    # Lightning's plugin, as the run's validation used it; float32 needs none (nor Lightning's import).
    arithmetic = precision_plugin(forward, device) if forward != "32-true" else None
    trained.model = trained.model.to(device)
    if arithmetic is not None:
        trained.model = arithmetic.convert_module(trained.model)
    if named:
        data: dict[str, Any] = {}
        recorded = (stored_corpus(ckpt) or {}).get("path") if ckpt is not None else None
        given = Path(expand_path(cfg.data.path)).resolve() if cfg.data.path else None
        if recorded and given == Path(recorded).resolve():  # the training text, named: cut as asked
            refuse_val_in_training_text(cfg, overrides, stored_split(ckpt), named=True)
    else:
        assert ckpt is not None  # an export without data.path was refused above
        data = recorded_data(ckpt, file, overrides)
        refuse_val_in_training_text(cfg, overrides, stored_split(ckpt), named=False)
        unrecorded = "train_fraction" not in data or (
            "split" not in stored_split(ckpt) and (stored_corpus(ckpt) or {}).get("files"))
        if cfg.split != "all" and unrecorded and not {"data.train_fraction", "data.split"} & set(overrides):
            print(
                f"note: {file} does not record how its text was split; splitting at "
                f"data.train_fraction={data.get('train_fraction', cfg.data.train_fraction)}", file=sys.stderr,
            )
    # The checkpoint's vocabulary encodes the text; characters it never saw are an error.
    settings = OmegaConf.to_container(cfg.data, resolve=True)
    assert isinstance(settings, dict)
    text = text_of(settings, **data, block_size=trained.model.block_size, vocab=trained.tokenizer.to_list())
    if ckpt is not None and not named:
        check_read_alike(text, ckpt, file)
    ids = split_ids(text.encoded().ids, cfg.split, text.val_start(), text.source)
    torch.set_float32_matmul_precision(products)
    with arithmetic.forward_context() if arithmetic is not None else contextlib.nullcontext():
        result = evaluate_text(trained.model, ids, cfg.batch_size, stride, trained.tokenizer.chars)
    if stride is not None and result.stride != stride:
        print(f"note: the {cfg.split} split holds {len(ids):,} characters, no more than the model's context: "
              f"scored as one window of {result.window}, so stride={result.stride}", file=sys.stderr)
    arithmetic_used = {"precision": forward, "matmul_precision": products}
    # Which weights: a run still training rewrites its last.ckpt, and the next eval scores another step.
    step = weights_step(ckpt, file)
    line = report(result, cfg.split, scored_text(text, cfg.split), file, arithmetic_used, step)
    print(json.dumps(line, ensure_ascii=False))


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


def refuse_val_in_training_text(cfg: DictConfig, overrides: dict[str, str], split: dict[str, Any],
                                named: bool) -> None:
    """The val split of the text the run trained on, cut earlier than its run cut it, would score
    characters the model trained on as held-out text. `named`: the text was given by data.path,
    where the split is data.train_fraction's even when left at its default."""
    given, trained_on = cfg.data.get("train_fraction"), split.get("train_fraction")
    if not cut_at_a_fraction(split):
        return
    asked = named or "data.train_fraction" in overrides  # else the recorded fraction is used
    if cfg.split != "val" or not isinstance(trained_on, float) or not asked:
        return
    if isinstance(given, (int, float)) and given < trained_on:
        typed = overrides.get("data.train_fraction", f"data.train_fraction={given} (the default)")
        raise ConfigError(
            f"{typed} would score text the model trained on as its val split (its run split the text at "
            f"{trained_on:g}); pass data.train_fraction={trained_on:g} (or leave data.path out) to score the "
            "held-out text, or split=all to score the whole text"
        )


def report(result: Evaluation, split: str, data: str, checkpoint: str,
           arithmetic: dict[str, str] | None = None, step: int | None = None) -> dict[str, Any]:
    """The JSON line: the headline figures first, the long per-position list last."""
    out: dict[str, Any] = {
        "loss": round(result.loss, 5),
        "bpc": round(result.bpc, 5),
        "tokens": result.tokens,
        "stride": result.stride,
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


def main() -> None:
    run_main(_hydra_main, config_name=CONFIG_NAME, unused=UNUSED)


if __name__ == "__main__":
    main()
