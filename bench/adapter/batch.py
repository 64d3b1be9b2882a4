"""What an adapter is given: `DataInfo` (its data's shape and grey levels) and `Batch` (a training batch on the
device), plus `BatchSource`, the seeded on-device sampler behind `Batch.next()`.

The pixel conventions, once for every adapter:
- `Batch.u8`: uint8 N×C×H×W on the 0..255 scale, every value on the data's `levels` grid: with 17 levels
  (digits) the values are round(k·255/16), k = 0..16; with 256 levels, every byte.
- `Batch.x`: the same pixels as float32 in [-1, 1] (u8 / 127.5 - 1), the input of every `encoder` part.
- `Batch.tokens()`: the same pixels as level indices k in 0..levels-1 (int64, N×C×H×W), not bytes.
- `Batch.y`: int64 labels N, in 0..num_classes-1 (the target's class index), or -1 where unknown.
- What `sample` returns: uint8 N×C×H×W on the 0..255 scale, on the `levels` grid (`bench.to_uint8` does it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from bench.adapter.tokens import from_levels, to_levels


@dataclass(frozen=True)
class DataInfo:
    """What an adapter may know about its data.

    name: the data set's registry name (`digits`, `mnist`, ...).
    channels: C, 1 (grey) or 3 (RGB).
    image_size: H = W, in pixels.
    levels: distinct pixel values per channel (17 for digits, 256 for 8-bit images): `tokens()` runs over
        0..levels-1, and `u8` and samples lie on that grid of the 0..255 scale.
    num_classes: label count of the target; labels are 0..num_classes-1 (the data set's own classes,
        renumbered in order when `dataset.classes` picks a subset).
    shape: (C, H, W), the shape of one image (a property).
    dims: C·H·W, the number of pixel values in one image, e.g. an MLP's width or bpd's divisor (a property).
    """

    name: str
    channels: int
    image_size: int
    levels: int
    num_classes: int

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.channels, self.image_size, self.image_size)

    @property
    def dims(self) -> int:
        return self.channels * self.image_size * self.image_size


@dataclass
class Batch:
    """A training batch on the run's device (the module docstring states every field's shape and range).

    `next()` draws a further fresh batch of the same size from the harness, on the device, from the run's
    seeded generator, and counts it in images/s: for adapters with several inner steps per `train_step`
    (WGAN-GP's critic steps), each on new data.
    """

    u8: torch.Tensor  # uint8, N×C×H×W, 0..255, values on the data set's `levels` grid
    y: torch.Tensor  # int64 N, 0..num_classes-1, -1 where unknown
    levels: int = 256
    # The layout `x` is made in: channels_last when the runner put the adapter's conv nets in it, so the
    # first convolution does not convert its input (or fall back to a slower kernel) on every step.
    memory_format: torch.memory_format = field(default=torch.contiguous_format, repr=False)
    source: Callable[[], Batch] | None = field(default=None, repr=False)
    # family `stylize`: a batch of style images of the same size, drawn beside this (content) batch.
    style: Batch | None = field(default=None, repr=False)
    _x: torch.Tensor | None = field(default=None, repr=False)

    @property
    def x(self) -> torch.Tensor:
        """float32 N×C×H×W in [-1, 1]: u8 / 127.5 - 1."""
        if self._x is None:
            fmt = self.memory_format if self.u8.dim() == 4 else torch.contiguous_format
            self._x = self.u8.to(torch.float32, memory_format=fmt).div_(127.5).sub_(1.0)
        return self._x

    def tokens(self) -> torch.Tensor:
        """Pixels as level indices 0..levels-1 (int64), N×C×H×W: 0..16 for digits, not 0..255."""
        return to_levels(self.u8, self.levels)

    def next(self) -> Batch:
        """A fresh batch of the same size, drawn by the harness (seeded, on the device, counted in images/s)."""
        if self.source is None:
            raise RuntimeError("Batch.next(): this batch was built by hand, without a source; build it with bench.BatchSource")
        return self.source()

    def __len__(self) -> int:
        return self.u8.shape[0]


class BatchSource:
    """Draws batches of `batch_size` (with replacement) from `x`/`y` on their device, with `generator`.

    Nothing here waits on the device: the indices come from a generator on the data's device, and
    index_select never checks bounds on the host. `drawn` counts the batches, for images/s.
    """

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        levels: int,
        batch_size: int,
        generator: torch.Generator,
        memory_format: torch.memory_format = torch.contiguous_format,
        labels: bool = True,
        style: BatchSource | None = None,
    ):
        self.style = style  # a stylize run's style images: each content batch carries one style batch
        self.x, self.y, self.levels, self.batch_size = x, y, levels, batch_size
        self.generator, self.memory_format, self.labels = generator, memory_format, labels
        self.drawn = 0

    def __call__(self) -> Batch:
        idx = torch.randint(0, self.x.shape[0], (self.batch_size,), device=self.x.device, generator=self.generator)
        y = self.y.index_select(0, idx) if self.labels else torch.full((self.batch_size,), -1, dtype=torch.long, device=self.y.device)
        self.drawn += 1
        style = self.style() if self.style is not None else None
        return Batch(self.x.index_select(0, idx), y, self.levels, memory_format=self.memory_format, source=self, style=style)


def to_uint8(x: torch.Tensor, levels: int = 256) -> torch.Tensor:
    """Images in [-1, 1] → uint8, snapped to the data's `levels` grid so samples live where data lives."""
    unit = ((x.float() + 1.0) / 2.0).clamp_(0.0, 1.0)
    return from_levels(torch.round(unit * (levels - 1)).long(), levels)
