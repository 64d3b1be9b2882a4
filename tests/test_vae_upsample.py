"""The VAE's upsampling repeats rows and columns without gradients and is F.interpolate with them: the bound and
the samples are the values they were, and a training step is the same to the bit."""

from __future__ import annotations

import copy

import torch
from torch import nn

from baselines.vae import VAE, Nearest2x
from bench.adapter.base import Batch, DataInfo


def _pair() -> tuple[VAE, VAE]:
    torch.manual_seed(0)
    info = DataInfo("digits", 1, 8, 17, 10)
    fast = VAE(VAE.Config(width=8, feature_dim=32, z_dim=8, iw_samples=4), info, torch.device("cpu"))
    plain = copy.deepcopy(fast)
    for up in plain.decoder.ups:
        assert isinstance(up[0], Nearest2x)
        up[0] = nn.Upsample(scale_factor=2, mode="nearest")
    return fast, plain


def _batch(n: int = 12) -> Batch:
    g = torch.Generator().manual_seed(1)
    return Batch((torch.randint(0, 17, (n, 1, 8, 8), generator=g) * 15).to(torch.uint8), torch.zeros(n, dtype=torch.long), levels=17)


def test_the_same_values_as_interpolate() -> None:
    x = torch.randn(3, 4, 5, 6)
    with torch.no_grad():
        assert torch.equal(Nearest2x()(x), nn.functional.interpolate(x, scale_factor=2, mode="nearest"))


def test_bound_samples_and_training_unchanged() -> None:
    fast, plain = _pair()
    b = _batch()
    with torch.inference_mode():
        assert torch.equal(fast.log_likelihood(b), plain.log_likelihood(b))
        s1 = fast.sample(20, torch.Generator().manual_seed(2))
        s2 = plain.sample(20, torch.Generator().manual_seed(2))
        assert torch.equal(s1, s2)
    b = _batch()  # a fresh one: the batch caches its float pixels, made above in inference mode
    for step in range(3):
        torch.manual_seed(step)
        l1 = fast.train_step(b, step)["loss"]
        torch.manual_seed(step)
        l2 = plain.train_step(b, step)["loss"]
        assert torch.equal(l1, l2)
    for p1, p2 in zip(fast.decoder.parameters(), plain.decoder.parameters(), strict=True):
        assert torch.equal(p1, p2)
