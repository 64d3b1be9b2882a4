"""cnn_gan: a DCGAN-style convolutional GAN trained with the original (non-saturating) GAN objective.

References:
- Goodfellow et al., "Generative Adversarial Networks", 2014. https://arxiv.org/abs/1406.2661
  (the minimax objective and its non-saturating generator loss, written here in softplus form).
- Radford, Metz and Chintala, "Unsupervised Representation Learning with Deep Convolutional GANs"
  (DCGAN), 2015. https://arxiv.org/abs/1511.06434 (transposed-conv generator with batch norm, strided-conv
  discriminator with LeakyReLU, Adam with lr 2e-4 and beta1 0.5).
- Mescheder, Geiger and Nowozin, "Which Training Methods for GANs do actually Converge?", 2018.
  https://arxiv.org/abs/1801.04406 (the optional R1 penalty, `r1_gamma`).
- Zhao et al., "Differentiable Augmentation for Data-Efficient GAN Training" (DiffAugment), 2020.
  https://arxiv.org/abs/2006.10738 (the optional `augment` policy, shared with transformer_gan).
- Mo, Cho and Shin, "Freeze the Discriminator: a Simple Baseline for Fine-Tuning GANs" (FreezeD), 2020.
  https://arxiv.org/abs/2002.10964 (why the discriminator trunk exposes its blocks input-to-output).

Both networks are sized from the image size: `stages` = floor(log2(size / 4)) doublings from a
ceil(size / 2^stages) start grid (4×4 for 8/16/32 px, 7×7 for 28 px); sizes that the doublings overshoot
are centre-cropped. Parts: "generator" (decoder, latent → image in [-1, 1]) and "discriminator"
(encoder, image → `feature_dim` features; the real/fake logit is a linear head outside the part, so a
pretraining task can swap its own head onto the same trunk).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bench.adapter.base import Adapter, Batch, DataInfo, Part, adam, to_uint8
from bench.core.errors import ConfigError


def num_stages(image_size: int) -> int:
    """Resolution doublings between the start grid (about 4×4) and the image."""
    return max(0, int(math.floor(math.log2(image_size / 4))))


def _centre_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    h = x.shape[-1]
    if h == size:
        return x
    o = (h - size) // 2
    return x[..., o : o + size, o : o + size]


class CNNGenerator(nn.Module):
    """Latent (N, z_dim) → image (N, C, size, size) in [-1, 1]: linear to a start grid, then up-conv stages.

    `blocks` lists the stem, each up-sampling stage and the output conv, input-to-output.
    """

    def __init__(self, z_dim: int, channels: int, image_size: int, width: int = 64, max_width: int = 256):
        super().__init__()
        self.z_dim, self.image_size = z_dim, image_size
        k = num_stages(image_size)
        self.start = math.ceil(image_size / 2**k)
        # Channels halve at every doubling (DCGAN), ending at `width` at full resolution.
        chans = [min(width * 2 ** (k - i), max_width) for i in range(k + 1)]
        self.stem = nn.Sequential(
            nn.Linear(z_dim, chans[0] * self.start**2),
            nn.Unflatten(1, (chans[0], self.start, self.start)),
            nn.BatchNorm2d(chans[0]),
            nn.ReLU(inplace=True),
        )
        # kernel 4, stride 2, padding 1 doubles exactly; BatchNorm as in DCGAN keeps early training stable.
        self.ups = nn.ModuleList(
            nn.Sequential(
                nn.ConvTranspose2d(chans[i], chans[i + 1], 4, 2, 1, bias=False), nn.BatchNorm2d(chans[i + 1]), nn.ReLU(inplace=True)
            )
            for i in range(k)
        )
        self.to_img = nn.Conv2d(chans[-1], channels, 3, 1, 1)

    @property
    def blocks(self) -> list[nn.Module]:
        return [self.stem, *self.ups, self.to_img]

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.stem(z)
        for up in self.ups:
            h = up(h)
        return _centre_crop(torch.tanh(self.to_img(h)), self.image_size)


class CNNDiscriminatorTrunk(nn.Module):
    """Image (N, C, size, size) in [-1, 1] → features (N, feature_dim): strided convs mirroring the generator.

    No batch norm: real and fake batches pass separately, and an R1 penalty needs per-example gradients.
    """

    def __init__(self, channels: int, image_size: int, width: int = 64, feature_dim: int = 256, max_width: int = 256):
        super().__init__()
        k = num_stages(image_size)
        chans = [min(width * 2**i, max_width) for i in range(k + 1)]
        self.stem = nn.Sequential(nn.Conv2d(channels, chans[0], 3, 1, 1), nn.LeakyReLU(0.2, inplace=True))
        # kernel 3, stride 2, padding 1 gives ceil(h / 2), so odd sizes shrink to the generator's start grid.
        self.downs = nn.ModuleList(
            nn.Sequential(nn.Conv2d(chans[i], chans[i + 1], 3, 2, 1), nn.LeakyReLU(0.2, inplace=True)) for i in range(k)
        )
        s = image_size
        for _ in range(k):
            s = (s + 1) // 2
        self.feature_dim = feature_dim
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(chans[-1] * s * s, feature_dim), nn.LeakyReLU(0.2, inplace=True))

    @property
    def blocks(self) -> list[nn.Module]:
        return [self.stem, *self.downs, self.head]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(x)
        for down in self.downs:
            h = down(h)
        return self.head(h)


class Discriminator(nn.Module):
    """Trunk + linear real/fake logit. The trunk is the pretrainable "discriminator" part."""

    def __init__(self, trunk: nn.Module, feature_dim: int):
        super().__init__()
        self.trunk, self.head = trunk, nn.Linear(feature_dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Logits in float32: under bf16 autocast the softplus of a large logit loses the loss's precision.
        return self.head(self.trunk(x)).float().squeeze(1)


def _translate(x: torch.Tensor, ratio: float = 0.125) -> torch.Tensor:
    """Shift each image by up to ratio·size pixels; vacated pixels become 0 (as DiffAugment pads)."""
    n, _, h, w = x.shape
    sy, sx = max(1, int(h * ratio + 0.5)), max(1, int(w * ratio + 0.5))
    ty = torch.randint(-sy, sy + 1, (n, 1, 1), device=x.device)
    tx = torch.randint(-sx, sx + 1, (n, 1, 1), device=x.device)
    gy = torch.arange(h, device=x.device).view(1, h, 1) + ty + 1
    gx = torch.arange(w, device=x.device).view(1, 1, w) + tx + 1
    # Out-of-range indices clamp onto the one-pixel zero border, so the gather stays differentiable.
    gy, gx = gy.clamp(0, h + 1).expand(n, h, w), gx.clamp(0, w + 1).expand(n, h, w)
    pad = F.pad(x, [1, 1, 1, 1]).permute(0, 2, 3, 1)
    return pad[torch.arange(n, device=x.device).view(n, 1, 1), gy, gx].permute(0, 3, 1, 2)


def _cutout(x: torch.Tensor, ratio: float = 0.5) -> torch.Tensor:
    """Zero one random square of side ratio·size per image (clipped at the border, as DiffAugment does)."""
    n, _, h, w = x.shape
    ch, cw = max(1, int(h * ratio + 0.5)), max(1, int(w * ratio + 0.5))
    y0 = torch.randint(0, h + 1 - ch % 2, (n, 1, 1), device=x.device) - ch // 2
    x0 = torch.randint(0, w + 1 - cw % 2, (n, 1, 1), device=x.device) - cw // 2
    gy = torch.arange(h, device=x.device).view(1, h, 1)
    gx = torch.arange(w, device=x.device).view(1, 1, w)
    inside = (gy >= y0) & (gy < y0 + ch) & (gx >= x0) & (gx < x0 + cw)
    return x * (~inside).unsqueeze(1).to(x.dtype)


_AUGMENTS = {"translation": _translate, "cutout": _cutout}


def diff_augment(x: torch.Tensor, policy: str) -> torch.Tensor:
    """DiffAugment: the same random, differentiable transforms for real and fake images (comma-separated policy)."""
    for name in filter(None, (p.strip() for p in policy.split(","))):
        x = _AUGMENTS[name](x)
    return x


def check_policy(policy: str, key: str) -> None:
    """Fail at construction, naming the config key, rather than at the first train_step."""
    bad = [p for p in (q.strip() for q in policy.split(",")) if p and p not in _AUGMENTS]
    if bad:
        raise ConfigError(f"unknown augment {bad}", key=key, fix=f"use a comma-separated subset of {sorted(_AUGMENTS)}, or ''")


def r1_penalty(d: nn.Module, x_real: torch.Tensor) -> torch.Tensor:
    """Mescheder et al.'s R1: squared gradient norm of D's logit at real data (mean over the batch)."""
    x = x_real.detach().requires_grad_(True)
    (g,) = torch.autograd.grad(d(x).sum(), x, create_graph=True)
    return g.float().pow(2).flatten(1).sum(1).mean()


class CNNGAN(Adapter):
    family = "gan"

    @dataclass
    class Config:
        z_dim: int = 64
        width: int = 32  # base channels at full resolution; doubled per down-sampling stage, up to max_width
        max_width: int = 256
        feature_dim: int = 256  # discriminator trunk output (the encoder part's dim)
        lr_g: float = 5e-4  # above DCGAN's 2e-4 so 8 px digits appear within a few hundred steps
        lr_d: float = 5e-4
        betas: tuple[float, float] = (0.5, 0.999)
        d_steps: int = 1  # discriminator steps per train_step (fresh noise, same real batch)
        r1_gamma: float = 0.0  # R1 weight; 0 disables (DCGAN needs none at these sizes)
        augment: str = ""  # DiffAugment policy for D's inputs, e.g. "translation,cutout" (few-shot runs)

    def __init__(self, config: Config, info: DataInfo, device: torch.device):
        super().__init__(config, info, device)
        c = config
        check_policy(c.augment, "adapters.cnn_gan.augment")
        self.G = CNNGenerator(c.z_dim, info.channels, info.image_size, c.width, c.max_width).to(self.device)
        trunk = CNNDiscriminatorTrunk(info.channels, info.image_size, c.width, c.feature_dim, c.max_width)
        self.D = Discriminator(trunk, c.feature_dim).to(self.device)
        self.opt_g = adam(self.G.parameters(), c.lr_g, tuple(c.betas), device=self.device)
        self.opt_d = adam(self.D.parameters(), c.lr_d, tuple(c.betas), device=self.device)

    def parts(self) -> dict[str, Part]:
        return {
            "generator": Part(self.G, "decoder", latent_dim=self.config.z_dim, blocks=self.G.blocks),
            "discriminator": Part(self.D.trunk, "encoder", features=self.config.feature_dim, blocks=self.D.trunk.blocks),
        }

    def _noise(self, n: int) -> torch.Tensor:
        return torch.randn(n, self.config.z_dim, device=self.device)

    def train_step(self, batch: Batch, step: int) -> dict[str, torch.Tensor]:
        x, n, c = batch.x, len(batch), self.config
        for _ in range(c.d_steps):
            with torch.no_grad():
                fake = self.G(self._noise(n))
            # Non-saturating GAN, D side: -log sigmoid(D(x)) - log(1 - sigmoid(D(G(z)))).
            real = diff_augment(x, c.augment)
            loss_d = F.softplus(-self.D(real)).mean() + F.softplus(self.D(diff_augment(fake, c.augment))).mean()
            if c.r1_gamma > 0:
                loss_d = loss_d + 0.5 * c.r1_gamma * r1_penalty(self.D, real)
            self.opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            self.opt_d.step()
        # G side: -log sigmoid(D(G(z))) (the non-saturating form, strong gradients early on).
        loss_g = F.softplus(-self.D(diff_augment(self.G(self._noise(n)), c.augment))).mean()
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_g.step()
        return {"loss_d": loss_d.detach(), "loss_g": loss_g.detach()}

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        z = torch.randn(n, self.config.z_dim, generator=generator, device=generator.device).to(self.device)
        return to_uint8(self.G(z), self.info.levels)
