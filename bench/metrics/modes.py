"""Mode coverage, as judged by the domain classifier (VEEGAN, https://arxiv.org/abs/1705.07761; PacGAN,
https://arxiv.org/abs/1712.04086).

`modes`: how many classes the generated samples cover; a class counts as covered when the classifier assigns
it to at least one sample (the VEEGAN/PacGAN convention). 10 on digits, up to 1000 on digits_stacked.

`modes_kl`: KL(generated class histogram ‖ real class histogram), in nats. The real histogram comes from the
test split's labels, with add-½ (Jeffreys) smoothing so that a class the test split happens to lack gives a
finite penalty rather than infinity. On digits_stacked (three independent digits per image), the 1000-class
real histogram is the product of the three channels' digit histograms from the test labels: 2000 test images
would leave ~13% of the 1000 cells empty by chance, while the per-digit histograms are well estimated.

Enough samples, and the real data's own ceiling: on digits_stacked both metrics use at least
MIN_SAMPLES["digits_stacked"] = 26,000 generated samples (the Stacked MNIST convention of VEEGAN and PacGAN),
whatever `eval.num_samples` is, since 1,000 samples cannot cover 1,000 modes. Every run also records, in its
metric info under "modes", the number of samples used, the maximum (the number of classes) and `real`: the
modes the real test split covers through the same classifier. A model cannot be asked to beat its reference;
and where every run and the test split reach the maximum (every digits run covers 10 of 10), the report marks
`modes` saturated and does not show it as a headline (`modes_kl` still discriminates).
"""

from __future__ import annotations

import torch

from bench.data.datasets import ImageData
from bench.metrics import register_metric
from bench.metrics.context import EvalContext, NotApplicable
from bench.metrics.domain import is_stacked

MIN_SAMPLES = {"digits_stacked": 26_000}  # per data set: generated samples modes/modes_kl need at least
MODES_DEFINITION = (
    "modes: classes predicted by the domain classifier for >= 1 generated sample; "
    "modes_kl: KL(generated class histogram || test-split label histogram, add-1/2 smoothed; "
    "product of per-channel digit histograms on digits_stacked), nats; "
    f"at least {MIN_SAMPLES['digits_stacked']} generated samples on digits_stacked; "
    "the test split's own mode count recorded as modes.real"
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


def min_samples(data: ImageData) -> int:
    """The fewest generated samples modes/modes_kl use on this data set (0: eval.num_samples decides)."""
    return MIN_SAMPLES.get(data.name, 0)


def _predicted(ctx: EvalContext) -> torch.Tensor:
    """Class predictions of the generated samples (at least the data set's MIN_SAMPLES of them), computed once;
    records the samples used, the maximum and the real test split's own coverage."""
    from bench.metrics.ssl import NO_LABELS, has_labels

    if not has_labels(ctx.data):
        raise NotApplicable(NO_LABELS)
    if "modes_pred" not in ctx.cache:
        need = min_samples(ctx.data.reference())
        more = need > ctx.num_samples  # more samples than the other metrics use: their own pass
        pred = ctx.domain.predict(ctx.samples_at_least(need)) if more else ctx.fake_features["logits"].argmax(dim=1)
        real = ctx.real_features["logits"].argmax(dim=1)
        ctx.info["modes_definition"] = MODES_DEFINITION
        # What "fewer modes than the real data" means in the report's collapse flag: classes present in the test split.
        ctx.info["real_modes"] = int(torch.unique(ctx.data.test_y).numel())
        # The maximum: every class of the target (a `classes:` subset keeps the full label space, so count them).
        top = ctx.data.num_classes if is_stacked(ctx.data.reference()) else int(torch.unique(ctx.data.test_y).numel())
        ctx.info["modes"] = {"samples": len(pred), "max": top, "real": int(torch.unique(real).numel())}
        ctx.cache["modes_pred"] = pred
    return ctx.cache["modes_pred"]


@register_metric("modes")
def modes(ctx: EvalContext) -> float:
    return float(torch.unique(_predicted(ctx)).numel())


@register_metric("modes_kl")
def modes_kl(ctx: EvalContext) -> float:
    return class_kl(_predicted(ctx), real_class_histogram(ctx.data))
