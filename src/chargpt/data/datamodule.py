"""LightningDataModule: a text (chargpt.data.text) served as train and validation windows."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import Any

import lightning as L
from torch.utils.data import DataLoader, Sampler

from chargpt.checks import whole_number
from chargpt.data.text import CharText, check_text_settings
from chargpt.data.windows import TrainWindows, ValWindows
from chargpt.distributed import is_rank_zero

log = logging.getLogger(__name__)


def check_data_settings(data: Mapping[str, Any], block_size: int) -> None:
    """CharDataModule's checks of its settings, made on a data config (`data`, as a run instantiates
    it) before anything is read: a sweep makes them on each job before it starts, where each job
    made them once the sweep's folder was made."""
    check_text_settings(data, block_size)
    _check_loading(**{key: data[key] for key in ("batch_size", "val_batch_size", "num_workers", "seed")
                      if key in data})


def _check_loading(batch_size: Any = 1, val_batch_size: Any = None, num_workers: Any = 0,
                   seed: Any = 0) -> None:
    """The batches' settings (a default here is one that passes: a setting left out is not checked)."""
    whole_number("data.batch_size", batch_size, low=1)
    # null: the training batch size (then a validation batch holds as many windows).
    whole_number("data.val_batch_size", val_batch_size, low=1, optional=True)
    whole_number("data.num_workers", num_workers, low=0)
    whole_number("data.seed", seed, low=0)  # numpy's generator of the window draw takes no other


class CharDataModule(CharText, L.LightningDataModule):
    """Serves character windows of a text (`text`: CharText's settings): each training batch is
    `batch_size` windows drawn by (seed, step); validation scores the split in order."""

    def __init__(
        self,
        path: str | None,
        block_size: int,
        batch_size: int,
        seed: int = 1337,
        val_batch_size: int | None = None,
        num_workers: int = 0,
        **text: Any,
    ) -> None:
        L.LightningDataModule.__init__(self)
        CharText.__init__(self, path, block_size, **text)
        _check_loading(batch_size, val_batch_size, num_workers, seed)
        self.batch_size, self.val_batch_size = batch_size, val_batch_size or batch_size
        self.seed, self.num_workers = seed, num_workers
        self._reported = False

    def prepare_data(self) -> None:
        # Runs on one process per node: download and encode once, before the others read the cache.
        self.encoded()

    def setup(self, stage: str | None = None) -> None:
        self.split_ids()
        if stage == "fit" and not self._reported and is_rank_zero():
            self._reported = True
            for line in self.report_lines():
                (log.warning if line.startswith("warning:") else log.info)(line)

    def set_windows(self, block_size: int, batch_size: int) -> None:
        """Serve windows of another length and batch size (model=auto decides them after reading
        the text); the splits stay as they are."""
        self.check_windows_fit(block_size, "use a longer text")
        self.block_size, self.batch_size = block_size, batch_size

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
        assert self.val_scored_ids is not None, "setup() runs before val_dataloader()"
        return self._loader(
            ValWindows(self.val_scored_ids, self.block_size, self.val_batch_size, self.encoded().mapping)
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
