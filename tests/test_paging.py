"""A memory-mapped id array read in windows with its pages dropped every few windows: the same
windows as an array in memory, a small mapping read directly, and the datamodule reading through it."""

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from chargpt.data import CharDataModule, paging
from chargpt.data.encoding import open_ids
from chargpt.data.windows import TrainWindows, ValWindows


@pytest.fixture
def mapped(tmp_path: Path) -> tuple[np.ndarray, object]:
    ids = np.random.default_rng(0).integers(0, 65, size=50_000, dtype=np.uint8)
    np.save(tmp_path / "ids.npy", ids)
    mapped_ids, mapping = open_ids(tmp_path / "ids.npy")
    assert np.array_equal(mapped_ids, ids)  # the header is parsed and the data read as saved
    return mapped_ids, mapping


def test_dropping_pages_does_not_change_the_windows(mapped, monkeypatch) -> None:
    # Drop every 5 windows whatever the size, so batches of 12 are read in chunks with drops between.
    monkeypatch.setattr(paging, "MIN_DROPPED_BYTES", 0)
    monkeypatch.setattr(paging, "WINDOWS_PER_DROP", 5)
    mapped_ids, mapping = mapped
    split = int(len(mapped_ids) * 0.9)
    in_memory = np.array(mapped_ids)
    train = TrainWindows(mapped_ids[:split], 16, 12, seed=7, mapping=mapping)
    train_ref = TrainWindows(in_memory[:split], 16, 12, seed=7)
    val = ValWindows(mapped_ids[split:], 16, 7, mapping=mapping)
    val_ref = ValWindows(in_memory[split:], 16, 7)
    for k in range(30):
        assert all(torch.equal(a, b) for a, b in zip(train[k], train_ref[k], strict=True))
    for i in range(len(val)):
        assert all(torch.equal(a, b) for a, b in zip(val[i], val_ref[i], strict=True))
    assert train.rows.drops > 0 and val.rows.drops > 0
    assert train_ref.rows.drops == 0  # an in-memory array has nothing to drop


def test_a_small_mapping_is_read_directly_and_windows_still_pickle(mapped) -> None:
    mapped_ids, mapping = mapped
    windows = TrainWindows(mapped_ids, 16, 12, seed=7, mapping=mapping)
    first = windows[0]
    assert windows.rows.drops == 0  # 50 kB: smaller than what 16 windows could map anyway
    copy = pickle.loads(pickle.dumps(windows))  # as into spawned DataLoader workers
    assert torch.equal(copy[0][0], first[0])


def test_the_datamodule_windows_read_through_the_mapping(corpus: Path) -> None:
    # The bound only works while the windows know the mapping their ids are a view of.
    dm = CharDataModule(str(corpus), block_size=16, batch_size=4)
    dm.setup()
    for loader in (dm.train_dataloader(), dm.val_dataloader()):
        assert loader.dataset.rows.mapping is dm.encoded().mapping is not None
