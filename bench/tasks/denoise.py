"""denoise: a `denoiser` part trained on the source with the diffusion objective, then fine-tuned on the target.

The part-wise counterpart of whole-model transfer for diffusion models: only the noise predictor is
pretrained and loaded (no EMA copy, no optimiser, nothing else of the adapter), through the role's own
contract (bench.Part): x_t = sqrt(ᾱ(t))·x_0 + sqrt(1 - ᾱ(t))·ε with t ~ U[0, 1] and the part's declared
`alpha_bar` (the cosine schedule when it declares none), and the loss ||ε̂(x_t, t) - ε||², the "simple"
objective of Ho et al. 2020 (https://arxiv.org/abs/2006.11239). An adapter with a denoiser part but its
own training objective (another schedule, a weighting) so gets denoising pretraining of that network
without the harness knowing its loss; for a plain DDPM it equals `generative` restricted to the denoiser.

Evidence recorded: first and final training loss, and the test-split ε-MSE at t = 0.1, 0.5 and 0.9 (fixed
noise), before and after, so the gain is measured, not assumed.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from bench.core.seeds import derive_seed
from bench.tasks.common import Context, as_input, eval_mode, fit
from bench.tasks.weights import part_tensors

ROLES = ("denoiser",)
PROBE_T = (0.1, 0.5, 0.9)


def cosine_alpha_bar(t: torch.Tensor) -> torch.Tensor:
    """ᾱ(t) of Nichol & Dhariwal 2021 (s = 0.008), the default for a denoiser part that declares none."""
    s = 0.008
    f = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2
    return (f / math.cos(s / (1 + s) * math.pi / 2) ** 2).clamp(1e-5, 1.0)


def noisy(x0: torch.Tensor, t: torch.Tensor, alpha_bar, eps: torch.Tensor) -> torch.Tensor:
    ab = alpha_bar(t).to(x0.dtype).view(-1, *([1] * (x0.ndim - 1)))
    return ab.sqrt() * x0 + (1 - ab).sqrt() * eps


@torch.no_grad()
def probe(module, alpha_bar, u8: torch.Tensor) -> dict[float, float]:
    """Test ε-MSE at a few fixed times, with noise from a fixed-seed generator (comparable before/after)."""
    x0 = as_input(u8[:512])
    gen = torch.Generator(device="cpu").manual_seed(derive_seed(0, "eval"))
    out = {}
    with eval_mode(module):
        for t in PROBE_T:
            eps = torch.randn(x0.shape, generator=gen).to(x0.device)
            tt = torch.full((len(x0),), t, device=x0.device)
            out[t] = float(F.mse_loss(module(noisy(x0, tt, alpha_bar, eps), tt).float(), eps))
    return out


def train(ctx: Context) -> tuple[dict, dict[str, Any], float]:
    parts = ctx.fresh.parts()
    gen = torch.Generator(device=ctx.device).manual_seed(derive_seed(ctx.seed, "denoise"))
    info: dict[str, Any] = {}
    seconds = 0.0
    for name in ctx.parts:
        part = parts[name]
        module, alpha_bar = part.module, part.alpha_bar or cosine_alpha_bar
        before = probe(module, alpha_bar, ctx.source.test_x)

        def loss_fn(batch, step, module=module, alpha_bar=alpha_bar):
            x0 = batch.x
            t = torch.rand(len(x0), generator=gen, device=x0.device)
            eps = torch.randn(x0.shape, generator=gen, device=x0.device)
            return F.mse_loss(module(noisy(x0, t, alpha_bar, eps), t).float(), eps)

        res = fit(ctx, list(module.parameters()), loss_fn, f"pretrain denoise {name}")
        seconds += res.seconds
        after = probe(module, alpha_bar, ctx.source.test_x)
        info.update({f"{name}.loss_first": res.loss_first, f"{name}.loss_final": res.loss_final})
        for t in PROBE_T:
            info[f"{name}.test_eps_mse_t{t}_init"] = before[t]
            info[f"{name}.test_eps_mse_t{t}"] = after[t]
    return part_tensors(ctx.fresh, ctx.parts), info, seconds
