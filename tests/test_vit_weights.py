"""The `external` strategy into a ViT discriminator: timm state dicts of another shape, the harness's own
masked-autoencoder checkpoint, and the load report (printed, and recorded for result.json)."""

from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch
from safetensors.torch import save_file
from timm.layers import resample_patch_embed

from bench.core import env
from bench.core.errors import ConfigError
from bench.data.datasets import DatasetSpec, load_dataset
from bench.runner import build_adapter, fast_path
from bench.runner.pretrain import pretrain
from bench.suite.load import Budget, EvalSpec, RunnerSpec, RunSpec, StrategySpec
from bench.suite.schema import parse
from bench.tasks import cache

CPU = torch.device("cpu")
# vit_tiny's width, heads and MLP ratio, so block tensors fit; 2 blocks of its 12; 8 px digits with patch 2.
VIT_TINY_SHAPE = {"dim": 192, "heads": 3, "depth": 2, "z_dim": 8, "g_width": 8}


def make_run(adapter_cfg: dict, strategy: dict) -> RunSpec:
    spec = parse(StrategySpec, strategy, "strategies.s")
    return RunSpec(
        "t",
        "transformer_gan",
        adapter_cfg,
        "s",
        spec,
        0,
        parse(DatasetSpec, {"name": "digits"}),
        Budget(batch_size=16),
        EvalSpec(),
        RunnerSpec(),
    )


def build(run: RunSpec):
    env.seed_everything(run.seed)
    return build_adapter(run, load_dataset(run.dataset), CPU, fast_path(run, CPU))


@pytest.fixture(scope="module")
def timm_file(tmp_path_factory) -> tuple[Path, dict[str, torch.Tensor]]:
    torch.manual_seed(3)
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False)  # 224 px RGB, patch 16, a classifier head
    path = tmp_path_factory.mktemp("timm") / "vit_tiny.pth"
    state = model.state_dict()
    torch.save(state, path)
    return path, state


def test_timm_state_dict_into_a_stem_vit(timm_file, tmp_path: Path, capsys) -> None:
    path, state = timm_file
    avg = {**VIT_TINY_SHAPE, "global_pool": "avg"}  # average pooling: timm puts the final norm in fc_norm
    run = make_run(avg, {"task": "external", "path": str(path), "parts": ["discriminator"]})
    a = build(run)
    out = pretrain(a, run, CPU, tmp_path)
    report = out.info["load_report"]["discriminator"]
    trunk = a.D.trunk.state_dict()
    # Blocks 0 and 1 and the class token copied exactly; timm's final norm fills the avg-pool trunk's fc_norm.
    for k in ("blocks.0.attn.qkv.weight", "blocks.1.mlp.fc2.bias", "cls_token"):
        assert k in report["loaded"] and torch.equal(trunk[k], state[k])
    assert "fc_norm.weight (from norm.weight)" in report["loaded"] and torch.equal(trunk["fc_norm.weight"], state["norm.weight"])
    # 14x14 position grid interpolated to 4x4, class position copied.
    assert "14x14 -> 4x4" in report["resized"]["pos_embed"] and torch.equal(trunk["pos_embed"][:, :1], state["pos_embed"][:, :1])
    # Behind the conv stem, the patchify conv sees 32 learned channels: no RGB filter fits, so it stays random.
    assert "patch_embed.proj.weight" in report["random"] and "patch_embed.stem.0.weight" in report["random"]
    assert "blocks.11.norm1.weight" in report["unused"] and "head.weight" in report["unused"]
    printed = capsys.readouterr().out
    assert "-> part 'discriminator'" in printed and "resized pos_embed" in printed


def test_timm_state_dict_into_timms_own_patch_embedding(timm_file, tmp_path: Path) -> None:
    path, state = timm_file
    run = make_run({**VIT_TINY_SHAPE, "stem": 0, "overlap": 0}, {"task": "external", "path": str(path), "parts": ["discriminator"]})
    a = build(run)
    report = pretrain(a, run, CPU, tmp_path).info["load_report"]["discriminator"]
    w = a.D.trunk.patch_embed.proj.weight
    how = report["resized"]["patch_embed.proj.weight"]
    assert "3 input channels summed to 1" in how and "(16, 16) -> (2, 2)" in how and w.shape == (192, 1, 2, 2)
    assert "patch_embed.proj.bias" in report["loaded"] and "norm.weight" in report["loaded"] and not report["random"]
    # Exactly timm's adaptation of a pretrained ViT to one grey channel and a 2 px patch: RGB filters summed
    # (a grey pixel is R = G = B), then the kernel resampled with FlexiViT's pseudo-inverse.
    want = resample_patch_embed(state["patch_embed.proj.weight"].sum(1, keepdim=True), [2, 2])
    torch.testing.assert_close(w.detach(), want)


def test_a_vit_of_another_width_is_refused(timm_file, tmp_path: Path) -> None:
    path, _ = timm_file
    run = make_run({"dim": 16, "heads": 2, "depth": 1, "z_dim": 8}, {"task": "external", "path": str(path), "parts": ["discriminator"]})
    with pytest.raises(ConfigError, match="no tensor of the file fits part 'discriminator'"):
        pretrain(build(run), run, CPU, tmp_path)


def test_the_harness_mae_pretrained_vit_as_safetensors(tmp_path: Path) -> None:
    tiny = {"dim": 16, "heads": 2, "depth": 1, "z_dim": 8}
    mae = {"task": "autoencode", "source": {"name": "digits"}, "steps": 20, "parts": ["discriminator"], "mask_ratio": 0.5}
    src_run = make_run(tiny, mae)
    donor = build(src_run)
    key = pretrain(donor, src_run, CPU, tmp_path / "cache").info["cache_key"]
    path = tmp_path / "mae_vit.safetensors"
    save_file({k: v.contiguous() for k, v in donor.D.trunk.state_dict().items()}, str(path))
    assert path.stat().st_size > 0 and cache.entry_dir(tmp_path / "cache", key).is_dir()
    run = make_run(tiny, {"task": "external", "path": str(path), "parts": ["discriminator"]})
    a = build(run)
    report = pretrain(a, run, CPU, tmp_path).info["load_report"]["discriminator"]
    assert not report["resized"] and not report["random"] and not report["unused"]
    assert all(torch.equal(v, donor.D.trunk.state_dict()[k]) for k, v in a.D.trunk.state_dict().items())
    # The cache entry's own weights file (keys `discriminator.*`) loads the same way, with the same report.
    run2 = make_run(tiny, {"task": "external", "path": str(cache.entry_dir(tmp_path / "cache", key) / cache.WEIGHTS)})
    report2 = pretrain(build(run2), run2, CPU, tmp_path).info["load_report"]["discriminator"]
    assert report2 == report
