"""Focused tests for the diffusion and flow baselines (ddpm, realnvp): their bounds are bounds on a discrete
likelihood (summed over every image of a tiny space they stay <= 1), the parts they declare, and sampling."""

from __future__ import annotations

import itertools

import pytest
import torch

from baselines.ddpm import DDPM, alpha_bars
from baselines.realnvp import RealNVP, squeeze, unsqueeze
from bench import schema
from bench.adapter import Batch, DataInfo, from_levels, to_levels

CPU = torch.device("cpu")
TINY = {
    DDPM: {"width": 8, "time_dim": 16, "steps": 12, "bound_steps": 11, "sample_steps": 4},
    RealNVP: {"hidden": 16, "scales": 1, "iw_samples": 2},
}


def make(cls, info: DataInfo, **cfg):
    torch.manual_seed(0)
    return cls(schema.parse(cls.Config, {**TINY[cls], **cfg}), info, CPU)


def every_image(info: DataInfo) -> Batch:
    """All levels^dims images of a tiny space, as one batch."""
    grid = torch.tensor(list(itertools.product(range(info.levels), repeat=info.dims)))
    u8 = from_levels(grid.view(-1, *info.shape), info.levels)
    return Batch(u8, torch.zeros(len(u8), dtype=torch.long), info.levels)


def train_a_little(adapter, info: DataInfo, steps: int = 20) -> None:
    g = torch.Generator().manual_seed(1)
    # A peaked target (two images), so a density that forgot the bin volume would exceed 1 somewhere.
    pattern = torch.tensor([[0, 4, 4, 0], [4, 0, 0, 4]]).repeat(1, info.dims // 4)
    u8 = from_levels(pattern.view(2, *info.shape).repeat(8, 1, 1, 1), info.levels)
    for step in range(steps):
        idx = torch.randint(0, len(u8), (16,), generator=g)
        adapter.train_step(Batch(u8[idx], torch.zeros(16, dtype=torch.long), info.levels), step)


@pytest.mark.parametrize("cls", [DDPM, RealNVP])
def test_bound_sums_to_at_most_one_over_every_image(cls) -> None:
    # 2×2 pixels, 5 levels: 625 images. A lower bound on log P(x) can only lose mass: Σ exp(bound) <= 1.
    info = DataInfo("t", 1, 2, 5, 1)
    adapter = make(cls, info, **({"steps": 100, "bound_steps": 99} if cls is DDPM else {}))
    train_a_little(adapter, info)
    adapter.train(False)
    with torch.inference_mode():
        ll = adapter.log_likelihood(every_image(info)).double()
    assert torch.isfinite(ll).all() and (ll <= 0).all()
    total = float(ll.exp().sum())
    assert total <= 1.0 + 1e-6, total
    if cls is RealNVP:  # a flow's bound is tight enough to see what it learned; a 12-step DDPM's is loose
        # Trained on two images, they hold more of the mass than a uniform model would give them.
        assert float(ll.topk(2).values.exp().sum()) > 2 / 625


class ZeroNet(torch.nn.Module):
    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(x)


def test_ddpm_bound_estimate_is_unbiased() -> None:
    # bound_steps = T - 1: one step per stratum, every KL term counted once. With fewer strata the sum is
    # estimated from one draw per stratum, weighted by its size: unbiased, so its mean over draws matches.
    # ε̂ = 0 keeps the per-term error light-tailed (||ε||², mean D), so 200 draws pin the means down.
    info = DataInfo("t", 1, 2, 5, 1)
    full = make(DDPM, info, steps=60, bound_steps=59, schedule="linear")
    few = make(DDPM, info, steps=60, bound_steps=5, schedule="linear")
    assert full._strata() == [(i, i + 1) for i in range(2, 61)]
    strata = few._strata()
    assert len(strata) == 5 and strata[0][0] == 2 and strata[-1][1] == 61
    assert all(a[1] == b[0] and a[0] < a[1] for a, b in zip(strata, strata[1:], strict=False))
    batch = Batch(from_levels(torch.tensor([[[[0, 2], [4, 1]]]]), 5), torch.zeros(1, dtype=torch.long), 5)
    means = []
    for adapter in (full, few):
        adapter.net_ema = ZeroNet()
        draws = []
        with torch.inference_mode():
            for seed in range(200):
                adapter.bound_seed = seed
                draws.append(float(adapter.log_likelihood(batch)))
        draws_t = torch.tensor(draws, dtype=torch.float64)
        means.append((draws_t.mean(), draws_t.std() / len(draws) ** 0.5))
    (m_full, se_full), (m_few, se_few) = means
    assert abs(m_full - m_few) < 4 * (se_full**2 + se_few**2).sqrt(), means


def test_ddpm_decoder_is_a_distribution_over_the_levels() -> None:
    info = DataInfo("t", 1, 2, 5, 1)
    adapter = make(DDPM, info)
    levels = torch.linspace(-1, 1, 5, dtype=torch.float64).view(5, 1, 1, 1).expand(5, 1, 2, 2)
    for mean, std in [(0.13, 0.03), (-0.9, 0.2), (1.4, 0.05)]:
        logp = adapter._decoder_log_prob(levels, torch.full_like(levels, mean), std) / 4  # per pixel (all 4 equal)
        assert float(logp.exp().sum()) == pytest.approx(1.0, abs=1e-9)


def test_schedules_run_from_data_to_noise() -> None:
    for schedule in ("cosine", "linear"):
        ab = alpha_bars(schedule, 1000, 0.03)
        assert ab[0] == 1 and (ab[1:] < ab[:-1]).all() and float(ab[-1]) < 1e-3
    assert float((1 - alpha_bars("cosine", 1000, 0.03)[1]).sqrt()) == pytest.approx(0.03, rel=1e-6)


def test_realnvp_inverts_exactly() -> None:
    info = DataInfo("t", 1, 8, 17, 1)
    adapter = make(RealNVP, info, scales=2)
    for p in adapter.flow.parameters():  # away from the identity it starts as
        torch.nn.init.normal_(p, std=0.05)
    z = torch.randn(3, 1, 8, 8)
    with torch.no_grad():
        u, _ = adapter.flow(z)
        assert torch.allclose(adapter.flow.inverse(u), z, atol=1e-5)
    x = torch.randn(2, 3, 4, 6)
    assert torch.equal(unsqueeze(squeeze(x)), x)


def test_realnvp_log_det_matches_autograd() -> None:
    info = DataInfo("t", 1, 2, 17, 1)
    adapter = make(RealNVP, info)
    for p in adapter.flow.parameters():
        torch.nn.init.normal_(p, std=0.2)
    z = torch.randn(1, 1, 2, 2, dtype=torch.float64)
    adapter.flow.double()
    jac = torch.autograd.functional.jacobian(lambda v: adapter.flow(v.view(1, 1, 2, 2))[0].flatten(), z.flatten())
    _, ld = adapter.flow(z)
    assert float(ld) == pytest.approx(float(torch.linalg.slogdet(jac).logabsdet), abs=1e-9)


@pytest.mark.parametrize("cls", [DDPM, RealNVP])
def test_sampling_is_reproducible_and_on_the_grid(cls) -> None:
    info = DataInfo("t", 1, 8, 17, 1)
    adapter = make(cls, info)
    a = adapter.sample(5, torch.Generator().manual_seed(3))
    b = adapter.sample(5, torch.Generator().manual_seed(3))
    assert a.dtype == torch.uint8 and a.shape == (5, 1, 8, 8) and torch.equal(a, b)
    assert torch.equal(from_levels(to_levels(a, 17), 17), a)


def test_ddpm_encoder_part_shares_the_denoisers_weights() -> None:
    info = DataInfo("t", 1, 8, 17, 1)
    adapter = make(DDPM, info)
    enc = adapter.parts()["encoder"]
    own = {id(p) for p in adapter.net.parameters()}
    assert enc.module.state_dict().keys() and all(id(p) in own for p in enc.module.parameters())
    ups = {id(p) for p in adapter.net.ups.parameters()}
    assert not ups & {id(p) for p in enc.module.parameters()}  # the up path is not in the encoder half
    assert enc.module(torch.zeros(2, *info.shape)).shape == (2, enc.features)
