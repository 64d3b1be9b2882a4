"""The loss network every `stylize` adapter trains against: a fixed, random-weight CNN, never trained.

Why random weights: offline there are no ImageNet (VGG) weights, and a loss network trained by the harness on
the content or style set would share its training signal with the networks that score the outputs (the
domain classifier, trained on the content set's labels; the label-free extractor, trained on the style set),
so an adapter could fit the yardstick itself. Random convolutional features are enough for texture and style
statistics: He, Wang & Hopcroft, "A Powerful Generative Model Using Random Weights for the Deep Image
Representation", NeurIPS 2016 (https://arxiv.org/abs/1606.04801), and Ustyuzhaninov et al., "What does it take
to generate natural textures?", ICLR 2017 (https://openreview.net/forum?id=BJhZeLsxx), synthesise textures and
transfer style with untrained multi-scale filters. The weights come from `derive_seed(0, "style_loss")`, the
same for every run and adapter, so every adapter is trained against one and the same objective.

The losses are AdaIN's (Huang & Belongie 2017, https://arxiv.org/abs/1703.06868): content = mean squared
feature difference at the two deeper layers between output and content image; style = squared differences of
the per-channel means and standard deviations at every layer, between output and style image.
`benchmarks/stylize_loss_vs_score.py` measures that minimising this loss directly does not win the scores.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from bench.core.seeds import derive_seed

WIDTHS = (16, 32, 64)  # channels of the three layers; strides 1, 2, 2


class LossNet(nn.Module):
    """Three random 3×3 conv + ReLU layers (strides 1, 2, 2), frozen; returns each layer's feature map."""

    def __init__(self, channels: int):
        super().__init__()
        gen = torch.Generator().manual_seed(derive_seed(0, "style_loss"))
        layers, cin = [], channels
        for i, w in enumerate(WIDTHS):
            conv = nn.Conv2d(cin, w, 3, stride=1 if i == 0 else 2, padding=1, padding_mode="reflect")
            with torch.no_grad():  # He-normal weights from the fixed generator (torch's default init would use the global stream)
                conv.weight.copy_(torch.randn(conv.weight.shape, generator=gen) * (2.0 / (cin * 9)) ** 0.5)
                conv.bias.zero_()
            layers.append(conv)
            cin = w
        self.layers = nn.ModuleList(layers)
        self.requires_grad_(False)
        self.eval()

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for conv in self.layers:
            x = F.relu(conv(x))
            out.append(x)
        return out


def _stats(f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    flat = f.flatten(2)
    return flat.mean(2), (flat.var(2, unbiased=False) + 1e-5).sqrt()


class StyleLoss(nn.Module):
    """(output, content, style) float N×C×H×W in [-1, 1] → (content loss, style loss), both 0-dim tensors."""

    def __init__(self, channels: int):
        super().__init__()
        self.net = LossNet(channels)

    def train(self, mode: bool = True) -> StyleLoss:
        return super().train(False)  # fixed: never in training mode, whatever the adapter's modules are told

    def forward(self, out: torch.Tensor, content: torch.Tensor, style: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        fo, fc, fs = self.net(out), self.net(content), self.net(style)
        # The two deeper layers (1/2 and 1/4 of the image side): at 8–32 px the deepest map alone is 2–8 px
        # wide, too coarse to hold a digit's strokes.
        content_loss = sum(F.mse_loss(a, b.detach()) for a, b in zip(fo[1:], fc[1:], strict=True))
        style_loss = out.new_zeros(())
        for a, b in zip(fo, fs, strict=True):
            (ma, sa), (mb, sb) = _stats(a), _stats(b.detach())
            style_loss = style_loss + F.mse_loss(ma, mb) + F.mse_loss(sa, sb)
        return content_loss, style_loss


def adain(content: torch.Tensor, style: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Adaptive instance normalisation: the content features with the style features' channel means and stds."""
    cm, cs = content.mean((2, 3), keepdim=True), content.std((2, 3), keepdim=True, unbiased=False) + eps
    sm, ss = style.mean((2, 3), keepdim=True), style.std((2, 3), keepdim=True, unbiased=False) + eps
    return (content - cm) / cs * ss + sm
