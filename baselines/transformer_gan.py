"""transformer_gan: a GAN whose discriminator is a timm Vision Transformer, so pretrained ViTs can initialise it.

References:
- Dosovitskiy et al., "An Image is Worth 16x16 Words" (ViT), 2020. https://arxiv.org/abs/2010.11929
  (the discriminator: built by `timm.create_model`, so any timm ViT name and its block weights fit).
- Lee et al., "ViTGAN: Training GANs with Vision Transformers", 2021. https://arxiv.org/abs/2107.04589
  (L2-distance self-attention and overlapping patches in the discriminator; self-modulated LayerNorm in
  the transformer generator; sampling from an exponential moving average of the generator).
- Xiao et al., "Early Convolutions Help Transformers See Better", 2021. https://arxiv.org/abs/2106.14881
  (the stride-1 conv `stem` in front of the patchify layer).
- Peebles and Xie, "Scalable Diffusion Models with Transformers" (DiT), 2022. https://arxiv.org/abs/2212.09748
  (adaLN: the latent's shift and scale of every block's layer norms, zero-initialised).
- Jiang, Chang and Wang, "TransGAN: Two Pure Transformers Can Make One Strong GAN", 2021.
  https://arxiv.org/abs/2102.07074 (a pure-transformer generator over a token grid; DiffAugment is vital).
- Karras et al., "Progressive Growing of GANs", 2017. https://arxiv.org/abs/1710.10196 (generator EMA).
- Zhao et al., "Differentiable Augmentation for Data-Efficient GAN Training" (DiffAugment), 2020.
  https://arxiv.org/abs/2006.10738 (translation and cutout on real and fake images alike).
- Lim and Ye, "Geometric GAN", 2017. https://arxiv.org/abs/1705.02894 (the hinge loss).
- Mescheder, Geiger and Nowozin, "Which Training Methods for GANs do actually Converge?", 2018.
  https://arxiv.org/abs/1801.04406 (the R1 penalty on real data).
- Kumari, Zhang, Shechtman and Zhu, "Ensembling Off-the-shelf Models for GAN Training" (Vision-aided GAN),
  2021. https://arxiv.org/abs/2112.09130 (why a pretrained vision backbone as discriminator is worth testing).

What made the ViT discriminator learn 8 px digits in a few hundred CPU steps (measured against cnn_gan with
the domain-classifier FID, one seed each): the conv stem, DiffAugment translation (without it D wins within
100 steps and the generator collapses), and cnn_gan's learning rates. L2 attention gave a smaller gain
(fid_domain 13 vs 16 at 400 steps); spectral norm on D's linear layers did not help and would rename timm's
keys, so it is not used. L2 attention keeps timm's qkv/proj layers, so block state dicts stay timm's; only
the patch embedding (stem, wider kernel) differs in shape.

D reads its tokens in place (`global_pool: flatten`: a linear logit over every token, as cnn_gan's D reads its
last feature map), not through an average. With the average, the readout is translation-invariant and the
position embeddings start near zero, so an image that repeats with the patch stride (stripes or dots of
period 2, or a flat image) makes every token alike and gets the same gradient at every patch: the
generator's update keeps the pattern periodic, so once it falls into one it cannot leave, D separates it
perfectly and, under the hinge loss, stops learning altogether (loss_d exactly 0 and frozen logits). That
was the collapse of the few-shot digits-strategies runs (samples: period-2 stripes or dots; modes 1); with
the flattened readout D's accuracy stays near cnn_gan's (0.55-0.72 against 0.66 after 200 steps, seeds 100
and 101) and samples stay diverse (per-pixel std over latents 0.40-0.43, cnn_gan 0.44; with the average
0.01-0.04). `avg` and `token` remain for timm-shaped heads.

The default generator is cnn_gan's DCGAN generator (`generator: cnn`), so the benchmark measures the ViT
discriminator and its pretraining. `generator: transformer` (baselines/_vit_generator.py) maps a latent to
(size/patch)² tokens, runs transformer blocks whose norms the latent modulates, and decodes the token grid
with a conv, INR or linear head.
"""

from __future__ import annotations

import copy
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from baselines._vit_discriminator import (
    L2Attention,
    OverlapPatchEmbed,
    ViTDiscriminator,
    ViTInput,
    auto_patch,
    build_vit,
    trunk_features,
)
from baselines._vit_generator import TransformerGenerator
from baselines.cnn_gan import CNNGenerator, check_policy, diff_augment
from bench.adapter.base import Adapter, Batch, DataInfo, Part, adam, to_uint8
from bench.core.errors import ConfigError

__all__ = ["L2Attention", "OverlapPatchEmbed", "TransformerGAN", "TransformerGenerator", "auto_patch", "build_vit"]


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
        global_pool: Literal["avg", "token", "flatten"] = "flatten"
        stem: int = 32  # channels of D's stride-1 3×3 conv stem before the patchify conv; 0: none
        overlap: int = 1  # patchify kernel = patch + 2·overlap at stride patch (0: timm's non-overlapping patches)
        attention: Literal["l2", "dot"] = "l2"  # D's self-attention: ViTGAN's L2 distance or timm's dot product
        generator: Literal["transformer", "cnn"] = "cnn"  # cnn: cnn_gan's DCGAN generator
        g_width: int = 32  # base channels of the CNN generator (generator: cnn)
        g_head: Literal["conv", "inr", "linear"] = "conv"  # transformer G's token-grid → pixels head
        g_head_width: int = 32  # channels (conv) or hidden units (inr) of that head
        # Transformer G's output: linear (StyleGAN's choice; to_uint8 clamps) or tanh. With tanh it collapsed onto
        # an all-black image: the background is -1, so its pixels saturate tanh and their gradient dies.
        g_tanh: bool = False
        z_dim: int = 64
        # cnn_gan's rates: 8 px digits appear within 300-400 steps; 2e-4 with betas (0, 0.99) was far slower here.
        lr_g: float = 5e-4
        lr_d: float = 5e-4
        betas: tuple[float, float] = (0.5, 0.999)
        d_steps: int = 1
        loss: Literal["hinge", "ns"] = "hinge"  # hinge (Lim and Ye) or the non-saturating logistic loss (Goodfellow)
        r1_gamma: float = 0.0  # R1 on augmented reals (e.g. 0.1); costs a double backward
        augment: str = "translation"  # vital for the ViT D; cutout (half the side) hides most of an 8 px digit
        ema: float = 0.999  # decay of the generator average that sample() draws from; 0: sample the trained G

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
            self.G = TransformerGenerator(
                c.z_dim, info.channels, info.image_size, p, c.dim, c.depth, c.heads, c.mlp_ratio, c.g_head, c.g_head_width, c.g_tanh
            )
        else:
            self.G = CNNGenerator(c.z_dim, info.channels, info.image_size, c.g_width)
        self.G.to(self.device)
        vit = build_vit(c.timm_model, info.channels, info.image_size, p, c)
        self.d_features = trunk_features(vit, info.channels, info.image_size)
        self.D = ViTDiscriminator(vit, self.d_features).to(self.device)
        # The generator average that sample() uses (ViTGAN, StyleGAN): GAN weights oscillate step to step.
        self.G_ema = copy.deepcopy(self.G).requires_grad_(False) if c.ema else None
        self.opt_g = adam(self.G.parameters(), c.lr_g, tuple(c.betas), device=self.device)
        self.opt_d = adam(self.D.parameters(), c.lr_d, tuple(c.betas), device=self.device)

    def parts(self) -> dict[str, Part]:
        g_blocks = self.G.block_list if isinstance(self.G, TransformerGenerator) else self.G.blocks
        # A transformer G emits the image patch by patch: masked-autoencoder pretraining hides whole patches.
        g_patch = self.patch if isinstance(self.G, TransformerGenerator) else None
        vit = self.D.trunk
        return {
            "generator": Part(self.G, "decoder", latent_dim=self.config.z_dim, blocks=g_blocks, patch_size=g_patch),
            "discriminator": Part(vit, "encoder", features=self.d_features, blocks=[ViTInput(vit), *vit.blocks], patch_size=self.patch),
        }

    def num_params(self) -> int:  # the trained networks; the EMA copy is not counted twice
        return sum(p.numel() for m in (self.G, self.D) for p in m.parameters())

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
            logit_fake = self.D(diff_augment(fake, c.augment))
            loss_d = self._d_loss(logit_real, logit_fake)
            if c.r1_gamma > 0:
                (g,) = torch.autograd.grad(logit_real.sum(), real, create_graph=True)
                r1 = g.float().pow(2).flatten(1).sum(1).mean()
                loss_d = loss_d + 0.5 * c.r1_gamma * r1
                out["r1"] = r1.detach()
            self.opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            self.opt_d.step()
        logit_g = self.D(diff_augment(self.G(self._noise(n)), c.augment))
        loss_g = -logit_g.mean() if c.loss == "hinge" else F.softplus(-logit_g).mean()
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_g.step()
        if self.G_ema is not None:
            # Warm-up (1+t)/(10+t): the average forgets its start within ~10 steps, so weights a pretraining
            # strategy loads into G after construction reach the sampled generator too.
            self._update_ema(min(c.ema, (1 + step) / (10 + step)))
        out.update(loss_d=loss_d.detach(), loss_g=loss_g.detach())
        return out

    def _d_loss(self, logit_real: torch.Tensor, logit_fake: torch.Tensor) -> torch.Tensor:
        if self.config.loss == "hinge":  # zero gradient for every logit past its ±1 margin
            return F.relu(1.0 - logit_real).mean() + F.relu(1.0 + logit_fake).mean()
        return F.softplus(-logit_real).mean() + F.softplus(logit_fake).mean()

    @torch.no_grad()
    def _update_ema(self, decay: float) -> None:
        for pe, p in zip(self.G_ema.parameters(), self.G.parameters(), strict=True):
            pe.lerp_(p.detach(), 1 - decay)
        for be, b in zip(self.G_ema.buffers(), self.G.buffers(), strict=True):
            be.copy_(b)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        z = torch.randn(n, self.config.z_dim, generator=generator, device=generator.device).to(self.device)
        g = self.G_ema if self.G_ema is not None else self.G
        return to_uint8(g(z), self.info.levels)
