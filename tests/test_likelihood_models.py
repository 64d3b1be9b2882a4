"""Focused tests for the likelihood baselines (vae, lstm_seq, transformer_seq) and their shared tokenisation."""

from __future__ import annotations

import math

import pytest
import torch

from baselines.lstm_seq import LSTMSeq
from baselines.transformer_seq import TransformerSeq
from baselines.vae import VAE
from bench.adapter.base import Batch, DataInfo, bits_per_dim, from_levels, to_levels
from bench.adapter.tokens import PixelTokens
from bench.suite import schema

CPU = torch.device("cpu")
TINY = {
    VAE: {"width": 8, "feature_dim": 32, "z_dim": 8, "iw_samples": 4},
    LSTMSeq: {"emb": 16, "hidden": 32, "layers": 2},
    TransformerSeq: {"dim": 32, "depth": 2, "heads": 2},
}


def make(cls, size: int = 8, channels: int = 1, data_levels: int = 17, **cfg):
    torch.manual_seed(0)
    info = DataInfo("test", channels, size, data_levels, 10)
    return cls(schema.parse(cls.Config, {**TINY[cls], **cfg}), info, CPU), info


def random_u8(info: DataInfo, n: int = 4, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return from_levels(torch.randint(0, info.levels, (n, *info.shape), generator=g), info.levels)


def batch_of(info: DataInfo, n: int = 4, seed: int = 0) -> Batch:
    return Batch(random_u8(info, n, seed), torch.zeros(n, dtype=torch.long), info.levels)


# --- tokenisation ----------------------------------------------------------------------------------
@pytest.mark.parametrize("channels,levels", [(1, 17), (3, 17), (3, 256)])
def test_tokens_round_trip(channels: int, levels: int) -> None:
    info = DataInfo("t", channels, 5, levels, 1)
    tok = PixelTokens(channels, 5, levels)
    u8 = random_u8(info)
    seq = tok.encode(to_levels(u8, levels))
    assert seq.shape == (4, channels * 25) and int(seq.max()) < tok.bins and tok.start == tok.vocab - 1
    assert torch.equal(tok.decode(seq), u8)


def test_coarse_bins_decode_within_the_bin() -> None:
    tok = PixelTokens(1, 6, 17, bins=5)
    idx = torch.randint(0, 17, (8, 1, 6, 6))
    back = to_levels(tok.decode(tok.encode(idx), torch.Generator().manual_seed(0)), 17)
    assert torch.equal(tok.level_to_bin[back], tok.level_to_bin[idx])


def test_rgb_is_interleaved_per_pixel_in_raster_order() -> None:
    tok = PixelTokens(3, 2, 256)
    img = torch.arange(12).view(1, 2, 2, 3).permute(0, 3, 1, 2)  # value = 3·(row·2 + col) + channel
    assert tok.encode(img).tolist() == [list(range(12))]
    assert tok.encode(img)[0, :3].tolist() == [img[0, 0, 0, 0], img[0, 1, 0, 0], img[0, 2, 0, 0]]


@pytest.mark.parametrize("levels,bins", [(17, 17), (256, 256), (256, 16)])
def test_uniform_logits_give_log2_levels_bpd(levels: int, bins: int) -> None:
    tok = PixelTokens(3, 4, levels, bins)
    tokens = tok.encode(torch.randint(0, levels, (5, 3, 4, 4)))
    ll = tok.log_likelihood(torch.zeros(5, tok.length, tok.vocab), tokens)
    assert bits_per_dim(ll, tok.length) == pytest.approx(math.log2(levels), abs=1e-5)


def test_coarse_bins_give_a_normalised_mass_over_levels() -> None:
    tok = PixelTokens(1, 1, 17, bins=5)  # one pixel: P(level) over the 17 levels must sum to one
    logits = torch.randn(1, 1, tok.vocab).expand(17, 1, tok.vocab)
    ll = tok.log_likelihood(logits, tok.encode(torch.arange(17).view(17, 1, 1, 1)))
    assert float(torch.logsumexp(ll.double(), 0)) == pytest.approx(0.0, abs=1e-5)


def test_bins_above_the_data_levels_are_refused() -> None:
    with pytest.raises(ValueError, match="levels"):
        make(LSTMSeq, data_levels=17, levels=32)


# --- sequence models -------------------------------------------------------------------------------
def stepwise_logits(adapter, tokens: torch.Tensor) -> torch.Tensor:
    """Logits from the incremental sampler's path (recurrent state or KV cache), one token at a time."""
    inputs = adapter.tok.inputs(tokens)
    out, state = [], None if isinstance(adapter, LSTMSeq) else adapter.model.new_cache()
    for t in range(inputs.shape[1]):
        if isinstance(adapter, LSTMSeq):
            logits, state = adapter.model.run(inputs[:, t : t + 1], state, start=t)
        else:
            logits = adapter.model(inputs[:, t : t + 1], state, start=t)
        out.append(logits)
    return torch.cat(out, 1)


@pytest.mark.parametrize("cls", [LSTMSeq, TransformerSeq])
@pytest.mark.parametrize("channels", [1, 3])
def test_incremental_logits_match_the_full_pass(cls, channels: int) -> None:
    adapter, info = make(cls, size=4, channels=channels)
    adapter.train(False)
    tokens = adapter.tok.encode(batch_of(info).tokens())
    with torch.no_grad():
        full = adapter.model(adapter.tok.inputs(tokens))
        step = stepwise_logits(adapter, tokens)
    torch.testing.assert_close(step, full, atol=1e-5, rtol=1e-4)


def test_kv_cache_prefill_of_several_tokens_matches() -> None:
    adapter, info = make(TransformerSeq, size=4, channels=1)
    adapter.train(False)
    inputs = adapter.tok.inputs(adapter.tok.encode(batch_of(info).tokens()))
    with torch.no_grad():
        full = adapter.model(inputs)
        cache = adapter.model.new_cache()
        head = adapter.model(inputs[:, :5], cache, start=0)  # several tokens at once: the offset causal mask
        rest = adapter.model(inputs[:, 5:9], cache, start=5)
    torch.testing.assert_close(torch.cat([head, rest], 1), full[:, :9], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("cls", [LSTMSeq, TransformerSeq])
def test_sequence_ll_is_the_sum_of_token_log_probs(cls) -> None:
    adapter, info = make(cls, size=4, channels=3)
    adapter.train(False)
    batch = batch_of(info)
    tokens = adapter.tok.encode(batch.tokens())
    with torch.no_grad():
        ll = adapter.log_likelihood(batch)
        logp = torch.log_softmax(stepwise_logits(adapter, tokens)[..., : adapter.tok.bins].double(), -1)
    manual = logp.gather(-1, tokens.unsqueeze(-1)).squeeze(-1).sum(1)
    torch.testing.assert_close(ll.double(), manual, atol=1e-3, rtol=1e-5)


@pytest.mark.parametrize("cls", [LSTMSeq, TransformerSeq])
def test_coarse_levels_train_score_and_sample_on_the_data_grid(cls) -> None:
    adapter, info = make(cls, size=4, channels=1, data_levels=17, levels=6)
    batch = batch_of(info)
    adapter.train_step(batch, 0)
    ll = adapter.log_likelihood(batch)
    assert ll.shape == (4,) and bool(torch.isfinite(ll).all()) and bool((ll <= 0).all())
    x = adapter.sample(3, torch.Generator().manual_seed(0))
    assert x.dtype == torch.uint8 and torch.equal(from_levels(to_levels(x, 17), 17), x)


@pytest.mark.parametrize("cls", [LSTMSeq, TransformerSeq])
def test_sampling_is_reproducible_from_the_generator(cls) -> None:
    adapter, _ = make(cls, size=4, channels=3)
    a = adapter.sample(3, torch.Generator().manual_seed(7))
    b = adapter.sample(3, torch.Generator().manual_seed(7))
    assert torch.equal(a, b)


# --- VAE -------------------------------------------------------------------------------------------
def test_vae_iwae_bound_tightens_with_more_samples() -> None:
    adapter, info = make(VAE)
    for step in range(5):
        adapter.train_step(batch_of(info, 16, seed=step), step)
    adapter.train(False)
    batch = batch_of(info, 16, seed=99)
    with torch.no_grad():
        elbo, iwae = adapter.log_likelihood(batch, k=1), adapter.log_likelihood(batch, k=64)
    assert float(iwae.mean()) >= float(elbo.mean()) - 1e-4
    assert bool((iwae <= 0).all()) and bool(torch.isfinite(iwae).all())


@pytest.mark.parametrize("likelihood,levels", [("categorical", 17), ("logistic", 17), ("logistic", 256)])
def test_vae_pixel_likelihood_sums_to_one_over_levels(likelihood: str, levels: int) -> None:
    adapter, _ = make(VAE, data_levels=levels, likelihood=likelihood)
    params = torch.randn(1, 1, adapter.per_channel, 1, 1).expand(levels, -1, -1, -1, -1) * 3
    lp = adapter._log_px(params, torch.arange(levels).view(levels, 1, 1, 1))
    assert float(torch.logsumexp(lp.double(), 0)) == pytest.approx(0.0, abs=1e-4)


@pytest.mark.parametrize("size", [8, 9, 28, 32])
@pytest.mark.parametrize("channels", [1, 3])
def test_vae_any_size(size: int, channels: int) -> None:
    adapter, info = make(VAE, size=size, channels=channels, data_levels=256 if channels == 3 else 17)
    batch = batch_of(info, 2)
    losses = adapter.train_step(batch, 0)
    assert torch.isfinite(losses["loss"])
    assert adapter.log_likelihood(batch).shape == (2,)
    for mode in ("sample", "mode"):
        adapter.config.sample_mode = mode
        x = adapter.sample(2, torch.Generator().manual_seed(0))
        assert x.dtype == torch.uint8 and x.shape == (2, *info.shape)


@pytest.mark.parametrize("cls", [VAE, LSTMSeq, TransformerSeq])
def test_bf16_autocast_is_safe(cls) -> None:
    adapter, info = make(cls, size=4, channels=3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        losses = adapter.train_step(batch_of(info), 0)
        x = adapter.sample(2, torch.Generator().manual_seed(0))
        ll = adapter.log_likelihood(batch_of(info))
    assert all(v.dtype == torch.float32 and torch.isfinite(v) for v in losses.values())
    assert x.dtype == torch.uint8 and ll.dtype == torch.float32 and bool(torch.isfinite(ll).all())
