"""`Fixed`: an adapter whose 'generated' samples are given images, for metric tests that need samples of a
known kind (real data, copies of the training set, noise) without training anything."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bench.adapter.base import Adapter, DataInfo


class Fixed(Adapter):
    """Returns the given images in order, cycling."""

    family = "gan"

    @dataclass
    class Config:
        pass

    def __init__(self, images: torch.Tensor, info: DataInfo):
        super().__init__(self.Config(), info, torch.device("cpu"))
        self.images, self.pos, self.drawn = images, 0, 0  # drawn: how many samples the metrics asked for

    def train_step(self, batch, step):
        raise NotImplementedError

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        idx = (torch.arange(n) + self.pos) % len(self.images)
        self.pos += n
        self.drawn += n
        return self.images[idx]
