"""The label-free domain extractor's network and its training (no files: see ssl.py).

When the target has no labels (a flat folder of images: every label -1), the classifier of domain_net.py
cannot be trained, so the `*_domain` metrics use this extractor instead: an ensemble of small CNNs (the
same three-convolution trunk, the same working size and [-1, 1] pixels), each trained without labels on
the reference training split. The default objective is contrastive (SimCLR, Chen et al. 2020,
https://arxiv.org/abs/2002.05709: NT-Xent between two augmented views of each image, features taken
before the projection head). The augmentations suit small grey images: a small random affine (shift,
zoom, rotation), contrast and brightness jitter, pixel noise and one erased square; never a flip, which
would turn digits and letters into other symbols.

Two other objectives exist for the measurement that chose this one (benchmarks/extractor_stability.py):
`dae` (a denoising autoencoder: the same trunk as encoder, reconstructing clean pixels from noisy,
partly erased ones) and `none` (the ensemble left at its random initialisation: the control).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from bench.core.seeds import derive_seed
from bench.metrics.domain_net import features_head, one_thread, to_working, trunk, working_size

ARCH_VERSION = "ssl-cnn-v2-ensemble"  # the cache key also holds this file's sha256 (CODE_SHA256)
OBJECTIVES = ("simclr", "dae", "none")
NORMALISATIONS = ("none", "scale", "l2")
# Any change to this file (network, augmentations, training) re-keys every cached label-free extractor.
CODE_SHA256 = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()


@dataclass(frozen=True)
class SSLConfig:
    """Everything about training that changes the weights; it is part of the cache key.

    Member j of extractor seed s is trained with seed `derive_seed(s * members + j, "extractor")`, as in
    domain_net, so extractors with different seeds share no network. Chosen by
    benchmarks/extractor_stability.py (docs/guide.md, "Unlabelled targets").

    `normalise` says how each member's features are scaled before they are put side by side: "none" (as
    trained), "scale" (one factor per member, fixed after training, that gives the member's features on the
    training split a total variance of 1, so an extractor seed that happens to learn larger activations does
    not move every Fréchet distance by its square) or "l2" (each image's feature vector to unit length).
    """

    seed: int = 0
    members: int = 10
    objective: str = "simclr"
    steps: int = 150
    batch_size: int = 64  # images per step (two views each); capped at the training split's size
    lr: float = 3e-3
    width: int = 16
    feature_dim: int = 64
    proj_dim: int = 32
    temperature: float = 0.2
    shift: float = 0.15  # random translation, as a fraction of the half-width
    scale: float = 0.15  # random zoom in [1 - scale, 1 + scale]
    rotate: float = 15.0  # random rotation, degrees either way
    contrast: float = 0.3  # pixel values times [1 - contrast, 1 + contrast], plus a shift of up to half that
    noise: float = 0.1  # Gaussian pixel noise (std, on the [-1, 1] scale)
    erase: float = 0.3  # side of the erased square, as a fraction of the image side
    normalise: str = "none"

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {self.objective!r}")
        if self.normalise not in NORMALISATIONS:
            raise ValueError(f"normalise must be one of {NORMALISATIONS}, got {self.normalise!r}")


class SSLNet(nn.Module):
    """uint8 images → features (the representation the metrics use). BatchNorm in eval mode keeps outputs
    batch-independent. The projection head (SimCLR) or the decoder (dae) is trained beside it and dropped.
    The trunk and the pixels are domain_net's; `scale` is the "scale" normalisation's factor (1 otherwise)."""

    def __init__(self, channels: int, size: int, width: int, feature_dim: int, normalise: str = "none"):
        super().__init__()
        self.size, self.normalise = size, normalise
        self.trunk, self.fc = trunk(channels, width), features_head(width, feature_dim)
        self.register_buffer("scale", torch.ones(()))

    def prepare(self, u8: torch.Tensor) -> torch.Tensor:
        return to_working(u8, self.size, self.fc[0].weight.dtype)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.trunk(x))

    def forward(self, u8: torch.Tensor) -> torch.Tensor:
        f = self.embed(self.prepare(u8))
        return F.normalize(f, dim=1) if self.normalise == "l2" else f * self.scale.to(f.dtype)


class SSLEnsemble(nn.Module):
    """K label-free extractors as one: features side by side (equal widths, so member_fids can split them)."""

    def __init__(self, members: list[SSLNet]):
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, u8: torch.Tensor) -> torch.Tensor:
        return torch.cat([m(u8) for m in self.members], dim=1)


def member_seeds(cfg: SSLConfig) -> list[int]:
    return [derive_seed(cfg.seed * cfg.members + j, "extractor") for j in range(cfg.members)]


def build_member(train_x: torch.Tensor, cfg: SSLConfig) -> SSLNet:
    return SSLNet(train_x.shape[1], working_size(train_x.shape[-1]), cfg.width, cfg.feature_dim, cfg.normalise)


def build(train_x: torch.Tensor, cfg: SSLConfig) -> SSLEnsemble:
    """The (untrained) ensemble: the shape a cached state dict must fit."""
    return SSLEnsemble([build_member(train_x, cfg) for _ in range(cfg.members)])


# --- augmentations ---------------------------------------------------------------------------------------
def _affine(x: torch.Tensor, cfg: SSLConfig, gen: torch.Generator) -> torch.Tensor:
    n = x.shape[0]
    u = lambda *shape: torch.rand(*shape, generator=gen) * 2 - 1  # noqa: E731  uniform in [-1, 1]
    s, a, t = 1.0 + u(n) * cfg.scale, u(n) * math.radians(cfg.rotate), u(n, 2) * cfg.shift
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1] = s * torch.cos(a), -s * torch.sin(a)
    theta[:, 1, 0], theta[:, 1, 1] = s * torch.sin(a), s * torch.cos(a)
    theta[:, :, 2] = t
    grid = F.affine_grid(theta.to(x.device), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _photometric(x: torch.Tensor, cfg: SSLConfig, gen: torch.Generator) -> torch.Tensor:
    n, _, h, w = x.shape
    c = 1.0 + (torch.rand(n, 1, 1, 1, generator=gen) * 2 - 1) * cfg.contrast
    b = (torch.rand(n, 1, 1, 1, generator=gen) * 2 - 1) * cfg.contrast / 2
    x = x * c.to(x.device) + b.to(x.device) + cfg.noise * torch.randn(x.shape, generator=gen).to(x.device)
    side = max(1, round(cfg.erase * h)) if cfg.erase > 0 else 0
    if side:  # one erased square per image, filled with -1 (the background of digits, black otherwise)
        i = torch.randint(0, h - side + 1, (n,), generator=gen)
        j = torch.randint(0, w - side + 1, (n,), generator=gen)
        rows = torch.arange(h)[None, :, None]
        cols = torch.arange(w)[None, None, :]
        inside = ((rows >= i[:, None, None]) & (rows < i[:, None, None] + side)) & (
            (cols >= j[:, None, None]) & (cols < j[:, None, None] + side)
        )
        x = torch.where(inside[:, None].to(x.device), torch.full_like(x, -1.0), x)
    return x.clamp(-1.5, 1.5)


def augment(x: torch.Tensor, cfg: SSLConfig, gen: torch.Generator) -> torch.Tensor:
    """One random view of prepared images (float, [-1, 1] scale); all randomness from `gen`."""
    return _photometric(_affine(x, cfg, gen), cfg, gen)


# --- objectives ------------------------------------------------------------------------------------------
def nt_xent(z: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCLR's loss for 2N projections: rows i and i + N are the two views of one image, every other row is a
    negative. Cross-entropy over cosine similarities / temperature, the row itself excluded."""
    n2 = z.shape[0]
    z = F.normalize(z, dim=1)
    sim = z @ z.T / temperature
    sim = sim.masked_fill(torch.eye(n2, dtype=torch.bool, device=z.device), float("-inf"))
    half = n2 // 2
    target = torch.cat([torch.arange(half, n2), torch.arange(0, half)]).to(z.device)
    return F.cross_entropy(sim, target)


def _partner(net: SSLNet, cfg: SSLConfig, channels: int) -> nn.Module:
    """What is trained beside the features and dropped: SimCLR's projection head, or the dae's decoder."""
    if cfg.objective == "simclr":
        return nn.Sequential(nn.Linear(cfg.feature_dim, cfg.feature_dim), nn.ReLU(inplace=True), nn.Linear(cfg.feature_dim, cfg.proj_dim))
    q, w = net.size // 4, cfg.width
    return nn.Sequential(
        nn.Linear(cfg.feature_dim, 4 * w * q * q), nn.ReLU(inplace=True), nn.Unflatten(1, (4 * w, q, q)),
        nn.ConvTranspose2d(4 * w, 2 * w, 4, stride=2, padding=1), nn.ReLU(inplace=True),
        nn.ConvTranspose2d(2 * w, channels, 4, stride=2, padding=1),
    )  # fmt: skip


def _loss(net: SSLNet, partner: nn.Module, x: torch.Tensor, cfg: SSLConfig, gen: torch.Generator) -> torch.Tensor:
    if cfg.objective == "simclr":
        views = torch.cat([augment(x, cfg, gen), augment(x, cfg, gen)])
        return nt_xent(partner(net.embed(views)), cfg.temperature)
    # dae: pixel noise and an erased square only; an affine change could not be undone from the features
    noisy = _photometric(x, cfg, gen)
    return F.mse_loss(partner(net.embed(noisy)), x)


def train(train_x: torch.Tensor, cfg: SSLConfig, device: torch.device) -> tuple[SSLEnsemble, list[float]]:
    """The trained ensemble (eval mode, gradients off) and each member's final loss (mean of its last 20
    steps; nan for `none`). Never reads a label. The run's global RNG is untouched."""
    with one_thread(device):
        outs = [_train_member(train_x, cfg, seed, device) for seed in member_seeds(cfg)]
    return SSLEnsemble([m for m, _ in outs]), [loss for _, loss in outs]


def _train_member(train_x: torch.Tensor, cfg: SSLConfig, seed: int, device: torch.device) -> tuple[SSLNet, float]:
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):  # a fixed init without disturbing the run's global RNG
        torch.manual_seed(seed)
        net = build_member(train_x, cfg)
        partner = _partner(net, cfg, train_x.shape[1])
    net.to(device)
    partner.to(device)
    losses: list[float] = []
    if cfg.objective != "none" and cfg.steps > 0:
        params = [*net.parameters(), *partner.parameters()]
        opt = torch.optim.Adam(params, lr=cfg.lr)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps)
        net.train()
        n = len(train_x)
        bs = max(2, min(cfg.batch_size, n))  # two distinct images at least: NT-Xent needs a negative
        order, pos = torch.randperm(n, generator=gen), 0
        for _ in range(cfg.steps):
            if pos + bs > n:
                order, pos = torch.randperm(n, generator=gen), 0
            idx = order[pos : pos + bs]
            pos += bs
            loss = _loss(net, partner, net.prepare(train_x[idx].to(device)), cfg, gen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
    net.eval().requires_grad_(False)
    if cfg.normalise == "scale":
        net.scale.fill_(_scale(net, train_x, device))
    tail = losses[-20:]
    return net, (sum(tail) / len(tail) if tail else float("nan"))


def _scale(net: SSLNet, train_x: torch.Tensor, device: torch.device) -> float:
    """1 / sqrt(total variance) of the member's features on the training split (float64, in chunks)."""
    with torch.no_grad():
        f = torch.cat([net.embed(net.prepare(c.to(device))).double().cpu() for c in train_x.split(500)])
    total = float(f.var(dim=0, correction=0).sum()) if len(f) > 1 else 0.0
    return 1.0 / math.sqrt(total) if total > 1e-12 else 1.0
