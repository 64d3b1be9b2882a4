"""supervised: an encoder part plus a linear head, trained with cross-entropy on the source's labels.

The classic ImageNet-pretrained-backbone recipe, at the harness's scale: e.g. a GAN discriminator's trunk
learns digit classes 0–4 before it learns real-vs-fake on 5–9 (cf. Kumari et al., "Ensembling Off-the-shelf
Models for GAN Training" (Vision-aided GAN), 2022, https://arxiv.org/abs/2112.09130, and Sauer et al.,
"Projected GANs Converge Faster", 2021, https://arxiv.org/abs/2111.01007, which use pretrained classifier
features in D). The head is discarded afterwards; only the trunk initialises the adapter.

Evidence recorded: the trained head's accuracy on the source's test split, and a linear probe (a fresh
softmax regression on the frozen features) before and after, so the gain is measured, not assumed.
"""

from __future__ import annotations

import time
from typing import Any

import torch.nn.functional as F
from torch import nn

from bench.tasks.common import Context, encode_all, fit, linear_probe
from bench.tasks.strategy import StrategyNotApplicable
from bench.tasks.weights import part_tensors

ROLES = ("encoder",)


def train(ctx: Context) -> tuple[dict, dict[str, Any], float]:
    if ctx.source.num_classes < 2:
        raise StrategyNotApplicable(f"supervised needs a labelled source; {ctx.source.name} has {ctx.source.num_classes} class")
    parts = ctx.fresh.parts()
    info: dict[str, Any] = {}
    seconds = 0.0
    for name in ctx.parts:
        part = parts[name]
        t = time.perf_counter()
        info[f"{name}.probe_accuracy_init"] = linear_probe(part.module, ctx.source)
        probe_s = time.perf_counter() - t
        # Feature size from a real forward pass, so a part whose `dim` is stale still gets a fitting head.
        feat = encode_all(part.module, ctx.source.train_x[:2]).shape[1]
        head = nn.Linear(feat, ctx.source.num_classes).to(ctx.device)
        module = part.module

        def loss_fn(batch, step, module=module, head=head):
            return F.cross_entropy(head(module(batch.x).flatten(1)).float(), batch.y)

        res = fit(ctx, [*module.parameters(), *head.parameters()], loss_fn, f"pretrain supervised {name}")
        seconds += res.seconds
        t = time.perf_counter()
        feats = encode_all(module, ctx.source.test_x)
        head_acc = float((head(feats).argmax(1) == ctx.source.test_y).float().mean())
        info.update(
            {
                f"{name}.loss_first": res.loss_first,
                f"{name}.loss_final": res.loss_final,
                f"{name}.head_accuracy": head_acc,
                f"{name}.probe_accuracy": linear_probe(module, ctx.source),
            }
        )
        info["probe_seconds"] = info.get("probe_seconds", 0.0) + probe_s + time.perf_counter() - t
    return part_tensors(ctx.fresh, ctx.parts), info, seconds
