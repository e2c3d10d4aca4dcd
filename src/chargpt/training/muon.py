"""Muon as torch.optim.Muon computes it, with the Newton–Schulz orthogonalisation in a dtype the
device multiplies fast, and for matrices of one shape at once.

torch.optim.Muon always orthogonalises in bfloat16. CPUs without bf16 units (no AVX-512 BF16, no
AMX) emulate bf16 matrix products, far slower than fp32, and for a small model the
orthogonalisation is a large share of the step: on a 2-core Xeon without them, the 3-layer,
128-wide model's step took 156 ms with torch's Muon (80 ms of it in the optimizer) and 112 ms in
float32 (docs/BENCHMARKS.md, "Muon: the orthogonalisation's dtype"). Here `ns_dtype="auto"` keeps
bfloat16 on CUDA (as torch does) and on CPUs with AVX-512 BF16 or AMX, and uses float32 elsewhere.

torch orthogonalises one matrix at a time; here matrices of one shape go through the iteration as
one stack, which halved the optimizer step of that model on a 2-core Xeon with AMX. With
`"bfloat16"` a matrix alone gets torch's update bit for bit, a stacked one the same to bf16's
rounding. The optimizer state (one momentum buffer per matrix) is torch's, so checkpoints move
freely between the two.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

NS_DTYPES = ("auto", "bfloat16", "float32")
# torch.optim.Muon arrived in torch 2.9; on older torch this module still imports and
# optimizer=muon is refused before anything is built (chargpt.training.optim).
_TorchMuon: type = getattr(torch.optim, "Muon", torch.optim.Optimizer)


def native_bf16(device: torch.device) -> bool:
    """Whether `device` multiplies bf16 matrices in hardware (CUDA GPUs from Ampere on; x86 CPUs
    with AVX-512 BF16 or AMX tiles). Older GPUs and other CPUs, ARM included, are treated as
    emulating it: float32 is the safe choice."""
    if device.type == "cuda":
        return torch.cuda.get_device_capability(device)[0] >= 8
    if device.type != "cpu":
        return False
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # False where torch lacks them
    return any(getattr(torch.cpu, probe, lambda: False)() for probe in probes)


def orthogonalize(
    update: torch.Tensor, coefficients: tuple[float, float, float], steps: int, eps: float, dtype: torch.dtype
) -> torch.Tensor:
    """Newton–Schulz iteration towards the nearest semi-orthogonal matrix (torch.optim.Muon's
    quintic iteration, computed in `dtype`). `update` is one matrix (rows, cols) or a stack of
    matrices of one shape (n, rows, cols), each orthogonalised on its own."""
    a, b, c = coefficients
    x = update.to(dtype)
    tall = update.size(-2) > update.size(-1)
    if tall:  # iterate on the wide orientation: the Gram matrix is the smaller one
        x = x.mT
    # spectral norm <= Frobenius norm <= 1; not in place: x may be the buffer
    x = x / x.norm(dim=(-2, -1), keepdim=True).clamp(min=eps)
    add_product = torch.addmm if x.dim() == 2 else torch.baddbmm
    for _ in range(steps):
        gram = x @ x.mT
        x = add_product(x, add_product(gram, gram, gram, beta=b, alpha=c), x, beta=a)
    return x.mT if tall else x


def adjusted_lr(lr: float, adjust_lr_fn: str | None, shape: torch.Size) -> float:
    """torch.optim.Muon's per-matrix learning rate."""
    rows, cols = shape[:2]
    if adjust_lr_fn in (None, "original"):
        return lr * math.sqrt(max(1.0, rows / cols))
    if adjust_lr_fn == "match_rms_adamw":
        return lr * 0.2 * math.sqrt(max(rows, cols))
    return lr


class Muon(_TorchMuon):
    """torch.optim.Muon (its arguments, checks and state) with `ns_dtype`: the orthogonalisation's
    dtype, "auto" (bf16 where native, else fp32), "bfloat16" (torch's) or "float32"."""

    def __init__(self, params: Any, *, ns_dtype: str = "auto", **kwargs: Any) -> None:
        if ns_dtype not in NS_DTYPES:
            raise ValueError(f"ns_dtype={ns_dtype!r} is not one of {', '.join(NS_DTYPES)}")
        super().__init__(params, **kwargs)
        # Not a group default: groups loaded from a checkpoint of torch's Muon stay valid.
        self.ns_dtype = ns_dtype

    def dtype_for(self, device: torch.device) -> torch.dtype:
        if self.ns_dtype == "auto":
            return torch.bfloat16 if native_bf16(device) else torch.float32
        return getattr(torch, self.ns_dtype)

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        dtypes: dict[torch.device, torch.dtype] = {}  # probed once a step, not once a matrix
        for group in self.param_groups:
            # Matrices of one shape (tall ones turned wide) are orthogonalised together, as one
            # batched product: a small model's matrices are too small for one product each to keep
            # the cores busy (docs/BENCHMARKS.md, "Muon").
            batches: dict[tuple[torch.device, int, int], list[tuple[torch.Tensor, torch.Tensor]]] = {}
            for param in group["params"]:
                if param.grad is not None:
                    key = (param.device, min(param.shape), max(param.shape))
                    batches.setdefault(key, []).append((param, self._momentum_update(param, group)))
            ns = group["ns_coefficients"], group["ns_steps"], group["eps"]
            for (device, _, _), members in batches.items():
                if device not in dtypes:
                    dtypes[device] = self.dtype_for(device)
                for param, update in self._orthogonalized(members, ns, dtypes[device]):
                    param.mul_(1 - group["lr"] * group["weight_decay"])
                    param.add_(update, alpha=-adjusted_lr(group["lr"], group["adjust_lr_fn"], param.shape))
        return loss

    def _momentum_update(self, param: torch.Tensor, group: dict[str, Any]) -> torch.Tensor:
        """The step's direction before orthogonalisation: the momentum buffer, updated with this
        gradient (looked ahead with Nesterov)."""
        grad, momentum = param.grad, group["momentum"]
        state = self.state[param]
        if "momentum_buffer" not in state:
            state["momentum_buffer"] = torch.zeros_like(grad, memory_format=torch.preserve_format)
        buf = state["momentum_buffer"]
        buf.lerp_(grad, 1 - momentum)
        return grad.lerp(buf, momentum) if group["nesterov"] else buf

    @staticmethod
    def _orthogonalized(
        members: list[tuple[torch.Tensor, torch.Tensor]], ns: tuple[Any, int, float], dtype: torch.dtype
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Each (param, update) pair's update orthogonalised, for matrices of one shape up to a
        transpose."""
        if len(members) == 1:  # a matrix alone takes torch's own products, bit for bit
            param, update = members[0]
            return [(param, orthogonalize(update, *ns, dtype))]
        tall = [param.size(0) > param.size(1) for param, _ in members]
        # (n, rows, cols), rows <= cols
        wide = torch.stack([u.T if t else u for (_, u), t in zip(members, tall, strict=True)])
        orthogonal = orthogonalize(wide, *ns, dtype)
        return [(param, o.T if t else o) for (param, _), o, t in zip(members, orthogonal, tall, strict=True)]
