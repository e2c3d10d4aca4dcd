"""Fine-tuning: a new run that starts from a trained checkpoint's weights and architecture.

Unlike resuming (same run, same optimizer and step), fine-tuning starts at step 0 with a fresh
optimizer and schedule, usually on another text.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig
from torch import nn

from chargpt import shell_words
from chargpt.checks import shown, whole_number, yes_no
from chargpt.data import CharDataModule
from chargpt.data.tokenizer import describe_chars, reading_fix
from chargpt.errors import ConfigError, DataError
from chargpt.inference import load_with_checkpoint
from chargpt.model import ModelConfig
from chargpt.model_card import card_for
from chargpt.overrides import override_key
from chargpt.plural import counted
from chargpt.run_layout import launched_with, run_of, saved_config

log = logging.getLogger(__name__)


@dataclass
class Pretrained:
    config: ModelConfig
    vocab: list[str]  # of the new run: the checkpoint's, possibly extended
    state_dict: dict[str, torch.Tensor]
    source: str
    # The model card of what it starts from (its name, steps, text): the new run's card names it.
    card: dict[str, Any] = field(default_factory=dict)
    checkpoint: Path | None = None  # the checkpoint file read; None for a safetensors export


def explicit_model_overrides(task_overrides: list[str]) -> dict[str, str]:
    """Architecture settings the user typed (model=..., model.x=...), as {key: value}."""
    found = {}
    for override in task_overrides:
        key, value = override_key(override), override.partition("=")[2]
        if key == "model" or key.startswith("model."):
            found[key] = value
    return found


def pretrained_config(source: ModelConfig, composed: ModelConfig, typed: dict[str, str]) -> ModelConfig:
    """The checkpoint's architecture with the run's other settings (dropout, compile,
    zero_init_residual); refuse typed overrides that would change the architecture."""
    old, new = source.architecture(), composed.architecture()
    changed = [
        name for name in old
        if old[name] != new[name] and ("model" in typed or f"model.{name}" in typed)
    ]
    if changed:
        # Name what was typed: a setting, or the model group option that set it (model=small).
        typed_alone = [n for n in changed if f"model.{n}" in typed]
        by_group = [n for n in changed if n not in typed_alone]
        # Values as typed on the command line (null, true), as the resume refusal names them.
        parts = [f"model.{n}={shown(getattr(composed, n))} (checkpoint: {shown(getattr(source, n))})"
                 for n in typed_alone]
        if by_group:
            its = ", ".join(f"{n}={shown(getattr(composed, n))}" for n in by_group)
            was = ", ".join(shown(getattr(source, n)) for n in by_group)
            parts.append(f"model={typed['model']} (its {its}; checkpoint: {was})")
        overrides = "overrides" if len(parts) > 1 else "override"
        raise ConfigError(
            f"init_from keeps the checkpoint's architecture; drop the {overrides} {', '.join(parts)}, "
            "or train from scratch without init_from"
        )
    others = {f.name: getattr(composed, f.name) for f in fields(ModelConfig) if f.name not in old}
    return replace(source, **others)


def load_pretrained(init_from: str, composed: ModelConfig, typed: dict[str, str]) -> Pretrained:
    """A run directory, a checkpoint file or a safetensors export: the weights to start from."""
    trained, ckpt, source = load_with_checkpoint(init_from)
    config = pretrained_config(trained.model.config, composed, typed)
    card = card_for(source, trained, ckpt=ckpt).to_dict()
    card.pop("chargpt_version", None)  # the chargpt reading it now, not the one that trained it
    return Pretrained(config, list(trained.tokenizer.chars), trained.model.state_dict(), source, card,
                      checkpoint=Path(source) if ckpt is not None else None)


def finetune_vocab(pretrained: Pretrained, data: CharDataModule, extend: bool) -> list[str]:
    """The checkpoint's vocabulary, with the new text's unseen characters appended when `extend`.

    Appending keeps every existing id (and so every trained embedding row) where it was. The text
    is read as the run will read it: a file, a folder or a glob, with its data.newline and
    data.normalize applied.
    """
    unseen = [c for c in data.characters() if c not in set(pretrained.vocab)]
    if unseen and not extend:
        raise DataError(
            f"{data.source} has characters the checkpoint never saw: {describe_chars(unseen)}; "
            f"{reading_fix(unseen, data.options.normalize)}remove them, or pass finetune.extend_vocab=true "
            "to add them to the vocabulary"
        )
    if unseen:
        log.info("finetune.extend_vocab: added %s the checkpoint never saw: %s",
                 counted(len(unseen), "character"), describe_chars(unseen))
    return pretrained.vocab + unseen


def apply_pretrained(model: nn.Module, pretrained: Pretrained) -> None:
    """Copy the trained weights; rows (and, in the bigram model's table, columns) of new characters
    start at the mean of the trained ones."""
    state = dict(pretrained.state_dict)
    own = model.state_dict()
    for name, tensor in state.items():
        target = own.get(name)
        if (target is not None and target.shape != tensor.shape and target.dim() == tensor.dim()
                and all(new >= old for new, old in zip(target.shape, tensor.shape, strict=True))):
            state[name] = _grown(tensor, target.shape)
    model.load_state_dict(state)


def _grown(tensor: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """`tensor` extended to `shape`, each grown dimension by the mean along it."""
    for dim, new in enumerate(shape):
        if (n_new := new - tensor.shape[dim]) > 0:
            sizes = [n_new if d == dim else -1 for d in range(tensor.dim())]
            tensor = torch.cat([tensor, tensor.mean(dim=dim, keepdim=True).expand(*sizes)], dim=dim)
    return tensor


def prepare_finetune(cfg: DictConfig, composed: ModelConfig, task_overrides: list[str],
                     resumed: str | None = None) -> Pretrained:
    """Read `cfg.init_from`, fix the architecture of the new run and check its finetune.*
    settings. A fine-tune resumed from its own checkpoint `resumed` gets its architecture and
    vocabulary from it, as it gets its weights: the model it started from may have moved or gone
    since."""
    pretrained = load_pretrained(resumed or cfg.init_from, composed, explicit_model_overrides(task_overrides))
    options = cfg.finetune
    yes_no("finetune.freeze_embeddings", options.freeze_embeddings)
    whole_number("finetune.freeze_blocks", options.freeze_blocks, low=0)
    yes_no("finetune.extend_vocab", options.extend_vocab)
    return pretrained


def fit_vocab(pretrained: Pretrained, data: CharDataModule, options: DictConfig) -> Pretrained:
    """The vocabulary of the new run, from the new text's characters (`options`: cfg.finetune);
    `data` is then encoded with it. The one data module reads the text for both: its characters
    first, then its ids."""
    vocab = finetune_vocab(pretrained, data, options.extend_vocab)
    if len(vocab) > len(pretrained.vocab) and options.freeze_embeddings:
        raise ConfigError(
            "finetune.freeze_embeddings=true would leave the new characters untrained; "
            "drop it or finetune.extend_vocab"
        )
    data.use_vocab(vocab)
    return replace(pretrained, vocab=vocab)


def resume_settings(init_from: str | None, checkpoint: Path) -> str | None:
    """For a fine-tune resumed without `init_from`: the settings that started it (its architecture
    and vocabulary come from them), read from its run's saved config; None for any other resume."""
    if init_from:
        return None
    run_dir = run_of(checkpoint)
    saved = saved_config(run_dir)
    source = saved.get("init_from")
    if not source:
        return None
    preset = ["experiment=finetune"] if launched_with(run_dir, "experiment") == "finetune" else []
    return (f"it is a fine-tune of {source}: resume with the settings that started it, "
            + " ".join([*preset, shell_words.quote(f"init_from={source}"), *_started_with(saved)])
            + " (and any others it was launched with)")


def _started_with(saved: dict[str, Any], prefix: str = "") -> list[str]:
    """The finetune.* settings (those starting with `prefix`) a run's saved config gave, as typed."""
    options = saved.get("finetune") or {}
    return [f"finetune.{k}={shown(v)}" for k, v in options.items() if v and k.startswith(prefix)]


def freeze_fix(cfg: DictConfig, checkpoint: Path) -> str:
    """What to resume a fine-tune with when its frozen parameters differ from the checkpoint's: the
    finetune.freeze_* settings its run started with (read from its saved config), or without one
    when it started with none."""
    saved = saved_config(run_of(checkpoint))
    if "finetune" not in saved:  # no saved config beside the checkpoint
        if not cfg.get("init_from"):  # only a fine-tune freezes: this checkpoint is one
            return ("it is a fine-tune: resume with the init_from and the finetune.freeze_embeddings and "
                    "finetune.freeze_blocks that started it")
        return "resume with the finetune.freeze_embeddings and finetune.freeze_blocks it was trained with"
    if not saved.get("init_from"):
        return "it was trained from scratch, with nothing frozen: resume without finetune.freeze_*"
    started = _started_with(saved, "freeze_")
    if not started:
        return "it was fine-tuned with nothing frozen: resume without finetune.freeze_*"
    return f"it was fine-tuned with {' '.join(started)}: resume with {'it' if len(started) == 1 else 'them'}"


def freeze(model: nn.Module, embeddings: bool, blocks: int) -> None:
    """Stop gradients to the token embedding (and a head tied to it) and the first `blocks` blocks."""
    n_blocks = len(getattr(model, "blocks", []))
    if blocks < 0 or blocks > n_blocks:
        raise ConfigError(
            f"finetune.freeze_blocks={blocks} must be between 0 and the model's {n_blocks} blocks"
        )
    frozen: list[nn.Module] = list(model.blocks[:blocks]) if blocks else []
    if embeddings:
        frozen.append(model.tok_emb if hasattr(model, "tok_emb") else model.table)
        if getattr(model, "positions", None) is not None:
            frozen.append(model.positions)
    for module in frozen:
        module.requires_grad_(False)
