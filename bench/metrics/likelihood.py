"""bpd: bits per dimension of the real test split, for models with a (bound on the) likelihood.

Convention: pixels are discrete, with `levels` values per channel; log p(x) is the probability mass of the
exact discrete pixel values (no continuous density and no uniform dequantisation term), so a uniform model
scores exactly log2(levels) bits per dimension. For a bound (VAE), bpd is an upper bound on the true bpd.
"""

from __future__ import annotations

import math

import torch

from bench.adapter.base import Batch, validate_log_likelihood
from bench.metrics import register_metric
from bench.metrics.context import EvalContext, NotApplicable

# Test images per log_likelihood call. Fixed, because a sampled bound (vae's importance samples) draws its noise per
# call, so the batch would move the number; 500 was eval.batch_size's default, so default runs keep their values.
LIKELIHOOD_CHUNK = 500
BPD_CONVENTION = "bits/dim = -log2 P(x) / (C·H·W) over discrete pixel values (levels per channel as in the data); no dequantisation"


@register_metric("bpd")
def bpd(ctx: EvalContext) -> float:
    total, count = 0.0, 0
    adapter = ctx.adapter
    adapter.train(False)
    try:
        with torch.inference_mode():
            for u8, y in zip(ctx.data.test_x.split(LIKELIHOOD_CHUNK), ctx.data.test_y.split(LIKELIHOOD_CHUNK), strict=True):
                batch = Batch(u8.to(ctx.device), y.to(ctx.device), ctx.data.levels)
                ll = validate_log_likelihood(adapter.log_likelihood(batch), len(u8), type(adapter).__name__)
                if ll is None:
                    raise NotApplicable(f"{type(adapter).__name__} has no log_likelihood")
                total += float(ll.double().sum())
                count += len(u8)
    finally:
        adapter.train(True)
    ctx.info["bpd_convention"] = BPD_CONVENTION
    ctx.info["bpd_exact"] = bool(getattr(adapter, "likelihood_exact", True))
    return -total / (count * ctx.data.info.dims * math.log(2.0))
