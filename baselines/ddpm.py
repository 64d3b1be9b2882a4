"""ddpm: a denoising diffusion model, a small U-Net predicting the noise ε, sampled with few DDIM steps.

References:
- J. Ho, A. Jain and P. Abbeel, "Denoising Diffusion Probabilistic Models", NeurIPS 2020.
  https://arxiv.org/abs/2006.11239 (ε-prediction, the simple loss, the linear schedule, the variational bound
  with its discretised Gaussian decoder L_0).
- A. Nichol and P. Dhariwal, "Improved Denoising Diffusion Probabilistic Models", ICML 2021.
  https://arxiv.org/abs/2102.09672 (the cosine schedule; the bound estimated from sampled timesteps).
- J. Song, C. Meng and S. Ermon, "Denoising Diffusion Implicit Models", ICLR 2021.
  https://arxiv.org/abs/2010.02502 (DDIM: few-step sampling from the same trained network).
- E. Xie et al., "DiffFit: Unlocking Transferability of Large Diffusion Models via Simple Parameter-Efficient
  Fine-Tuning", ICCV 2023. https://arxiv.org/abs/2304.06648 (the per-block scale γ, initialised to 1, that
  bias/norm/scale-only fine-tuning trains).

Time convention (the `denoiser` part's contract): t is a float in [0, 1], the fraction of the diffusion
(0 = data, 1 = pure noise); step i of the T discrete steps is t = i / T. The noisy image is
x_t = sqrt(ᾱ(t))·x_0 + sqrt(1 - ᾱ(t))·ε with x_0 in [-1, 1] (Batch.x) and ε ~ N(0, I), and the network
returns its prediction of ε, the same shape as x_t.

Training: the simple loss ||ε - ε̂(x_t, t)||² at a uniformly drawn step (Ho et al.), Adam, an EMA of the
weights (with warm-up, so a short budget still gets an average of its own steps) used to sample and score.

Evaluation stays cheap, so it never dominates a short run:
- sample(): DDIM (η = 0 by default) with `sample_steps` network passes, x̂_0 clipped to [-1, 1] at each step.
- log_likelihood(): the variational bound L_T + Σ_{i=2..T} L_{i-1} + L_0 in nats (likelihood_exact = False,
  so bpd is an upper bound). L_T is in closed form, L_0 is the discretised Gaussian decoder over the data's
  levels (edge bins take the tails), and the sum of the T - 1 KL terms is estimated without bias from
  `bound_steps` timesteps, one drawn in each of `bound_steps` log-spaced strata of 2..T (small steps carry
  most of the bound, so they are sampled densely), weighted by the stratum's size. All strata go through
  the network in one batch; the draws come from a fixed-seed generator (reproducible, global RNG untouched).

Parts: "denoiser" (the whole U-Net, role `denoiser`) and "encoder" (the U-Net's down path and middle block at
t = 0, image → flattened bottleneck features), which share their weights; a strategy that pretrains the
encoder initialises the denoiser's down path.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from bench.adapter.base import Adapter, Batch, DataInfo, Part, adam, to_uint8

# --- noise schedules -------------------------------------------------------------------------------
LOG_SNR_MIN = -10.0  # ᾱ_T ≈ 4.5e-5: the last step keeps almost nothing of the data (L_T ≈ 0)


def cosine_alpha_bar(t: torch.Tensor, sigma_min: float) -> torch.Tensor:
    """ᾱ(t), t in [0, 1]: the cosine schedule of Nichol & Dhariwal written in log-SNR, λ(t) = -2 log tan(πt/2),
    truncated to [LOG_SNR_MIN, λ_max] with λ_max the log-SNR of noise std `sigma_min` at step 1 (as in
    Kingma et al.'s VDM and Hoogeboom et al.'s simple diffusion). Steps finer than the pixel grid add KL terms
    the decoder L_0 would otherwise resolve, so the bound is tighter when σ_min sits below half a bin."""
    lam_max = math.log((1 - sigma_min**2) / sigma_min**2)
    a, b = math.atan(math.exp(-lam_max / 2)), math.atan(math.exp(-LOG_SNR_MIN / 2))
    lam = -2 * torch.log(torch.tan(a + t * (b - a)))
    return torch.sigmoid(lam)


def alpha_bars(schedule: str, steps: int, sigma_min: float) -> torch.Tensor:
    """ᾱ_i for i = 0..T (float64, ᾱ_0 = 1). Linear: Ho et al.'s β from 1e-4 to 0.02, rescaled to T steps."""
    if schedule == "cosine":
        t = torch.arange(1, steps + 1, dtype=torch.float64) / steps
        t = (t - 1 / steps) / (1 - 1 / steps)  # step 1 at λ_max, step T at LOG_SNR_MIN
        return torch.cat([torch.ones(1, dtype=torch.float64), cosine_alpha_bar(t, sigma_min)])
    scale = 1000.0 / steps
    beta = torch.linspace(1e-4 * scale, 0.02 * scale, steps, dtype=torch.float64).clamp(max=0.999)
    return torch.cat([torch.ones(1, dtype=torch.float64), torch.cumprod(1 - beta, 0)])


# --- the U-Net ---------------------------------------------------------------------------------------
def _groups(ch: int) -> int:
    return math.gcd(8, ch)


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal features of 1000·t (the scale of Ho et al.'s integer steps), N → N×dim."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = 1000.0 * t.float()[:, None] * freqs[None]
    return torch.cat([args.sin(), args.cos()], 1)


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv twice, the time embedding added in between, a residual branch scaled by γ (DiffFit)."""

    def __init__(self, cin: int, cout: int, tdim: int):
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(_groups(cin), cin), nn.Conv2d(cin, cout, 3, 1, 1)
        self.temb = nn.Linear(tdim, cout)
        self.norm2, self.conv2 = nn.GroupNorm(_groups(cout), cout), nn.Conv2d(cout, cout, 3, 1, 1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()
        self.gamma = nn.Parameter(torch.ones(1))  # 1 at init: no change to the function, a knob for DiffFit

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x))) + self.temb(temb)[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return self.skip(x) + self.gamma * h


def _levels(image_size: int) -> list[int]:
    """Resolutions of the U-Net's levels: halve (rounding up) until the side is at most 4."""
    sizes = [image_size]
    while sizes[-1] > 4:
        sizes.append(math.ceil(sizes[-1] / 2))
    return sizes


class Level(nn.Module):
    """One down level: a residual block, then (except at the bottom) a strided conv to the next resolution."""

    def __init__(self, cin: int, cout: int, tdim: int, down: bool):
        super().__init__()
        self.res = ResBlock(cin, cout, tdim)
        self.down = nn.Conv2d(cout, cout, 3, 2, 1) if down else None


class UpLevel(nn.Module):
    def __init__(self, cin: int, cskip: int, cout: int, tdim: int):
        super().__init__()
        self.res = ResBlock(cin + cskip, cout, tdim)
        self.up = nn.Conv2d(cout, cout, 3, 1, 1)


class UNet(nn.Module):
    """ε̂(x_t, t): x_t N×C×H×W, t float N in [0, 1] → N×C×H×W. Channels width·(1, 2, 2, ...) per level."""

    def __init__(self, channels: int, image_size: int, width: int, tdim: int):
        super().__init__()
        self.sizes = _levels(image_size)
        chans = [width * min(2, 1 + i) for i in range(len(self.sizes))]
        self.tdim = tdim
        self.time = nn.Sequential(nn.Linear(tdim, tdim), nn.SiLU(), nn.Linear(tdim, tdim))
        self.stem = nn.Conv2d(channels, width, 3, 1, 1)
        cin = [width, *chans[:-1]]
        self.downs = nn.ModuleList(Level(cin[i], chans[i], tdim, i < len(chans) - 1) for i in range(len(chans)))
        self.mid = ResBlock(chans[-1], chans[-1], tdim)
        self.ups = nn.ModuleList(
            UpLevel(chans[i] if i == len(chans) - 1 else chans[i + 1], chans[i], chans[i], tdim) for i in reversed(range(len(chans)))
        )
        self.out_norm = nn.GroupNorm(_groups(width), width)
        self.out = nn.Conv2d(width, channels, 3, 1, 1)
        nn.init.zeros_(self.out.weight)  # ε̂ = 0 at init: the loss starts at 1 per dimension
        nn.init.zeros_(self.out.bias)
        self.features = chans[-1] * self.sizes[-1] ** 2

    def embed(self, t: torch.Tensor, n: int, device: torch.device) -> torch.Tensor:
        t = torch.as_tensor(t, device=device, dtype=torch.float32).reshape(-1).expand(n)
        return self.time(timestep_embedding(t, self.tdim))

    def encode(self, x: torch.Tensor, temb: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        h, skips = self.stem(x), []
        for level in self.downs:
            h = level.res(h, temb)
            skips.append(h)
            if level.down is not None:
                h = level.down(h)
        return self.mid(h, temb), skips

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        temb = self.embed(t, x.shape[0], x.device)
        h, skips = self.encode(x, temb)
        for i, up in enumerate(self.ups):
            skip = skips[-1 - i]
            if h.shape[-1] != skip.shape[-1]:  # nearest ×2, cropped to the skip's (possibly odd) size
                h = F.interpolate(h, scale_factor=2, mode="nearest")[..., : skip.shape[-2], : skip.shape[-1]]
            h = up.up(up.res(torch.cat([h, skip], 1), temb)) if i < len(self.ups) - 1 else up.res(torch.cat([h, skip], 1), temb)
        return self.out(F.silu(self.out_norm(h)))

    @property
    def blocks(self) -> list[nn.Module]:
        return [nn.ModuleList([self.time, self.stem]), *self.downs, self.mid, *self.ups, nn.ModuleList([self.out_norm, self.out])]


class DownPath(nn.Module):
    """The U-Net's encoder half as an `encoder` part: clean image → flattened bottleneck at t = 0.

    It holds the U-Net's own time MLP, stem, down levels and middle block (shared, not copied), so its
    state dict is exactly those weights and pretraining it initialises them inside the denoiser."""

    def __init__(self, unet: UNet):
        super().__init__()
        self.time, self.stem, self.downs, self.mid = unet.time, unet.stem, unet.downs, unet.mid
        self._unet = [unet]  # a list: not registered, so the up path stays out of this part's state dict

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        unet = self._unet[0]
        h, _ = unet.encode(x, unet.embed(torch.zeros(()), x.shape[0], x.device))
        return h.flatten(1)

    @property
    def blocks(self) -> list[nn.Module]:
        return [nn.ModuleList([self.time, self.stem]), *self.downs, self.mid]


class DDPM(Adapter):
    family = "diffusion"
    likelihood_exact = False  # the variational bound, estimated from sampled timesteps

    @dataclass
    class Config:
        width: int = 32  # channels at full resolution, doubled below it
        time_dim: int = 64
        steps: int = 1000  # T, the discrete diffusion steps (training and the bound)
        schedule: Literal["cosine", "linear"] = "cosine"
        sigma_min: float = 0.0  # cosine: noise std at step 1; 0 = a quarter of the pixel grid's spacing, 0.5/(levels-1)
        lr: float = 2e-3
        ema: float = 0.999  # EMA decay of the weights used to sample and score (warm-up: min(ema, (1+s)/(10+s)))
        sample_steps: int = 20  # DDIM steps in sample()
        eta: float = 0.0  # DDIM stochasticity: 0 deterministic, 1 ancestral (DDPM-like)
        bound_steps: int = 16  # timesteps drawn per image to estimate the bound's sum of KL terms

    def __init__(self, config: Config, info: DataInfo, device: torch.device):
        super().__init__(config, info, device)
        c = config
        if c.schedule not in ("cosine", "linear"):
            raise ValueError(f"schedule must be cosine or linear, got {c.schedule!r}")
        if c.steps < 2 or c.sample_steps < 1 or not 1 <= c.bound_steps < c.steps:
            raise ValueError("need steps >= 2, sample_steps >= 1 and 1 <= bound_steps < steps")
        self.net = UNet(info.channels, info.image_size, c.width, c.time_dim).to(self.device)
        self.net_ema = copy.deepcopy(self.net).requires_grad_(False)
        self.opt = adam(self.net.parameters(), lr=c.lr, device=self.device)
        self.sigma_min = c.sigma_min or 0.5 / (info.levels - 1)
        ab = alpha_bars(c.schedule, c.steps, self.sigma_min)
        self.bound_seed = 0  # the bound's draws (timesteps and noise): fixed, so evaluation is reproducible
        self.ab64 = ab  # float64 on the host: the bound's coefficients need the precision
        self.ab = ab.float().to(self.device)

    def parts(self) -> dict[str, Part]:
        down = DownPath(self.net)
        return {
            "denoiser": Part(self.net, "denoiser", blocks=self.net.blocks, alpha_bar=self._alpha_bar),
            "encoder": Part(down, "encoder", features=self.net.features, blocks=down.blocks),
        }

    def _alpha_bar(self, t: torch.Tensor) -> torch.Tensor:
        """ᾱ(t) for t in [0, 1] (interpolated between the discrete steps), for generic denoising tasks."""
        x = t.float().clamp(0, 1) * self.config.steps
        lo = x.floor().long().clamp(max=self.config.steps - 1)
        w = x - lo
        ab = self.ab.to(t.device)
        return ab[lo] * (1 - w) + ab[lo + 1] * w

    # --- training ------------------------------------------------------------------------------------
    def train_step(self, batch: Batch, step: int) -> dict[str, torch.Tensor]:
        x0, n = batch.x, len(batch)
        i = torch.randint(1, self.config.steps + 1, (n,), device=self.device)
        ab = self.ab[i].view(n, 1, 1, 1)
        eps = torch.randn_like(x0)
        pred = self.net(ab.sqrt() * x0 + (1 - ab).sqrt() * eps, i.float() / self.config.steps)
        loss = F.mse_loss(pred.float(), eps)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        decay = min(self.config.ema, (1 + step) / (10 + step))
        with torch.no_grad():
            for pe, p in zip(self.net_ema.parameters(), self.net.parameters(), strict=True):
                pe.lerp_(p, 1 - decay)
        return {"loss": loss.detach()}

    # --- sampling ------------------------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        c, net = self.config, self.net_ema
        was = net.training
        net.eval()
        seq = torch.linspace(c.steps, 0, c.sample_steps + 1).round().long().tolist()
        x = torch.randn(n, *self.info.shape, generator=generator, device=generator.device).to(self.device)
        for i, j in zip(seq[:-1], seq[1:], strict=True):
            ab_i, ab_j = self.ab[i], self.ab[j]
            eps = net(x, torch.full((n,), i / c.steps, device=self.device)).float()
            x0 = ((x - (1 - ab_i).sqrt() * eps) / ab_i.sqrt()).clamp(-1, 1)
            eps = (x - ab_i.sqrt() * x0) / (1 - ab_i).sqrt()  # consistent with the clipped x̂_0
            if j == 0:
                x = x0
                break
            sigma = c.eta * ((1 - ab_j) / (1 - ab_i) * (1 - ab_i / ab_j)).clamp(min=0).sqrt()
            x = ab_j.sqrt() * x0 + (1 - ab_j - sigma**2).clamp(min=0).sqrt() * eps
            if c.eta > 0:
                x = x + sigma * torch.randn(x.shape, generator=generator, device=generator.device).to(self.device)
        net.train(was)
        return to_uint8(x, self.info.levels)

    # --- the variational bound -----------------------------------------------------------------------
    def _strata(self) -> list[tuple[int, int]]:
        """`bound_steps` log-spaced, non-empty ranges [lo, hi) covering 2..T (one step each when bound_steps = T - 1)."""
        T, k = self.config.steps, self.config.bound_steps
        raw = torch.logspace(math.log10(2), math.log10(T + 1), k + 1, dtype=torch.float64).tolist()
        edges = [2]
        for j in range(1, k):  # strictly increasing, leaving room for the strata still to come
            edges.append(min(max(int(round(raw[j])), edges[-1] + 1), T + 1 - (k - j)))
        edges.append(T + 1)
        return list(zip(edges[:-1], edges[1:], strict=False))

    def _decoder_log_prob(self, x0: torch.Tensor, mean: torch.Tensor, std: float) -> torch.Tensor:
        """Ho et al.'s discretised Gaussian L_0 over the data's levels: log P(x_0 | x_1) per example."""
        half = 1.0 / (self.info.levels - 1)  # half a bin in [-1, 1] units
        upper = torch.where(x0 > 1 - half / 2, torch.full_like(x0, math.inf), x0 + half)
        lower = torch.where(x0 < -1 + half / 2, torch.full_like(x0, -math.inf), x0 - half)
        normal = torch.distributions.Normal(mean.double(), std)
        cdf_hi, cdf_lo = normal.cdf(upper.double()), normal.cdf(lower.double())
        # The difference of CDFs underflows far in a tail: use log-CDF there (log Φ of the nearer edge).
        mass = (cdf_hi - cdf_lo).clamp(min=0)
        z_hi, z_lo = (upper.double() - mean.double()) / std, (lower.double() - mean.double()) / std
        tail = torch.where(z_lo > 0, _log_ndtr(-z_lo), _log_ndtr(z_hi))
        logp = torch.where(mass > 1e-12, mass.clamp(min=1e-300).log(), tail)
        return logp.flatten(1).sum(1)

    @torch.no_grad()
    def log_likelihood(self, batch: Batch) -> torch.Tensor:
        net, T = self.net_ema, self.config.steps
        x0, n = batch.x.to(self.device), len(batch)
        ab = self.ab64
        gen = torch.Generator(device="cpu").manual_seed(self.bound_seed)
        # L_T: KL(q(x_T | x_0) || N(0, I)), closed form per dimension.
        m, v = ab[T].sqrt() * x0.double(), 1 - ab[T]
        l_T = 0.5 * (m.pow(2) + v - 1 - math.log(v)).flatten(1).sum(1)
        # One network pass for t = 1 (L_0) and one drawn step per stratum (the KL sum), all in one batch.
        strata = self._strata()
        picks = [1] + [int(torch.randint(lo, hi, (1,), generator=gen)) for lo, hi in strata]
        weights = [hi - lo for lo, hi in strata]
        idx = torch.tensor(picks, dtype=torch.long).repeat_interleave(n)
        eps = torch.randn((len(picks) * n, *x0.shape[1:]), generator=gen).to(self.device)
        xr = x0.repeat(len(picks), 1, 1, 1)
        abi = ab[idx].float().to(self.device).view(-1, 1, 1, 1)
        xt = abi.sqrt() * xr + (1 - abi).sqrt() * eps
        pred = net(xt, (idx.float() / T).to(self.device)).double()
        err = (eps.double() - pred).pow(2).flatten(1).sum(1).view(len(picks), n)
        # L_{i-1} = ||μ̃ - μ_θ||² / (2 β̃_i) = β_i² / (2 β̃_i α_i (1 - ᾱ_i)) · ||ε - ε̂||², with σ_i² = β̃_i.
        l_sum = torch.zeros(n, dtype=torch.float64, device=self.device)
        for k, (i, w) in enumerate(zip(picks[1:], weights, strict=True), start=1):
            beta = 1 - ab[i] / ab[i - 1]
            beta_tilde = beta * (1 - ab[i - 1]) / (1 - ab[i])
            coef = beta**2 / (2 * beta_tilde * (1 - beta) * (1 - ab[i]))
            l_sum += w * float(coef) * err[k]
        # L_0: the decoder p(x_0 | x_1) = discretised N(μ_θ(x_1, 1), β_1).
        beta1 = float(1 - ab[1])
        x1 = xt[:n].double()
        mean = (x1 - beta1 / math.sqrt(1 - float(ab[1])) * pred[:n]) / math.sqrt(1 - beta1)
        l_0 = -self._decoder_log_prob(x0.double(), mean, math.sqrt(beta1))
        return -(l_T + l_sum + l_0).float()


def _log_ndtr(z: torch.Tensor) -> torch.Tensor:
    """log Φ(z), accurate far into the lower tail."""
    return torch.special.log_ndtr(z)
