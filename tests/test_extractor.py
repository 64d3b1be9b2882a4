"""The domain extractor is an ensemble: features side by side, probabilities averaged, disjoint member seeds
per extractor seed, and every run records how much its members alone would disagree on fid_domain."""

from __future__ import annotations

import math

import pytest
import torch
from _fixed import Fixed

from bench.data.datasets import DatasetSpec, load_dataset
from bench.metrics import domain as dom
from bench.metrics import domain_net, evaluate
from bench.metrics.context import EvalContext
from bench.metrics.fidelity import fid_from_features, member_fids
from bench.suite.load import EvalSpec


def test_member_seeds_are_disjoint_between_extractor_seeds():
    cfgs = [dom.TrainConfig(seed=s) for s in range(5)]
    seeds = [set(domain_net.member_seeds(c)) for c in cfgs]
    assert all(len(s) == cfgs[0].members for s in seeds)
    assert len(set().union(*seeds)) == sum(len(s) for s in seeds)


def test_ensemble_concatenates_features_and_averages_probabilities():
    torch.manual_seed(100)
    nets = [domain_net.DomainNet(1, 10, 8, 4, 6).eval() for _ in range(3)]
    ens = domain_net.EnsembleNet(nets).eval()
    x = torch.randint(0, 256, (5, 1, 8, 8), dtype=torch.uint8)
    with torch.no_grad():
        feats, logp = ens(x)
        outs = [n(x) for n in nets]
    assert torch.equal(feats, torch.cat([f for f, _ in outs], 1))
    mean_p = torch.stack([torch.softmax(lg, 1) for _, lg in outs]).mean(0)
    assert torch.allclose(logp.exp(), mean_p, atol=1e-6)
    assert torch.allclose(logp.exp().sum(1), torch.ones(5), atol=1e-6)


def test_member_fids_are_each_members_own_fid():
    g = torch.Generator().manual_seed(101)
    real, fake = torch.randn(300, 12, generator=g), torch.randn(200, 12, generator=g) + 0.3
    per = member_fids(fake, real, 3)
    assert per == [fid_from_features(fake[:, i : i + 4], real[:, i : i + 4]) for i in (0, 4, 8)]


def test_fid_domain_records_the_members_spread(tmp_path):
    data = load_dataset(DatasetSpec("digits"))
    ctx = EvalContext(Fixed(data.train_x[:300], data.info), data, EvalSpec(num_samples=300), torch.device("cpu"), tmp_path, seed=0)
    values, _ = evaluate(["fid_domain"], ctx)
    info = ctx.info["fid_domain_members"]
    k = dom.TrainConfig().members
    per = member_fids(ctx.fake_features["features"], ctx.real_features["features"], k)
    assert info["values"] == [round(v, 6) for v in per] and len(per) == k
    mean = sum(per) / k
    assert info["std_over_mean"] == pytest.approx(math.sqrt(sum((v - mean) ** 2 for v in per) / (k - 1)) / mean, abs=1e-6)
    assert values["fid_domain"] == fid_from_features(ctx.fake_features["features"], ctx.real_features["features"])
