from __future__ import annotations

import pytest
import torch

from bench.adapter.base import from_levels, to_levels
from bench.core.errors import BenchError
from bench.data.datasets import DatasetSpec, load_dataset


def test_digits_split_is_fixed_and_disjoint():
    d = load_dataset(DatasetSpec("digits"))
    assert d.train_x.shape[1:] == (1, 8, 8) and d.train_x.dtype == torch.uint8
    assert len(d.train_x) + len(d.test_x) == 1797
    assert d.levels == 17 and set(to_levels(d.train_x, 17).unique().tolist()) <= set(range(17))
    d2 = load_dataset(DatasetSpec("digits", limit=None))
    assert d.fingerprint() == d2.fingerprint()


@pytest.mark.parametrize("size", [8, 16, 28, 32])
@pytest.mark.parametrize("channels", [1, 3])
def test_resize_and_channels_keep_level_grid(size, channels):
    d = load_dataset(DatasetSpec("digits", image_size=size, channels=channels))
    assert d.info.shape == (channels, size, size)
    assert torch.equal(from_levels(to_levels(d.test_x, 17), 17), d.test_x)


def test_classes_and_limit():
    d = load_dataset(DatasetSpec("digits", classes=[5, 6, 7, 8, 9], limit=100))
    assert len(d.train_x) == 100
    assert set(d.train_y.tolist()) <= {5, 6, 7, 8, 9} and set(d.test_y.tolist()) == {5, 6, 7, 8, 9}
    with pytest.raises(BenchError, match="out of range"):
        load_dataset(DatasetSpec("digits", classes=[12]))


def test_stacked_and_photos():
    s = load_dataset(DatasetSpec("digits_stacked"))
    assert s.info.channels == 3 and s.num_classes == 1000 and int(s.train_y.max()) < 1000
    p = load_dataset(DatasetSpec("photos", image_size=16, channels=1))
    assert p.info.shape == (1, 16, 16) and p.levels == 256 and set(p.train_y.tolist()) == {0, 1}


def test_torchvision_offline_is_a_clear_error(tmp_path):
    with pytest.raises(BenchError) as e:
        load_dataset(DatasetSpec("mnist", root=str(tmp_path)))
    msg = str(e.value)
    assert "dataset.root" in msg and "place the MNIST files" in msg


def test_unknown_dataset_did_you_mean():
    with pytest.raises(BenchError, match="did you mean 'digits'"):
        load_dataset(DatasetSpec("digitz"))
