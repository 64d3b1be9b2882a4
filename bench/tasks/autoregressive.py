"""autoregressive: a sequence part trained on next-token prediction over the source's pixels.

Generative pretraining from pixels, as Image GPT (Chen et al. 2020,
https://cdn.openai.com/papers/Generative_Pretraining_from_Pixels_V2.pdf), on a different source domain.

The sequence-part contract (bench.adapter.Part, role `sequence`, `dim` = vocabulary size) is read with the
pixel tokenisation the sequence baselines share (baselines/_tokens.py): raster order with the channels
interleaved per pixel; `dim - 1` grey-level bins (the level index itself when bins = levels); the last
token id is the start token fed at position 0 and never a target. The source is already converted to the
target's size, channels and levels, so the sequence length matches the part's positions.

Evidence recorded: first and final training loss, and the test-split NLL (nats per token) before and after.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from bench.adapter import to_levels
from bench.tasks.common import Context, eval_mode, fit
from bench.tasks.strategy import StrategyNotApplicable
from bench.tasks.weights import part_tensors

ROLES = ("sequence",)


class Tokens:
    """Images (uint8) → (inputs, targets) token sequences for a part with vocabulary `vocab`."""

    def __init__(self, vocab: int, levels: int):
        self.bins, self.levels = vocab - 1, levels
        if not 2 <= self.bins <= levels:
            raise StrategyNotApplicable(f"autoregressive: sequence vocabulary {vocab} does not fit {levels} grey levels (+1 start token)")
        self.start = self.bins

    def targets(self, u8: torch.Tensor) -> torch.Tensor:
        idx = to_levels(u8, self.levels)  # N×C×H×W level indices
        seq = idx.permute(0, 2, 3, 1).reshape(idx.shape[0], -1)  # raster order, channels interleaved
        return seq * self.bins // self.levels  # equal-width bins; the identity when bins == levels

    def inputs(self, targets: torch.Tensor) -> torch.Tensor:
        return torch.cat([torch.full_like(targets[:, :1], self.start), targets[:, :-1]], dim=1)

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        # The start token's logit is dropped: it is never a target (as in the baselines' own loss).
        return F.cross_entropy(logits[..., : self.bins].float().flatten(0, 1), targets.flatten())


@torch.no_grad()
def test_nll(module: nn.Module, tok: Tokens, u8: torch.Tensor, batch: int = 256) -> float:
    total, count = 0.0, 0
    with eval_mode(module):
        for chunk in u8.split(batch):
            t = tok.targets(chunk)
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
        module, tok = part.module, Tokens(part.dim, ctx.source.levels)
        info[f"{name}.test_nll_init"] = test_nll(module, tok, test_u8)

        def loss_fn(batch, step, module=module, tok=tok) -> torch.Tensor:
            t = tok.targets(batch.u8)
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
