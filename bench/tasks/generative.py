"""generative: the whole adapter trained on the source with its own objective, then fine-tuned on the target.

Whole-model transfer, as Wang et al., "Transferring GANs: generating images from limited data", ECCV 2018
(https://arxiv.org/abs/1805.01677): every network (a GAN's generator and discriminator with its head, a
VAE's encoder, posterior heads and decoder, a sequence model) starts from the source-trained weights; the
optimisers start fresh on the target, as in that paper. `parts:` narrows what is loaded (e.g. only the
generator); `freeze:` then gives FreezeD (Mo et al. 2020, https://arxiv.org/abs/2002.10964).

The fresh adapter sees the source through `train_step`, exactly like a run sees its target. Labels are
passed as unknown (-1) when the source's label set differs in size from the target's, so a class-aware
adapter is never handed a label it has no embedding for.

Evidence recorded: each loss at the first step and averaged over the last tenth of the steps.
"""

from __future__ import annotations

import time
from typing import Any

import torch

from bench.tasks.common import Context, _sync
from bench.tasks.weights import module_tensors

ROLES = ("encoder", "decoder", "sequence", "denoiser")


def train(ctx: Context) -> tuple[dict, dict[str, Any], float]:
    from tqdm.auto import tqdm

    adapter, steps = ctx.fresh, ctx.spec.steps
    labels = ctx.source.num_classes == ctx.info.num_classes
    adapter.train(True)
    history: list[dict[str, torch.Tensor]] = []
    _sync(ctx.device)
    t0 = time.perf_counter()
    bar = tqdm(
        ctx.batches(steps, labels), total=steps, desc="pretrain generative", unit="step", leave=False, dynamic_ncols=True, disable=None
    )
    for step, batch in enumerate(bar):
        with ctx.autocast():
            losses = adapter.train_step(batch, step)
        history.append({k: torch.as_tensor(v).detach().float().reshape(()) for k, v in losses.items()})
    bar.close()
    _sync(ctx.device)
    seconds = time.perf_counter() - t0
    names = sorted(history[0])
    mat = torch.stack([torch.stack([h[n] for n in names]) for h in history]).cpu()
    tail = mat[-max(1, steps // 10) :].mean(0)
    info: dict[str, Any] = {"whole_model": True, "source_labels": labels}
    for i, n in enumerate(names):
        info[f"{n}_first"] = float(mat[0, i])
        info[f"{n}_final"] = float(tail[i])
    if not torch.isfinite(mat).all():
        info["diverged"] = True  # still cached: the same inputs would diverge again, and the run will show it
    return module_tensors(adapter), info, seconds
