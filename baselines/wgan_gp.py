"""wgan_gp: a Wasserstein GAN with gradient penalty, on the cnn_gan networks.

Reference: Gulrajani, Ahmed, Arjovsky, Dumoulin and Courville, "Improved Training of Wasserstein GANs", 2017.
https://arxiv.org/abs/1704.00028 (Algorithm 1: n_critic = 5 critic steps per generator step, each on a fresh
real batch; penalty λ·(‖∇D(x̂)‖₂ − 1)² at random interpolates x̂ of real and fake, λ = 10; Adam with
lr 1e-4, β = (0, 0.9); no batch norm in the critic).

The critic's fresh real batches come from the harness (`batch.next()`): drawn on the device from the run's
seeded generator and counted in images/s. The networks are cnn_gan's, sized the same way: the generator
(decoder part, latent → image in [-1, 1]) keeps DCGAN's batch norm; the critic trunk (encoder part, image →
`feature_dim` features) has none, as the penalty needs per-example gradients; its linear head outputs the
unbounded critic value.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from baselines.cnn_gan import CNNDiscriminatorTrunk, CNNGenerator, Discriminator
from bench.adapter.base import Adapter, Batch, DataInfo, Part, adam, to_uint8


def gradient_penalty(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """E[(‖∇D(x̂)‖₂ − 1)²] at x̂ = εx + (1 − ε)x̃, one ε ~ U[0, 1] per example (Algorithm 1, lines 4–7)."""
    eps = torch.rand(real.shape[0], 1, 1, 1, device=real.device)
    mixed = (eps * real + (1 - eps) * fake).requires_grad_(True)
    (g,) = torch.autograd.grad(critic(mixed).sum(), mixed, create_graph=True)
    return (g.float().flatten(1).norm(dim=1) - 1).pow(2).mean()


class WGANGP(Adapter):
    family = "gan"

    @dataclass
    class Config:
        z_dim: int = 64
        width: int = 32  # as cnn_gan: base channels at full resolution, doubled per stage up to max_width
        max_width: int = 256
        feature_dim: int = 256  # critic trunk output (the encoder part's features)
        lr: float = 1e-4  # the paper's, for both networks
        betas: tuple[float, float] = (0.0, 0.9)
        n_critic: int = 5  # critic steps per generator step, each on a fresh real batch
        gp_weight: float = 10.0  # λ

    def __init__(self, config: Config, info: DataInfo, device: torch.device):
        super().__init__(config, info, device)
        c = config
        self.G = CNNGenerator(c.z_dim, info.channels, info.image_size, c.width, c.max_width).to(self.device)
        trunk = CNNDiscriminatorTrunk(info.channels, info.image_size, c.width, c.feature_dim, c.max_width)
        self.D = Discriminator(trunk, c.feature_dim).to(self.device)
        self.opt_g = adam(self.G.parameters(), c.lr, tuple(c.betas))
        self.opt_d = adam(self.D.parameters(), c.lr, tuple(c.betas))

    def parts(self) -> dict[str, Part]:
        return {
            "generator": Part(self.G, "decoder", latent_dim=self.config.z_dim, blocks=self.G.blocks),
            "discriminator": Part(self.D.trunk, "encoder", features=self.config.feature_dim, blocks=self.D.trunk.blocks),
        }

    def _noise(self, n: int) -> torch.Tensor:
        return torch.randn(n, self.config.z_dim, device=self.device)

    def train_step(self, batch: Batch, step: int) -> dict[str, torch.Tensor]:
        c, n = self.config, len(batch)
        real_batch = batch
        for i in range(c.n_critic):
            if i:  # Algorithm 1 samples new real data for every critic iteration
                real_batch = real_batch.next()
            real = real_batch.x
            with torch.no_grad():
                fake = self.G(self._noise(n))
            wasserstein = self.D(fake).mean() - self.D(real).mean()  # the critic minimises −(E D(x) − E D(x̃))
            loss_d = wasserstein + c.gp_weight * gradient_penalty(self.D, real, fake)
            self.opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            self.opt_d.step()
        loss_g = -self.D(self.G(self._noise(n))).mean()
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_g.step()
        # w_distance: the critic's estimate of the Wasserstein distance, the paper's learning curve.
        return {"loss_d": loss_d.detach(), "loss_g": loss_g.detach(), "w_distance": -wasserstein.detach()}

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        z = torch.randn(n, self.config.z_dim, generator=generator, device=generator.device).to(self.device)
        return to_uint8(self.G(z), self.info.levels)
