"""vae: a convolutional variational autoencoder with a discrete pixel likelihood.

References:
- D. P. Kingma and M. Welling, "Auto-Encoding Variational Bayes", ICLR 2014. https://arxiv.org/abs/1312.6114
- Y. Burda, R. Grosse and R. Salakhutdinov, "Importance Weighted Autoencoders", ICLR 2016 (the IWAE bound
  used for bpd). https://arxiv.org/abs/1509.00519
- T. Salimans, A. Karpathy, X. Chen and D. P. Kingma, "PixelCNN++", ICLR 2017 (the discretised logistic
  mixture). https://arxiv.org/abs/1701.05517

Encoder: strided 3×3 convolutions halve the image until it is at most 4×4, then a linear layer gives
features, and linear heads give the posterior mean and log-variance. Decoder: the mirror image, with
nearest-neighbour upsampling, cropped to the image size, so every size from 8 to 32 (28 included) works.

The decoder's pixel likelihood is discrete over the data's levels, so bpd is comparable with the sequence
models and the dummy adapter:
- `categorical` (default when levels <= 64, e.g. 17-level digits): an independent softmax over the levels
  for every sub-pixel. Exact and flexible, but C·levels output maps are too many for 256 levels.
- `logistic` (default for 8-bit data): a discretised mixture of logistics per sub-pixel (PixelCNN++,
  without the channel coupling), whose edge bins take the tails so the mass over the levels sums to one.

log_likelihood returns the importance-weighted bound with `iw_samples` samples (a lower bound on log P(x),
so bpd is an upper bound; likelihood_exact = False). It draws its noise from a fixed-seed generator so that
evaluation is reproducible and does not disturb the global random state.

sample(): z ~ N(0, I) → decoder → a draw from the pixel distribution (`sample_mode: sample`, the model's
honest samples, speckled where the decoder is uncertain) or its most likely value (`sample_mode: mode`).

Parts: "encoder" maps images in [-1, 1] to features (blocks: stem, down stages, linear); "decoder" maps a
latent (N, z_dim) to the pixel distribution's parameters (blocks: linear, up stages, output conv).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from bench.adapter.base import Adapter, Batch, DataInfo, Part, adam, from_levels


def _stages(image_size: int) -> tuple[int, int]:
    """(number of 2× stages, smallest side) so that the smallest side is at most 4."""
    n, s = 0, image_size
    while s > 4:
        n, s = n + 1, math.ceil(s / 2)
    return n, s


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Module:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.SiLU())


class Encoder(nn.Module):
    def __init__(self, channels: int, image_size: int, width: int, feature_dim: int):
        super().__init__()
        n, s = _stages(image_size)
        chans = [width * 2**i for i in range(n + 1)]
        self.stem = _conv(channels, width)
        self.downs = nn.ModuleList([nn.Sequential(_conv(chans[i], chans[i + 1], 2), _conv(chans[i + 1], chans[i + 1])) for i in range(n)])
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(chans[-1] * s * s, feature_dim), nn.SiLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(x)
        for down in self.downs:
            h = down(h)
        return self.fc(h)


class Nearest2x(nn.Module):
    """Nearest-neighbour 2× upsampling. Without gradients (sampling, the likelihood bound) rows and columns are
    repeated: the same values as F.interpolate, which on CPU copies its input to another memory layout and took
    a fifth of the bound's time. With gradients it is F.interpolate, so training stays what it was to the bit
    (the two backward passes add the four gradients in different orders)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() and x.requires_grad:
            return F.interpolate(x, scale_factor=2, mode="nearest")
        return x.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)


class Decoder(nn.Module):
    def __init__(self, z_dim: int, out_channels: int, image_size: int, width: int):
        super().__init__()
        n, _ = _stages(image_size)
        self.size, self.s0 = image_size, math.ceil(image_size / 2**n)  # grow s0·2^n >= size, then crop
        chans = [width * 2**i for i in range(n, -1, -1)]
        self.c0 = chans[0]
        self.fc = nn.Sequential(nn.Linear(z_dim, chans[0] * self.s0 * self.s0), nn.SiLU())
        self.ups = nn.ModuleList(
            [nn.Sequential(Nearest2x(), _conv(chans[i], chans[i + 1]), _conv(chans[i + 1], chans[i + 1])) for i in range(n)]
        )
        self.out = nn.Conv2d(chans[-1], out_channels, 3, 1, 1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.fc(z).view(-1, self.c0, self.s0, self.s0)
        for up in self.ups:
            h = up(h)
        off = (h.shape[-1] - self.size) // 2
        return self.out(h[..., off : off + self.size, off : off + self.size])


class VAE(Adapter):
    family = "vae"
    likelihood_exact = False  # the IWAE bound

    @dataclass
    class Config:
        width: int = 32
        feature_dim: int = 256
        z_dim: int = 32
        likelihood: Literal["auto", "categorical", "logistic"] = "auto"  # auto: categorical if levels <= 64
        mixtures: int = 5  # logistic mixture components
        iw_samples: int = 64  # importance samples in the log_likelihood bound
        sample_mode: Literal["sample", "mode"] = "sample"
        lr: float = 1e-3

    def __init__(self, config: Config, info: DataInfo, device: torch.device):
        super().__init__(config, info, device)
        kind = config.likelihood if config.likelihood != "auto" else ("categorical" if info.levels <= 64 else "logistic")
        if kind not in ("categorical", "logistic"):
            raise ValueError(f"likelihood must be categorical, logistic or auto, got {config.likelihood!r}")
        if config.sample_mode not in ("sample", "mode"):
            raise ValueError(f"sample_mode must be sample or mode, got {config.sample_mode!r}")
        self.kind, self.L, self.C = kind, info.levels, info.channels
        self.per_channel = info.levels if kind == "categorical" else 3 * config.mixtures
        self.encoder = Encoder(info.channels, info.image_size, config.width, config.feature_dim).to(self.device)
        self.heads = nn.Linear(config.feature_dim, 2 * config.z_dim).to(self.device)
        self.decoder = Decoder(config.z_dim, info.channels * self.per_channel, info.image_size, config.width).to(self.device)
        params = [*self.encoder.parameters(), *self.heads.parameters(), *self.decoder.parameters()]
        self.opt = adam(params, lr=config.lr, device=self.device)

    def parts(self) -> dict[str, Part]:
        e, d = self.encoder, self.decoder
        return {
            "encoder": Part(e, "encoder", features=self.config.feature_dim, blocks=[e.stem, *e.downs, e.fc]),
            "decoder": Part(d, "decoder", latent_dim=self.config.z_dim, blocks=[d.fc, *d.ups, d.out]),
        }

    # --- pixel likelihood -------------------------------------------------------------------------
    def _params(self, z: torch.Tensor) -> torch.Tensor:
        """Decoder output as float32 N×C×P×H×W (P = levels, or 3·mixtures), safe under bf16 autocast."""
        out = self.decoder(z).float()
        return out.view(out.shape[0], self.C, self.per_channel, *out.shape[-2:])

    def _split_logistic(self, p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        k = self.config.mixtures
        logit_pi, mu, log_s = p[:, :, :k], p[:, :, k : 2 * k], p[:, :, 2 * k :].clamp(min=-7.0)
        return F.log_softmax(logit_pi, dim=2), mu.tanh(), log_s

    def _log_px(self, p: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """log P(x | z) in nats per example, x given as level indices N×C×H×W."""
        if self.kind == "categorical":
            return F.log_softmax(p, dim=2).gather(2, idx.unsqueeze(2)).squeeze(2).flatten(1).sum(1)
        log_pi, mu, log_s = self._split_logistic(p)
        x = (idx.float() * (2.0 / (self.L - 1)) - 1.0).unsqueeze(2)  # bin centres in [-1, 1]
        inv_s, half = torch.exp(-log_s), 1.0 / (self.L - 1)
        plus, minus, mid = inv_s * (x + half - mu), inv_s * (x - half - mu), inv_s * (x - mu)
        log_cdf_plus = plus - F.softplus(plus)  # log sigmoid(plus): the lowest bin takes the left tail
        log_one_minus_cdf_min = -F.softplus(minus)  # log(1 - sigmoid(minus)): the highest bin, the right tail
        delta = torch.sigmoid(plus) - torch.sigmoid(minus)
        # Where the bin mass underflows, use density × bin width (as PixelCNN++ does).
        log_mid = mid - log_s - 2.0 * F.softplus(mid) + math.log(2.0 * half)
        log_delta = torch.where(delta > 1e-5, torch.log(delta.clamp(min=1e-12)), log_mid)
        i = idx.unsqueeze(2)
        lp = torch.where(i == 0, log_cdf_plus, torch.where(i == self.L - 1, log_one_minus_cdf_min, log_delta))
        return torch.logsumexp(lp + log_pi, dim=2).flatten(1).sum(1)

    def _posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.heads(self.encoder(x)).float().chunk(2, dim=1)
        return mu, logvar.clamp(-12.0, 8.0)

    # --- the adapter contract ---------------------------------------------------------------------
    def train_step(self, batch: Batch, step: int) -> dict[str, torch.Tensor]:
        mu, logvar = self._posterior(batch.x)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        rec = -self._log_px(self._params(z), batch.tokens()).mean()
        kl = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(1).mean()
        loss = (rec + kl) / self.info.dims  # negative ELBO in nats per dimension
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return {"loss": loss.detach(), "rec": rec.detach() / self.info.dims, "kl": kl.detach() / self.info.dims}

    def log_likelihood(self, batch: Batch, k: int | None = None) -> torch.Tensor:
        """IWAE bound: log (1/k) Σ_j p(x, z_j) / q(z_j | x), z_j ~ q(z | x); k=1 is the ELBO."""
        k = k or self.config.iw_samples
        n, idx = len(batch), batch.tokens()
        mu, logvar = self._posterior(batch.x)
        std = (0.5 * logvar).exp()
        gen = torch.Generator(device=self.device).manual_seed(0)
        # The decoder batch is bounded to ~1,024 images: at 4,096 its activations (~27 MB a layer at 8×8) leave
        # the cache, and 16 samples of 207 digits took 0.105 CPU s against 0.062 (same values to the bit).
        chunk = max(1, min(k, 1024 // max(1, n)))
        log_w = []
        for j in range(0, k, chunk):
            m = min(chunk, k - j)
            eps = torch.randn((m, *mu.shape), generator=gen, device=self.device)
            z = mu + eps * std  # m×N×z
            log_pz = -0.5 * (z.pow(2) + math.log(2 * math.pi)).sum(-1)
            log_qz = -0.5 * (eps.pow(2) + math.log(2 * math.pi)).sum(-1) - (0.5 * logvar).sum(-1)
            log_px = self._log_px(self._params(z.flatten(0, 1)), idx.repeat(m, 1, 1, 1)).view(m, n)
            log_w.append(log_px + log_pz - log_qz)
        return torch.logsumexp(torch.cat(log_w).double(), dim=0).sub(math.log(k)).float()

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        was_training = self.decoder.training
        self.decoder.eval()
        z = torch.randn(n, self.config.z_dim, generator=generator, device=generator.device).to(self.device)
        p = self._params(z)
        self.decoder.train(was_training)
        if self.kind == "categorical":
            probs = torch.softmax(p.movedim(2, -1), dim=-1)  # N×C×H×W×L
            if self.config.sample_mode == "mode":
                idx = probs.argmax(-1)
            else:
                flat = probs.reshape(-1, self.L).to(generator.device)
                idx = torch.multinomial(flat, 1, generator=generator).view(probs.shape[:-1])
        else:
            log_pi, mu, log_s = (t.movedim(2, -1).to(generator.device) for t in self._split_logistic(p))
            if self.config.sample_mode == "mode":
                x = mu.gather(-1, log_pi.argmax(-1, keepdim=True)).squeeze(-1)
            else:
                comp = torch.multinomial(log_pi.exp().reshape(-1, log_pi.shape[-1]), 1, generator=generator).view(*log_pi.shape[:-1], 1)
                u = torch.rand(comp.shape, generator=generator, device=generator.device).clamp(1e-5, 1 - 1e-5)
                x = (mu.gather(-1, comp) + log_s.gather(-1, comp).exp() * (u.log() - (-u).log1p())).squeeze(-1)
            # Rounding to the nearest bin centre is exactly the discretisation the likelihood uses.
            idx = torch.round((x.clamp(-1.0, 1.0) + 1.0) * ((self.L - 1) / 2.0)).long()
        return from_levels(idx, self.L).to(self.device)
