"""transformer_gan: a GAN whose discriminator is a timm Vision Transformer, so pretrained ViTs can initialise it.

References:
- Dosovitskiy et al., "An Image is Worth 16x16 Words" (ViT), 2020. https://arxiv.org/abs/2010.11929
  (the discriminator: built by `timm.create_model`, so any timm ViT name and its weights fit).
- Jiang, Chang and Wang, "TransGAN: Two Pure Transformers Can Make One Strong GAN", 2021.
  https://arxiv.org/abs/2102.07074 (a pure-transformer generator over a token grid; DiffAugment is vital).
- Lee et al., "ViTGAN: Training GANs with Vision Transformers", 2021. https://arxiv.org/abs/2107.04589
  (patch tokens decoded to pixels by a per-token linear layer; regularising the ViT discriminator).
- Zhao et al., "Differentiable Augmentation for Data-Efficient GAN Training" (DiffAugment), 2020.
  https://arxiv.org/abs/2006.10738 (translation and cutout on real and fake images alike).
- Lim and Ye, "Geometric GAN", 2017. https://arxiv.org/abs/1705.02894 (the hinge loss).
- Mescheder, Geiger and Nowozin, "Which Training Methods for GANs do actually Converge?", 2018.
  https://arxiv.org/abs/1801.04406 (the R1 penalty on real data).
- Kumari, Zhang, Shechtman and Zhu, "Ensembling Off-the-shelf Models for GAN Training" (Vision-aided GAN),
  2021. https://arxiv.org/abs/2112.09130 (why a pretrained vision backbone as discriminator is worth testing).

The generator maps a latent to (size/patch)² tokens of width `dim` (a linear layer plus learned position
embeddings), runs transformer blocks, projects each token to a patch of pixels and folds them into an image.
`generator: cnn` swaps in cnn_gan's DCGAN generator instead, to separate the discriminator's effect.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import Literal

import timm
import torch
import torch.nn.functional as F
from timm.models.vision_transformer import Block
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from baselines.cnn_gan import CNNGenerator, check_policy, diff_augment
from bench.adapter import Adapter, Batch, DataInfo, Part, adam, register_adapter, to_uint8
from bench.errors import ConfigError


def auto_patch(image_size: int) -> int:
    """Patch size giving 16-64 tokens on small images: 2 up to 16 px, 4 above; 1 when neither divides."""
    for p in ((2, 4) if image_size <= 16 else (4, 2)) + (1,):
        if image_size % p == 0:
            return p
    return 1


class TransformerGenerator(nn.Module):
    """Latent (N, z_dim) → image (N, C, size, size) in [-1, 1] through a grid of transformer tokens."""

    def __init__(self, z_dim: int, channels: int, image_size: int, patch: int, dim: int, depth: int, heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.channels, self.patch, self.grid = channels, patch, image_size // patch
        tokens = self.grid**2
        self.embed = _LatentEmbed(z_dim, tokens, dim)
        self.blocks = nn.ModuleList(Block(dim, heads, mlp_ratio, qkv_bias=True) for _ in range(depth))
        self.head = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, patch * patch * channels))

    @property
    def block_list(self) -> list[nn.Module]:
        return [self.embed, *self.blocks, self.head]

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.embed(z)
        for blk in self.blocks:
            h = blk(h)
        n, g, p, c = z.shape[0], self.grid, self.patch, self.channels
        pix = self.head(h).view(n, g, g, c, p, p).permute(0, 3, 1, 4, 2, 5).reshape(n, c, g * p, g * p)
        return torch.tanh(pix)


class _LatentEmbed(nn.Module):
    def __init__(self, z_dim: int, tokens: int, dim: int):
        super().__init__()
        self.tokens, self.dim = tokens, dim
        self.proj = nn.Linear(z_dim, tokens * dim)
        self.pos = nn.Parameter(torch.randn(1, tokens, dim) * 0.02)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.proj(z).view(-1, self.tokens, self.dim) + self.pos


class _ViTInput(nn.Module):
    """The ViT's input stage as one freezable block: patch embedding plus class/register tokens and position
    embedding. It holds the ViT's own tensors (shared, not copies), and is never registered on the adapter,
    so state dicts are unchanged."""

    def __init__(self, vit: nn.Module):
        super().__init__()
        self.patch_embed = vit.patch_embed
        extra = [getattr(vit, n, None) for n in ("cls_token", "reg_token", "pos_embed")]
        self.tokens = nn.ParameterList([p for p in extra if isinstance(p, nn.Parameter)])


def build_vit(
    name: str, channels: int, image_size: int, patch: int, dim: int, depth: int, heads: int, mlp_ratio: float, global_pool: str
) -> nn.Module:
    """A timm ViT trunk: images → (N, dim) pooled features (num_classes=0 drops timm's head)."""
    try:
        vit = timm.create_model(
            name,
            pretrained=False,
            img_size=image_size,
            patch_size=patch,
            in_chans=channels,
            embed_dim=dim,
            depth=depth,
            num_heads=heads,
            mlp_ratio=mlp_ratio,
            num_classes=0,
            global_pool=global_pool,
        )
    except (RuntimeError, TypeError) as err:
        raise ConfigError(
            f"cannot build timm model '{name}' as a ViT ({err})",
            key="adapters.transformer_gan.timm_model",
            fix="use a timm VisionTransformer name such as vit_tiny_patch16_224",
        ) from None
    if not (hasattr(vit, "patch_embed") and hasattr(vit, "blocks")):
        raise ConfigError(
            f"timm model '{name}' is not a VisionTransformer", key="adapters.transformer_gan.timm_model", fix="use a vit_* or deit_* name"
        )
    return vit


class ViTDiscriminator(nn.Module):
    """ViT trunk + linear real/fake logit."""

    def __init__(self, trunk: nn.Module):
        super().__init__()
        self.trunk, self.head = trunk, nn.Linear(trunk.num_features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk(x)).float().squeeze(1)  # float32 logits: hinge margins under bf16 autocast


@register_adapter("transformer_gan")
class TransformerGAN(Adapter):
    family = "gan"

    @dataclass
    class Config:
        timm_model: str = "vit_tiny_patch16_224"  # any timm ViT; img/patch/width/depth below override its shape
        patch: int = 0  # 0: auto (2 up to 16 px, 4 above)
        dim: int = 32  # token width of D and of the transformer G (192 matches vit_tiny's weights)
        depth: int = 2
        heads: int = 4
        mlp_ratio: float = 4.0
        # "avg": D pools every patch token, so each patch gets a direct real/fake gradient (timm's "token" also works).
        global_pool: Literal["avg", "token"] = "avg"
        generator: Literal["transformer", "cnn"] = "transformer"
        g_width: int = 32  # base channels of the CNN generator (generator: cnn)
        z_dim: int = 64
        lr_g: float = 1e-3  # high for a transformer, but the smoke budget is a few hundred steps
        lr_d: float = 1e-3
        betas: tuple[float, float] = (0.5, 0.99)  # beta1 0.5 learned 8 px digits faster than ViTGAN's 0 here
        d_steps: int = 1
        r1_gamma: float = 0.0  # R1 on augmented reals (e.g. 0.1); costs a double backward, no visible gain in 250 steps at 8 px
        augment: str = "translation"  # cutout (half the side) hides most of an 8 px digit

    def __init__(self, config: Config, info: DataInfo, device: torch.device):
        super().__init__(config, info, device)
        c = config
        check_policy(c.augment, "adapters.transformer_gan.augment")
        if c.dim % c.heads:
            raise ConfigError(
                f"dim {c.dim} is not divisible by heads {c.heads}", key="adapters.transformer_gan.heads", fix="pick heads dividing dim"
            )
        p = c.patch or auto_patch(info.image_size)
        if info.image_size % p:
            raise ConfigError(
                f"patch {p} does not divide image_size {info.image_size}",
                key="adapters.transformer_gan.patch",
                fix="use 0 (auto) or a divisor",
            )
        self.patch = p
        if c.generator == "transformer":
            self.G = TransformerGenerator(c.z_dim, info.channels, info.image_size, p, c.dim, c.depth, c.heads, c.mlp_ratio)
        else:
            self.G = CNNGenerator(c.z_dim, info.channels, info.image_size, c.g_width)
        self.G.to(self.device)
        vit = build_vit(c.timm_model, info.channels, info.image_size, p, c.dim, c.depth, c.heads, c.mlp_ratio, c.global_pool)
        self.D = ViTDiscriminator(vit).to(self.device)
        self.opt_g = adam(self.G.parameters(), c.lr_g, tuple(c.betas), device=self.device)
        self.opt_d = adam(self.D.parameters(), c.lr_d, tuple(c.betas), device=self.device)

    def parts(self) -> dict[str, Part]:
        g_blocks = self.G.block_list if isinstance(self.G, TransformerGenerator) else self.G.blocks
        vit = self.D.trunk
        return {
            "generator": Part(self.G, "decoder", dim=self.config.z_dim, blocks=g_blocks),
            "discriminator": Part(vit, "encoder", dim=vit.num_features, blocks=[_ViTInput(vit), *vit.blocks]),
        }

    def _noise(self, n: int) -> torch.Tensor:
        return torch.randn(n, self.config.z_dim, device=self.device)

    def train_step(self, batch: Batch, step: int) -> dict[str, torch.Tensor]:
        x, n, c = batch.x, len(batch), self.config
        out: dict[str, torch.Tensor] = {}
        for _ in range(c.d_steps):
            with torch.no_grad():
                fake = self.G(self._noise(n))
            real = diff_augment(x, c.augment).detach().requires_grad_(c.r1_gamma > 0)
            # R1 needs a double backward, which CUDA's flash/efficient attention kernels lack: use the math kernel.
            with sdpa_kernel(SDPBackend.MATH) if c.r1_gamma > 0 else nullcontext():
                logit_real = self.D(real)
            # Hinge loss: D only pushes logits to the ±1 margins, which bounds how hard it can overfit.
            loss_d = F.relu(1.0 - logit_real).mean() + F.relu(1.0 + self.D(diff_augment(fake, c.augment))).mean()
            if c.r1_gamma > 0:
                (g,) = torch.autograd.grad(logit_real.sum(), real, create_graph=True)
                r1 = g.float().pow(2).flatten(1).sum(1).mean()
                loss_d = loss_d + 0.5 * c.r1_gamma * r1
                out["r1"] = r1.detach()
            self.opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            self.opt_d.step()
        loss_g = -self.D(diff_augment(self.G(self._noise(n)), c.augment)).mean()
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_g.step()
        out.update(loss_d=loss_d.detach(), loss_g=loss_g.detach())
        return out

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        z = torch.randn(n, self.config.z_dim, generator=generator, device=generator.device).to(self.device)
        return to_uint8(self.G(z), self.info.levels)
