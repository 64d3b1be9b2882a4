"""Focused tests for the GAN adapters (cnn_gan, transformer_gan): sizing, parts, freezing and augmentation.

Generic contract tests over the whole registry live in test_adapters.py; these cover what is GAN-specific.
"""

from __future__ import annotations

import pytest
import torch

from baselines.cnn_gan import CNNGAN, diff_augment
from baselines.transformer_gan import L2Attention, TransformerGAN
from bench.adapter.base import Batch, DataInfo, from_levels, to_uint8
from bench.core.errors import ConfigError
from bench.runner.pretrain import apply_freeze
from bench.suite import schema

CPU = torch.device("cpu")
TINY_CNN = {"z_dim": 8, "width": 8, "feature_dim": 16}
TINY_VIT = {"z_dim": 8, "dim": 16, "depth": 1, "heads": 2, "g_width": 8, "stem": 8}


def _make(cls, size: int, channels: int, **cfg):
    torch.manual_seed(0)
    info = DataInfo("test", channels, size, 17, 10)
    return cls(schema.parse(cls.Config, cfg), info, CPU), info


def _batch(info: DataInfo, n: int = 4) -> Batch:
    idx = torch.randint(0, info.levels, (n, *info.shape))
    return Batch(u8=from_levels(idx, info.levels), y=torch.zeros(n, dtype=torch.long), levels=info.levels)


def _step_and_sample(adapter, info: DataInfo) -> None:
    losses = adapter.train_step(_batch(info), 0)
    assert {"loss_d", "loss_g"} <= set(losses)
    for v in losses.values():
        assert v.ndim == 0 and not v.requires_grad and torch.isfinite(v)
    x = adapter.sample(3, torch.Generator().manual_seed(0))
    assert x.dtype == torch.uint8 and tuple(x.shape) == (3, *info.shape)


# 13 is odd (centre crop after the doublings), 28 is MNIST's (a 7×7 start grid).
@pytest.mark.parametrize("size,channels", [(8, 1), (13, 3), (28, 1), (32, 3)])
def test_cnn_gan_any_size(size: int, channels: int) -> None:
    adapter, info = _make(CNNGAN, size, channels, **TINY_CNN)
    _step_and_sample(adapter, info)


@pytest.mark.parametrize("generator", ["transformer", "cnn"])
@pytest.mark.parametrize("size,channels", [(8, 1), (16, 3), (32, 1), (32, 3)])
def test_transformer_gan_sizes_and_generators(generator: str, size: int, channels: int) -> None:
    adapter, info = _make(TransformerGAN, size, channels, generator=generator, **TINY_VIT)
    _step_and_sample(adapter, info)


# transformer_gan's D reads its 4x4 tokens and class token in place: 17 tokens x 16 wide.
@pytest.mark.parametrize(
    "cls,cfg,feat", [(CNNGAN, TINY_CNN, 16), (TransformerGAN, TINY_VIT, 17 * 16), (TransformerGAN, {**TINY_VIT, "global_pool": "avg"}, 16)]
)
def test_parts_roles_and_dims(cls, cfg, feat: int) -> None:
    adapter, info = _make(cls, 8, 1, **cfg)
    parts = adapter.parts()
    g, d = parts["generator"], parts["discriminator"]
    assert (g.role, g.latent_dim, d.role, d.features) == ("decoder", 8, "encoder", feat)
    img = g.module(torch.randn(2, g.latent_dim))
    assert img.shape == (2, *info.shape) and img.abs().max() <= 1
    assert d.module(img).shape == (2, feat)
    # Every parameter of a part sits in some block, except the final norm of a ViT (trained by FreezeD too).
    in_blocks = {id(p) for b in d.blocks for p in b.parameters()}
    assert len(in_blocks) >= sum(p.numel() > 0 for p in d.module.parameters()) - 2


@pytest.mark.parametrize("cls,cfg", [(CNNGAN, TINY_CNN), (TransformerGAN, TINY_VIT)])
def test_freeze_first_blocks_of_discriminator(cls, cfg) -> None:
    adapter, info = _make(cls, 8, 1, **cfg)
    blocks = adapter.parts()["discriminator"].blocks
    frozen = apply_freeze(adapter, {"discriminator": 1})
    assert frozen
    before = [p.detach().clone() for p in blocks[0].parameters()]
    later = [p.detach().clone() for p in blocks[-1].parameters()]
    for step in range(2):
        adapter.train_step(_batch(info), step)
    for p, p0 in zip(blocks[0].parameters(), before, strict=True):
        assert p.grad is None and torch.equal(p, p0)
    assert any(not torch.equal(p, p0) for p, p0 in zip(blocks[-1].parameters(), later, strict=True))


def test_vit_input_block_freezes_tokens_and_position() -> None:
    adapter, _ = _make(TransformerGAN, 8, 1, **TINY_VIT)
    apply_freeze(adapter, {"discriminator": 1})
    vit = adapter.D.trunk
    assert not vit.cls_token.requires_grad and not vit.pos_embed.requires_grad
    assert all(not p.requires_grad for p in vit.patch_embed.parameters())
    assert all(p.requires_grad for p in vit.blocks[0].parameters())
    # The freezing wrapper is not registered on the adapter: state dicts keep timm's key names.
    assert all(not k.startswith("_") for k in adapter.D.state_dict())


def test_diff_augment_is_differentiable_and_shape_preserving() -> None:
    x = torch.randn(5, 3, 8, 8, requires_grad=True)
    y = diff_augment(x, "translation,cutout")
    assert y.shape == x.shape
    y.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert torch.equal(diff_augment(x, ""), x)


def test_bad_augment_policy_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="augment"):
        _make(TransformerGAN, 8, 1, augment="rotate", **TINY_VIT)


def test_state_dict_round_trip_restores_samples() -> None:
    a, info = _make(TransformerGAN, 8, 1, **TINY_VIT)
    a.train_step(_batch(info), 0)
    b, _ = _make(TransformerGAN, 8, 1, **TINY_VIT)
    b.load_state_dict(a.state_dict())
    a.train(False), b.train(False)
    s = [m.sample(4, torch.Generator().manual_seed(1)) for m in (a, b)]
    assert torch.equal(*s)


@pytest.mark.parametrize("cls,cfg", [(CNNGAN, TINY_CNN), (TransformerGAN, TINY_VIT)])
def test_r1_and_cutout_paths_train(cls, cfg) -> None:
    adapter, info = _make(cls, 8, 3, r1_gamma=0.1, augment="translation,cutout", **cfg)
    _step_and_sample(adapter, info)


@pytest.mark.parametrize("generator", ["transformer", "cnn"])
def test_transformer_gan_samples_from_generator_ema(generator: str) -> None:
    adapter, info = _make(TransformerGAN, 8, 1, generator=generator, **TINY_VIT)
    ema0 = [p.detach().clone() for p in adapter.G_ema.parameters()]
    for step in range(3):
        adapter.train_step(_batch(info), step)
    # The average moved towards the trained generator but is not it, and it has no gradients of its own.
    moved = [not torch.equal(p, p0) for p, p0 in zip(adapter.G_ema.parameters(), ema0, strict=True)]
    assert any(moved) and all(not p.requires_grad for p in adapter.G_ema.parameters())
    assert any(not torch.equal(p, q) for p, q in zip(adapter.G_ema.parameters(), adapter.G.parameters(), strict=True))
    adapter.train(False)
    z = torch.randn(4, 8, generator=torch.Generator().manual_seed(3))
    assert torch.equal(adapter.sample(4, torch.Generator().manual_seed(3)), to_uint8(adapter.G_ema(z), info.levels))
    assert adapter.num_params() == sum(p.numel() for m in (adapter.G, adapter.D) for p in m.parameters())
    plain, _ = _make(TransformerGAN, 8, 1, generator=generator, ema=0.0, **TINY_VIT)
    assert plain.G_ema is None and "module.G_ema" not in plain.state_dict()
    plain.train(False)
    assert torch.equal(plain.sample(4, torch.Generator().manual_seed(3)), to_uint8(plain.G(z), info.levels))


def test_l2_attention_is_timm_compatible_and_uses_distances() -> None:
    l2, _ = _make(TransformerGAN, 8, 1, attention="l2", **TINY_VIT)
    dot, _ = _make(TransformerGAN, 8, 1, attention="dot", **TINY_VIT)
    attn = l2.D.trunk.blocks[0].attn
    assert isinstance(attn, L2Attention) and not isinstance(dot.D.trunk.blocks[0].attn, L2Attention)
    shapes = {k: v.shape for k, v in l2.D.state_dict().items()}
    assert shapes == {k: v.shape for k, v in dot.D.state_dict().items()}
    # Against the definition: softmax(-||q_i - k_j||² / sqrt(d_head)) v, heads concatenated, then proj.
    x = torch.randn(2, 5, 16)
    q, k, v = attn.qkv(x).reshape(2, 5, 3, 2, 8).permute(2, 0, 3, 1, 4)
    a = (-torch.cdist(q, k).pow(2) / 8**0.5).softmax(-1)
    want = attn.proj((a @ v).transpose(1, 2).reshape(2, 5, 16))
    torch.testing.assert_close(attn(x), want, rtol=1e-4, atol=1e-5)


def test_vit_patch_embedding_options() -> None:
    # Defaults: a stride-1 conv stem, then a (patch + 2)-wide patchify conv at stride patch.
    a, _ = _make(TransformerGAN, 16, 3, **TINY_VIT)
    pe = a.D.trunk.patch_embed
    assert pe.stem[0].out_channels == 8 and pe.proj.kernel_size == (4, 4) and pe.proj.stride == (2, 2)
    assert a.D.trunk(torch.zeros(2, 3, 16, 16)).shape == (2, (1 + 8 * 8) * 16)  # every token in place
    # overlap 0, stem 0: timm's own patch embedding, with the shapes of timm's weights.
    b, _ = _make(TransformerGAN, 16, 3, **{**TINY_VIT, "stem": 0, "overlap": 0})
    assert not hasattr(b.D.trunk.patch_embed, "stem") and b.D.trunk.patch_embed.proj.weight.shape == (16, 3, 2, 2)


@pytest.mark.parametrize("head", ["conv", "inr", "linear"])
@pytest.mark.parametrize("size,channels,patch", [(8, 1, 2), (16, 3, 4)])
def test_transformer_generator_heads(head: str, size: int, channels: int, patch: int) -> None:
    a, info = _make(TransformerGAN, size, channels, generator="transformer", g_head=head, patch=patch, **TINY_VIT)
    g = a.G
    z = torch.randn(6, 8)
    img = g(z)
    assert img.shape == (6, *info.shape)  # a linear output (to_uint8 clamps); g_tanh squashes it into [-1, 1]
    squashed, _ = _make(TransformerGAN, size, channels, generator="transformer", g_head=head, patch=patch, g_tanh=True, **TINY_VIT)
    assert squashed.G(z).abs().max() <= 1
    # Samples depend on the latent, pixel by pixel: no head ties a whole patch or image to a constant.
    assert (img[0] - img[1]).abs().flatten(1).gt(1e-4).float().mean() > 0.9
    assert [type(b).__name__ for b in g.block_list][0] == "LatentEmbed" and len(g.block_list) == 3
    _step_and_sample(a, info)
    # After one step (the modulations start at zero, adaLN-zero) every parameter gets a gradient: no dead weight.
    g.zero_grad()
    g(z).square().mean().backward()
    dead = [n for n, p in g.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert not dead, dead


def _strategy_run(adapter_cfg: dict, strategy: dict):
    from bench.suite.load import Budget, DatasetSpec, EvalSpec, RunnerSpec, RunSpec, StrategySpec

    spec = schema.parse(StrategySpec, strategy, "strategies.s")
    digits = schema.parse(DatasetSpec, {"name": "digits"})
    return RunSpec("t", "transformer_gan", adapter_cfg, "s", spec, 0, digits, Budget(batch_size=32), EvalSpec(), RunnerSpec())


def _built(run):
    from bench.core import env
    from bench.data.datasets import load_dataset
    from bench.runner import build_adapter, fast_path

    env.seed_everything(run.seed)
    return build_adapter(run, load_dataset(run.dataset), CPU, fast_path(run, CPU))


def test_mae_decoder_pretrains_a_transformer_generator(tmp_path) -> None:
    from bench.runner.pretrain import pretrain

    strategy = {"task": "autoencode", "source": {"name": "digits"}, "steps": 30, "parts": ["decoder"], "mask_ratio": 0.5}
    run = _strategy_run({**TINY_VIT, "generator": "transformer", "g_head": "conv"}, strategy)
    a = _built(run)
    before = [p.detach().clone() for p in a.G.parameters()]
    out = pretrain(a, run, CPU, tmp_path)
    assert out.parts == ["generator"] and out.info["generator.objective"] == "mae_decoder"
    assert out.info["generator.loss_final"] < 0.7 * out.info["generator.loss_first"]
    assert all(not torch.equal(p, q) for p, q in zip(a.G.parameters(), before, strict=True))
    # The generator average forgets its random start within its warm-up, so samples come from the pretrained G.
    for step in range(30):
        a.train_step(_batch(a.info), step)
    drift = max((pe - p).abs().max().item() for pe, p in zip(a.G_ema.parameters(), a.G.parameters(), strict=True))
    assert drift < 0.05
    # A CNN generator keeps pixel-level denoising under the same strategy.
    cnn = _strategy_run({**TINY_VIT, "generator": "cnn"}, strategy)
    assert pretrain(_built(cnn), cnn, CPU, tmp_path).info["generator.objective"] == "denoise"
