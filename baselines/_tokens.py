"""What the sequence baselines (lstm_seq, transformer_seq) share, so they compare like-for-like: the pixel
token layout (bench.adapter.tokens.PixelTokens, the same one the autoregressive pretraining task reads), the
ancestral sampler, and one training step and likelihood (TokenSequenceAdapter).

The layout (raster order, channels interleaved per pixel, bins of grey levels, a start token at position 0
that is never a target) is described in bench/tokens.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from bench.adapter.base import Adapter, Batch
from bench.adapter.tokens import PixelTokens

StepFn = Callable[[torch.Tensor, int, Any], tuple[torch.Tensor, Any]]


@torch.no_grad()
def sample_tokens(step: StepFn, state: Any, n: int, tok: PixelTokens, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """Ancestral sampling, one token at a time for all n sequences in parallel.

    `step(prev_tokens (n,), position, state) -> (logits (n, vocab), state)` advances the model by one token
    with its recurrent state or KV cache, so a whole image costs T cheap steps rather than T full passes.
    """
    prev = torch.full((n,), tok.start, dtype=torch.long, device=device)
    out = torch.empty(n, tok.length, dtype=torch.long, device=device)
    for t in range(tok.length):
        logits, state = step(prev, t, state)
        probs = torch.softmax(logits[:, : tok.bins].float(), dim=-1)
        prev = torch.multinomial(probs.to(generator.device), 1, generator=generator).squeeze(1).to(device)
        out[:, t] = prev
    return out


class TokenSequenceAdapter(Adapter):
    """The training step and likelihood shared by lstm_seq and transformer_seq: the same tokens, loss and
    bound, so LSTM against transformer compares the networks only. Subclasses set `tok`, `model`, `opt`."""

    tok: PixelTokens
    model: nn.Module
    opt: torch.optim.Optimizer

    def before_step(self, step: int) -> None:
        """Hook for schedules (e.g. warm-up); nothing by default."""

    def train_step(self, batch: Batch, step: int) -> dict[str, torch.Tensor]:
        self.before_step(step)
        tokens = self.tok.encode(batch.tokens())
        loss = self.tok.loss(self.model(self.tok.inputs(tokens)), tokens)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.config.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        self.opt.step()
        return {"nll": loss.detach()}  # nats per token (per dimension) over bins

    def log_likelihood(self, batch: Batch) -> torch.Tensor:
        tokens = self.tok.encode(batch.tokens())
        return self.tok.log_likelihood(self.model(self.tok.inputs(tokens)), tokens)
