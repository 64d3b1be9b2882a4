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

import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bench.data.datasets import ImageData
from bench.metrics import domain_cache as cache
from bench.metrics.domain_cache import cached_description, classifier_hash, split_fingerprint
from bench.metrics.domain_net import ARCH_VERSION, TrainConfig, accuracy, is_stacked, member_seeds, train, working_size
from bench.metrics.info import NotApplicable
from bench.metrics.members import MemberFiles
from bench.metrics.registered import RegisteredExtractor, RegisteredFeatureExtractor
from bench.store.locks import build_once, is_held

FEATURES = ("features", "logits")


# --- torch-fidelity registration and the object the metrics use (shared with ssl.py: registered.py) ---------
class DomainFeatureExtractor(RegisteredFeatureExtractor):
    """torch-fidelity view of a domain classifier: uint8 N×C×H×W in, ("features", "logits") out."""

    WHAT, LOADER = "domain classifier", "get_domain_classifier"

    def outputs(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        feats, logits = self.net(x)
        return {"features": feats, "logits": logits}

    @staticmethod
    def get_provided_features_list() -> tuple[str, ...]:
        return FEATURES

    @staticmethod
    def get_default_feature_layer_for_metric(metric: str) -> str:
        return {"isc": "logits", "fid": "features", "kid": "features", "prc": "features"}[metric]


class DomainClassifier(RegisteredExtractor):
    """Registered as "bench-domain-<hash8>": features (fid, kid, prc) and logits (isc, modes)."""

    PREFIX, EXTRACTOR = "bench-domain", DomainFeatureExtractor

    def predict(self, u8: torch.Tensor) -> torch.Tensor:
        return self.features(u8)["logits"].argmax(1)


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
        if loaded is not None and meta.get("weights_sha256") not in (None, loaded[1]):
            cache.cachefile.warn(wpath, cache.WEIGHTS_WHAT, "content hash differs from its record's weights_sha256")
            return None  # the weights changed under their record: bit rot or a foreign file
        if loaded is None:
            return None
        if "weights_sha256" not in meta and not locked:
            return None  # weights without their record: maybe a builder between the two writes; ask its lock
        net, wsha = loaded
        net.to(device)
        if meta.get("weights_sha256") != wsha or "accuracy" not in meta:
            meta = _describe(net, wsha, meta.get("train_seconds"))
        return net, meta

    share, lock, t0 = MemberFiles(wpath.parent, digest), jpath.with_suffix(".lock"), time.perf_counter()

    def _train_and_store() -> tuple[nn.Module, dict[str, Any]]:
        net = train(data, cfg, device, share=share)  # the members trained before the lock load from their files
        seconds = time.perf_counter() - t0
        wsha = cache.save_weights(wpath, net, digest)
        return net.to(device), _describe(net.to(device), wsha, seconds)

    hit = _cached(False)
    if hit is None:
        if not is_held(lock):  # held: its holder has every member and is writing the ensemble
            # Outside the ensemble's lock, the processes that need this classifier now split its members
            # between them (members.py), instead of one training them all while the others wait.
            train(data, cfg, device, share=share)
        # Under the lock: one process assembles and writes the ensemble and its record; the others load it.
        hit = build_once(lock, lambda: _cached(False), _train_and_store, load_locked=lambda: _cached(True))
    net, meta = hit
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
