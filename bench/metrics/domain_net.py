"""The domain classifier's network and its training (no files, no torch-fidelity: see domain.py).

An ensemble of TrainConfig.members small CNNs, each trained on the target's training split with its own
fixed seed and light augmentation; the extractor's features are the members' features side by side and its
class probabilities their average (one CNN's feature space depends on its seed enough to reorder models). Inputs are
uint8 N×C×H×W at any size: they are mapped to [-1, 1] and resized to a fixed working size (16 px for images up
to 16 px, 32 px above; bilinear up, area down), so one architecture covers 8×8 digits and 32×32 photos. On
`digits_stacked` the classifier is per channel, as in Stacked MNIST: one 1-channel digit classifier, trained
on the channels of the stacked training split, labels each channel and the class is 100·r + 10·g + b; its
features are the three channels' features side by side.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bench.core.beat import beat
from bench.core.seeds import derive_seed
from bench.data.datasets import ImageData
from bench.metrics.members import MemberFiles, no_loss, shared_members

ARCH_VERSION = "domain-cnn-v2-ensemble"  # bump when the network or its preprocessing changes: it re-keys every cache


@dataclass(frozen=True)
class TrainConfig:
    """Everything about training that changes the weights; it is part of the cache key.

    The extractor is an ensemble of `members` classifiers, member j trained with seed `derive_seed(seed * members + j, "extractor")`
    (so extractors with different seeds share no network). Its features are the members' features side by
    side and its class log-probabilities the log of the members' averaged probabilities. Why: one classifier's
    feature space moves with its training seed enough to reorder models by fid_domain (14% std/mean on the
    same samples); the ensemble averages that out (measured in benchmarks/extractor_stability.py; README).
    """

    seed: int = 0
    members: int = 10
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


# The CNN shared by the domain classifier and the label-free extractor (ssl_net.py): same trunk, same pixels.
def trunk(channels: int, width: int) -> nn.Sequential:
    """Three convolutions, two of them strided, pooled: cheap enough to train in seconds on a shared CPU."""
    w = width
    return nn.Sequential(
        _block(channels, w), _block(w, 2 * w, stride=2), _block(2 * w, 4 * w, stride=2),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(),
    )  # fmt: skip


def features_head(width: int, feature_dim: int) -> nn.Sequential:
    """The trunk's pooled channels → the features the metrics use (ReLU: non-negative, as before v2)."""
    return nn.Sequential(nn.Linear(4 * width, feature_dim), nn.ReLU(inplace=True))


def to_working(u8: torch.Tensor, size: int, dtype: torch.dtype) -> torch.Tensor:
    """uint8 pixels → [-1, 1] at the working size (bilinear up, area down)."""
    x = u8.to(dtype).div(127.5).sub(1.0)
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    if x.shape[-1] > size:
        return F.interpolate(x, size=(size, size), mode="area")
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)


class DomainNet(nn.Module):
    """uint8 images → (penultimate features, class logits). BatchNorm in eval mode keeps outputs batch-independent."""

    def __init__(self, channels: int, num_classes: int, size: int, width: int, feature_dim: int):
        super().__init__()
        self.size = size
        self.trunk, self.fc = trunk(channels, width), features_head(width, feature_dim)
        self.head = nn.Linear(feature_dim, num_classes)

    def prepare(self, u8: torch.Tensor) -> torch.Tensor:
        return to_working(u8, self.size, self.head.weight.dtype)

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


class EnsembleNet(nn.Module):
    """K classifiers as one extractor: features side by side, class log-probabilities log(mean of p_j)."""

    def __init__(self, members: list[nn.Module]):
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, u8: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        outs = [m(u8) for m in self.members]
        logp = torch.stack([torch.log_softmax(lg, dim=1) for _, lg in outs])
        return torch.cat([f for f, _ in outs], dim=1), torch.logsumexp(logp, dim=0) - math.log(len(outs))


def is_stacked(data: ImageData) -> bool:
    return data.name == "digits_stacked" and data.train_x.shape[1] == 3 and data.num_classes == 1000


def member_seeds(cfg: TrainConfig) -> list[int]:
    return [derive_seed(cfg.seed * cfg.members + j, "extractor") for j in range(cfg.members)]


def build(data: ImageData, cfg: TrainConfig) -> EnsembleNet:
    """The (untrained) ensemble: the shape a cached state dict must fit."""
    return EnsembleNet([build_member(data, cfg)[0] for _ in range(cfg.members)])


def build_member(data: ImageData, cfg: TrainConfig) -> tuple[nn.Module, DomainNet]:
    """One member classifier and the part that is trained (the same module unless stacked)."""
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
def one_thread(device: torch.device) -> Iterator[None]:
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


def train(data: ImageData, cfg: TrainConfig, device: torch.device, share: MemberFiles | None = None) -> EnsembleNet:
    """The trained ensemble for `data`, in eval mode with gradients off. The run's global RNG is untouched.
    With `share`, the members are split with any other process training this ensemble now (members.py)."""
    seeds = member_seeds(cfg)
    with one_thread(device):
        if share is None:
            return EnsembleNet([_train_loop(data, cfg, seed, device) for seed in seeds])
        trained = shared_members(
            share, seeds, lambda seed: no_loss(_train_loop(data, cfg, seed, device)), lambda: build_member(data, cfg)[0]
        )
        return EnsembleNet([net.to(device) for net, _ in trained])


def _train_loop(data: ImageData, cfg: TrainConfig, seed: int, device: torch.device) -> nn.Module:
    """One member, trained from `seed` (its initialisation, batch order and augmentation)."""
    x_all, y_all = _training_set(data)
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):  # a fixed init without disturbing the run's global RNG
        torch.manual_seed(seed)
        full, trained = build_member(data, cfg)
    full.to(device)
    opt = torch.optim.Adam(trained.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps)
    trained.train()
    order, pos = torch.randperm(len(y_all), generator=gen), 0
    for i in range(cfg.steps):
        beat(f"training the domain classifier (step {i + 1} of {cfg.steps})")
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


def accuracy(net: nn.Module, data: ImageData, device: torch.device) -> dict[str, float]:
    """Test-split accuracy (and, stacked, per-digit accuracy): the evaluator's own quality, for the report."""
    with torch.no_grad():
        pred = torch.cat([net(c.to(device))[1].argmax(1).cpu() for c in data.test_x.split(500)])
    out = {"accuracy": float((pred == data.test_y).float().mean())}
    if is_stacked(data):  # per-digit accuracy is what the 1-channel classifier is trained for
        digits = lambda y: torch.stack([y // 100, y // 10 % 10, y % 10], 1)  # noqa: E731
        out["digit_accuracy"] = float((digits(pred) == digits(data.test_y)).float().mean())
    return out
