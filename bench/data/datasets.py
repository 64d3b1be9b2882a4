"""Data sets, as uint8 tensors held in memory (and on the run's device: no DataLoader workers).

Every data set yields `ImageData`: train and test images (uint8 N×C×H×W on the 0..255 scale, snapped to
`levels` grey levels) and int64 labels. The split is fixed and deterministic, so the test split is the same
real reference in every run.
"""

from __future__ import annotations

import hashlib
import os
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from bench.adapter.base import DataInfo, from_levels, to_levels
from bench.core.errors import ConfigError, DataUnavailable
from bench.core.registry import Registry
from bench.suite.spec import DatasetSpec

SPLIT_SEED = 20240601  # fixed forever: changing it changes every reference statistic


@dataclass
class ImageData:
    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    levels: int
    num_classes: int
    meta: dict = field(default_factory=dict)
    # The training split before `limit`: the domain classifier (the evaluator) learns from all of it, so a
    # few-shot suite is judged by the same yardstick as a full-data one.
    full_train: tuple[torch.Tensor, torch.Tensor] | None = None

    def reference(self) -> ImageData:
        """This data set with its full (pre-`limit`) training split: what evaluators are trained on."""
        if self.full_train is None:
            return self
        x, y = self.full_train
        return ImageData(self.name, x, y, self.test_x, self.test_y, self.levels, self.num_classes, self.meta)

    @property
    def info(self) -> DataInfo:
        _, c, h, _ = self.train_x.shape
        return DataInfo(self.name, c, h, self.levels, self.num_classes)

    def to(self, device: torch.device | str) -> ImageData:
        mv = {k: getattr(self, k).to(device) for k in ("train_x", "train_y", "test_x", "test_y")}
        full = None if self.full_train is None else tuple(t.to(device) for t in self.full_train)
        return ImageData(self.name, **mv, levels=self.levels, num_classes=self.num_classes, meta=self.meta, full_train=full)

    def fingerprint(self) -> str:
        """Content hash of the pixels and labels: caches key on this, never on a name."""
        h = hashlib.sha256()
        for t in (self.train_x, self.train_y, self.test_x, self.test_y):
            h.update(t.cpu().contiguous().numpy().tobytes())
        h.update(str(self.levels).encode())
        return h.hexdigest()[:16]


DATASETS: Registry = Registry("dataset", lambda: None)


def register_dataset(key: str):
    return DATASETS.register(key)


def _split(n: int, test_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    perm = np.random.RandomState(SPLIT_SEED).permutation(n)
    n_test = int(round(n * test_fraction))
    return np.sort(perm[n_test:]), np.sort(perm[:n_test])


@register_dataset("digits")
def _digits(spec: DatasetSpec):
    """scikit-learn's bundled 8×8 handwritten digits (1,797 images, 17 grey levels); 75/25 split."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.from_numpy(d.images).round().long().unsqueeze(1)  # values 0..16
    x = from_levels(x, 17)
    y = torch.from_numpy(d.target).long()
    tr, te = _split(len(y), 0.25)
    return x[tr], y[tr], x[te], y[te], 17, 10


@register_dataset("digits_stacked")
def _digits_stacked(spec: DatasetSpec):
    """Three digits stacked in the RGB channels: 1,000 modes (label = 100·r + 10·g + b), as Stacked MNIST."""
    xtr, ytr, xte, yte, levels, _ = _digits(spec)
    rng = np.random.RandomState(SPLIT_SEED + 1)

    def stack(x: torch.Tensor, y: torch.Tensor, n: int):
        idx = torch.from_numpy(rng.randint(0, len(y), size=(n, 3)))
        imgs = torch.cat([x[idx[:, c]] for c in range(3)], dim=1)
        labels = y[idx[:, 0]] * 100 + y[idx[:, 1]] * 10 + y[idx[:, 2]]
        return imgs, labels

    a, b = stack(xtr, ytr, 10000)
    c, d = stack(xte, yte, 2000)
    return a, b, c, d, levels, 1000


@register_dataset("photos")
def _photos(spec: DatasetSpec):
    """Random crops of the two photographs scikit-learn ships (china.jpg, flower.jpg): a natural-image domain.

    Crops are 32×32 windows at several scales, resized to `image_size`; labels are the photo index (0 or 1).
    """
    from sklearn.datasets import load_sample_images

    photos = load_sample_images().images  # two 427×640×3 uint8 arrays
    rng = np.random.RandomState(SPLIT_SEED + 2)
    out_x, out_y = [], []
    for label, img in enumerate(photos):
        t = torch.from_numpy(np.array(img)).permute(2, 0, 1).float()
        h, w = t.shape[1:]
        for _ in range(1500):
            s = int(rng.choice([16, 32, 64]))
            i, j = rng.randint(0, h - s), rng.randint(0, w - s)
            crop = t[:, i : i + s, j : j + s].unsqueeze(0)
            out_x.append(F.interpolate(crop, size=(32, 32), mode="area")[0])
            out_y.append(label)
    x = torch.stack(out_x).round().clamp(0, 255).to(torch.uint8)
    y = torch.tensor(out_y)
    tr, te = _split(len(y), 0.2)
    return x[tr], y[tr], x[te], y[te], 256, 2


def _torchvision(cls_name: str, native_channels: int, num_classes: int):
    def load(spec: DatasetSpec):
        import torchvision

        root = Path(spec.root or os.environ.get("BENCH_DATA", "~/.cache/bench/data")).expanduser()
        cls = getattr(torchvision.datasets, cls_name)
        try:
            train = cls(str(root), train=True, download=spec.download)
            test = cls(str(root), train=False, download=spec.download)
        except (RuntimeError, OSError) as err:
            reason = "download failed (offline?)" if spec.download else "files not found"
            raise DataUnavailable(
                f"{spec.name}: {reason} under {root}: {str(err).splitlines()[0][:120]}",
                key="dataset.root",
                # `bench validate` loads with download off, so the fix names both ways and that validate never downloads.
                fix=(
                    f"place the {cls_name} files under {root}, or set dataset.download: true for `bench run` while online;"
                    " `bench validate` never downloads"
                    if not spec.download
                    else f"go online, or place the {cls_name} files under {root}"
                ),
            ) from None

        def tensors(ds):
            x = torch.as_tensor(np.asarray(ds.data))
            x = x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2)
            return x.contiguous().to(torch.uint8), torch.as_tensor(np.asarray(ds.targets)).long()

        return (*tensors(train), *tensors(test), 256, num_classes)

    return load


DATASETS.add("mnist", _torchvision("MNIST", 1, 10))
DATASETS.add("fashion_mnist", _torchvision("FashionMNIST", 1, 10))
DATASETS.add("cifar10", _torchvision("CIFAR10", 3, 10))


def _resize(x: torch.Tensor, size: int, levels: int) -> torch.Tensor:
    if x.shape[-1] == size:
        return x
    out = []
    for chunk in x.split(4096):  # chunks keep peak memory flat for 60k-image sets
        f = chunk.float()
        mode = "area" if size < x.shape[-1] else "bilinear"
        r = F.interpolate(f, size=(size, size), mode=mode, **({} if mode == "area" else {"align_corners": False}))
        out.append(r)
    r = torch.cat(out).clamp(0, 255)
    # Re-snap to the level grid so a resized 17-level image still has 17 levels.
    return from_levels(torch.round(r * ((levels - 1) / 255.0)).long(), levels)


def _convert_channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    if x.shape[1] == channels:
        return x
    if channels == 3:
        return x.expand(-1, 3, -1, -1).contiguous()
    w = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    return (x.float() * w).sum(1, keepdim=True).round().clamp(0, 255).to(torch.uint8)


# Loaded data sets, keyed by the full spec (every field that changes the tensors), least recently used
# first out. Safe to share across runs: nothing writes into an ImageData's tensors (`to()` and `reference()`
# make new objects), so a hit is exactly what loading again would give. Bounded, because a long-lived process
# (a notebook, a Ray worker) may load many data sets; a suite's runs share the target and a few sources.
_CACHE: OrderedDict[str, ImageData] = OrderedDict()
_CACHE_MAX = 8


def load_dataset(spec: DatasetSpec, where: str = "dataset") -> ImageData:
    """Load, convert and filter a data set. Results are memoised per process (see _CACHE)."""
    key = repr(spec)
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    loader = DATASETS.get(spec.name, where=f"{where}.name")
    xtr, ytr, xte, yte, levels, num_classes = loader(spec)
    if spec.channels:
        xtr, xte = _convert_channels(xtr, spec.channels), _convert_channels(xte, spec.channels)
    if spec.levels and spec.levels != levels:
        xtr, xte = (from_levels(to_levels(t, spec.levels), spec.levels) for t in (xtr, xte))
        levels = spec.levels
    if spec.image_size:
        xtr, xte = _resize(xtr, spec.image_size, levels), _resize(xte, spec.image_size, levels)
    if spec.classes is not None:
        bad = [c for c in spec.classes if not 0 <= c < num_classes]
        if bad:
            raise ConfigError(f"classes {bad} out of range 0..{num_classes - 1}", key=f"{where}.classes")
        keep = torch.tensor(spec.classes)
        mtr, mte = torch.isin(ytr, keep), torch.isin(yte, keep)
        xtr, ytr, xte, yte = xtr[mtr], ytr[mtr], xte[mte], yte[mte]
    full_train = None
    if spec.limit is not None and spec.limit < len(xtr):
        full_train = (xtr.contiguous(), ytr)
        xtr, ytr = xtr[: spec.limit], ytr[: spec.limit]
    if len(xtr) == 0:
        raise ConfigError("no training images left after classes/limit", key=where, fix="widen classes or raise limit")
    meta = {"train_size": len(xtr), "test_size": len(xte), "levels": levels}
    data = ImageData(spec.name, xtr.contiguous(), ytr, xte.contiguous(), yte, levels, num_classes, meta, full_train)
    _CACHE[key] = data
    while len(_CACHE) > _CACHE_MAX:
        _CACHE.popitem(last=False)
    return data
