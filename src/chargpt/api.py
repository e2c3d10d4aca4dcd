"""Use a trained model from Python: `chargpt.load(path).generate("ROMEO:")`.

The sampling CLI and the end-of-training sample go through this same code.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from chargpt.checkpoint import read_checkpoint, resolve_checkpoint
from chargpt.data.tokenizer import CharTokenizer
from chargpt.errors import CheckpointError
from chargpt.model import ModelConfig, build_model
from chargpt.model.sampling import check_sampling, iter_tokens


@dataclass
class TrainedModel:
    model: nn.Module
    tokenizer: CharTokenizer

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def stream(
        self,
        prompt: str = "\n",
        max_new_tokens: int = 500,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        seed: int | None = None,
        generator: torch.Generator | None = None,
        use_cache: bool = True,
        compile: bool = False,
    ) -> Iterator[str]:
        """Yield the sampled text character by character (one sample); compile: see iter_tokens."""
        check_sampling(temperature, top_k, top_p, max_new_tokens)
        idx = torch.tensor([self.tokenizer.encode(prompt)], dtype=torch.long, device=self.device)
        if generator is None:
            generator = torch.Generator(device=self.device)
            generator.manual_seed(seed if seed is not None else torch.seed())
        for token in iter_tokens(
            self.model, idx, max_new_tokens, temperature, top_k, top_p, generator, use_cache, compile
        ):
            yield self.tokenizer.chars[int(token[0, 0])]

    def generate(
        self, prompt: str = "\n", num_samples: int = 1, seed: int | None = None, **options: object
    ) -> list[str]:
        """`num_samples` texts (without the prompt); the same seed gives the same texts."""
        generator = torch.Generator(device=self.device)
        generator.manual_seed(seed if seed is not None else torch.seed())
        return ["".join(self.stream(prompt, generator=generator, **options)) for _ in range(num_samples)]


def model_from_checkpoint(ckpt: dict, source: str = "checkpoint") -> TrainedModel:
    hparams = ckpt["hyper_parameters"]
    tokenizer = CharTokenizer(hparams["vocab"])
    model = build_model(ModelConfig.from_dict(hparams["model"]), tokenizer.vocab_size)
    state = {k.removeprefix("model."): v for k, v in ckpt["state_dict"].items() if k.startswith("model.")}
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise CheckpointError(
            f"the weights in {source} do not match its model settings: {str(err)[:200]}"
        ) from None
    return TrainedModel(model.eval(), tokenizer)


def load(path: str | Path, device: str | torch.device = "cpu") -> TrainedModel:
    """The trained model and tokenizer of a checkpoint file, run directory or safetensors export."""
    from chargpt.export import export_folder_of, load_export  # after this module: it imports it

    if (folder := export_folder_of(path)) is not None:
        return load_export(folder, device)
    file = resolve_checkpoint(path)
    trained = model_from_checkpoint(read_checkpoint(file), str(file))
    trained.model.to(device)
    return trained
