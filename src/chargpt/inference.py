"""Use a trained model: `chargpt.load(path).generate("ROMEO:")`, `.evaluate(text)` (its exact loss).

The sampling and evaluation CLIs and the end-of-training sample go through this same code.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from chargpt.checkpoints import (
    model_config,
    model_weights,
    read_checkpoint,
    resolve_checkpoint,
    without_weights,
)
from chargpt.checks import check_seed, whole_number
from chargpt.data.tokenizer import CharTokenizer
from chargpt.errors import (
    ChargptError,
    CheckpointError,
    ConfigError,
    OutOfMemory,
    cannot_read,
    first_line,
    memory_ran_out,
    naming_what_ran_out,
    needs_extra,
    path_refused,
    shown_name,
)
from chargpt.evaluation import Evaluation, evaluate_text
from chargpt.export_layout import CONFIG_FILE, WEIGHTS, export_folder_of, read_export_config
from chargpt.model import ModelConfig, build_model, count_parameters
from chargpt.model.sampling import check_sampling, iter_tokens
from chargpt.model.size import BUILT_BYTES_PER_PARAMETER, machine_memory, too_large_to_build


def new_generator(device: torch.device, seed: int | None) -> torch.Generator:
    """A generator of its own: sampling never reseeds the caller's global RNG."""
    check_seed("seed", seed, optional=True)
    generator = torch.Generator(device=device)
    if seed is None:
        generator.seed()  # non-deterministic, from the OS
    else:
        generator.manual_seed(seed)
    return generator


def start_prompt(tokenizer: CharTokenizer) -> str:
    """The prompt used when none is given: a new line, or the first character of the vocabulary
    for a text that has no newline (any text can be trained on)."""
    return "\n" if "\n" in tokenizer.stoi else tokenizer.chars[0]


@dataclass
class TrainedModel:
    model: nn.Module
    tokenizer: CharTokenizer

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def stream(
        self,
        prompt: str | None = None,
        max_new_tokens: int = 500,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        seed: int | None = None,
        generator: torch.Generator | None = None,
        use_cache: bool = True,
        compile: bool = False,
    ) -> Iterator[str]:
        """Yield the sampled text character by character (one sample) after `prompt` (default:
        start_prompt), read as chargpt-sample and the server read it (Windows line endings as '\n'
        and accents composed where the vocabulary writes them so); compile: see iter_tokens."""
        check_sampling(temperature, top_k, top_p, max_new_tokens)
        prompt = start_prompt(self.tokenizer) if prompt is None else self.tokenizer.as_written_here(prompt)[0]
        idx = torch.tensor([self.tokenizer.encode(prompt)], dtype=torch.long, device=self.device)  # (1, T)
        generator = generator or new_generator(self.device, seed)
        for token in iter_tokens(
            self.model, idx, max_new_tokens, temperature, top_k, top_p, generator, use_cache, compile
        ):
            yield self.tokenizer.chars[int(token[0, 0])]

    def generate(
        self,
        prompt: str | None = None,
        num_samples: int = 1,
        seed: int | None = None,
        max_new_tokens: int = 500,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        use_cache: bool = True,
        compile: bool = False,
    ) -> list[str]:
        """`num_samples` texts (without the prompt); the same seed gives the same texts. The
        options are `stream`'s, named here so a misspelt one is generate()'s error."""
        whole_number("num_samples", num_samples, low=1)
        generator = new_generator(self.device, seed)
        return ["".join(self.stream(prompt, max_new_tokens, temperature, top_k, top_p, generator=generator,
                                    use_cache=use_cache, compile=compile))
                for _ in range(num_samples)]

    def evaluate(self, text: str, stride: int | None = None, batch_size: int = 64) -> Evaluation:
        """The exact loss on `text`, every character after the first scored once, in windows
        `stride` apart (default: non-overlapping), with the loss by position in the window and by
        class of character: what chargpt-eval reports, in float32 (chargpt-eval's default is the
        run's own arithmetic; its precision=32-true matmul_precision=highest is this)."""
        ids = np.asarray(self.tokenizer.encode(text), dtype=np.int64)
        return evaluate_text(self.model, ids, batch_size, stride, chars=self.tokenizer.chars)


def model_from_checkpoint(ckpt: dict[str, Any], file: Path) -> TrainedModel:
    """The model of the checkpoint `ckpt`, read from `file`."""
    tokenizer = CharTokenizer(ckpt["hyper_parameters"]["vocab"])
    config = model_config(ckpt)
    check_fits(config, tokenizer.vocab_size, file, weights=file)
    model = build_model(config, tokenizer.vocab_size)
    try:
        model.load_state_dict(model_weights(ckpt))
    except RuntimeError as err:
        raise CheckpointError(
            f"the weights in {file} do not match its model settings ({_mismatches(err)})") from None
    return TrainedModel(model.eval(), tokenizer)


def _mismatches(err: RuntimeError) -> str:
    """torch's load_state_dict error in one line: its first mismatch, and how many more (its own text is
    a heading, then a tab-indented line for each tensor)."""
    found = [line.strip().rstrip(".") for line in str(err).splitlines()[1:] if line.strip()]
    if not found:
        return first_line(err)
    return found[0] + (f"; and {len(found) - 1} more" if len(found) > 1 else "")


def pick_device(name: str) -> str:
    """`auto` is the GPU when there is one; a CUDA device without a GPU is a clear error."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if not _names_a_device(name):
        raise ConfigError(f"device={name!r} is not a device; use auto, cpu, cuda or cuda:N")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device={name} but no CUDA GPU is available; use device=cpu")
    return name


def _names_a_device(name: object) -> bool:
    try:
        return isinstance(name, str) and torch.device(name) is not None  # device=0 arrives as a number
    except RuntimeError:
        return False


def load(path: str | Path, device: str | torch.device = "cpu") -> TrainedModel:
    """The trained model and tokenizer of a checkpoint file, run directory or safetensors export.
    A path that leads to none raises a CheckpointError naming it and the fix."""
    try:
        return load_with_checkpoint(path, device)[0]
    except OSError as err:  # the commands say these with the setting that named the path
        if (why := path_refused(err)) is None:
            raise
        raise CheckpointError(f"{shown_name(os.fsdecode(err.filename))}: {why}") from None


def load_with_checkpoint(
    path: str | Path, device: str | torch.device = "cpu"
) -> tuple[TrainedModel, dict[str, Any] | None, str]:
    """`load`, with the checkpoint read, less its weights and optimizer state (without_weights; None
    for a safetensors export, which records no run: no text, no split), and the file or folder it
    came from, for messages."""
    device = pick_device(str(device))
    found, exported = find_trained(path)
    if exported:
        with naming_what_ran_out(lambda: does_not_fit(read_export_config(found), device)):
            return load_export(found, device), None, str(found)
    file = found
    ckpt = read_checkpoint(file, mapped=True)
    with naming_what_ran_out(lambda: does_not_fit(ckpt["hyper_parameters"], device)):
        trained = model_from_checkpoint(ckpt, file)
        trained.model.to(device)
    return trained, without_weights(ckpt), str(file)


def find_trained(path: str | Path) -> tuple[Path, bool]:
    """Where the trained model `path` names is, read from nothing: an export's folder (True) or a
    checkpoint file (False); a CheckpointError naming the path and the fix where it leads to neither.
    (A sweep of sampling or evaluation finds each job's before its first job starts.)"""
    if isinstance(path, str) and not path:  # as Path("") it is the current folder, and was named "."
        raise CheckpointError("the path is empty (an unset variable?); pass a .ckpt file, a run directory "
                              "or an export folder")
    if (folder := export_folder_of(path)) is not None:
        return folder, True
    return resolve_checkpoint(path, or_export=True), False


def trained_vocabulary(path: str | Path) -> CharTokenizer:
    """The vocabulary of the trained model `path` names, read without its weights."""
    return CharTokenizer(_trained_settings(path)["vocab"])


def trained_context(path: str | Path) -> int:
    """The context length (block_size) of the trained model `path` names, read without its weights."""
    return int(_trained_settings(path)["model"]["block_size"])


def _trained_settings(path: str | Path) -> dict[str, Any]:
    """The model settings and vocabulary (`model`, `vocab`) of the trained model `path` names: an
    export's config, or its checkpoint memory-mapped (read_checkpoint: its tensors are not read)."""
    found, exported = find_trained(path)
    return read_export_config(found) if exported else read_checkpoint(found, mapped=True)["hyper_parameters"]


def check_fits(config: ModelConfig, vocab_size: int, source: str | Path, weights: Path) -> None:
    """Refuse, before it is built, a model whose weights alone are more than this machine's memory
    (too_large_to_build): built, it ended the command by the kernel's out-of-memory killer. Counting
    its parameters builds it on torch's meta device, which imports torch's compiler (seconds, and a
    folder in the temporary directory): not done where the file of its `weights`, at a byte a
    parameter at least, holds too few to fill the memory. (Settings edited to describe more
    parameters than the file holds are not refused here: built, where memory allows, they fail to load.)"""
    memory = machine_memory()
    if memory is None or weights.stat().st_size * BUILT_BYTES_PER_PARAMETER <= memory:
        return
    if (too_large := too_large_to_build(config, vocab_size)) is not None:
        raise OutOfMemory(f"the model of {source} is too large for this machine: {too_large[0]}; load it on "
                          "a machine with more memory")


def does_not_fit(settings: dict[str, Any], device: str | torch.device) -> str:
    """The fix where memory ran out building a trained model (its `settings`: a checkpoint's or an
    export's model and vocab) or moving it to its device: no setting of sampling, evaluation,
    serving or export (the batch, the tokens asked for) makes the model smaller."""
    parameters = count_parameters(ModelConfig.from_dict(settings["model"]), len(settings["vocab"]))
    weights = parameters * BUILT_BYTES_PER_PARAMETER / 2**30  # as built and moved, whatever it was saved in
    return (f"the model itself ({parameters:,} parameters, {weights:,.1f} GiB of weights) does not fit in "
            f"memory for device={device}, and no setting makes it smaller; load it on a machine or device "
            "with more memory")


def model_from_config(config: dict[str, Any], source: Path, weights: Path) -> tuple[nn.Module, CharTokenizer]:
    """The model an export's `config` (read from `source`) describes, for its `weights` file."""
    try:
        tokenizer = CharTokenizer(config["vocab"])
        settings = ModelConfig.from_dict(config["model"])
    except ChargptError as err:
        raise CheckpointError(f"{source}: {err}") from None
    check_fits(settings, tokenizer.vocab_size, source.parent, weights)
    return build_model(settings, tokenizer.vocab_size), tokenizer


def load_export(folder: Path, device: str | torch.device = "cpu") -> TrainedModel:
    """The model of a safetensors export folder (as export_folder_of found it from the path given)."""
    config = read_export_config(folder)
    if config.get("weights") != WEIGHTS["safetensors"]:
        raise CheckpointError(
            f"{folder} is an ONNX export: run its model.onnx with ONNX Runtime (docs/serving-and-export.md), "
            "or export with format=safetensors to load it here"
        )
    try:
        from safetensors import SafetensorError
        from safetensors.torch import load_model
    except ImportError:
        raise CheckpointError(needs_extra("reading a safetensors export", "safetensors", "export")) from None
    weights = folder / WEIGHTS["safetensors"]
    if not weights.is_file():
        raise CheckpointError(f"{weights} is missing; export the model again")
    try:  # safetensors says a file it may not read is missing
        weights.open("rb").close()
    except PermissionError as err:
        raise CheckpointError(cannot_read(weights, err)) from None
    model, tokenizer = model_from_config(config, folder / CONFIG_FILE, weights)
    try:
        load_model(model, str(weights), device=str(torch.device(device)))
    except (SafetensorError, RuntimeError, OSError) as err:
        if memory_ran_out(err):  # not the file's fault: load_with_checkpoint says it, with the model's size
            raise
        raise CheckpointError(
            f"{weights} does not hold this model's weights ({first_line(err, 200)}); export again"
        ) from None
    return TrainedModel(model.to(device).eval(), tokenizer)
