"""The domain classifier's caches: content hashes, the files on disk, and the per-process memo.

    <cache_dir>/domain/<sha256>.safetensors   the weights (safetensors; metadata holds the hash)
    <cache_dir>/domain/<sha256>.json          test accuracy, training seconds, weights sha256
    <cache_dir>/domain/<sha256>.m<j>.safetensors  member j, as trained (bench.metrics.members)
    <cache_dir>/features/<sha256>.safetensors real-split features, keyed by split pixels × classifier weights

The classifier's sha256 covers the data's fingerprint (pixels and labels, never its name), the architecture
version and the training config. A weights file that does not load, or whose tensors do not match the sha256
recorded beside it, is not trusted (the caller retrains).
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bench.data.datasets import ImageData
from bench.metrics.domain_net import ARCH_VERSION, TrainConfig, build, is_stacked
from bench.store import cachefile
from bench.store.files import atomic_write_json, read_json


def digest(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def classifier_hash(data: ImageData, cfg: TrainConfig = TrainConfig()) -> str:
    arch = {"version": ARCH_VERSION, "stacked": is_stacked(data), "shape": list(data.train_x.shape[1:]), "classes": data.num_classes}
    return digest(data.fingerprint(), arch, asdict(cfg))


def split_fingerprint(x: torch.Tensor) -> str:
    h = hashlib.sha256(str(tuple(x.shape)).encode())
    h.update(x.cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def tensors_sha256(state: dict[str, torch.Tensor]) -> str:
    """sha256 of a state dict's names, dtypes, shapes and values. Not of the safetensors bytes: their
    JSON header (the metadata map) is written in a different order by each process, so identical
    weights would get a new hash, and a new features-cache entry, in every process."""
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous().reshape(-1)  # 1-d: a 0-d tensor cannot be viewed as bytes
        h.update(json.dumps([name, str(t.dtype), list(state[name].shape)]).encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


# --- the classifier's files ----------------------------------------------------------------------------
def paths(cache_dir: Path, clf_hash: str) -> tuple[Path, Path]:
    """(weights, record) of the classifier with this hash."""
    folder = Path(cache_dir) / "domain"
    return folder / f"{clf_hash}.safetensors", folder / f"{clf_hash}.json"


WEIGHTS_WHAT = "domain classifier weights"
RECORD_WHAT = "domain classifier record"


def load_weights(path: Path, data: ImageData, cfg: TrainConfig) -> tuple[nn.Module, str] | None:
    """The cached classifier and the sha256 of its tensors, or None when missing or not trustworthy (a file
    that does not load, or does not match its own seal, is named in one warning line)."""
    state = cachefile.load_tensors(path, WEIGHTS_WHAT, unsealed_ok=True)  # older files: pinned by their record
    if state is None:
        return None
    try:
        full = build(data, cfg)
        full.load_state_dict(state, strict=True)
    except Exception as err:  # wrong keys or shapes
        cachefile.warn(path, WEIGHTS_WHAT, f"does not fit the classifier: {type(err).__name__}")
        return None
    return full.eval().requires_grad_(False), tensors_sha256(state)


def save_weights(path: Path, net: nn.Module, clf_hash: str) -> str:
    """Write the weights atomically; returns their tensors' sha256, which the record pins."""
    state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    cachefile.save_tensors(path, state, metadata={"hash": clf_hash, "arch": ARCH_VERSION})
    return tensors_sha256(state)


def read_record(path: Path) -> dict[str, Any]:
    """The classifier's record (accuracy, seconds, weights sha256), {} when missing or failing its seal
    (then the weights are re-described under the lock). Older unsealed records pass: their weights hash
    is still checked against the weights."""
    record = cachefile.check_record(path, read_json(path), RECORD_WHAT, required=False) or {}
    return {k: v for k, v in record.items() if k != cachefile.SEAL}  # the seal is the file's, not the classifier's


def write_record(path: Path, record: dict[str, Any]) -> None:
    atomic_write_json(path, cachefile.seal_record(record))


def cached_description(data: ImageData, cache_dir: Path, cfg: TrainConfig = TrainConfig()) -> dict[str, Any] | None:
    """What the cache knows about this data's classifier, without training one (None if never trained)."""
    return read_json(paths(cache_dir, classifier_hash(data, cfg))[1])


# --- features of the real reference --------------------------------------------------------------------
def features_path(cache_dir: Path, test_x: torch.Tensor, clf_hash: str, weights_sha256: str, recipe: str) -> Path:
    """Keyed by content (split pixels × classifier weights × how features are computed), never by a data set's name."""
    return Path(cache_dir) / "features" / f"{digest(split_fingerprint(test_x), clf_hash, weights_sha256, recipe)}.safetensors"


def load_features(path: Path, names: tuple[str, ...], n: int) -> dict[str, torch.Tensor] | None:
    """The cached features, or None when missing, or (with one warning line) truncated, corrupt, not
    matching their content hash or not of `n` images: the caller recomputes them."""
    feats = cachefile.load_tensors(path, "real-split features of the domain classifier")
    if feats is None:
        return None
    if set(feats) == set(names) and all(len(v) == n for v in feats.values()):
        return feats
    cachefile.warn(path, "real-split features of the domain classifier", f"holds {sorted(feats)}, not {n} images' {list(names)}")
    return None


def save_features(path: Path, feats: dict[str, torch.Tensor], clf_hash: str) -> None:
    cachefile.save_tensors(path, feats, metadata={"classifier": clf_hash})


# --- the per-process memo ------------------------------------------------------------------------------
class Memo:
    """The last `maxsize` loaded classifiers, keyed by (classifier hash, device); least recently used goes first.

    Safe to share across runs in one process: the hash pins everything that determines the classifier (data
    content, architecture, training config), a classifier is never changed after loading, and every run of a
    suite uses the same one. Bounded, because a long-lived process (a notebook, a Ray worker) may evaluate
    many data sets and each entry holds a network on its device. Loading from disk instead of from here gives
    the same weights, so eviction costs time, never numbers."""

    def __init__(self, maxsize: int):
        self.maxsize = maxsize
        self._items: OrderedDict[tuple[str, str], Any] = OrderedDict()

    def get(self, key: tuple[str, str]) -> Any | None:
        if key not in self._items:
            return None
        self._items.move_to_end(key)
        return self._items[key]

    def put(self, key: tuple[str, str], value: Any) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.maxsize:
            self._items.popitem(last=False)

    def clear(self) -> None:
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


# A suite evaluates one target data set (few-shot and transfer suites too: the evaluator learns the full
# target), so 4 leaves room for a notebook going back and forth between data sets and devices.
MEMO = Memo(maxsize=4)
