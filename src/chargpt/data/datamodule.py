"""LightningDataModule: corpus file -> cached ids -> train/val windows."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
from torch.utils.data import DataLoader, Sampler

from chargpt.data.corpus import resolve_corpus
from chargpt.data.encoding import EncodedCorpus, load_encoded
from chargpt.data.tokenizer import CharTokenizer
from chargpt.data.windows import TrainWindows, ValWindows
from chargpt.errors import ConfigError, DataError


class CharDataModule(L.LightningDataModule):
    """Serves character windows of one text file.

    The first `train_fraction` of the ids trains, the rest validates (the tutorial's 90/10).
    `vocab` fixes the vocabulary (e.g. a checkpoint's); by default it is the corpus's own.
    """

    def __init__(
        self,
        path: str | None,
        block_size: int,
        batch_size: int,
        train_fraction: float = 0.9,
        seed: int = 1337,
        url: str | None = None,
        sha256: str | None = None,
        cache_dir: str | None = None,
        val_batch_size: int | None = None,
        num_workers: int = 0,
        vocab: list[str] | None = None,
    ) -> None:
        super().__init__()
        if not path:
            raise ConfigError("no text file given: pass data.path=FILE (with data=text)")
        if not 0.0 < train_fraction < 1.0:
            raise ConfigError(f"data.train_fraction={train_fraction} must be between 0 and 1 (e.g. 0.9)")
        for name, value in (("model.block_size", block_size), ("data.batch_size", batch_size)):
            if value < 1:
                raise ConfigError(f"{name}={value} must be a positive integer")
        self.path, self.url, self.sha256, self.cache_dir = path, url, sha256, cache_dir
        self.block_size, self.batch_size = block_size, batch_size
        self.val_batch_size = val_batch_size or batch_size
        self.train_fraction, self.seed, self.num_workers = train_fraction, seed, num_workers
        self._vocab = vocab
        self._encoded: EncodedCorpus | None = None
        self.ids: np.ndarray | None = None
        self.train_ids: np.ndarray | None = None
        self.val_ids: np.ndarray | None = None

    def prepare_data(self) -> None:
        # Runs on one process per node: download and encode once, before the others read the cache.
        self.encoded()

    def encoded(self) -> EncodedCorpus:
        """The corpus read, hashed and encoded (or found in the cache): once per process."""
        if self._encoded is None:
            corpus = resolve_corpus(self.path, self.url, self.sha256)
            given = CharTokenizer(self._vocab) if self._vocab is not None else None
            self._encoded = load_encoded(corpus, given, self.cache_dir)
        return self._encoded

    @property
    def fingerprint(self) -> dict[str, Any]:
        """What identifies the corpus in checkpoints (a resume on another text is refused)."""
        return {"path": str(Path(self.path).expanduser()), "sha256": self.encoded().sha256}

    def setup(self, stage: str | None = None) -> None:
        if self.train_ids is not None:
            return
        self.ids = self.encoded().ids
        split = int(len(self.ids) * self.train_fraction)
        self.train_ids, self.val_ids = self.ids[:split], self.ids[split:]
        for name, part in (("train", self.train_ids), ("val", self.val_ids)):
            if len(part) < self.block_size + 1:
                raise DataError(
                    f"the {name} split of {self.path} has {len(part)} characters, fewer than "
                    f"model.block_size + 1 = {self.block_size + 1}; use a longer text, a smaller "
                    "model.block_size or another data.train_fraction"
                )

    @property
    def tokenizer(self) -> CharTokenizer:
        return self.encoded().tokenizer

    def _loader(self, dataset: TrainWindows | ValWindows) -> DataLoader:
        on_gpu = self.trainer is not None and self.trainer.accelerator.__class__.__name__ == "CUDAAccelerator"
        return DataLoader(
            dataset,
            batch_size=None,  # items are whole batches already
            num_workers=self.num_workers,
            pin_memory=on_gpu,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        assert self.train_ids is not None, "setup() runs before train_dataloader()"
        start, stop, rank, world = 0, 2**62, 0, 1
        if self.trainer is not None:
            # Batch k is a pure function of k: resuming at global step s starts at batch s * accumulation.
            # The trainer's max_steps is the run's total optimizer steps (fixed before fitting, also
            # from max_epochs), so the loader ends with the run.
            accumulation = self.trainer.accumulate_grad_batches
            start = self.trainer.global_step * accumulation
            if self.trainer.max_steps > 0:
                stop = self.trainer.max_steps * accumulation
            rank, world = self.trainer.global_rank, self.trainer.world_size
        windows = TrainWindows(
            self.train_ids, self.block_size, self.batch_size, self.seed, 0, stop, rank, world,
            self.encoded().mapping,
        )
        plain = self._loader(windows)
        return _PositionedLoader(
            windows, batch_size=None, sampler=_ResumedRange(start, stop), num_workers=plain.num_workers,
            pin_memory=plain.pin_memory, persistent_workers=plain.persistent_workers,
        )

    def val_dataloader(self) -> DataLoader:
        assert self.val_ids is not None, "setup() runs before val_dataloader()"
        return self._loader(
            ValWindows(self.val_ids, self.block_size, self.val_batch_size, self.encoded().mapping)
        )


class _ResumedRange(Sampler[int]):
    """Batches `start`..`stop`-1 of a run whose whole training is one pass of the loader.

    Its length is the whole pass (`stop`), the batches already taken included: Lightning resumes
    a pass in its middle, counts the batches it had taken as already fetched and ends the pass
    after `stop - start` more. (A length of only the remaining batches made it end the pass early
    and start the loader over, training some batches twice.)
    """

    def __init__(self, start: int, stop: int) -> None:
        self.start, self.stop = start, stop

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.start, self.stop))

    def __len__(self) -> int:
        return self.stop


class _PositionedLoader(DataLoader):
    """A loader whose position is the trainer's step (see _ResumedRange), so there is no state to
    save: the empty state tells Lightning it resumes mid-pass on purpose (no warning)."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        pass
