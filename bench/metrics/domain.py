"""The domain classifier: the feature space of every `*_domain` metric and the labeller of `modes`.

A small CNN trained by the harness on the target's training split (domain_net.py), cached on disk by a
content hash of everything that determines it (domain_cache.py). This module is the torch-fidelity glue and
the object the metrics use: the classifier is registered with torch-fidelity as the feature extractor
"bench-domain-<hash8>", providing "features" (the penultimate layer: fid, kid, prc) and "logits" (isc, modes),
so that every fidelity number goes through torch-fidelity's own maths. One process trains a missing
classifier (or computes missing real features) under a lock file beside it, while concurrent launchers wait
and then load it (bench.store.locks).
"""

from __future__ import annotations

import copy
import time
from collections import OrderedDict
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch_fidelity.feature_extractor_base import FeatureExtractorBase
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY, register_feature_extractor

from bench.data.datasets import ImageData
from bench.metrics import domain_cache as cache
from bench.metrics.domain_cache import cached_description, classifier_hash, split_fingerprint
from bench.metrics.domain_net import ARCH_VERSION, TrainConfig, accuracy, is_stacked, member_seeds, one_thread, train, working_size
from bench.metrics.info import NotApplicable
from bench.store.locks import build_once

FEATURES = ("features", "logits")

# --- torch-fidelity registration ---------------------------------------------------------------------------
# torch-fidelity builds a feature extractor from its registered name alone, so the name must lead to the
# weights: registered extractor name → classifier (CPU copy). Replaced on retrain, so a name always means the
# loaded weights. Bounded above the classifier memo (domain_cache.MEMO), so every memoised classifier's name
# still resolves; an evicted name fails with the message below rather than with other weights.
_NETS: OrderedDict[str, nn.Module] = OrderedDict()
_NETS_MAX = 8


class DomainFeatureExtractor(FeatureExtractorBase):
    """torch-fidelity view of a domain classifier: uint8 N×C×H×W in, ("features", "logits") out."""

    def __init__(self, name: str, features_list: list[str], **kwargs: Any):
        super().__init__(name, features_list)
        if name not in _NETS:
            raise ValueError(f"domain classifier '{name}' is not loaded in this process (call get_domain_classifier first)")
        # float64 inside: convolution kernels pick algorithms by batch size, and in float32 that moves features
        # by ~1e-6; in float64 the differences vanish when rounding to float32, so batch size never changes numbers.
        self.net = copy.deepcopy(_NETS[name]).double().eval().requires_grad_(False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if not (torch.is_tensor(x) and x.dtype == torch.uint8 and x.dim() == 4):
            raise ValueError("expecting uint8 images N×C×H×W")
        with torch.no_grad():
            feats, logits = self.net(x)
        out = {"features": feats.float(), "logits": logits.float()}
        return tuple(out[k] for k in self.features_list)

    @staticmethod
    def get_provided_features_list() -> tuple[str, ...]:
        return FEATURES

    @staticmethod
    def get_default_feature_layer_for_metric(metric: str) -> str:
        return {"isc": "logits", "fid": "features", "kid": "features", "prc": "features"}[metric]

    @staticmethod
    def can_be_compiled() -> bool:
        return False

    @staticmethod
    def get_dummy_input_for_compile() -> torch.Tensor:
        return torch.zeros(1, 1, 8, 8, dtype=torch.uint8)


def _register(name: str, net: nn.Module) -> None:
    _NETS[name] = copy.deepcopy(net).cpu()
    _NETS.move_to_end(name)
    while len(_NETS) > _NETS_MAX:
        _NETS.popitem(last=False)
    if name not in FEATURE_EXTRACTORS_REGISTRY:  # torch-fidelity's own registry: one class per name, tiny
        register_feature_extractor(name, DomainFeatureExtractor)


# --- the classifier object the metrics use -------------------------------------------------------------------
class DomainClassifier:
    def __init__(self, net: nn.Module, digest: str, info: dict[str, Any], device: torch.device):
        self.hash, self.info, self.device = digest, info, torch.device(device)
        self.name = f"bench-domain-{digest[:8]}"
        _register(self.name, net)
        self.extractor = DomainFeatureExtractor(self.name, list(FEATURES)).to(self.device)

    def describe(self) -> dict[str, Any]:
        return dict(self.info)

    def features(self, u8: torch.Tensor, batch_size: int) -> dict[str, torch.Tensor]:
        """Features and logits (CPU float32) of uint8 images, in chunks of `batch_size`."""
        outs: dict[str, list[torch.Tensor]] = {k: [] for k in FEATURES}
        with one_thread(self.device):
            for chunk in u8.split(max(1, batch_size)):
                for k, v in zip(FEATURES, self.extractor(chunk.to(self.device)), strict=True):
                    outs[k].append(v.cpu())
        return {k: torch.cat(v) for k, v in outs.items()}

    def real_features(self, test_x: torch.Tensor, cache_dir: Path, batch_size: int) -> dict[str, torch.Tensor]:
        """Features of the real reference, cached by content (split pixels × classifier weights), never by name."""
        path = cache.features_path(cache_dir, test_x, self.hash, self.info["weights_sha256"])

        def _compute() -> dict[str, torch.Tensor]:
            feats = self.features(test_x, batch_size)
            cache.save_features(path, feats, self.hash)
            return feats

        # Under a lock: a concurrent launcher waits for these features instead of computing them too.
        return build_once(path.with_suffix(".lock"), lambda: cache.load_features(path, FEATURES, len(test_x)), _compute)

    def predict(self, u8: torch.Tensor, batch_size: int) -> torch.Tensor:
        return self.features(u8, batch_size)["logits"].argmax(1)


def get_domain_classifier(
    data: ImageData, device: torch.device | str, cache_dir: Path, cfg: TrainConfig = TrainConfig()
) -> DomainClassifier:
    """The trained domain classifier of `data`: from memory, from the disk cache, or trained now (and cached).
    A data set without labels (a flat image folder: every label -1) has none: its metrics are n/a, said so."""
    y = data.train_y
    if not len(y) or bool((y < 0).any()) or int(torch.unique(y).numel()) < 2:
        raise NotApplicable("the domain classifier needs class labels (two classes or more), and this data set has none")
    device = torch.device(device)
    digest = classifier_hash(data, cfg)
    hit = cache.MEMO.get((digest, str(device)))
    if hit is not None:
        return hit
    wpath, jpath = cache.paths(cache_dir, digest)

    def _describe(net: nn.Module, wsha: str, train_seconds: float | None) -> dict[str, Any]:
        meta = {
            "arch": ARCH_VERSION + ("/stacked-per-channel" if is_stacked(data) else ""),
            "hash": digest,
            "weights_sha256": wsha,
            "feature_dim": cfg.feature_dim * cfg.members * (3 if is_stacked(data) else 1),
            "members": cfg.members,
            "member_seeds": member_seeds(cfg),
            # The classes the target has (5 for digits 5-9), not the size of the label space it indexes into.
            "num_classes": int(torch.unique(data.train_y).numel()),
            "label_space": data.num_classes,
            "working_size": working_size(data.train_x.shape[-1]),
            **accuracy(net, data, device),
            "train_seconds": train_seconds,  # None when the json was lost and only weights survived
            "train_config": asdict(cfg),
        }
        cache.write_record(jpath, meta)
        return meta

    def _cached(locked: bool) -> tuple[nn.Module, dict[str, Any]] | None:
        loaded = cache.load_weights(wpath, data, cfg)
        meta = cache.read_record(jpath)
        if loaded is None or meta.get("weights_sha256") not in (None, loaded[1]):
            return None  # missing, or the weights changed under their record: bit rot or a foreign file
        if "weights_sha256" not in meta and not locked:
            return None  # weights without their record: maybe a builder between the two writes; ask its lock
        net, wsha = loaded
        net.to(device)
        if meta.get("weights_sha256") != wsha or "accuracy" not in meta:
            meta = _describe(net, wsha, meta.get("train_seconds"))
        return net, meta

    def _train_and_store() -> tuple[nn.Module, dict[str, Any]]:
        t0 = time.perf_counter()
        net = train(data, cfg, device)
        seconds = time.perf_counter() - t0
        wsha = cache.save_weights(wpath, net, digest)
        return net.to(device), _describe(net.to(device), wsha, seconds)

    # Under a lock: concurrent launchers wait for one classifier instead of each training (and writing) one.
    net, meta = build_once(jpath.with_suffix(".lock"), lambda: _cached(False), _train_and_store, load_locked=lambda: _cached(True))
    clf = DomainClassifier(net, digest, meta, device)
    cache.MEMO.put((digest, str(device)), clf)
    return clf


def forget_classifiers() -> None:
    """Empty the per-process memo, so the next call loads from its cache folder as a new process would."""
    cache.MEMO.clear()


__all__ = [
    "ARCH_VERSION",
    "FEATURES",
    "DomainClassifier",
    "DomainFeatureExtractor",
    "TrainConfig",
    "cached_description",
    "classifier_hash",
    "forget_classifiers",
    "get_domain_classifier",
    "is_stacked",
    "member_seeds",
    "split_fingerprint",
    "working_size",
]
