"""Exact resume: RNG states and the corpus identity travel in every checkpoint.

The model, optimizer, scheduler and step are Lightning's own checkpoint content, and the training
windows are a pure function of (seed, step) (see TrainWindows). What is left is the randomness
training draws (dropout): the torch, numpy and python RNG states are saved here and put back right
before the first resumed step, so a resumed run draws exactly what the uninterrupted one would.
"""

from __future__ import annotations

import random
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback

from chargpt.checkpoints import RESUME_STATE_KEY


def capture_torch_rng() -> dict[str, Any]:
    """torch's RNG states (CPU, and CUDA once initialised): about 1 us, cheap at every step."""
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def capture_host_rng() -> dict[str, Any]:
    """numpy's and python's global RNG states."""
    return {"numpy": np.random.get_state(), "python": random.getstate()}


def capture_rng() -> dict[str, Any]:
    """All RNG states as they are."""
    return {**capture_torch_rng(), **capture_host_rng()}


def restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def rng_to_plain(state: dict[str, Any]) -> dict[str, Any]:
    """Tensors and plain values only, so checkpoints load with weights-only unpickling."""
    _, keys, pos, has_gauss, cached = state["numpy"]
    version, py_state, gauss_next = state["python"]
    return {
        **state,
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": {"version": version, "state": torch.tensor(py_state, dtype=torch.int64),
                   "gauss_next": gauss_next},
    }


def rng_from_plain(plain: dict[str, Any]) -> dict[str, Any]:
    n, p = plain["numpy"], plain["python"]
    return {
        **plain,
        "numpy": (
            "MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"]
        ),
        "python": (p["version"], tuple(int(v) for v in p["state"].tolist()), p["gauss_next"]),
    }


class ResumeState(Callback):
    """Saves the RNG states and the corpus fingerprint in each checkpoint; restores the RNG states
    just before the first resumed step (after Lightning's own setup has drawn what it draws).

    The states saved are those of the last step boundary, and validation is made RNG-neutral
    (its data loader draws a seed), so a checkpoint written before or after a validation, or on
    an interruption, continues the same random stream as the run that was not stopped.
    torch's states are taken at every step boundary, because the validation loader draws its seed
    from torch before any validation hook runs. numpy's and python's global generators, which
    neither training nor Lightning's validation setup draws from, are read when validation starts
    (or when an interruption checkpoint is written): the boundary's states, read once per
    validation instead of at every step (numpy's getter alone costs ~25 us).
    Every rank starts from the same seed and draws the same amount, so rank 0's states (the ones
    a checkpoint holds) are every rank's states.
    """

    def __init__(self) -> None:
        self.corpus: dict[str, Any] | None = None  # the datamodule's fingerprint, read at setup
        self.split: dict[str, Any] | None = None  # how the corpus was split (chargpt-eval reuses it)
        self.data_seed: int | None = None  # the training batches are a function of (it, step)
        self._pending: dict[str, Any] | None = None
        self._boundary: dict[str, Any] | None = None  # torch's states at the last step boundary
        self._host: dict[str, Any] | None = None  # numpy's and python's, when a validation started

    @property
    def state_key(self) -> str:
        return RESUME_STATE_KEY  # where check_resumable finds the corpus fingerprint

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        datamodule = trainer.datamodule
        self.corpus = getattr(datamodule, "fingerprint", None)
        self.data_seed = getattr(datamodule, "seed", None)
        if hasattr(datamodule, "train_fraction"):
            # How chargpt-eval and check_copy cut the text again: by this fraction, or whole files
            # ("split": "files"), or not at all (a validation text of its own, "val_path").
            self.split = {
                "train_fraction": float(datamodule.train_fraction),
                "split": "files" if getattr(datamodule, "split", None) == "files" else None,
                "val_path": getattr(datamodule, "val_path", None),
            }

    def boundary(self) -> dict[str, Any]:
        """The RNG states of the last step boundary (the current ones before the first step)."""
        if self._boundary is None:
            return capture_rng()
        return {**self._boundary, **(self._host or capture_host_rng())}

    def state_dict(self) -> dict[str, Any]:
        return {"rng": rng_to_plain(self.boundary()), "corpus": self.corpus, "split": self.split,
                "data_seed": self.data_seed}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if "rng" in state_dict:
            self._pending = rng_from_plain(state_dict["rng"])

    def on_train_batch_start(self, trainer: L.Trainer, *args: Any) -> None:
        if self._pending is not None:
            restore_rng(self._pending)
            self._pending = None

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        self._boundary, self._host = capture_torch_rng(), None

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._boundary is not None and not trainer.sanity_checking:
            self._host = capture_host_rng()

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._boundary is not None and not trainer.sanity_checking:
            restore_rng(self.boundary())
