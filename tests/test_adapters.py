"""Contract tests, parametrised over every registered adapter: a new adapter is tested for free.

Each adapter runs with a tiny config (TINY below; an adapter not listed runs its defaults) so the whole file
stays fast on two CPU cores. What is checked:
- training lowers the test NLL (likelihood models) or a chosen loss (others);
- sample() returns uint8 of the right shape at 8 px/1 channel and 16 px/3 channels;
- log_likelihood() is None, or finite, <= 0, shaped (N,), with a plausible bpd (uniform = log2(levels));
- state_dict() round-trips bit-exactly, and a train step afterwards gives identical losses.
"""

from __future__ import annotations

import io
import math

import pytest
import torch

from bench.adapter.base import (
    ADAPTERS,
    CONDITIONAL_FAMILIES,
    Adapter,
    Batch,
    DataInfo,
    bits_per_dim,
    validate_log_likelihood,
    validate_sample,
)
from bench.adapter.batch import BatchSource
from bench.data.datasets import DatasetSpec, load_dataset
from bench.data.style import with_style
from bench.suite import schema

CPU = torch.device("cpu")
KEYS = ADAPTERS.keys()

TINY: dict[str, dict] = {
    "cnn_gan": {"z_dim": 8, "width": 8, "feature_dim": 16},
    "transformer_gan": {"z_dim": 8, "dim": 16, "depth": 1, "heads": 2, "g_width": 8},
    "lstm_seq": {"emb": 16, "hidden": 48, "layers": 1, "lr": 5e-3},
    "transformer_seq": {"dim": 32, "depth": 1, "heads": 2, "warmup": 1, "lr": 3e-3},
    "vae": {"width": 8, "feature_dim": 32, "z_dim": 8, "iw_samples": 4, "lr": 3e-3},
    "ddpm": {"width": 8, "time_dim": 16, "steps": 100, "bound_steps": 8, "sample_steps": 4},
    "realnvp": {"hidden": 16, "scales": 1, "iw_samples": 2},
    "adain": {"width": 8},
    "stytr": {"dim": 16, "depth": 1, "heads": 2},
}
# The loss that must fall during training, for adapters without a likelihood where one reliably does (DCGAN's
# D wins early on). An adapter with neither (a GAN whose R1 term lifts loss_d) must at least change its
# weights with finite losses; its own focused tests say more.
LOSS_KEY: dict[str, str] = {"cnn_gan": "loss_d"}
STEPS = 40


def make(key: str, info: DataInfo, seed: int = 0) -> Adapter:
    cls = ADAPTERS.get(key)
    torch.manual_seed(seed)
    return cls(schema.parse(cls.Config, dict(TINY.get(key, {}))), info, CPU)


def conditional(key: str) -> bool:
    return ADAPTERS.get(key).family in CONDITIONAL_FAMILIES


def random_batch(info: DataInfo, n: int = 8, seed: int = 0, style: bool = False) -> Batch:
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, info.levels, (2 * n, *info.shape), generator=g)
    u8 = torch.round(idx.float() * (255.0 / (info.levels - 1))).to(torch.uint8)
    # A seeded source over these n images, as the runner gives: batch.next() (e.g. WGAN-GP's critic steps)
    # draws further batches from it, the same ones for the same seed. A stylize adapter's batch carries a
    # style batch (the other n images), as the runner gives it.
    gen, y = torch.Generator().manual_seed(seed), torch.zeros(n, dtype=torch.long)
    styles = BatchSource(u8[n:], y, info.levels, n, gen, labels=False) if style else None
    return BatchSource(u8[:n], y, info.levels, n, gen, style=styles)()


@pytest.fixture(scope="module")
def digits():
    return load_dataset(DatasetSpec("digits"))


@pytest.fixture(scope="module")
def digits_photos(digits):
    return with_style(digits, DatasetSpec("photos"))


def train_batches(data, steps: int, seed: int = 0):
    # Through the harness's BatchSource, as the runner does, so adapters that draw more batches per step
    # (batch.next(), e.g. WGAN-GP's critic steps) get them, and stylize adapters their style batch.
    gen = torch.Generator().manual_seed(seed)
    style = None if data.style is None else BatchSource(data.style.train_x, data.style.train_y, data.levels, 64, gen)
    source = BatchSource(data.train_x, data.train_y, data.levels, 64, gen, style=style)
    for _ in range(steps):
        yield source()


def test_bpd_of_uniform_is_log2_levels(digits) -> None:
    # The dummy adapter starts uniform: the reference point of the bpd convention.
    adapter = make("dummy", digits.info)
    with torch.no_grad():
        ll = adapter.log_likelihood(Batch(digits.test_x[:32], digits.test_y[:32], digits.levels))
    assert bits_per_dim(ll, digits.info.dims) == pytest.approx(math.log2(digits.levels), abs=1e-6)


@pytest.mark.parametrize("key", KEYS)
def test_training_lowers_loss(key: str, digits, digits_photos) -> None:
    digits = digits_photos if conditional(key) else digits
    adapter = make(key, digits.info)
    test = Batch(digits.test_x[:128], digits.test_y[:128], digits.levels)

    def nll() -> float | None:
        adapter.train(False)
        with torch.inference_mode():
            ll = adapter.log_likelihood(test)
        adapter.train(True)
        return None if ll is None else -float(ll.mean())

    before = nll()
    weights = {k: v.detach().clone() for k, v in _tensors(adapter.state_dict()).items() if k.startswith(".module")}
    history = []
    for step, batch in enumerate(train_batches(digits, STEPS)):
        losses = adapter.train_step(batch, step)
        assert losses and all(isinstance(v, torch.Tensor) and v.ndim == 0 and not v.requires_grad for v in losses.values())
        history.append({k: float(v) for k, v in losses.items()})
    assert all(math.isfinite(v) for h in history for v in h.values())
    if before is not None:
        assert nll() < before - 0.5, "the test NLL should fall clearly within a few dozen steps"
    elif key not in LOSS_KEY:
        after = _tensors(adapter.state_dict())
        assert any(not torch.equal(w, after[k]) for k, w in weights.items()), "training must update the weights"
    else:
        name = LOSS_KEY[key]
        first = sum(h[name] for h in history[:5]) / 5
        last = sum(h[name] for h in history[-5:]) / 5
        assert last < first, f"{name}: {first:.4f} → {last:.4f}"


@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize("size,channels", [(8, 1), (16, 3)])
def test_sample_shape_and_dtype(key: str, size: int, channels: int) -> None:
    info = DataInfo("test", channels, size, 17, 10)
    adapter = make(key, info)
    batch = random_batch(info, style=conditional(key))
    adapter.train_step(batch, 0)
    if conditional(key):  # a stylize adapter answers stylize(content, style), under sample()'s output rule
        x = validate_sample(adapter.stylize(batch.x[:2], batch.style.x[:2]), 2, info, key)
    else:
        x = validate_sample(adapter.sample(2, torch.Generator().manual_seed(0)), 2, info, key)
    assert x.device.type == "cpu"


@pytest.mark.parametrize("key", KEYS)
def test_log_likelihood_contract(key: str, digits) -> None:
    adapter = make(key, digits.info)
    batch = Batch(digits.test_x[:16], digits.test_y[:16], digits.levels)
    adapter.train(False)
    with torch.inference_mode():
        ll = validate_log_likelihood(adapter.log_likelihood(batch), 16, key)
    if ll is None:
        pytest.skip(f"{key} has no likelihood")
    assert ll.dtype.is_floating_point and bool((ll <= 1e-4).all())
    bpd = bits_per_dim(ll, digits.info.dims)
    # An untrained model is near uniform: a bpd far above log2(levels) means a bug in the units or the sum.
    # Not so a diffusion model's bound: with ε̂ = 0 at init, its KL terms add up to about half the log-SNR
    # range per dimension (ddpm: 0.5·(6.9 + 10) nats ≈ 12 bits), by construction.
    limit = 4 if ADAPTERS.get(key).family == "diffusion" else 2
    assert 0 < bpd < limit * math.log2(digits.levels)


@pytest.mark.parametrize("key", KEYS)
def test_state_dict_round_trip(key: str) -> None:
    info = DataInfo("test", 1, 8, 17, 10)
    a, b = make(key, info, seed=0), make(key, info, seed=1)
    a.train_step(random_batch(info, seed=1, style=conditional(key)), 0)  # optimiser state exists too
    # Through bytes, as a resume does: torch's optimiser load_state_dict may alias the tensors it is given.
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    buf.seek(0)
    b.load_state_dict(torch.load(buf, weights_only=True))
    flat_a, flat_b = _tensors(a.state_dict()), _tensors(b.state_dict())
    assert flat_a.keys() == flat_b.keys()
    for k in flat_a:
        assert torch.equal(flat_a[k], flat_b[k]), k
    torch.manual_seed(3)
    la = a.train_step(random_batch(info, seed=2, style=conditional(key)), 1)  # one batch each: batch.next() advances its source
    torch.manual_seed(3)
    lb = b.train_step(random_batch(info, seed=2, style=conditional(key)), 1)
    assert la.keys() == lb.keys()
    for k in la:
        assert torch.equal(la[k], lb[k]), k
    after_a, after_b = _tensors(a.state_dict()), _tensors(b.state_dict())
    for k in after_a:
        assert torch.equal(after_a[k], after_b[k]), k


def _tensors(state, prefix: str = "") -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    if isinstance(state, torch.Tensor):
        out[prefix] = state
    elif isinstance(state, dict):
        for k, v in state.items():
            out.update(_tensors(v, f"{prefix}.{k}"))
    elif isinstance(state, (list, tuple)):
        for i, v in enumerate(state):
            out.update(_tensors(v, f"{prefix}[{i}]"))
    return out
