"""The ViT discriminator of transformer_gan: a timm VisionTransformer trunk with ViTGAN's changes.

References:
- Dosovitskiy et al., "An Image is Worth 16x16 Words" (ViT), 2020. https://arxiv.org/abs/2010.11929
- Lee et al., "ViTGAN: Training GANs with Vision Transformers", 2021. https://arxiv.org/abs/2107.04589
  (L2-distance self-attention, overlapping patches).
- Xiao et al., "Early Convolutions Help Transformers See Better", 2021. https://arxiv.org/abs/2106.14881
  (the stride-1 conv `stem` in front of the patchify layer).

The trunk is built by `timm.create_model`, so its blocks keep timm's parameter names and a timm ViT's state
dict fits them (bench/tasks/vit_weights.py adapts the patch and position embeddings).
"""

from __future__ import annotations

from functools import partial
from typing import Any

import timm
import torch
from timm.layers import PatchEmbed
from timm.models.vision_transformer import Attention
from torch import nn

from bench.core.errors import ConfigError


def auto_patch(image_size: int) -> int:
    """Patch size giving 16-64 tokens on small images: 2 up to 16 px, 4 above; 1 when neither divides."""
    for p in ((2, 4) if image_size <= 16 else (4, 2)) + (1,):
        if image_size % p == 0:
            return p
    return 1


class ViTInput(nn.Module):
    """The ViT's input stage as one freezable block: patch embedding plus class/register tokens and position
    embedding. It holds the ViT's own tensors (shared, not copies), and is never registered on the adapter,
    so state dicts are unchanged."""

    def __init__(self, vit: nn.Module):
        super().__init__()
        self.patch_embed = vit.patch_embed
        extra = [getattr(vit, n, None) for n in ("cls_token", "reg_token", "pos_embed")]
        self.tokens = nn.ParameterList([p for p in extra if isinstance(p, nn.Parameter)])


class L2Attention(Attention):
    """ViTGAN's L2-distance self-attention: logits -||q - k||² / sqrt(d) instead of q·k / sqrt(d).

    A subclass of timm's Attention with the same qkv/proj layers, so state dicts (and timm weights) fit.
    Dropping the row-constant ||q||² leaves the softmax unchanged: logits = (2 q·k - ||k||²) / sqrt(d).
    """

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None, is_causal: bool = False) -> torch.Tensor:
        b, n, _ = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        q, k = self.q_norm(q), self.k_norm(k)
        logits = (2 * q @ k.transpose(-2, -1) - k.pow(2).sum(-1).unsqueeze(-2)) * self.scale
        h = (self.attn_drop(logits.softmax(-1)) @ v).transpose(1, 2).reshape(b, n, self.attn_dim)
        return self.proj_drop(self.proj(self.norm(h)))


class OverlapPatchEmbed(PatchEmbed):
    """timm's PatchEmbed with a (patch + 2·overlap)-wide kernel at stride patch (ViTGAN's overlapping patches),
    optionally after a stride-1 3×3 conv stem of `stem` channels (Xiao et al.'s early convolutions): tokens that
    share pixels give the discriminator a convolution's locality, and it can no longer miss patterns that are
    aligned with the patch grid (period-2 stripes fool a plain stride-2 patchify)."""

    def __init__(self, *args, overlap: int = 1, stem: int = 0, **kwargs):
        super().__init__(*args, **kwargs)
        old, o = self.proj, overlap
        k = tuple(p + 2 * o for p in self.patch_size)
        self.stem = nn.Sequential(nn.Conv2d(old.in_channels, stem, 3, 1, 1), nn.LeakyReLU(0.2)) if stem else nn.Identity()
        cin = stem or old.in_channels
        self.proj = nn.Conv2d(cin, old.out_channels, k, self.patch_size, o, bias=old.bias is not None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(self.stem(x))


def build_vit(name: str, channels: int, image_size: int, patch: int, c: Any) -> nn.Module:
    """A timm ViT trunk: images → (N, dim) pooled features (num_classes=0 drops timm's head)."""
    kw = {}
    if c.overlap or c.stem:
        kw["embed_layer"] = partial(OverlapPatchEmbed, overlap=c.overlap, stem=c.stem)
    if c.attention == "l2":
        kw["attn_layer"] = L2Attention
    try:
        vit = timm.create_model(
            name,
            pretrained=False,
            img_size=image_size,
            patch_size=patch,
            in_chans=channels,
            embed_dim=c.dim,
            depth=c.depth,
            num_heads=c.heads,
            mlp_ratio=c.mlp_ratio,
            num_classes=0,
            global_pool="" if c.global_pool == "flatten" else c.global_pool,
            **kw,
        )
    except (RuntimeError, TypeError) as err:
        raise ConfigError(
            f"cannot build timm model '{name}' as a ViT ({err})",
            key="adapters.transformer_gan.timm_model",
            fix="use a timm VisionTransformer name such as vit_tiny_patch16_224",
        ) from None
    if c.global_pool == "flatten":
        # timm's global_pool "" returns every token; the readout then sees them in place (see TransformerGAN.Config).
        vit.forward_head = _flatten_tokens
    if not (hasattr(vit, "patch_embed") and hasattr(vit, "blocks")):
        raise ConfigError(
            f"timm model '{name}' is not a VisionTransformer", key="adapters.transformer_gan.timm_model", fix="use a vit_* or deit_* name"
        )
    return vit


def _flatten_tokens(x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
    return x.flatten(1)


@torch.no_grad()
def trunk_features(trunk: nn.Module, channels: int, image_size: int) -> int:
    """The trunk's output width (D for a pooled trunk, tokens·D for a flattened one), from one forward pass."""
    was = trunk.training
    trunk.eval()
    p = next(trunk.parameters())
    out = trunk(torch.zeros(1, channels, image_size, image_size, device=p.device, dtype=p.dtype)).shape[1]
    trunk.train(was)
    return int(out)


class ViTDiscriminator(nn.Module):
    """ViT trunk + linear real/fake logit."""

    def __init__(self, trunk: nn.Module, features: int):
        super().__init__()
        self.trunk, self.head = trunk, nn.Linear(features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk(x)).float().squeeze(1)  # float32 logits: hinge margins under bf16 autocast
