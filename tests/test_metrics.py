"""Metrics: the domain classifier, *_domain fidelity (checked against torch-fidelity itself), modes, the
standard metrics' offline behaviour and the protocol description."""

from __future__ import annotations

import pytest
import torch
import torch_fidelity
from _fixed import Fixed
from safetensors.torch import load as st_load
from torch.utils.data import Dataset

from bench.adapter.base import Adapter
from bench.core.seeds import derive_seed
from bench.data.datasets import DatasetSpec, load_dataset
from bench.metrics import NotApplicable, evaluate
from bench.metrics import domain as dom
from bench.metrics import domain_cache as dom_cache
from bench.metrics.context import EvalContext
from bench.metrics.standard import INCEPTION_FILE, VGG16_FILE
from bench.suite.load import EvalSpec

DOMAIN = ["fid_domain", "kid_domain", "precision_domain", "recall_domain", "density_domain", "coverage_domain"]


class Uniform(Fixed):
    """Random pixels from the evaluation generator: a sampler whose stream depends on the chunk sizes."""

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return torch.randint(0, 256, (n, *self.info.shape), generator=generator).to(torch.uint8)


class Images(Dataset):
    def __init__(self, x: torch.Tensor):
        self.x = x

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.x[i]


@pytest.fixture(scope="module")
def digits():
    return load_dataset(DatasetSpec("digits"))


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("metrics-cache")


@pytest.fixture(scope="module")
def clf(digits, cache_dir):
    return dom.get_domain_classifier(digits, "cpu", cache_dir)


def ctx_for(adapter: Adapter, data, cache_dir, n: int, **spec) -> EvalContext:
    return EvalContext(adapter, data, EvalSpec(num_samples=n, **spec), torch.device("cpu"), cache_dir, seed=0)


def run(adapter, data, cache_dir, n, names=DOMAIN, **spec) -> dict[str, float]:
    values, na = evaluate(list(names), ctx_for(adapter, data, cache_dir, n, **spec))
    assert not na, na
    return values


def test_domain_classifier_accuracy(clf):
    info = clf.describe()
    assert info["accuracy"] >= 0.95
    k = dom.TrainConfig().members
    assert info["feature_dim"] == 64 * k and info["hash"] == clf.hash and info["train_seconds"] > 0
    assert info["members"] == k and info["member_seeds"] == [derive_seed(j, "extractor") for j in range(k)]
    assert clf.name == f"bench-domain-{clf.hash[:8]}"


def test_cache_hit_identical_and_corrupt_file_retrained(digits, tmp_path):
    cfg = dom.TrainConfig(steps=20)  # a short schedule: this test is about the cache, not accuracy
    first = dom.get_domain_classifier(digits, "cpu", tmp_path, cfg)
    path = tmp_path / "domain" / f"{first.hash}.safetensors"
    flip_last_bit = lambda b: b[:-1] + bytes([b[-1] ^ 1])  # noqa: E731
    for corrupt in (lambda b: b"not a safetensors file", flip_last_bit):
        dom.forget_classifiers()
        hit = dom.get_domain_classifier(digits, "cpu", tmp_path, cfg)  # from disk, not from memory
        assert hit is not first and hit.describe() == first.describe()
        for k, v in first.extractor.state_dict().items():
            assert torch.equal(v, hit.extractor.state_dict()[k])
        path.write_bytes(corrupt(path.read_bytes()))  # garbage, then a single flipped bit that still parses
        dom.forget_classifiers()
        again = dom.get_domain_classifier(digits, "cpu", tmp_path, cfg)
        raw = path.read_bytes()
        assert st_load(raw)  # the cache file is whole again, and its record describes it
        assert again.describe()["weights_sha256"] == dom_cache.tensors_sha256(st_load(raw))  # tensors, not file bytes
        assert again.describe()["train_seconds"] > 0
        first = again


def test_domain_metrics_equal_torch_fidelity(clf, digits, cache_dir):
    fake = digits.train_x[:300]
    ours = run(Fixed(fake, digits.info), digits, cache_dir, len(fake))
    theirs = torch_fidelity.calculate_metrics(
        input1=Images(fake),
        input2=Images(digits.test_x),
        feature_extractor=clf.name,
        cuda=False,
        fid=True,
        kid=True,
        prc=True,
        kid_subset_size=min(1000, len(fake), len(digits.test_x)),
        cache=False,
        save_cpu_ram=True,  # no DataLoader worker processes in tests
        verbose=False,
    )
    pairs = {
        "fid_domain": "frechet_inception_distance",
        "kid_domain": "kernel_inception_distance_mean",
        "precision_domain": "precision",
        "recall_domain": "recall",
    }
    # FID: 640 features against 207 test images are rank-deficient covariances, where torch-fidelity's eigenvalue
    # route adds ~1e-4 of rounding noise that fid_domain's singular values do not (tests/test_fid_svd.py).
    tolerance = {"fid_domain": 1e-3}
    for ours_key, key in pairs.items():
        assert ours[ours_key] == pytest.approx(theirs[key], rel=1e-6, abs=tolerance.get(ours_key, 1e-12)), ours_key


def test_real_split_against_itself(digits, cache_dir):
    v = run(Fixed(digits.test_x, digits.info), digits, cache_dir, len(digits.test_x))
    noise = run(Uniform(digits.test_x, digits.info), digits, cache_dir, len(digits.test_x))
    assert abs(v["fid_domain"]) < 1e-6 * noise["fid_domain"]
    # Unbiased KID of a set against itself is not exactly 0: it is -2(mean k(x,x) - mean k(x,y))/m, O(1/m).
    assert abs(v["kid_domain"]) < 0.1 * noise["kid_domain"]
    assert v["precision_domain"] == v["recall_domain"] == v["coverage_domain"] == 1.0
    assert v["density_domain"] == pytest.approx(1.0, abs=0.15)


def test_noise_scores_far_worse_than_real(digits, cache_dir):
    real = run(Fixed(digits.train_x, digits.info), digits, cache_dir, 500, names=["fid_domain"])
    noise = run(Uniform(digits.train_x, digits.info), digits, cache_dir, 500, names=["fid_domain"])
    assert noise["fid_domain"] > 20 * real["fid_domain"]


def test_batch_size_does_not_change_numbers(digits, cache_dir):
    names = [*DOMAIN, "modes", "modes_kl"]
    # Uniform draws from the evaluation generator, so this covers sampling as well as feature extraction.
    small = run(Uniform(digits.train_x, digits.info), digits, cache_dir, 300, names=names, batch_size=7)
    large = run(Uniform(digits.train_x, digits.info), digits, cache_dir, 300, names=names, batch_size=500)
    assert small == large


def test_batch_size_does_not_change_a_sampled_bound(digits, cache_dir):
    """vae's bpd draws its importance samples per log_likelihood call: the calls have a fixed size."""
    from baselines.vae import VAE

    torch.manual_seed(0)
    vae = VAE(VAE.Config(width=8, feature_dim=32, z_dim=8, iw_samples=4), digits.info, torch.device("cpu"))
    small = run(vae, digits, cache_dir, 20, names=["bpd"], batch_size=7)
    large = run(vae, digits, cache_dir, 20, names=["bpd"], batch_size=500)
    assert small == large


def test_modes_of_real_test_split(digits, cache_dir):
    v = run(Fixed(digits.test_x, digits.info), digits, cache_dir, len(digits.test_x), names=["modes", "modes_kl"])
    assert v["modes"] == 10
    assert 0 <= v["modes_kl"] < 0.01


def test_stacked_digits_per_channel_classifier(cache_dir):
    data = load_dataset(DatasetSpec("digits_stacked"))
    info = dom.get_domain_classifier(data, "cpu", cache_dir).describe()
    assert info["digit_accuracy"] >= 0.95 and info["accuracy"] >= 0.85 and info["feature_dim"] == 192 * dom.TrainConfig().members
    v = run(Fixed(data.test_x, data.info), data, cache_dir, len(data.test_x), names=["modes", "modes_kl"])
    covered = len(torch.unique(data.test_y))  # ~865 of 1000: 2000 images do not cover every mode
    assert abs(v["modes"] - covered) <= 0.05 * covered
    assert v["modes_kl"] < 0.5


def test_standard_metrics_offline_name_the_file(digits, cache_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    ctx = ctx_for(Fixed(digits.test_x, digits.info), digits, cache_dir, 20)
    _, na = evaluate(["fid", "kid", "isc", "precision", "recall"], ctx)
    want = tmp_path / "torch-home" / "hub" / "checkpoints"
    assert na["fid"] == f"not available: place {INCEPTION_FILE} at {want / INCEPTION_FILE} or set eval.weights_path"
    assert INCEPTION_FILE in na["kid"] and INCEPTION_FILE in na["isc"]
    assert na["precision"] == f"not available: place {VGG16_FILE} at {want / VGG16_FILE} or set eval.weights_path"
    ctx = ctx_for(Fixed(digits.test_x, digits.info), digits, cache_dir, 20, weights_path=str(tmp_path))
    with pytest.raises(NotApplicable, match=str(tmp_path / INCEPTION_FILE)):
        from bench.metrics.standard import fid

        fid(ctx)


def test_protocol_description(digits, clf, cache_dir):
    from bench.metrics.protocol import describe
    from bench.suite.load import PROTOCOL_VERSION

    d = describe(EvalSpec(num_samples=1000, kid_subset_size=1000), digits, cache_dir)
    assert d["protocol_version"] == PROTOCOL_VERSION
    assert d["reference"]["size"] == len(digits.test_x) and d["num_samples"] == 1000
    assert d["kid"]["subset_size"] == len(digits.test_x)  # fewer real images than the requested subset
    assert d["extractor"]["hash"] == clf.hash and d["extractor"]["accuracy"] == clf.describe()["accuracy"]
    assert "bits" in d["bpd"] and "modes" in d["modes"]
