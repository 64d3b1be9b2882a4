"""Metrics of a conditional `stylize` model: content kept (content_acc, content_ssim) and style taken
(style_fid, style_stats), plus style_diversity. Every one is computed on the fixed evaluation pairs
(bench.data.style.eval_pairs), and in networks that are not the loss network the adapters train against
(bench.adapter.style_loss, a fixed random CNN), so a model cannot win them by fitting its own loss:

- content: the content set's domain classifier (the `*_domain` classifier, trained on the content set's labels);
- structure: SSIM (Wang et al. 2004, https://doi.org/10.1109/TIP.2003.819861) on luminance, no network at all;
- style: the label-free extractor (bench.metrics.ssl, SimCLR ensemble) trained on the style set's own images.

Each evaluation also scores the two trivial outputs, output = content image and output = style image, on the
same pairs, and records them in `metric_info.stylize_reference`, so a reader sees each metric's scale: copying
the content wins content_acc and content_ssim and scores 0 diversity; copying the style wins style_fid.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

import torch
import torch.nn.functional as F

from bench.metrics import register_metric
from bench.metrics.context import EvalContext
from bench.metrics.fidelity import fid_from_features
from bench.metrics.info import NotApplicable
from bench.metrics.registered import in_chunks

REFERENCES = ("output=content", "output=style")
SSIM_WINDOW, SSIM_SIGMA = 7, 1.5  # Wang et al. use 11 px, σ 1.5; 7 px fits 8–16 px images (reflect-padded)
LUMA = (0.299, 0.587, 0.114)


def luminance(u8: torch.Tensor) -> torch.Tensor:
    """uint8 N×C×H×W → float N×1×H×W in [0, 1] (ITU-R BT.601 weights for RGB)."""
    x = u8.double() / 255.0
    if x.shape[1] == 3:
        return (x * torch.tensor(LUMA, dtype=x.dtype).view(1, 3, 1, 1)).sum(1, keepdim=True)
    return x[:, :1]


def ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image mean SSIM of two uint8 batches on luminance (Gaussian window, C1 = (0.01)², C2 = (0.03)²)."""
    x, y = luminance(a), luminance(b)
    k = min(SSIM_WINDOW, x.shape[-1] | 1)
    g = torch.exp(-((torch.arange(k, dtype=x.dtype) - k // 2) ** 2) / (2 * SSIM_SIGMA**2))
    w = (g[:, None] * g[None, :] / g.sum() ** 2).view(1, 1, k, k)

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(t, [k // 2] * 4, mode="reflect"), w)

    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return s.flatten(1).mean(1)


# --- the style extractor ------------------------------------------------------------------------------
def style_extractor(ctx: EvalContext):
    """The label-free extractor trained on the style set's training images (cached like every extractor)."""
    if ctx.data.style is None:
        raise NotApplicable("no style set: the suite has no `style:` key")
    if "style_extractor" not in ctx.cache:
        from bench.metrics.ssl import get_ssl_extractor

        ext = ctx._setup(lambda: get_ssl_extractor(ctx.data.style, ctx.device, ctx.cache_dir))
        ctx.info["style_extractor"] = ext.describe()
        ctx.cache["style_extractor"] = ext
    return ctx.cache["style_extractor"]


@torch.no_grad()
def layer_stats(ext, u8: torch.Tensor) -> torch.Tensor:
    """Per image: the channel means and stds of every conv block of every member, side by side (N×D, float64)."""

    def stats(chunk: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = []
        for member in ext.extractor.net.members:
            x = member.prepare(chunk.to(next(member.parameters()).device))
            for block in list(member.trunk)[:3]:
                x = block(x)
                f = x.flatten(2)
                out += [f.mean(2), f.std(2, unbiased=False)]
        return (torch.cat(out, 1),)

    return in_chunks(stats, u8)[0].cpu().double()  # one input shape, so an image's numbers ignore its batch


# --- one value per metric, for any outputs (the model's, or a trivial reference) ------------------------
def _content_acc(ctx: EvalContext, out: torch.Tensor) -> float:
    p = ctx.pairs
    if not bool((p.label >= 0).all()):
        raise NotApplicable("the content set has no labels, so no domain classifier reads the content's class")
    pred = ctx.domain.predict(out)
    return float((pred.cpu() == p.label).double().mean())


def _content_ssim(ctx: EvalContext, out: torch.Tensor) -> float:
    return float(ssim(out, ctx.pairs.content).mean())


def _style_features(ctx: EvalContext, out: torch.Tensor) -> torch.Tensor:
    """Style-extractor features of `out`, kept for the model's own samples (style_fid and style_diversity share them)."""
    ext = style_extractor(ctx)
    if out is not ctx.samples:
        return ext.features(out)["features"]
    if "style_features" not in ctx.cache:
        ctx.cache["style_features"] = ext.features(out)["features"]
    return ctx.cache["style_features"]


def _style_fid(ctx: EvalContext, out: torch.Tensor) -> float:
    ext = style_extractor(ctx)
    real = ext.real_features(ctx.data.style.test_x.cpu(), ctx.cache_dir)["features"]
    return fid_from_features(_style_features(ctx, out), real)


def _style_stats(ctx: EvalContext, out: torch.Tensor) -> float:
    ext = style_extractor(ctx)
    key = (*_reference_key(ctx, "style_stats"), ext.hash)
    if key not in _STYLE_STATS:  # the style images' statistics: the same for every run of the suite
        _STYLE_STATS.clear()
        _STYLE_STATS[key] = layer_stats(ext, ctx.pairs.style)
    a, b = layer_stats(ext, out), _STYLE_STATS[key]
    return float(((a - b) ** 2).mean(1).sqrt().mean())


_STYLE_STATS: dict[tuple[str, ...], torch.Tensor] = {}  # one entry: the latest suite's style images


def _style_diversity(ctx: EvalContext, out: torch.Tensor) -> float:
    f = _style_features(ctx, out).double()
    group = ctx.pairs.group
    dists = []
    for g in group.unique():
        fg = f[group == g]
        if len(fg) > 1:
            d = torch.cdist(fg, fg)
            dists.append(d.sum() / (len(fg) * (len(fg) - 1)))
    return float(torch.stack(dists).mean()) if dists else 0.0


SCORES: dict[str, Callable[[EvalContext, torch.Tensor], float]] = {
    "content_acc": _content_acc,
    "content_ssim": _content_ssim,
    "style_fid": _style_fid,
    "style_stats": _style_stats,
    "style_diversity": _style_diversity,
}


# (content pixels, style pixels, pairs, metric) -> the trivial outputs' values: they depend on the data alone,
# so a suite computes them once per process, not once per run. Bounded; a miss only costs recomputing.
_REFERENCE: OrderedDict[tuple[str, ...], dict[str, float]] = OrderedDict()
_REFERENCE_MAX = 64


def _reference_key(ctx: EvalContext, name: str) -> tuple[str, ...]:
    if "data_key" not in ctx.cache:
        assert ctx.data.style is not None
        ctx.cache["data_key"] = (ctx.data.fingerprint(), ctx.data.style.fingerprint(), str(len(ctx.pairs.content)))
    return (*ctx.cache["data_key"], name)


def _with_reference(name: str, ctx: EvalContext) -> float:
    """The model's value, after recording the two trivial outputs' values beside it in metric_info."""
    fn, p = SCORES[name], ctx.pairs
    value = fn(ctx, ctx.samples)  # first: a metric that does not apply says so before any reference is computed
    key = _reference_key(ctx, name)
    if key not in _REFERENCE:
        _REFERENCE[key] = {REFERENCES[0]: round(fn(ctx, p.content), 6), REFERENCES[1]: round(fn(ctx, p.style), 6)}
        while len(_REFERENCE) > _REFERENCE_MAX:
            _REFERENCE.popitem(last=False)
    ctx.info.setdefault("stylize_reference", {})[name] = dict(_REFERENCE[key])
    return value


for _name in SCORES:
    register_metric(_name)(lambda ctx, _name=_name: _with_reference(_name, ctx))
