"""model=auto's ladder: the candidate shapes from small to large, their non-embedding parameters,
and the target ratio of tokens to those parameters (the anchor's)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Shape:
    """One rung of the ladder: what model=auto chooses (the rest of the recipe is fixed)."""

    n_layer: int
    n_embd: int
    n_head: int
    block_size: int
    batch_size: int

    @property
    def name(self) -> str:
        return f"{self.n_layer}x{self.n_embd} h{self.n_head} ctx{self.block_size} b{self.batch_size}"

    def tokens_per_step(self) -> int:
        return self.block_size * self.batch_size


# ---- The ladder's constants (provisional; see the package docstring) ---------------------------
# Shapes from small to large, heads 32 wide. Nothing here is specific to one text: the first four
# are CPU-sized (3x128 is the cpu_100s shape), the last ones for long budgets or fast machines.
LADDER: tuple[Shape, ...] = (
    Shape(2, 96, 3, 128, 8),
    Shape(3, 128, 4, 128, 8),
    Shape(4, 160, 5, 128, 8),
    Shape(4, 192, 6, 128, 8),
    Shape(5, 224, 7, 256, 8),
    Shape(6, 256, 8, 256, 8),
    Shape(6, 320, 10, 256, 12),
    Shape(8, 384, 12, 256, 16),
)
# The anchor: the best measured shape at 100 s on the 2-core CPU (docs/EXPERIMENTS.md, preset P),
# 3 layers x 128 wide, ~2,200 steps of 8 x 128 tokens. Its tokens per non-embedding parameter
# (~3.8) is the target ratio for every budget and machine.
ANCHOR_SHAPE = LADDER[1]
ANCHOR_STEPS = 2200
# ------------------------------------------------------------------------------------------------


def non_embedding_params(shape: Shape, mlp_ratio: float = 4.0, bias: bool = True) -> int:
    """Weights of the transformer blocks and the final norm (what the compute and the data must
    feed; embeddings are lookups). Per block: attention 4 d^2, feed-forward 2 r d^2, plus biases
    and two norms."""
    d, hidden = shape.n_embd, int(mlp_ratio * shape.n_embd)
    per_block = 4 * d * d + 2 * d * hidden + (4 * d + hidden + d if bias else 0) + 2 * d * (2 if bias else 1)
    return shape.n_layer * per_block + d * (2 if bias else 1)


def target_tokens_per_param() -> float:
    return ANCHOR_STEPS * ANCHOR_SHAPE.tokens_per_step() / non_embedding_params(ANCHOR_SHAPE)


def usable_ladder(train_chars: int, val_chars: int) -> list[Shape]:
    """Shapes whose context fits in both splits (a short text rules out the long contexts)."""
    return [s for s in LADDER if s.block_size < min(train_chars, val_chars)]


def shape_fields(shape: Shape) -> dict[str, int]:
    return {k: getattr(shape, k) for k in ("n_layer", "n_embd", "n_head", "block_size")}
