"""Muon as torch.optim.Muon computes it, with the Newton–Schulz orthogonalisation in a dtype the
device multiplies fast.

torch.optim.Muon always orthogonalises in bfloat16. CPUs without bf16 units (no AVX-512 BF16, no
AMX) emulate bf16 matrix products, far slower than fp32, and for a small model the
orthogonalisation is a large share of the step: on a 2-core Xeon without them, the 3-layer,
128-wide model's step took 156 ms with torch's Muon (80 ms of it in the optimizer) and 112 ms in
float32 (docs/BENCHMARKS.md, "Muon: the orthogonalisation's dtype"). Here `ns_dtype="auto"` keeps
bfloat16 on CUDA (as torch does) and on CPUs with AVX-512 BF16 or AMX, and uses float32 elsewhere;
`"bfloat16"` gives torch's update bit for bit. The optimizer state (one momentum buffer per
matrix) is torch's, so checkpoints move freely between the two.
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
    quintic iteration, computed in `dtype`)."""
    a, b, c = coefficients
    x = update.to(dtype)
    tall = update.size(0) > update.size(1)
    if tall:  # iterate on the wide orientation: the Gram matrix is the smaller one
        x = x.T
    x = x / x.norm().clamp(min=eps)  # spectral norm <= Frobenius norm <= 1; not in place: x may be the buffer
    for _ in range(steps):
        gram = x @ x.T
        x = torch.addmm(x, torch.addmm(gram, gram, gram, beta=b, alpha=c), x, beta=a)
    return x.T if tall else x


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
            momentum = group["momentum"]
            for param in group["params"]:
                if param.grad is None:
                    continue
                grad = param.grad
                state = self.state[param]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(grad, memory_format=torch.preserve_format)
                buf = state["momentum_buffer"]
                buf.lerp_(grad, 1 - momentum)
                update = grad.lerp(buf, momentum) if group["nesterov"] else buf
                coefficients, steps, eps = group["ns_coefficients"], group["ns_steps"], group["eps"]
                if param.device not in dtypes:
                    dtypes[param.device] = self.dtype_for(param.device)
                update = orthogonalize(update, coefficients, steps, eps, dtypes[param.device])
                param.mul_(1 - group["lr"] * group["weight_decay"])
                param.add_(update, alpha=-adjusted_lr(group["lr"], group["adjust_lr_fn"], param.shape))
        return loss
