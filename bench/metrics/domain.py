"""The domain classifier: the feature space of every `*_domain` metric and the labeller of `modes`.

A small CNN trained by the harness on the target's training split (fixed seed, light augmentation), then
cached on disk by a content hash of everything that determines it:

    <cache_dir>/domain/<sha256>.safetensors   the weights (safetensors; metadata holds the hash)
    <cache_dir>/domain/<sha256>.json          test accuracy, training seconds, weights sha256

The sha256 covers the data's fingerprint (pixels and labels, never its name), the architecture version and
the training config. A cache file that does not load, or whose bytes do not match the sha256 recorded beside
it, is retrained. Inputs are uint8 N×C×H×W at any size: they are mapped to [-1, 1] and resized to a fixed
working size (16 px for images up to 16 px, 32 px above; bilinear up, area down), so one architecture covers
8×8 digits and 32×32 photos. On `digits_stacked` the classifier is per channel, as in Stacked MNIST: one
1-channel digit classifier, trained on the channels of the stacked training split, labels each channel and
the class is 100·r + 10·g + b; its features are the three channels' features side by side.

The classifier is registered with torch-fidelity as the feature extractor "bench-domain-<hash8>", providing
"features" (the penultimate layer: fid, kid, prc) and "logits" (isc, modes), so that every fidelity number
goes through torch-fidelity's own maths.
"""

from __future__ import annotations

import copy
import hashlib
import json
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import nn
from torch_fidelity.feature_extractor_base import FeatureExtractorBase
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY, register_feature_extractor

from bench.data import ImageData
from bench.files import atomic_write_bytes, atomic_write_json, read_json

ARCH_VERSION = "domain-cnn-v1"  # bump when the network or its preprocessing changes: it re-keys every cache
FEATURES = ("features", "logits")


@dataclass(frozen=True)
class TrainConfig:
    """Everything about training that changes the weights; it is part of the cache key."""

    seed: int = 0
    steps: int = 150
    batch_size: int = 64
    lr: float = 3e-3
    width: int = 16
    feature_dim: int = 64
    shift: float = 0.1  # augmentation: random translation, as a fraction of the image's half-width
    scale: float = 0.1  # augmentation: random zoom in [1 - scale, 1 + scale]


def working_size(image_size: int) -> int:
    """8, 16 or 32 px: the smallest that does not shrink the image, capped at 32."""
    return next((s for s in (8, 16) if image_size <= s), 32)


def _block(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class DomainNet(nn.Module):
    """uint8 images → (penultimate features, class logits). BatchNorm in eval mode keeps outputs batch-independent."""

    def __init__(self, channels: int, num_classes: int, size: int, width: int, feature_dim: int):
        super().__init__()
        self.size = size
        w = width
        # Three convolutions, two of them strided: cheap enough to train in seconds on a shared CPU.
        self.trunk = nn.Sequential(
            _block(channels, w), _block(w, 2 * w, stride=2), _block(2 * w, 4 * w, stride=2),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )  # fmt: skip
        self.fc = nn.Sequential(nn.Linear(4 * w, feature_dim), nn.ReLU(inplace=True))
        self.head = nn.Linear(feature_dim, num_classes)

    def prepare(self, u8: torch.Tensor) -> torch.Tensor:
        x = u8.to(self.head.weight.dtype).div(127.5).sub(1.0)
        if x.shape[-1] == self.size and x.shape[-2] == self.size:
            return x
        if x.shape[-1] > self.size:
            return F.interpolate(x, size=(self.size, self.size), mode="area")
        return F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)

    def embed(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.fc(self.trunk(x))
        return f, self.head(f)

    def forward(self, u8: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.embed(self.prepare(u8))


class StackedNet(nn.Module):
    """Per-channel classification (Stacked MNIST): 3 digits → 1000 classes via joint log-probabilities."""

    def __init__(self, digit: DomainNet):
        super().__init__()
        self.digit = digit

    def forward(self, u8: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n, c, h, w = u8.shape
        f, logits = self.digit(u8.reshape(n * c, 1, h, w))
        lp = torch.log_softmax(logits, dim=1).reshape(n, c, -1)  # independent channels: log p(r,g,b) = sum
        joint = lp[:, 0, :, None, None] + lp[:, 1, None, :, None] + lp[:, 2, None, None, :]
        return f.reshape(n, -1), joint.reshape(n, -1)


def is_stacked(data: ImageData) -> bool:
    return data.name == "digits_stacked" and data.train_x.shape[1] == 3 and data.num_classes == 1000


def _build(data: ImageData, cfg: TrainConfig) -> tuple[nn.Module, DomainNet]:
    """The full classifier and the part that is trained (the same module unless stacked)."""
    size = working_size(data.train_x.shape[-1])
    if is_stacked(data):
        digit = DomainNet(1, 10, size, cfg.width, cfg.feature_dim)
        return StackedNet(digit), digit
    net = DomainNet(data.train_x.shape[1], data.num_classes, size, cfg.width, cfg.feature_dim)
    return net, net


def _training_set(data: ImageData) -> tuple[torch.Tensor, torch.Tensor]:
    if not is_stacked(data):
        return data.train_x, data.train_y
    n, _, h, w = data.train_x.shape
    digits = torch.stack([data.train_y // 100, data.train_y // 10 % 10, data.train_y % 10], dim=1)
    return data.train_x.reshape(n * 3, 1, h, w), digits.reshape(-1)


def _augment(x: torch.Tensor, cfg: TrainConfig, gen: torch.Generator) -> torch.Tensor:
    n = x.shape[0]
    s = 1.0 + (torch.rand(n, generator=gen) * 2 - 1) * cfg.scale
    t = (torch.rand(n, 2, generator=gen) * 2 - 1) * cfg.shift
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 1, 1], theta[:, :, 2] = s, s, t
    grid = F.affine_grid(theta.to(x.device), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


@contextmanager
def _one_thread(device: torch.device):
    """Tiny convolutions gain nothing from intra-op threads, and on a shared CPU the threads fight each other
    (10× slower seen). Training is seeded but not bit-reproducible (BLAS kernels vary in the last bits), which
    is why cached real features key on the weights' sha256 rather than on the config hash alone."""
    if device.type != "cpu":
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _train(data: ImageData, cfg: TrainConfig, device: torch.device) -> nn.Module:
    with _one_thread(device):
        return _train_loop(data, cfg, device)


def _train_loop(data: ImageData, cfg: TrainConfig, device: torch.device) -> nn.Module:
    x_all, y_all = _training_set(data)
    gen = torch.Generator().manual_seed(cfg.seed)
    with torch.random.fork_rng(devices=[]):  # a fixed init without disturbing the run's global RNG
        torch.manual_seed(cfg.seed)
        full, trained = _build(data, cfg)
    full.to(device)
    opt = torch.optim.Adam(trained.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps)
    trained.train()
    order, pos = torch.randperm(len(y_all), generator=gen), 0
    for _ in range(cfg.steps):
        if pos + cfg.batch_size > len(order):
            order, pos = torch.randperm(len(y_all), generator=gen), 0
        idx = order[pos : pos + cfg.batch_size]
        pos += cfg.batch_size
        x = trained.prepare(x_all[idx].to(device))
        x = _augment(x, cfg, gen)
        _, logits = trained.embed(x)
        loss = F.cross_entropy(logits, y_all[idx].to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    full.eval().requires_grad_(False)
    return full


# --- torch-fidelity registration ---------------------------------------------------------------------------
_NETS: dict[str, nn.Module] = {}  # registered extractor name → classifier (CPU copy) it wraps


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
    _NETS[name] = copy.deepcopy(net).cpu()  # replaced on retrain, so the name always means the loaded weights
    if name not in FEATURE_EXTRACTORS_REGISTRY:
        register_feature_extractor(name, DomainFeatureExtractor)


# --- the classifier object the metrics use -------------------------------------------------------------------
def _digest(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def classifier_hash(data: ImageData, cfg: TrainConfig = TrainConfig()) -> str:
    arch = {"version": ARCH_VERSION, "stacked": is_stacked(data), "shape": list(data.train_x.shape[1:]), "classes": data.num_classes}
    return _digest(data.fingerprint(), arch, asdict(cfg))


def split_fingerprint(x: torch.Tensor) -> str:
    h = hashlib.sha256(str(tuple(x.shape)).encode())
    h.update(x.cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


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
        with _one_thread(self.device):
            for chunk in u8.split(max(1, batch_size)):
                for k, v in zip(FEATURES, self.extractor(chunk.to(self.device)), strict=True):
                    outs[k].append(v.cpu())
        return {k: torch.cat(v) for k, v in outs.items()}

    def real_features(self, test_x: torch.Tensor, cache_dir: Path, batch_size: int) -> dict[str, torch.Tensor]:
        """Features of the real reference, cached by content (split pixels × classifier weights), never by name."""
        key = _digest(split_fingerprint(test_x), self.hash, self.info["weights_sha256"])
        path = Path(cache_dir) / "features" / f"{key}.safetensors"
        if path.is_file():
            try:
                feats = st_load(path.read_bytes())
                if set(feats) == set(FEATURES) and all(len(v) == len(test_x) for v in feats.values()):
                    return feats
            except Exception:  # truncated or corrupt: recompute below
                pass
        feats = self.features(test_x, batch_size)
        atomic_write_bytes(path, st_save({k: v.contiguous() for k, v in feats.items()}, metadata={"classifier": self.hash}))
        return feats

    def predict(self, u8: torch.Tensor, batch_size: int) -> torch.Tensor:
        return self.features(u8, batch_size)["logits"].argmax(1)


def _accuracy(net: nn.Module, data: ImageData, device: torch.device) -> dict[str, float]:
    with torch.no_grad():
        pred = torch.cat([net(c.to(device))[1].argmax(1).cpu() for c in data.test_x.split(500)])
    out = {"accuracy": float((pred == data.test_y).float().mean())}
    if is_stacked(data):  # per-digit accuracy is what the 1-channel classifier is trained for
        digits = lambda y: torch.stack([y // 100, y // 10 % 10, y % 10], 1)  # noqa: E731
        out["digit_accuracy"] = float((digits(pred) == digits(data.test_y)).float().mean())
    return out


def _load(path: Path, data: ImageData, cfg: TrainConfig) -> tuple[nn.Module, str] | None:
    """The cached classifier, or None when missing or not trustworthy."""
    if not path.is_file():
        return None
    raw = path.read_bytes()
    try:
        state = st_load(raw)
        full, _ = _build(data, cfg)
        full.load_state_dict(state, strict=True)
    except Exception:  # bad header, truncated tensors, wrong keys or shapes
        return None
    return full.eval().requires_grad_(False), hashlib.sha256(raw).hexdigest()


_MEMO: dict[tuple[str, str], DomainClassifier] = {}


def get_domain_classifier(
    data: ImageData, device: torch.device | str, cache_dir: Path, cfg: TrainConfig = TrainConfig()
) -> DomainClassifier:
    """The trained domain classifier of `data`: from memory, from the disk cache, or trained now (and cached)."""
    device = torch.device(device)
    digest = classifier_hash(data, cfg)
    if (digest, str(device)) in _MEMO:
        return _MEMO[(digest, str(device))]
    folder = Path(cache_dir) / "domain"
    wpath, jpath = folder / f"{digest}.safetensors", folder / f"{digest}.json"
    loaded = _load(wpath, data, cfg)
    meta = read_json(jpath) or {}
    if loaded is not None and meta.get("weights_sha256") not in (None, loaded[1]):
        loaded = None  # the weights changed under their record: bit rot or a foreign file
    if loaded is None:
        t0 = time.perf_counter()
        net = _train(data, cfg, device)
        seconds = time.perf_counter() - t0
        raw = st_save(
            {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}, metadata={"hash": digest, "arch": ARCH_VERSION}
        )
        atomic_write_bytes(wpath, raw)
        wsha, meta = hashlib.sha256(raw).hexdigest(), {"train_seconds": seconds}
    else:
        net, wsha = loaded
    net.to(device)
    if meta.get("weights_sha256") != wsha or "accuracy" not in meta:
        meta = {
            "arch": ARCH_VERSION + ("/stacked-per-channel" if is_stacked(data) else ""),
            "hash": digest,
            "weights_sha256": wsha,
            "feature_dim": cfg.feature_dim * (3 if is_stacked(data) else 1),
            "num_classes": data.num_classes,
            "working_size": working_size(data.train_x.shape[-1]),
            **_accuracy(net, data, device),
            "train_seconds": meta.get("train_seconds"),  # None when the json was lost and only weights survived
            "train_config": asdict(cfg),
        }
        atomic_write_json(jpath, meta)
    clf = DomainClassifier(net, digest, meta, device)
    _MEMO[(digest, str(device))] = clf
    return clf


def cached_description(data: ImageData, cache_dir: Path, cfg: TrainConfig = TrainConfig()) -> dict[str, Any] | None:
    """What the cache knows about this data's classifier, without training one (None if never trained)."""
    return read_json(Path(cache_dir) / "domain" / f"{classifier_hash(data, cfg)}.json")
