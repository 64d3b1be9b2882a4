"""realnvp: a RealNVP normalising flow on dequantised pixels, with a bound on the discrete likelihood.

References:
- L. Dinh, J. Sohl-Dickstein and S. Bengio, "Density estimation using Real NVP", ICLR 2017.
  https://arxiv.org/abs/1605.08803 (affine coupling layers, checkerboard and channel masks, squeezing, the
  logit transform of the pixels).
- L. Theis, A. van den Oord and M. Bethge, "A note on the evaluation of generative models", ICLR 2016.
  https://arxiv.org/abs/1511.01844 (uniform dequantisation: the continuous log-density of x + u, u ~ U[0, 1),
  bounds the discrete log-likelihood from below).
- J. Ho, X. Chen, A. Srinivas, Y. Duan and P. Abbeel, "Flow++", ICML 2019. https://arxiv.org/abs/1902.00275
  (the importance-weighted form of that bound, with several dequantisation draws).

Pixels: level index k in 0..L-1 (L = the data's levels) becomes y = (k + u) / L in (0, 1), then
z = logit(α + (1 - 2α)·y). The flow maps z through `scales` stages of three checkerboard couplings, a squeeze
(2×2 pixels → 4 channels, where the side is even) and three channel couplings, to a standard normal.
Each coupling's scale is s_max·tanh(·) of a zero-initialised conv net, so the flow starts as the identity.

Likelihood: log P(k) = log ∫_bin p(y) dy ≥ log (1/K) Σ_j p(y_j) − D·log L with K uniform draws y_j in the
bin (K = `iw_samples`; K = 1 is Jensen's bound). So `log_likelihood` is a lower bound on the discrete
log-likelihood in nats (likelihood_exact = False, bpd an upper bound), never the continuous density, and a
uniform flow scores exactly log2(L) bits per dimension. Its draws come from a fixed-seed generator.

sample(): z ~ N(0, temperature²·I), inverted through the flow, then floored to the bin it lands in.

Parts: none. A coupling network reads half of the (logit-space, masked) pixels and writes a scale and shift
for the other half; no generic role (an encoder reads whole images in [-1, 1], a decoder writes images from a
latent) describes that, so a part-wise task would train it on an input it never sees. Only whole-model
transfer (task `generative`) applies; part tasks are recorded as n/a with that reason.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from bench.adapter.base import Adapter, Batch, DataInfo, Part, adam, from_levels


class CouplingNet(nn.Module):
    """cin → 2·cout (log-scale and shift), 3×3 convs; the last one zero-initialised (identity coupling at init)."""

    def __init__(self, cin: int, cout: int, hidden: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, hidden, 3, 1, 1), nn.ReLU(), nn.Conv2d(hidden, hidden, 1), nn.ReLU(), nn.Conv2d(hidden, 2 * cout, 3, 1, 1)
        )
        nn.init.zeros_(self.body[-1].weight)
        nn.init.zeros_(self.body[-1].bias)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s, t = self.body(x).chunk(2, dim=1)
        return s, t


class Coupling(nn.Module):
    """Affine coupling: the masked half is kept, the other half is scaled and shifted by functions of it.

    kind "checker": a spatial checkerboard mask (parity 0 or 1) over all channels, the mask fed to the net too;
    kind "channel": the first or second half of the channels is kept."""

    def __init__(self, channels: int, hidden: int, kind: str, parity: int):
        super().__init__()
        self.kind, self.parity, self.channels = kind, parity, channels
        if kind == "checker":
            self.net = CouplingNet(channels + 1, channels, hidden)
        else:
            half = channels // 2
            self.net = CouplingNet(half, channels - half, hidden)
        self.scale = nn.Parameter(torch.ones(1))  # s = scale·tanh(raw): bounded log-scales keep training stable

    def _mask(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        ij = torch.arange(h, device=x.device).view(h, 1) + torch.arange(w, device=x.device).view(1, w)
        return ((ij + self.parity) % 2).to(x.dtype).expand(1, 1, h, w)

    def _st(self, keep: torch.Tensor, mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        inp = keep if mask is None else torch.cat([keep, mask.expand(keep.shape[0], 1, *keep.shape[-2:])], 1)
        s, t = self.net(inp)
        return self.scale * torch.tanh(s), t

    def forward(self, x: torch.Tensor, reverse: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """(y, log|det J| per example); reverse=True inverts (its log-det is that of the inverse)."""
        if self.kind == "checker":
            b = self._mask(x)
            s, t = self._st(x * b, b)
            s, t = s * (1 - b), t * (1 - b)
            y = x * torch.exp(-s) - t * torch.exp(-s) if reverse else x * torch.exp(s) + t
            y = x * b + y * (1 - b)
            ld = s.flatten(1).sum(1)
            return y, -ld if reverse else ld
        half = self.channels // 2
        a, c = (x[:, :half], x[:, half:]) if self.parity == 0 else (x[:, self.channels - half :], x[:, : self.channels - half])
        s, t = self._st(a, None)
        c = (c - t) * torch.exp(-s) if reverse else c * torch.exp(s) + t
        y = torch.cat([a, c], 1) if self.parity == 0 else torch.cat([c, a], 1)
        ld = s.flatten(1).sum(1)
        return y, -ld if reverse else ld


def squeeze(x: torch.Tensor) -> torch.Tensor:
    n, c, h, w = x.shape
    return x.view(n, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4).reshape(n, 4 * c, h // 2, w // 2)


def unsqueeze(x: torch.Tensor) -> torch.Tensor:
    n, c, h, w = x.shape
    return x.view(n, c // 4, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3).reshape(n, c // 4, 2 * h, 2 * w)


class Flow(nn.Module):
    """The bijection z (logit space, N×C×H×W) → u (N×C'×H'×W', standard normal under the model)."""

    def __init__(self, channels: int, image_size: int, hidden: int, scales: int):
        super().__init__()
        self.steps = nn.ModuleList()
        c, side = channels, image_size
        for _ in range(scales):
            for p in (0, 1, 0):
                self.steps.append(Coupling(c, hidden, "checker", p))
            if side % 2:
                break  # an odd side cannot be squeezed: the remaining capacity is spent at this resolution
            self.steps.append(nn.Identity())  # a squeeze marker (no weights)
            c, side = 4 * c, side // 2
            for p in (0, 1, 0):
                self.steps.append(Coupling(c, hidden, "channel", p))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ld = torch.zeros(x.shape[0], device=x.device, dtype=x.dtype)
        for step in self.steps:
            if isinstance(step, nn.Identity):
                x = squeeze(x)
            else:
                x, d = step(x)
                ld = ld + d
        return x, ld

    def inverse(self, u: torch.Tensor) -> torch.Tensor:
        for step in reversed(self.steps):
            u = unsqueeze(u) if isinstance(step, nn.Identity) else step(u, reverse=True)[0]
        return u

    def latent_shape(self, shape: tuple[int, int, int]) -> tuple[int, int, int]:
        c, h, w = shape
        for step in self.steps:
            if isinstance(step, nn.Identity):
                c, h, w = 4 * c, h // 2, w // 2
        return c, h, w


class RealNVP(Adapter):
    family = "flow"
    likelihood_exact = False  # dequantised: a lower bound on the discrete log-likelihood

    @dataclass
    class Config:
        hidden: int = 64  # channels of each coupling network
        scales: int = 2  # (3 checkerboard couplings, squeeze, 3 channel couplings) per scale
        alpha: float = 0.05  # logit transform: y ↦ logit(α + (1 - 2α)·y), away from 0 and 1
        lr: float = 1e-3
        iw_samples: int = 4  # dequantisation draws per image in the log_likelihood bound
        temperature: float = 1.0  # std of the prior when sampling (1: the model's own samples)

    def __init__(self, config: Config, info: DataInfo, device: torch.device):
        super().__init__(config, info, device)
        c = config
        if not 0 < c.alpha < 0.5 or c.iw_samples < 1 or c.scales < 1 or c.temperature <= 0:
            raise ValueError("need 0 < alpha < 0.5, iw_samples >= 1, scales >= 1 and temperature > 0")
        self.flow = Flow(info.channels, info.image_size, c.hidden, c.scales).to(self.device)
        self.opt = adam(self.flow.parameters(), lr=c.lr, device=self.device)

    def parts(self) -> dict[str, Part]:
        return {}  # see the module docstring: no generic role fits a coupling network

    def _log_density(self, idx: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """log p(y) per example, y = (idx + u) / L: the continuous density of the dequantised pixels."""
        a, L = self.config.alpha, self.info.levels
        y = (idx.float() + u) / L
        p = a + (1 - 2 * a) * y
        z = torch.log(p) - torch.log1p(-p)
        ld_logit = (math.log(1 - 2 * a) - torch.log(p) - torch.log1p(-p)).flatten(1).sum(1)
        out, ld = self.flow(z)
        log_prior = -0.5 * (out.pow(2) + math.log(2 * math.pi)).flatten(1).sum(1)
        return log_prior + ld + ld_logit

    def train_step(self, batch: Batch, step: int) -> dict[str, torch.Tensor]:
        idx = batch.tokens()
        logp = self._log_density(idx, torch.rand(idx.shape, device=self.device))
        dims = self.info.dims
        # Negative bound in nats per dimension: -(log p(y) - D log L) / D.
        loss = -(logp.float().mean() - dims * math.log(self.info.levels)) / dims
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(self.flow.parameters(), 100.0)  # a rare huge coupling gradient must not blow up the flow
        self.opt.step()
        return {"loss": loss.detach()}

    @torch.no_grad()
    def log_likelihood(self, batch: Batch) -> torch.Tensor:
        idx, k = batch.tokens(), self.config.iw_samples
        gen = torch.Generator(device="cpu").manual_seed(0)
        u = torch.rand((k, *idx.shape), generator=gen).to(self.device)
        logp = self._log_density(idx.repeat(k, 1, 1, 1), u.flatten(0, 1)).double().view(k, len(batch))
        bound = torch.logsumexp(logp, 0) - math.log(k) - self.info.dims * math.log(self.info.levels)
        # A discrete probability is at most 1; a bound above 0 can only be rounding, never information.
        return bound.clamp(max=0.0).float()

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        shape = self.flow.latent_shape(self.info.shape)
        u = torch.randn((n, *shape), generator=generator, device=generator.device).to(self.device) * self.config.temperature
        z = self.flow.inverse(u)
        a, L = self.config.alpha, self.info.levels
        y = (torch.sigmoid(z) - a) / (1 - 2 * a)
        idx = torch.floor(y * L).clamp(0, L - 1).long()
        return from_levels(idx, L)
