"""stytr: a small StyTr²-like transformer for style transfer: patch encoders for content and style, a decoder
whose content tokens cross-attend to the style tokens.

Reference:
- Y. Deng et al., "StyTr²: Image Style Transfer with Transformers", CVPR 2022. https://arxiv.org/abs/2105.14576
  (separate transformer encoders for the content and the style sequence, content-aware positional encoding
  on the content side only, a transformer decoder that queries the style sequence, a CNN head back to pixels).

Sized for the CPU: patches of `patch` pixels, `dim`-wide tokens, `depth` encoder layers each side and
`depth` decoder layers; learned positions on the content tokens only (the style is order-free, as in the
paper's choice to leave it unpositioned). The losses are the harness's (bench.adapter.style_loss: a fixed
random loss network, content and mean/std style losses), as for adain, so the two baselines differ only in
architecture.

Parts: "content_encoder" and "style_encoder" (role encoder, image → T·dim token features, `patch_size`, so
masked autoencoding hides whole patches, MAE-style) and "decoder" (role decoder: the output head, T·dim token
features → image, also by patches). The cross-attention layers are no part: no generic task fits a module
with two inputs; whole-model transfer (task generative) carries them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from bench.adapter.base import Adapter, Batch, DataInfo, Part, adam, to_uint8
from bench.adapter.style_loss import StyleLoss


class PatchEncoder(nn.Module):
    """x float N×C×S×S in [-1, 1] → tokens N×T×dim (T = (S/patch)²); `positions`: learned, on the content side."""

    def __init__(self, channels: int, size: int, patch: int, dim: int, depth: int, heads: int, positions: bool):
        super().__init__()
        self.embed = nn.Conv2d(channels, dim, patch, stride=patch)
        tokens = (size // patch) ** 2
        self.pos = nn.Parameter(torch.randn(1, tokens, dim) * 0.02) if positions else None
        self.blocks = nn.ModuleList(
            [nn.TransformerEncoderLayer(dim, heads, 2 * dim, dropout=0.0, batch_first=True, norm_first=True) for _ in range(depth)]
        )
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.embed(x).flatten(2).transpose(1, 2)
        if self.pos is not None:
            t = t + self.pos
        for b in self.blocks:
            t = b(t)
        return self.norm(t)


class Head(nn.Module):
    """Tokens N×T×dim (or flattened N×T·dim, the decoder role's input) → image N×C×S×S in [-1, 1]: a linear map
    of each token to its patch's pixels, then a 3×3 conv over the whole image to smooth the patch seams."""

    def __init__(self, channels: int, size: int, patch: int, dim: int):
        super().__init__()
        self.size, self.patch, self.dim, self.channels = size, patch, dim, channels
        self.to_pixels = nn.Linear(dim, channels * patch * patch)
        self.refine = nn.Conv2d(channels, channels, 3, padding=1, padding_mode="reflect")
        self.blocks = nn.ModuleList([self.to_pixels, self.refine])

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        g, p, c = self.size // self.patch, self.patch, self.channels
        t = t.reshape(t.shape[0], g * g, self.dim)
        x = self.to_pixels(t).view(-1, g, g, c, p, p).permute(0, 3, 1, 4, 2, 5).reshape(-1, c, g * p, g * p)
        return torch.tanh(x + self.refine(x))


class StyTr(Adapter):
    family = "stylize"

    @dataclass
    class Config:
        patch: int = 4
        dim: int = 48
        depth: int = 2
        heads: int = 4
        lr: float = 1e-3
        style_weight: float = 0.3  # λ in content loss + λ · style loss; tuned on seed 100 (0.03–1)

    def __init__(self, config: Config, info: DataInfo, device: torch.device):
        super().__init__(config, info, device)
        c, s = config, info.image_size
        if s % c.patch or c.dim % c.heads:
            raise ValueError(f"stytr needs patch to divide the image size ({s}) and heads to divide dim, got patch {c.patch}, dim {c.dim}")
        self.content_enc = PatchEncoder(info.channels, s, c.patch, c.dim, c.depth, c.heads, positions=True).to(self.device)
        self.style_enc = PatchEncoder(info.channels, s, c.patch, c.dim, c.depth, c.heads, positions=False).to(self.device)
        self.mixer = nn.TransformerDecoder(
            nn.TransformerDecoderLayer(c.dim, c.heads, 2 * c.dim, dropout=0.0, batch_first=True, norm_first=True), c.depth
        ).to(self.device)
        self.head = Head(info.channels, s, c.patch, c.dim).to(self.device)
        nets = (self.content_enc, self.style_enc, self.mixer, self.head)
        self.opt = adam([p for m in nets for p in m.parameters()], lr=c.lr)
        self._loss = [StyleLoss(info.channels).to(self.device)]  # a list: the harness's fixed net, not this adapter's module

    def parts(self) -> dict[str, Part]:
        c = self.config
        feats = (self.info.image_size // c.patch) ** 2 * c.dim
        enc = {"features": feats, "patch_size": c.patch}
        return {
            "content_encoder": Part(self.content_enc, "encoder", blocks=list(self.content_enc.blocks), **enc),
            "style_encoder": Part(self.style_enc, "encoder", blocks=list(self.style_enc.blocks), **enc),
            "decoder": Part(self.head, "decoder", latent_dim=feats, blocks=list(self.head.blocks), patch_size=c.patch),
        }

    def _forward(self, content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        return self.head(self.mixer(self.content_enc(content), self.style_enc(style)))

    def train_step(self, batch: Batch, step: int) -> dict[str, torch.Tensor]:
        assert batch.style is not None, "a stylize adapter trains on batch.style (the suite's style: set)"
        content, style = batch.x, batch.style.x
        out = self._forward(content, style)
        loss_c, loss_s = self._loss[0](out, content, style)
        loss = loss_c + self.config.style_weight * loss_s
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_([p for g in self.opt.param_groups for p in g["params"]], 1.0)
        self.opt.step()
        return {"loss_content": loss_c.detach(), "loss_style": loss_s.detach()}

    def stylize(self, content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        return to_uint8(self._forward(content, style), self.info.levels)
