import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from chargpt.data import CharDataModule, paging
from chargpt.data.paging import mapping_of
from chargpt.data.windows import TrainWindows, ValWindows


@pytest.fixture
def mapped_ids(tmp_path: Path) -> np.ndarray:
    ids = np.random.default_rng(0).integers(0, 65, size=50_000, dtype=np.uint8)
    np.save(tmp_path / "ids.npy", ids)
    return np.load(tmp_path / "ids.npy", mmap_mode="r")


def test_dropping_pages_does_not_change_the_windows(mapped_ids: np.ndarray, monkeypatch) -> None:
    # Drop every 5 windows whatever the size, so batches of 12 are read in chunks with drops between.
    monkeypatch.setattr(paging, "MIN_DROPPED_BYTES", 0)
    monkeypatch.setattr(paging, "WINDOWS_PER_DROP", 5)
    split = int(len(mapped_ids) * 0.9)
    in_memory = np.array(mapped_ids)
    train, train_ref = (TrainWindows(a[:split], 16, 12, seed=7) for a in (mapped_ids, in_memory))
    val, val_ref = (ValWindows(a[split:], 16, 7) for a in (mapped_ids, in_memory))
    for k in range(30):
        assert all(torch.equal(a, b) for a, b in zip(train[k], train_ref[k], strict=True))
    for i in range(len(val)):
        assert all(torch.equal(a, b) for a, b in zip(val[i], val_ref[i], strict=True))
    assert train.rows.drops > 0 and val.rows.drops > 0
    assert train_ref.rows.drops == 0  # an in-memory array has nothing to drop


def test_a_small_mapping_is_read_directly_and_windows_still_pickle(mapped_ids: np.ndarray) -> None:
    windows = TrainWindows(mapped_ids, 16, 12, seed=7)
    first = windows[0]
    assert windows.rows.drops == 0  # 50 kB: smaller than what 16 windows could map anyway
    copy = pickle.loads(pickle.dumps(windows))  # as into spawned DataLoader workers
    assert torch.equal(copy[0][0], first[0])


def test_the_datamodule_splits_keep_their_mapping(corpus: Path) -> None:
    # The bound only works while the splits are views that still know their mmap.
    dm = CharDataModule(str(corpus), block_size=16, batch_size=4)
    dm.setup()
    assert mapping_of(dm.train_ids) is not None and mapping_of(dm.val_ids) is not None
