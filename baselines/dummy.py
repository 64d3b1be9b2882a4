"""dummy: independent per-pixel categorical model. The reference adapter, and the test fixture.

Each pixel (and channel) has its own categorical distribution over the data's grey levels, fitted by
gradient descent on the negative log-likelihood. Its log-likelihood is exact, its samples are real draws,
and a fresh model is uniform, so its bpd is log2(levels): the harness's bpd is checked against that.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from bench.adapter.base import Adapter, Batch, DataInfo, from_levels


class Dummy(Adapter):
    family = "autoregressive"  # a (trivially factorised) explicit likelihood model

    @dataclass
    class Config:
        lr: float = 0.05

    def __init__(self, config: Config, info: DataInfo, device: torch.device):
        super().__init__(config, info, device)
        # Zeros: every level equally likely, so a fresh model is exactly uniform.
        self.logits = nn.ParameterList([nn.Parameter(torch.zeros(*info.shape, info.levels, device=device))])
        self.opt = torch.optim.Adam(self.logits.parameters(), lr=config.lr)

    def _log_probs(self) -> torch.Tensor:
        return torch.log_softmax(self.logits[0], dim=-1)

    def log_likelihood(self, batch: Batch) -> torch.Tensor:
        idx = batch.tokens().unsqueeze(-1)  # N×C×H×W×1
        lp = self._log_probs().unsqueeze(0).expand(len(batch), *self.logits[0].shape)
        return lp.gather(-1, idx).squeeze(-1).flatten(1).sum(1)

    def train_step(self, batch: Batch, step: int) -> dict[str, torch.Tensor]:
        loss = -self.log_likelihood(batch).mean() / self.info.dims
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return {"nll": loss.detach()}

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        probs = self._log_probs().exp().reshape(-1, self.info.levels)
        idx = torch.multinomial(probs.to(generator.device), n, replacement=True, generator=generator).T
        return from_levels(idx.reshape(n, *self.info.shape), self.info.levels).to(self.device)
