"""trainer.precision and matmul_precision as a run uses them: Lightning's aliases unified, `auto`
resolved for the device (and written into the run's config; a resumed run keeps what it trained
with), and Lightning's own precision plugin for code that runs steps outside the Trainer
(model=auto's calibration, the training benchmark's bare loop), so they time what the run will run."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from omegaconf import DictConfig, open_dict

from chargpt.errors import ConfigError
from chargpt.model.attention import float32_attention_available
from chargpt.run_layout import run_of, saved_config
from chargpt.training.muon import native_bf16

if TYPE_CHECKING:
    from lightning.pytorch.plugins.precision import Precision

# Lightning's names for each precision (its older spellings map onto them, as Lightning maps them).
PRECISIONS = (
    "32-true", "bf16-mixed", "16-mixed", "bf16-true", "16-true", "64-true",
    "transformer-engine", "transformer-engine-float16",
)
ALIASES = {"32": "32-true", "bf16": "bf16-mixed", "16": "16-mixed", "64": "64-true"}


def lightning_precision_name(precision: object, setting: str = "trainer.precision") -> str:
    """Lightning's own name for a trainer.precision value ("bf16" -> "bf16-mixed", 32 -> "32-true");
    `auto` stays `auto`. An unknown value is a ConfigError naming the accepted ones (and `setting`,
    the command's name for it)."""
    if precision is None:
        return "32-true"  # Lightning's default
    name = str(precision)
    name = ALIASES.get(name, name)
    if name != "auto" and name not in PRECISIONS:
        raise ConfigError(
            f"{setting}={precision} is not a precision; use one of auto, {', '.join(PRECISIONS)}"
        )
    return name


def precision_for_device(precision: object, device: torch.device, setting: str = "trainer.precision") -> str:
    """The precision a run trains in: `auto` as auto_precision gives it. 16-mixed on a CPU is
    bf16-mixed, as Lightning runs it (CPUs have no fp16 autocast)."""
    name = lightning_precision_name(precision, setting)
    if name == "auto":
        return auto_precision(device)[0]
    if name == "16-mixed" and device.type == "cpu":
        return "bf16-mixed"
    return name


def replaced_precision(given: object, device: torch.device) -> str | None:
    """The warning for a trainer.precision that `device` cannot train in, run as Lightning runs it
    instead (16-mixed on a CPU: bf16-mixed, as CPUs have no fp16 autocast); None where the run
    trains in what was given (or in what `auto` resolves to). Resolved here before Lightning sees it,
    the swap went without Lightning's own warning."""
    name, runs_as = lightning_precision_name(given), precision_for_device(given, device)
    if name == "auto" or runs_as == name:
        return None
    return (
        f"trainer.precision={given} trains as {runs_as} on this {device.type.upper()} (fp16 autocast "
        f"runs on GPUs only); pass trainer.precision={runs_as} to ask for it, or train on a GPU"
    )


def auto_precision(device: torch.device) -> tuple[str, str]:
    """What trainer.precision=auto is on `device`, and why: bf16 autocast (bf16-mixed) on a GPU that
    multiplies bf16 in hardware (Ampere on) and on a CPU with AVX-512 BF16 but no AMX, where
    autocast is the only way to its bf16 units (a 600 s model=auto run scored 0.018 lower with it on
    an AMD EPYC, docs/EXPERIMENTS.md, "A fifth machine"); float32 (32-true) on a CPU with AMX,
    whose linear layers' products matmul_precision=auto already puts in bf16 at no cost in loss per
    step, where autocast's rounded outputs cost some; and float32 where bf16 is emulated and
    slower."""
    if not native_bf16(device):
        return "32-true", "no bf16 units: bf16 would be emulated"
    if device.type == "cpu" and amx_tiles():
        return "32-true", "AMX: bf16 products come from matmul_precision (auto: medium) instead"
    return "bf16-mixed", "bf16 units: bf16 autocast"


def precision_plugin(precision: str, device: torch.device) -> Precision:
    """Lightning's plugin for a resolved precision, chosen as the Trainer chooses it: its
    `convert_module` and `forward_context` are what the Trainer applies to the model and around its
    forward. (Timing loops call backward directly: 16-mixed's loss scaling is not timed.)
    Lightning is imported here, not with the module: chargpt-eval resolves its arithmetic with this
    module and starts without Lightning when it scores in float32."""
    from lightning.pytorch.plugins.precision import (
        DoublePrecision,
        HalfPrecision,
        MixedPrecision,
        Precision,
        TransformerEnginePrecision,
    )

    if precision.startswith("transformer-engine"):
        weights = torch.float16 if precision.endswith("float16") else torch.bfloat16
        return TransformerEnginePrecision(weights_dtype=weights)
    if precision.endswith("-mixed"):
        return MixedPrecision(precision, device.type)  # type: ignore[arg-type]
    if precision in ("bf16-true", "16-true"):
        return HalfPrecision(precision)  # type: ignore[arg-type]
    if precision == "64-true":
        return DoublePrecision()
    return Precision()


MATMUL_PRECISIONS = ("highest", "high", "medium")


def amx_tiles() -> bool:
    """Whether this CPU has AMX tiles (Intel Xeon from Sapphire Rapids on), False where torch
    cannot tell."""
    return bool(getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)())


def auto_matmul(device: torch.device, compiled: bool = False) -> tuple[str, str]:
    """What matmul_precision=auto is on `device`, and why: `medium` on a CPU with AMX tiles, where
    oneDNN then computes the linear layers' products in bf16 (attention stays in float32:
    chargpt.model.attention) and a step takes ~0.8x the time (docs/BENCHMARKS.md); `high` (TF32)
    on CUDA; `highest` (float32) on other CPUs (with AVX-512 BF16 but no AMX, torch leaves the
    products in float32 under `medium`: measured bit-identical; `high` may be TF32-like on a CPU
    with AMX-FP16), in a compiled model, whose attention the compiler places, and with a torch
    older than 2.9, whose attention cannot keep float32 products."""
    if device.type == "cuda":
        return "high", "TF32 products"
    if device.type != "cpu":
        return "high", f"float32 products on {device.type}"
    if compiled:
        return "highest", "float32 products: a compiled model"
    if not float32_attention_available():
        return "highest", "float32 products: attention cannot keep them under bf16 ones before torch 2.9"
    if not amx_tiles():
        return "highest", "float32 products: no AMX on this CPU"
    return "medium", "this CPU has AMX tiles: the linear layers' products in bf16"


def matmul_precision_name(given: object) -> str:
    """A matmul_precision value's name (null: torch's default, highest), `auto` kept; an unknown value
    is a ConfigError naming the accepted ones. It needs no device: a sweep checks it before it starts."""
    name = "highest" if given is None else str(given)
    if name != "auto" and name not in MATMUL_PRECISIONS:
        raise ConfigError(
            f"matmul_precision={given} is not a precision; use one of auto, {', '.join(MATMUL_PRECISIONS)}"
        )
    return name


def matmul_precision_for_device(given: object, device: torch.device, compiled: bool = False) -> str:
    """The float32 products' precision a run sets (torch.set_float32_matmul_precision): `auto` as
    auto_matmul gives it, torch's own names as they are (matmul_precision_name)."""
    name = matmul_precision_name(given)
    return auto_matmul(device, compiled)[0] if name == "auto" else name


# ---- A run's config: `auto` resolved, and a resumed run's arithmetic kept ------------------------

def run_device(trainer_cfg: DictConfig) -> torch.device:
    """Where the run will train (one device): `auto` resolves for its units, and model=auto times
    its candidates there."""
    accelerator = str(trainer_cfg.get("accelerator", "auto"))
    if accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available()):
        return torch.device("cuda", 0)
    if accelerator == "mps" or (accelerator == "auto" and torch.backends.mps.is_available()):
        return torch.device("mps")
    return torch.device("cpu")


def decide_precision(cfg: DictConfig) -> str | None:
    """Write trainer.precision as Lightning names it, `auto` resolved for the run's device
    (auto_precision; what model=auto and experiment=cpu_100s ask for). Returns the line that says
    what `auto` became, for the run's log (None when it was not `auto`)."""
    given = cfg.trainer.get("precision")
    device = run_device(cfg.trainer)
    name = precision_for_device(given, device)
    with open_dict(cfg):
        cfg.trainer.precision = name
    if str(given) != "auto":
        return None
    return f"trainer.precision=auto: {name} (this {device.type.upper()}: {auto_precision(device)[1]})"


def decide_matmul_precision(cfg: DictConfig) -> str | None:
    """Set the float32 products' precision, `auto` resolved for the run's device (bf16 products on
    a CPU with AMX, docs/BENCHMARKS.md), and write it into cfg. Returns the line that says what
    `auto` became, for the run's log (None when it was not `auto`)."""
    given = cfg.get("matmul_precision")
    device = run_device(cfg.trainer)
    compiled = bool(cfg.model.get("compile"))
    auto = str(given) == "auto"
    if auto:
        name, why = auto_matmul(device, compiled)
    else:
        name, why = matmul_precision_for_device(given, device, compiled), ""
    with open_dict(cfg):
        cfg.matmul_precision = name
    torch.set_float32_matmul_precision(name)
    return f"matmul_precision=auto: {name} ({why})" if auto else None


def keep_precision(cfg: DictConfig, ckpt: dict[str, Any], file: Path) -> tuple[bool, str | None]:
    """A resumed run with trainer.precision=auto continues in the precision it trained in (`auto`
    may resolve otherwise now: another machine, or a run from before its rule changed), unless it
    trained on another kind of device: then `auto` stands. Returns whether the run's precision is
    the one it trained in, and the line for the run's log when `auto` differs from it (else None)."""
    hparams = ckpt.get("hyper_parameters", {})
    recorded, source = hparams.get("precision"), "the checkpoint"
    if not recorded:  # written before the checkpoint recorded it: its run's saved config says
        recorded, source = saved_precision(run_of(file)), "its run's saved config"
    if recorded == cfg.trainer.precision:
        return True, None
    why = _trained_elsewhere(cfg, hparams)
    kept, line = _kept("trainer.precision", cfg.trainer.precision, recorded, source, why)
    if kept:
        with open_dict(cfg):
            cfg.trainer.precision = recorded
    return kept, line


def keep_matmul_precision(cfg: DictConfig, ckpt: dict[str, Any], file: Path) -> tuple[bool, str | None]:
    """A resumed run with `auto` continues with the float32 products it trained with (`auto` may
    resolve otherwise now: another machine of the same kind, or a checkpoint trained before `auto`
    was the default), unless it trained on another kind of device or is compiled now and trained
    with bf16 products (which `auto` never gives a compiled model): then `auto` stands. Returns
    whether the run's products are the ones it trained with, and the line for the run's log when
    `auto` differs from them (else None)."""
    hparams = ckpt.get("hyper_parameters", {})
    recorded, source = hparams.get("matmul_precision"), "the checkpoint"
    if recorded is None:  # written before the checkpoint recorded it: its run's saved config says
        recorded, source = saved_matmul_precision(run_of(file)), "its run's saved config"
    if recorded == cfg.matmul_precision:
        return True, None
    why = _trained_elsewhere(cfg, hparams)
    if why is None and recorded == "medium" and cfg.model.get("compile"):
        why = "bf16 products are not kept in a compiled model"
    kept, line = _kept("matmul_precision", cfg.matmul_precision, recorded, source, why)
    if kept:
        with open_dict(cfg):
            cfg.matmul_precision = recorded
        torch.set_float32_matmul_precision(recorded)
    return kept, line


def _kept(setting: str, current: str, recorded: str, source: str, why_not: str | None) -> tuple[bool, str]:
    """Whether a resumed run keeps the `recorded` arithmetic over what `auto` gives now (`current`),
    and the line that says which, for the run's log."""
    if why_not is None:
        return True, f"{setting}=auto: {recorded}, as {source} says the run trained (not {current})"
    return False, f"{setting}=auto: {current}, not the {recorded} the run trained with ({why_not})"


def _trained_elsewhere(cfg: DictConfig, hparams: dict[str, Any]) -> str | None:
    """Why a resumed run's recorded arithmetic does not hold here (it trained on another kind of
    device), or None."""
    device, trained_on = run_device(cfg.trainer).type, hparams.get("device_type")
    if trained_on is not None and trained_on != device:
        return f"it trained on {trained_on.upper()}, this run is on {device.upper()}"
    return None


def validated_arithmetic(
    ckpt: dict[str, Any] | None, file: str | Path, device: torch.device,
    exported: dict[str, str] | None = None,
) -> tuple[str, str]:
    """The forward's precision and the float32 products a checkpoint's run validated in, to score
    it alike on `device`: as the checkpoint records them, else as its run's saved config names them
    (a checkpoint from before the record); for an export (no checkpoint), as its card records them
    (`exported`). Float32 for a run of another kind of device, and where nothing says."""
    if ckpt is None:
        recorded = exported if isinstance(exported, dict) else {}  # (a hand-edited card: anything)
        if recorded.get("device_type") != device.type or not recorded.get("precision"):
            return "32-true", "highest"
        return str(recorded["precision"]), str(recorded.get("matmul_precision") or "highest")
    hparams = ckpt.get("hyper_parameters") or {}
    if hparams.get("device_type") not in (None, device.type):
        return "32-true", "highest"
    run_dir = run_of(Path(file))
    forward = hparams.get("precision") or saved_precision(run_dir)
    products = hparams.get("matmul_precision") or saved_matmul_precision(run_dir, default="highest")
    return str(forward), str(products)


def saved_precision(run_dir: Path) -> str:
    """The precision a run's saved config names (`auto` is resolved there); Lightning's default,
    32-true, when there is no such config."""
    saved = (saved_config(run_dir).get("trainer") or {}).get("precision")
    try:
        return lightning_precision_name(saved) if saved not in (None, "auto") else "32-true"
    except ConfigError:
        return "32-true"


def saved_matmul_precision(run_dir: Path, default: str = "high") -> str:
    """The products a run's saved config names (resolved there since `auto` became the default);
    `default` when there is no such config (`high`, the training default before `auto`)."""
    saved = saved_config(run_dir).get("matmul_precision")
    return str(saved) if saved in MATMUL_PRECISIONS else default
