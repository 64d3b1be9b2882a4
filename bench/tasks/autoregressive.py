"""autoregressive: a sequence part trained on next-token prediction over the source's pixels.

Generative pretraining from pixels, as Image GPT (Chen et al. 2020,
https://cdn.openai.com/papers/Generative_Pretraining_from_Pixels_V2.pdf), on a different source domain.

The sequence part (bench.adapter.base.Part, role `sequence`, `vocab` = vocabulary size) is read with the pixel
token layout the sequence baselines use too (bench.adapter.tokens.PixelTokens): raster order with the channels
interleaved per pixel, `vocab - 1` grey-level bins, and the last token id as the start token fed at
position 0 and never a target. The source is already converted to the target's size, channels and levels,
so the sequence length matches the part's positions.

Evidence recorded: first and final training loss, and the test-split NLL (nats per token) before and after.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from bench.adapter.tokens import PixelTokens
from bench.tasks.common import Context, eval_mode, fit
from bench.tasks.strategy import StrategyNotApplicable
from bench.tasks.weights import part_tensors

if TYPE_CHECKING:
    from bench.data.datasets import ImageData

ROLES = ("sequence",)


def layout(vocab: int, source: ImageData, device: torch.device) -> PixelTokens:
    """The token layout of a sequence part with vocabulary `vocab` over the (converted) source images."""
    try:
        return PixelTokens.for_vocab(vocab, source.info.channels, source.info.image_size, source.levels, device=device)
    except ValueError as why:
        raise StrategyNotApplicable(f"autoregressive: {why}") from None


@torch.no_grad()
def test_nll(module: nn.Module, tok: PixelTokens, u8: torch.Tensor, batch: int = 256) -> float:
    total, count = 0.0, 0
    with eval_mode(module):
        for chunk in u8.split(batch):
            t = tok.from_pixels(chunk)
            total += float(tok.loss(module(tok.inputs(t)), t)) * t.numel()
            count += t.numel()
    return total / max(count, 1)


def train(ctx: Context) -> tuple[dict, dict[str, Any], float]:
    parts = ctx.fresh.parts()
    info: dict[str, Any] = {}
    seconds = 0.0
    test_u8 = ctx.source.test_x[:1000]
    for name in ctx.parts:
        part = parts[name]
        module, tok = part.module, layout(part.vocab, ctx.source, ctx.device)
        info[f"{name}.test_nll_init"] = test_nll(module, tok, test_u8)

        def loss_fn(batch, step, module=module, tok=tok) -> torch.Tensor:
            t = tok.from_pixels(batch.u8)
            return tok.loss(module(tok.inputs(t)), t)

        res = fit(ctx, list(module.parameters()), loss_fn, f"pretrain autoregressive {name}")
        seconds += res.seconds
        info.update(
            {
                f"{name}.loss_first": res.loss_first,
                f"{name}.loss_final": res.loss_final,
                f"{name}.test_nll": test_nll(module, tok, test_u8),
            }
        )
    return part_tensors(ctx.fresh, ctx.parts), info, seconds
