"""The transformer generator of transformer_gan (`generator: transformer`).

References:
- Jiang, Chang and Wang, "TransGAN: Two Pure Transformers Can Make One Strong GAN", 2021.
  https://arxiv.org/abs/2102.07074 (a transformer over a token grid, up-sampled to pixels).
- Lee et al., "ViTGAN: Training GANs with Vision Transformers", 2021. https://arxiv.org/abs/2107.04589
  (self-modulated LayerNorm; an implicit-neural-representation output head with Fourier features).
- Peebles and Xie, "Scalable Diffusion Models with Transformers" (DiT), 2022. https://arxiv.org/abs/2212.09748
  (adaLN: the latent's shift and scale of every block's layer norms, zero-initialised).
- Zhang et al., "StyleSwin", 2022. https://arxiv.org/abs/2112.10762 (a conv-free body; a local output stage).

The latent becomes (size/patch)² tokens (a linear layer plus learned position embeddings), transformer blocks
whose norms the latent modulates mix them, and a head turns the token grid into pixels:
- `conv`: tokens are laid out as a (dim, g, g) map, up-sampled by the patch size and decoded by two 3×3 convs.
  Neighbouring patches share pixels through the convs, so no seam falls on the patch grid.
- `inr`: ViTGAN's head: every pixel of a patch is an MLP of its token and of Fourier features of the pixel's
  position inside the patch (per-patch; seams are possible, as in ViTGAN).
- `linear`: each token projected to its patch's pixels, then one 3×3 conv across the seams.

The output is linear by default, as StyleGAN's (images are clamped when quantised): with a tanh, the conv-head
generator fell onto an all-black image at the smoke budget (fid_domain 107.6 on seeds 100 and 101, loss_d 0
from step 250): the background is -1, where tanh saturates and the gradient dies. After 200 steps on digits
(seed 100, 2 D steps, batch 32; per-pixel std over latents / D accuracy): inr + tanh 0.00 / 1.00 (all black),
linear + tanh 0.53 / 0.95, conv without tanh 0.43 / 0.77, conv + tanh with the non-saturating loss 0.46 / 0.69.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from timm.models.vision_transformer import Block
from torch import nn

Head = Literal["conv", "inr", "linear"]
HEADS: tuple[str, ...] = ("conv", "inr", "linear")


def _modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


class LatentEmbed(nn.Module):
    """z → (initial tokens, style vector w of width dim)."""

    def __init__(self, z_dim: int, tokens: int, dim: int):
        super().__init__()
        self.tokens, self.dim = tokens, dim
        self.proj = nn.Linear(z_dim, tokens * dim)
        self.pos = nn.Parameter(torch.randn(1, tokens, dim) * 0.02)
        self.mapping = nn.Sequential(nn.Linear(z_dim, dim), nn.LeakyReLU(0.2), nn.Linear(dim, dim))

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.proj(z).view(-1, self.tokens, self.dim) + self.pos, self.mapping(z)


class ModulatedBlock(nn.Module):
    """A timm Block whose two layer norms are shifted and scaled by w (zero-initialised: starts as the plain block).

    The inner Block keeps timm's parameter names, so a generic pretraining task can train `block` alone."""

    def __init__(self, block: Block, dim: int):
        super().__init__()
        self.block, self.mod = block, nn.Linear(dim, 4 * dim)
        nn.init.zeros_(self.mod.weight), nn.init.zeros_(self.mod.bias)

    def forward(self, h: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        b, (shift1, scale1, shift2, scale2) = self.block, self.mod(w).chunk(4, -1)
        h = h + b.ls1(b.attn(_modulate(b.norm1(h), shift1, scale1)))
        return h + b.ls2(b.mlp(_modulate(b.norm2(h), shift2, scale2)))


class _ModulatedNorm(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.norm, self.mod = nn.LayerNorm(dim), nn.Linear(dim, 2 * dim)
        nn.init.zeros_(self.mod.weight), nn.init.zeros_(self.mod.bias)

    def forward(self, h: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return _modulate(self.norm(h), *self.mod(w).chunk(2, -1))


class ConvHead(nn.Module):
    """Token grid → (dim, g, g) map → nearest up-sampling by `patch` → 3×3 conv, LeakyReLU → 3×3 conv to pixels."""

    def __init__(self, dim: int, channels: int, grid: int, patch: int, width: int):
        super().__init__()
        self.grid, self.patch = grid, patch
        self.norm = _ModulatedNorm(dim)
        self.body = nn.Sequential(nn.Conv2d(dim, width, 3, 1, 1), nn.LeakyReLU(0.2), nn.Conv2d(width, channels, 3, 1, 1))

    def forward(self, h: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        n, g = h.shape[0], self.grid
        fmap = self.norm(h, w).transpose(1, 2).reshape(n, -1, g, g)
        if self.patch > 1:
            fmap = F.interpolate(fmap, scale_factor=self.patch, mode="nearest")
        return self.body(fmap)


class INRHead(nn.Module):
    """ViTGAN's implicit neural representation: pixel = MLP(token's features + Fourier features of its position)."""

    def __init__(self, dim: int, channels: int, grid: int, patch: int, width: int, bands: int = 4):
        super().__init__()
        self.grid, self.patch, self.channels = grid, patch, channels
        self.norm = _ModulatedNorm(dim)
        self.token = nn.Linear(dim, width)
        # Positions inside a patch in [-1, 1]; sin/cos at octave frequencies (fixed, as NeRF's encoding).
        u = torch.linspace(-1, 1, patch) if patch > 1 else torch.zeros(1)
        yy, xx = torch.meshgrid(u, u, indexing="ij")
        pos = torch.stack([yy.flatten(), xx.flatten()], -1)  # (p*p, 2)
        freq = (2.0 ** torch.arange(bands)) * math.pi / 2
        ang = (pos.unsqueeze(-1) * freq).flatten(1)  # (p*p, 2*bands)
        self.register_buffer("fourier", torch.cat([ang.sin(), ang.cos()], -1), persistent=False)
        self.coord = nn.Linear(self.fourier.shape[1], width)
        self.out = nn.Sequential(nn.LeakyReLU(0.2), nn.Linear(width, width), nn.LeakyReLU(0.2), nn.Linear(width, channels))

    def forward(self, h: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        n, g, p, c = h.shape[0], self.grid, self.patch, self.channels
        e = self.token(self.norm(h, w)).unsqueeze(2) + self.coord(self.fourier)  # (n, g*g, p*p, width)
        pix = self.out(e)  # (n, g*g, p*p, c)
        return pix.view(n, g, g, p, p, c).permute(0, 5, 1, 3, 2, 4).reshape(n, c, g * p, g * p)


class LinearHead(nn.Module):
    """Each token → its patch's pixels, folded into the image, then a 3×3 conv across the patch seams."""

    def __init__(self, dim: int, channels: int, grid: int, patch: int):
        super().__init__()
        self.grid, self.patch, self.channels = grid, patch, channels
        self.norm = _ModulatedNorm(dim)
        self.proj = nn.Linear(dim, patch * patch * channels)
        self.conv = nn.Conv2d(channels, channels, 3, 1, 1)

    def forward(self, h: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        n, g, p, c = h.shape[0], self.grid, self.patch, self.channels
        pix = self.proj(self.norm(h, w)).view(n, g, g, c, p, p).permute(0, 3, 1, 4, 2, 5).reshape(n, c, g * p, g * p)
        return self.conv(pix)


class TransformerGenerator(nn.Module):
    """Latent (N, z_dim) → image (N, C, size, size) in [-1, 1] through a grid of transformer tokens.

    z enters twice: as the initial tokens and, through a small mapping network, as a per-block shift and scale
    of every layer norm (ViTGAN's self-modulated LayerNorm, DiT's adaLN), which keeps samples tied to their
    latent instead of collapsing onto one pattern. `blocks` are the transformer blocks alone (what a
    generative pretraining task of the blocks trains); `block_list` is every stage input-to-output (FreezeD).
    """

    def __init__(
        self,
        z_dim: int,
        channels: int,
        image_size: int,
        patch: int,
        dim: int,
        depth: int,
        heads: int,
        mlp_ratio: float = 4.0,
        head: Head = "conv",
        head_width: int = 32,
        tanh: bool = True,
    ):
        super().__init__()
        self.patch, self.grid, self.dim, self.tanh = patch, image_size // patch, dim, tanh
        self.embed = LatentEmbed(z_dim, self.grid**2, dim)
        self.blocks = nn.ModuleList(ModulatedBlock(Block(dim, heads, mlp_ratio, qkv_bias=True), dim) for _ in range(depth))
        if head == "conv":
            self.head: nn.Module = ConvHead(dim, channels, self.grid, patch, head_width)
        elif head == "inr":
            self.head = INRHead(dim, channels, self.grid, patch, head_width)
        else:
            self.head = LinearHead(dim, channels, self.grid, patch)

    @property
    def block_list(self) -> list[nn.Module]:
        return [self.embed, *self.blocks, self.head]

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h, w = self.embed(z)
        for blk in self.blocks:
            h = blk(h, w)
        out = self.head(h, w)
        return torch.tanh(out) if self.tanh else out
