"""Decoder-only transformer language model over characters (after nanoGPT)."""

from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F
from torch import nn

from chargpt.model.blocks import Block, make_norm
from chargpt.model.config import ModelConfig
from chargpt.model.kv_cache import KVCache
from chargpt.model.positional import AbsolutePositions, Rotary
from chargpt.model.sampling import generate


def lm_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean next-character cross-entropy of (B, T, V) logits against (B, T) targets. Targets of
    -100 (cross_entropy's default ignore_index) are not scored."""
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), targets.reshape(-1))


class GPT(nn.Module):
    def __init__(self, config: ModelConfig, vocab_size: int) -> None:
        super().__init__()
        self.config, self.vocab_size, self.block_size = config, vocab_size, config.block_size
        self.tok_emb = nn.Embedding(vocab_size, config.n_embd)
        self.positions = (
            None if config.pos_encoding == "rope"
            else AbsolutePositions(config.pos_encoding, config.block_size, config.n_embd, config.init_std)
        )
        self.rotary = Rotary(config.block_size, config.head_dim) if config.pos_encoding == "rope" else None
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config, i) for i in range(config.n_layer))
        self.norm = make_norm(config)
        self.head = nn.Linear(config.n_embd, vocab_size, bias=False)
        if config.tie_weights:
            self.head.weight = self.tok_emb.weight
        self.apply(self._init_weights)

    def _init_weights(self, module: nn.Module) -> None:
        # GPT-2 init: N(0, init_std=0.02), residual output projections scaled by 1/sqrt(2 * n_layer)
        # (or zero: model.zero_init_residual).
        if isinstance(module, nn.Linear):
            std = self.config.init_std
            if not getattr(module, "is_residual_out", False):
                nn.init.normal_(module.weight, mean=0.0, std=std)
            elif self.config.zero_init_residual:  # the block starts as the identity
                nn.init.zeros_(module.weight)
            else:
                nn.init.normal_(module.weight, mean=0.0, std=std / math.sqrt(2 * self.config.n_layer))
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=self.config.init_std)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def flops_per_token(self) -> int:
        """Training FLOPs a token, nanoGPT's estimate: 6 N for the weights' forward and backward (a
        learned position table excluded: it is read, not multiplied) + 12 L T d for attention."""
        n = self.num_params()
        if self.positions is not None and isinstance(self.positions.table, nn.Parameter):
            n -= self.positions.table.numel()
        c = self.config
        return 6 * n + 12 * c.n_layer * c.block_size * c.n_embd

    def new_cache(self, batch: int) -> KVCache:
        p = self.head.weight
        c = self.config
        return KVCache(c.n_layer, batch, c.n_head, c.block_size, c.head_dim, p.device, p.dtype)

    def forward(
        self, idx: torch.Tensor, targets: torch.Tensor | None = None, cache: KVCache | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits for every position; the mean next-token loss when targets are given.

        With a cache, idx continues the cached tokens; the caller keeps the total within the
        context (sampling.iter_tokens does).
        """
        t = idx.shape[1]  # idx: (B, T)
        if t > self.block_size:
            raise ValueError(f"sequence of {t} exceeds the context of {self.block_size}")
        pos = cache.positions(t) if cache is not None else None  # (T,) or None for 0..T-1
        x = self.tok_emb(idx)  # (B, T, C)
        if self.positions is not None:
            x = self.positions(x, pos)
        x = self.drop(x)
        for block in self.blocks:
            x = block(x, self.rotary, cache, pos)  # (B, T, C)
        if cache is not None:
            cache.advance(t)
        logits = self.head(self.norm(x))  # (B, T, V)
        if self.config.logit_softcap is not None:
            # Bounded logits (Gemma 2): keeps confident early predictions from blowing up the loss.
            cap = self.config.logit_softcap
            logits = cap * torch.tanh(logits / cap)
        return logits, (lm_loss(logits, targets) if targets is not None else None)

    generate = generate


class BigramLM(nn.Module):
    """The tutorial's baseline: each character's logits for the next one, read from a table."""

    def __init__(self, config: ModelConfig, vocab_size: int) -> None:
        super().__init__()
        self.config, self.vocab_size, self.block_size = config, vocab_size, config.block_size
        self.table = nn.Embedding(vocab_size, vocab_size)

    def num_params(self) -> int:
        return self.table.weight.numel()

    def flops_per_token(self) -> int:
        """None worth counting: a token's logits are one row of the table, read, not multiplied."""
        return 0

    def new_cache(self, batch: int) -> None:
        return None  # only the last character matters

    def forward(
        self, idx: torch.Tensor, targets: torch.Tensor | None = None, cache: None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        logits = self.table(idx)  # (B, T, V)
        return logits, (lm_loss(logits, targets) if targets is not None else None)

    generate = generate


def build_model(config: ModelConfig, vocab_size: int) -> GPT | BigramLM:
    return BigramLM(config, vocab_size) if config.arch == "bigram" else GPT(config, vocab_size)


def count_parameters(config: ModelConfig, vocab_size: int) -> int:
    """`build_model(config, vocab_size).num_params()`, allocating nothing (torch's meta device) and
    building two layers at most: every layer holds as many as the first, however many there are
    (building 100,000 layers, even on the meta device, took minutes)."""
    with torch.device("meta"):
        if config.arch == "bigram" or config.n_layer <= 2:
            return build_model(config, vocab_size).num_params()
        one, two = (build_model(dataclasses.replace(config, n_layer=n), vocab_size).num_params()
                    for n in (1, 2))
    return one + (config.n_layer - 1) * (two - one)
