"""adain: arbitrary style transfer with adaptive instance normalisation, a small CNN encoder–decoder.

Reference:
- X. Huang and S. Belongie, "Arbitrary Style Transfer in Real-time with Adaptive Instance Normalization",
  ICCV 2017. https://arxiv.org/abs/1703.06868 (one encoder for content and style, AdaIN on its feature map,
  a decoder trained with a content loss to the AdaIN target and a mean/std style loss).

Sized for the CPU: the encoder is three 3×3 conv layers (one stride 2), the decoder mirrors it. Unlike the
paper, whose encoder is a fixed ImageNet VGG, the encoder here trains with the decoder (no ImageNet weights
offline): it starts from scratch or from a pretraining strategy (supervised, masked autoencoding, whole-model
transfer), which is the comparison the `stylize` suites make. The losses are computed in the harness's fixed
random loss network (bench.adapter.style_loss), never in this encoder, so the encoder cannot shape its own
yardstick; the content target is the content image's own loss-network features.

Parts: "encoder" (role encoder: image → feature map, flattened to 2·width·(S/2)² features; it encodes both the
content and the style image, as in the paper) and "decoder" (role decoder: a flat feature map → image).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from bench.adapter.base import Adapter, Batch, DataInfo, Part, adam, to_uint8
from bench.adapter.style_loss import StyleLoss, adain


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1, padding_mode="reflect"), nn.ReLU())


class Encoder(nn.Module):
    """x float N×C×S×S in [-1, 1] → feature map N×2w×S/2×S/2."""

    def __init__(self, channels: int, width: int):
        super().__init__()
        self.blocks = nn.ModuleList([_conv(channels, width), _conv(width, 2 * width, stride=2), _conv(2 * width, 2 * width)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for b in self.blocks:
            x = b(x)
        return x


class Decoder(nn.Module):
    """A feature map N×2w×S/2×S/2 (or the same flattened, the decoder role's input) → image N×C×S×S in [-1, 1]."""

    def __init__(self, channels: int, width: int, size: int):
        super().__init__()
        self.shape = (2 * width, size // 2, size // 2)
        self.blocks = nn.ModuleList(
            [
                _conv(2 * width, 2 * width),
                nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), _conv(2 * width, width)),
                nn.Sequential(nn.Conv2d(width, channels, 3, padding=1, padding_mode="reflect"), nn.Tanh()),
            ]
        )

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        if h.dim() == 2:
            h = h.view(-1, *self.shape)
        for b in self.blocks:
            h = b(h)
        return h


class AdaIN(Adapter):
    family = "stylize"

    @dataclass
    class Config:
        width: int = 16  # channels of the first encoder layer, doubled after the stride
        lr: float = 2e-3
        style_weight: float = 0.3  # λ in content loss + λ · style loss (AdaIN's form); tuned on seed 100 (0.03–1)

    def __init__(self, config: Config, info: DataInfo, device: torch.device):
        super().__init__(config, info, device)
        if info.image_size % 2:
            raise ValueError(f"adain needs an even image size, got {info.image_size}")
        c = config
        self.enc = Encoder(info.channels, c.width).to(self.device)
        self.dec = Decoder(info.channels, c.width, info.image_size).to(self.device)
        self.opt = adam([*self.enc.parameters(), *self.dec.parameters()], lr=c.lr)
        self._loss = [StyleLoss(info.channels).to(self.device)]  # a list: the harness's fixed net, not this adapter's module

    def parts(self) -> dict[str, Part]:
        feats = 2 * self.config.width * (self.info.image_size // 2) ** 2
        return {
            "encoder": Part(self.enc, "encoder", features=feats, blocks=list(self.enc.blocks)),
            "decoder": Part(self.dec, "decoder", latent_dim=feats, blocks=list(self.dec.blocks)),
        }

    def _forward(self, content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        return self.dec(adain(self.enc(content), self.enc(style)))

    def train_step(self, batch: Batch, step: int) -> dict[str, torch.Tensor]:
        assert batch.style is not None, "a stylize adapter trains on batch.style (the suite's style: set)"
        content, style = batch.x, batch.style.x
        out = self._forward(content, style)
        loss_c, loss_s = self._loss[0](out, content, style)
        loss = loss_c + self.config.style_weight * loss_s
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return {"loss_content": loss_c.detach(), "loss_style": loss_s.detach()}

    def stylize(self, content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        return to_uint8(self._forward(content, style), self.info.levels)
