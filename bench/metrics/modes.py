"""Mode coverage, as judged by the domain classifier (VEEGAN, https://arxiv.org/abs/1705.07761; PacGAN,
https://arxiv.org/abs/1712.04086).

`modes`: how many classes the generated samples cover; a class counts as covered when the classifier assigns
it to at least one sample (the VEEGAN/PacGAN convention). 10 on digits, up to 1000 on digits_stacked.

`modes_kl`: KL(generated class histogram ‖ real class histogram), in nats. The real histogram comes from the
test split's labels, with add-½ (Jeffreys) smoothing so that a class the test split happens to lack gives a
finite penalty rather than infinity. On digits_stacked (three independent digits per image), the 1000-class
real histogram is the product of the three channels' digit histograms from the test labels: 2000 test images
would leave ~13% of the 1000 cells empty by chance, while the per-digit histograms are well estimated.
"""

from __future__ import annotations

import torch

from bench.data import ImageData
from bench.metrics import register_metric
from bench.metrics.context import EvalContext
from bench.metrics.domain import is_stacked

MODES_DEFINITION = (
    "modes: classes predicted by the domain classifier for >= 1 generated sample; "
    "modes_kl: KL(generated class histogram || test-split label histogram, add-1/2 smoothed; "
    "product of per-channel digit histograms on digits_stacked), nats"
)
SMOOTHING = 0.5


def _smoothed(labels: torch.Tensor, k: int) -> torch.Tensor:
    counts = torch.bincount(labels, minlength=k).double()
    return (counts + SMOOTHING) / (counts.sum() + SMOOTHING * k)


def real_class_histogram(data: ImageData) -> torch.Tensor:
    """The real class distribution (float64, sums to 1) from the test split's labels."""
    y = data.test_y.cpu().long()
    if is_stacked(data):
        r, g, b = (_smoothed(d, 10) for d in (y // 100, y // 10 % 10, y % 10))
        return (r[:, None, None] * g[None, :, None] * b[None, None, :]).reshape(-1)
    return _smoothed(y, data.num_classes)


def class_kl(pred: torch.Tensor, real_hist: torch.Tensor) -> float:
    """KL(p_gen ‖ p_real) in nats; classes the generator never produces contribute 0."""
    p = torch.bincount(pred.cpu().long(), minlength=len(real_hist)).double()
    p = p / p.sum()
    nz = p > 0
    return float((p[nz] * (p[nz].log() - real_hist[nz].log())).sum())


def _predicted(ctx: EvalContext) -> torch.Tensor:
    ctx.info["modes_definition"] = MODES_DEFINITION
    # What "fewer modes than the real data" means in the report's collapse flag: classes present in the test split.
    ctx.info["real_modes"] = int(torch.unique(ctx.data.test_y).numel())
    return ctx.fake_features["logits"].argmax(dim=1)


@register_metric("modes")
def modes(ctx: EvalContext) -> float:
    return float(torch.unique(_predicted(ctx)).numel())


@register_metric("modes_kl")
def modes_kl(ctx: EvalContext) -> float:
    return class_kl(_predicted(ctx), real_class_histogram(ctx.data))
