"""The harness's extractors run in float32 on chunks of one shape: an image's features never depend on the
images computed with it (how many, in which order), which float32 convolutions alone do not give."""

from __future__ import annotations

import torch

from bench.metrics import domain_cache
from bench.metrics import registered as reg
from bench.metrics.domain import DomainClassifier
from bench.metrics.domain_net import DomainNet, EnsembleNet


def _extractor(members: int = 3) -> DomainClassifier:
    nets = []
    for j in range(members):
        torch.manual_seed(j)
        net = DomainNet(1, 10, 8, 16, 64)
        for m in net.modules():  # BatchNorm statistics as after training, not the identity
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_()
                m.running_var.uniform_(0.5, 2.0)
        nets.append(net)
    return DomainClassifier(EnsembleNet(nets).eval(), "f" * 64, {"weights_sha256": "0" * 64}, torch.device("cpu"))


def _images(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (n, 1, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def test_the_extractor_runs_in_float32() -> None:
    ext = _extractor()
    assert {p.dtype for p in ext.extractor.net.parameters()} == {torch.float32}
    assert all(v.dtype == torch.float32 for v in ext.features(_images(3)).values())


def test_features_do_not_depend_on_the_other_images() -> None:
    ext = _extractor()
    x = _images(2 * reg.FEATURE_CHUNK + 7)
    whole = ext.features(x)
    for n in (1, 7, reg.FEATURE_CHUNK - 1, reg.FEATURE_CHUNK + 1):
        part = ext.features(x[:n])
        assert all(torch.equal(whole[k][:n], part[k]) for k in whole), n
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(1))
    shuffled = ext.features(x[perm])
    assert all(torch.equal(whole[k][perm], shuffled[k]) for k in whole)


def test_in_chunks_pads_and_drops_the_padding() -> None:
    seen: list[int] = []

    def fn(chunk: torch.Tensor) -> tuple[torch.Tensor, ...]:
        seen.append(len(chunk))
        return (chunk.float().flatten(1).sum(1),)

    x = _images(reg.FEATURE_CHUNK + 3)
    (out,) = reg.in_chunks(fn, x)
    assert seen == [reg.FEATURE_CHUNK, reg.FEATURE_CHUNK]
    assert torch.equal(out, x.float().flatten(1).sum(1))


def test_the_real_features_cache_key_names_the_recipe(tmp_path) -> None:
    x = _images(5)
    now = domain_cache.features_path(tmp_path, x, "h", "w", reg.RECIPE)
    assert now != domain_cache.features_path(tmp_path, x, "h", "w", "float64 in chunks of eval.batch_size")


def test_one_network_pass_gives_every_output(monkeypatch) -> None:
    ext = _extractor()
    calls: list[int] = []
    real = ext.extractor.outputs

    def counted(x: torch.Tensor) -> dict[str, torch.Tensor]:
        calls.append(len(x))
        return real(x)

    monkeypatch.setattr(ext.extractor, "outputs", counted)
    feats = ext.features(_images(3))
    assert set(feats) == {"features", "logits"} and calls == [reg.FEATURE_CHUNK]


def test_batchnorm_folded_into_the_convolutions() -> None:
    ext = _extractor()
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in ext.extractor.net.modules())
    x = _images(40)
    plain = reg._NETS[ext.name].eval()  # the registered network as trained: convolution, then BatchNorm
    with torch.no_grad():
        feats, logits = plain(x)
    got = ext.features(x)
    assert torch.allclose(got["features"], feats, rtol=1e-5, atol=1e-5 * float(feats.abs().max()))
    assert torch.allclose(got["logits"], logits, rtol=1e-5, atol=1e-4)


def test_folding_keeps_a_batchnorm_without_affine_parameters() -> None:
    seq = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.BatchNorm2d(4, affine=False), torch.nn.ReLU())
    seq[1].running_mean.normal_()
    seq[1].running_var.uniform_(0.5, 2.0)
    seq.eval()
    x = torch.randn(5, 1, 8, 8)
    with torch.no_grad():
        before = seq(x)
        after = reg.fold_batchnorm(seq)(x)
    assert isinstance(seq[1], torch.nn.Identity) and torch.allclose(before, after, atol=1e-5)
