"""Label-free evaluation: the self-supervised extractor (never reads a label; cached by pixels, code and
seed, verified on read), the `*_domain` metrics falling back to it on an unlabelled target (class metrics
n/a with the reason), the intra-cluster diversity metric, and the standard metrics' weights lookup.

Tiny extractors (2 members, a few steps) keep this fast: these tests are about wiring and caching; the
protocol's extractor is judged by benchmarks/extractor_stability.py."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch_fidelity
from _fixed import Fixed
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch.utils.data import Dataset

from bench.core.seeds import derive_seed
from bench.data.datasets import DATASETS, DatasetSpec, load_dataset
from bench.data.splits import Splits
from bench.metrics import NotApplicable, evaluate, ssl
from bench.metrics.context import EvalContext
from bench.metrics.diversity import MAX_CENTRES, intra_cluster_distance
from bench.metrics.domain_cache import tensors_sha256
from bench.metrics.fidelity import fid_from_features
from bench.metrics.ssl_net import SSLConfig, member_seeds, nt_xent, train
from bench.suite.load import EvalSpec

# The protocol's normalisation ("scale"), so the cache and torch-fidelity tests cover its buffer too.
TINY = SSLConfig(members=2, steps=4, batch_size=32, width=4, feature_dim=8, proj_dim=4, normalise=ssl.DEFAULT.normalise)
DOMAIN = ["fid_domain", "kid_domain", "precision_domain", "recall_domain", "density_domain", "coverage_domain", "ct_domain"]
UNLABELLED = "_test_unlabelled_digits"


def _unlabelled(spec: DatasetSpec):
    """The digits' pixels with every label unknown (-1): a flat folder of images, as the harness sees one."""
    d = DATASETS.get("digits")(spec)
    return Splits(d.train_x, None, d.test_x, None, d.levels)  # labels None: unknown (-1 after the contract check)


if UNLABELLED not in DATASETS:
    DATASETS.add(UNLABELLED, _unlabelled)


@pytest.fixture(autouse=True)
def tiny(monkeypatch):
    monkeypatch.setattr(ssl, "DEFAULT", TINY)
    yield
    ssl.forget()


@pytest.fixture(scope="module")
def data():
    return load_dataset(DatasetSpec(UNLABELLED))


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("ssl-cache")


class Images(Dataset):
    def __init__(self, x: torch.Tensor):
        self.x = x

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.x[i]


def ctx_for(images, data, cache_dir, n, **spec) -> EvalContext:
    return EvalContext(Fixed(images, data.info), data, EvalSpec(num_samples=n, **spec), torch.device("cpu"), cache_dir, seed=0)


# --- the extractor -------------------------------------------------------------------------------------------
def test_has_labels():
    assert ssl.has_labels(load_dataset(DatasetSpec("digits")))
    assert not ssl.has_labels(load_dataset(DatasetSpec(UNLABELLED)))
    assert not ssl.has_labels(load_dataset(DatasetSpec("digits", classes=[3])))  # one class: nothing to tell apart


def test_nt_xent_rewards_matching_views():
    g = torch.Generator().manual_seed(100)
    z = torch.randn(8, 16, generator=g)
    matched = nt_xent(torch.cat([z, z]), 0.2)
    shuffled = nt_xent(torch.cat([z, z[torch.tensor([1, 2, 3, 4, 5, 6, 7, 0])]]), 0.2)
    assert matched < shuffled
    # by hand: row i's partner is row i + N (mod 2N), every other row but itself a negative
    sim = torch.nn.functional.normalize(torch.cat([z, z]), dim=1)
    sim = sim @ sim.T / 0.2
    by_hand = sum(_row_loss(sim, i) for i in range(16)) / 16
    assert float(matched) == pytest.approx(by_hand, rel=1e-5)


def _row_loss(sim: torch.Tensor, i: int) -> float:
    n2 = sim.shape[0]
    others = torch.cat([sim[i, :i], sim[i, i + 1 :]])
    return float(-(sim[i, (i + n2 // 2) % n2] - torch.logsumexp(others, 0)))


@pytest.mark.parametrize("objective", ["simclr", "dae", "none"])
def test_training_never_reads_labels_and_is_seeded(data, objective):
    cfg = SSLConfig(**{**TINY.__dict__, "objective": objective})
    a, losses = train(data.train_x, cfg, torch.device("cpu"))
    b, _ = train(data.train_x, cfg, torch.device("cpu"))
    x = data.test_x[:50]
    with torch.no_grad():
        fa, fb = a(x), b(x)
    assert fa.shape == (50, cfg.members * cfg.feature_dim)
    assert torch.allclose(fa, fb, atol=1e-5)
    assert len(losses) == cfg.members and (objective == "none") == all(v != v for v in losses)


def test_member_seeds_disjoint_between_extractor_seeds():
    seeds = [set(member_seeds(SSLConfig(seed=s))) for s in range(5)]
    assert len(set().union(*seeds)) == sum(len(s) for s in seeds) == 5 * SSLConfig().members


def test_member_seeds_come_from_derive_seed():
    cfg = SSLConfig(seed=2, members=3)
    assert member_seeds(cfg) == [derive_seed(6 + j, "extractor") for j in range(3)]


@pytest.mark.parametrize("normalise", ["scale", "l2"])
def test_feature_normalisation(data, normalise):
    """ "scale": each member's features on the training split have total variance 1; "l2": unit length per member."""
    cfg = SSLConfig(**{**TINY.__dict__, "normalise": normalise})
    net, _ = train(data.train_x, cfg, torch.device("cpu"))
    with torch.no_grad():
        f = net(data.train_x).double().split(cfg.feature_dim, dim=1)
    for part in f:
        if normalise == "scale":
            assert float(part.var(dim=0, correction=0).sum()) == pytest.approx(1.0, rel=1e-4)
        else:
            assert torch.allclose(part.norm(dim=1), torch.ones(len(part), dtype=part.dtype), atol=1e-5)
    plain, _ = train(data.train_x, SSLConfig(**{**TINY.__dict__, "normalise": "none"}), torch.device("cpu"))
    assert all(float(m.scale) == 1.0 for m in plain.members)  # "none" leaves the features as trained


def test_hash_covers_pixels_and_seed_not_labels(data):
    labelled = load_dataset(DatasetSpec("digits"))
    assert ssl.extractor_hash(labelled) == ssl.extractor_hash(data)  # same pixels, labels differ
    assert ssl.extractor_hash(data, TINY) != ssl.extractor_hash(data, SSLConfig(**{**TINY.__dict__, "seed": 1}))
    moved = load_dataset(DatasetSpec(UNLABELLED, levels=9))
    assert ssl.extractor_hash(moved) != ssl.extractor_hash(data)


def test_cache_hit_identical_and_untrusted_files_retrained(data, tmp_path):
    first = ssl.get_ssl_extractor(data, "cpu", tmp_path)
    wpath, jpath = ssl.paths(tmp_path, first.hash)
    assert wpath.is_file() and json.loads(jpath.read_text())["weights_sha256"] == first.info["weights_sha256"]
    ssl.forget()
    again = ssl.get_ssl_extractor(data, "cpu", tmp_path)
    x = data.test_x[:40]
    assert torch.equal(first.features(x)["features"], again.features(x)["features"])
    assert again.info["train_seconds"] == first.info["train_seconds"]  # loaded, not retrained

    # Weights changed under their record (bit rot, a foreign file): retrained, and the record follows.
    state = st_load(wpath.read_bytes())
    key = sorted(state)[0]
    state[key] = state[key] + 1.0
    wpath.write_bytes(st_save(state, metadata={"hash": first.hash}))
    ssl.forget()
    redone = ssl.get_ssl_extractor(data, "cpu", tmp_path)
    assert redone.info["weights_sha256"] != tensors_sha256(state)
    assert ssl.load_weights(wpath, data.train_x, TINY, first.hash)[1] == redone.info["weights_sha256"]

    # A file whose metadata names another hash (copied into place) is not trusted, even with a matching record.
    good = st_load(wpath.read_bytes())
    wpath.write_bytes(st_save(good, metadata={"hash": "0" * 64}))
    assert ssl.load_weights(wpath, data.train_x, TINY, first.hash) is None
    wpath.write_bytes(b"not a safetensors file")
    assert ssl.load_weights(wpath, data.train_x, TINY, first.hash) is None
    ssl.forget()
    assert ssl.get_ssl_extractor(data, "cpu", tmp_path).info["weights_sha256"]


# --- metrics on an unlabelled target ------------------------------------------------------------------------
def test_unlabelled_target_gets_every_domain_metric(data, cache_dir):
    ctx = ctx_for(data.train_x[:300], data, cache_dir, 300)
    values, na = evaluate([*DOMAIN, "modes", "modes_kl"], ctx)
    assert set(values) == set(DOMAIN), na
    assert na == {"modes": ssl.NO_LABELS, "modes_kl": ssl.NO_LABELS}
    assert not any(why.lower().startswith("n/a") for why in na.values())  # the caller writes the "n/a"
    info = ctx.info["domain_classifier"]
    assert info["kind"] == ssl.KIND and "accuracy" not in info and info["members"] == TINY.members
    assert values["fid_domain"] == fid_from_features(ctx.fake_features["features"], ctx.real_features["features"])


def test_unlabelled_fid_equals_torch_fidelity(data, cache_dir):
    fake = data.train_x[:300]
    ctx = ctx_for(fake, data, cache_dir, 300)
    values, _ = evaluate(["fid_domain", "kid_domain", "precision_domain"], ctx)
    theirs = torch_fidelity.calculate_metrics(
        input1=Images(fake),
        input2=Images(data.test_x),
        feature_extractor=ctx.domain.name,
        cuda=False,
        fid=True,
        kid=True,
        prc=True,
        kid_subset_size=min(1000, len(fake), len(data.test_x)),
        cache=False,
        save_cpu_ram=True,
        verbose=False,
    )
    # abs: torch-fidelity's eigenvalues add ~1e-4 of rounding noise when the covariances are rank-deficient
    # (more features than images), which fid_domain's singular values do not (tests/test_fid_svd.py).
    assert values["fid_domain"] == pytest.approx(theirs["frechet_inception_distance"], rel=1e-6, abs=1e-3)
    assert values["kid_domain"] == pytest.approx(theirs["kernel_inception_distance_mean"], rel=1e-6, abs=1e-12)
    assert values["precision_domain"] == pytest.approx(theirs["precision"], rel=1e-6)


def test_real_vs_itself_and_noise(data, cache_dir):
    real, _ = evaluate(["fid_domain", "precision_domain", "recall_domain"], ctx_for(data.test_x, data, cache_dir, len(data.test_x)))
    noise_x = torch.randint(0, 256, data.test_x.shape, generator=torch.Generator().manual_seed(100)).to(torch.uint8)
    noise, _ = evaluate(["fid_domain"], ctx_for(noise_x, data, cache_dir, len(data.test_x)))
    assert abs(real["fid_domain"]) < 1e-6 * noise["fid_domain"]
    assert real["precision_domain"] == real["recall_domain"] == 1.0


def test_no_labels_reason_is_said_once(data, tmp_path):
    """`bench score` writes "n/a: <reason>"; the reason must not say "n/a" again (it once read "n/a: n/a, ...")."""
    from click.testing import CliRunner

    from bench.cli import main
    from bench.data.samples import write_samples

    write_samples(data.test_x[:20], tmp_path / "s.npz")
    args = ["score", str(tmp_path / "s.npz"), "--reference", UNLABELLED, "--metrics", "modes,modes_kl", "--cache", str(tmp_path / "c")]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    assert "modes              n/a: the data set has no labels" in res.output and "n/a: n/a" not in res.output


def test_an_unloaded_name_says_which_extractor_and_how_to_load_it():
    """Both feature spaces share the registration (registered.py); an unknown name fails with its own words."""
    from bench.metrics.domain import DomainFeatureExtractor

    with pytest.raises(ValueError, match="label-free extractor 'bench-ssl-nothere'.*get_ssl_extractor"):
        ssl.SSLFeatureExtractor("bench-ssl-nothere", ["features"])
    with pytest.raises(ValueError, match="domain classifier 'bench-domain-nothere'.*get_domain_classifier"):
        DomainFeatureExtractor("bench-domain-nothere", ["features", "logits"])


def test_labelled_target_keeps_the_classifier(cache_dir):
    digits = load_dataset(DatasetSpec("digits"))
    from bench.metrics.domain import TrainConfig

    ext = ssl.get_extractor(digits, "cpu", cache_dir, classifier_config=TrainConfig(members=1, steps=5))
    assert "accuracy" in ext.describe() and ext.describe().get("kind", "classifier") != ssl.KIND


def test_protocol_names_the_label_free_extractor(data, cache_dir):
    from bench.metrics.protocol import describe

    d = describe(EvalSpec(num_samples=100), data, cache_dir)
    assert d["extractor"]["kind"] == ssl.KIND and d["extractor"]["hash"] == ssl.extractor_hash(data)
    assert d["modes"] == ssl.MODES_NO_LABELS == "n/a, because the data set has no labels"  # protocol text unchanged


# --- diversity ---------------------------------------------------------------------------------------------
def test_intra_cluster_distance_by_hand():
    centres = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    # cluster 0: unit vectors at 0 and 30 degrees (distance 2 sin 15°); cluster 1: one direction twice (distance 0)
    s = torch.tensor([[1.0, 0.0], [3**0.5 / 2, 0.5], [0.0, 2.0], [0.0, 5.0]])
    value, detail = intra_cluster_distance(s, centres)
    assert value == pytest.approx(math.sin(math.radians(15))) and detail == {"clusters": 2, "clusters_used": 2, "largest_cluster": 2}
    with pytest.raises(NotApplicable):
        intra_cluster_distance(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), centres)


def test_intra_ssl_few_shot(cache_dir):
    few = load_dataset(DatasetSpec(UNLABELLED, limit=10))
    copies = ctx_for(few.train_x, few, cache_dir, 200)  # the 10 training images over and over: no diversity
    fresh = ctx_for(few.test_x, few, cache_dir, 200)
    v_copies, _ = evaluate(["intra_ssl"], copies)
    v_fresh, _ = evaluate(["intra_ssl"], fresh)
    assert v_copies["intra_ssl"] == pytest.approx(0.0, abs=1e-6)
    assert v_fresh["intra_ssl"] > 0.05
    assert 0 < fresh.info["intra_ssl"]["real"] <= 2 and fresh.info["intra_ssl"]["clusters"] == 10


def test_intra_ssl_not_applicable_on_a_large_training_set(data, cache_dir):
    _, na = evaluate(["intra_ssl"], ctx_for(data.test_x, data, cache_dir, 50))
    assert str(MAX_CENTRES) in na["intra_ssl"] and str(len(data.train_x)) in na["intra_ssl"]


def test_intra_ssl_uses_the_label_free_space_on_labelled_data(cache_dir):
    few = load_dataset(DatasetSpec("digits", limit=10))
    ctx = ctx_for(few.test_x, few, cache_dir, 100)
    values, na = evaluate(["intra_ssl"], ctx)
    assert "intra_ssl" in values, na
    assert ctx.info["ssl_extractor"]["kind"] == ssl.KIND and "domain" not in ctx.__dict__  # no classifier trained


# --- standard metrics: the user's weights ------------------------------------------------------------------
def test_standard_metrics_use_the_users_weights(data, cache_dir, tmp_path, monkeypatch):
    """With the weights file in eval.weights_path, its path is what torch-fidelity is handed, and fid is
    torch-fidelity's maths on those features; without it, the message says where to put it."""
    from bench.metrics import standard

    seen = {}

    class Stub(torch.nn.Module):  # stands in for Inception: torch-fidelity's loader is not under test
        def forward(self, x):
            f = x.float().flatten(1)[:, :16]
            return f, f[:, :10]

    def fake_create(name, features, cuda, feature_extractor_weights_path, verbose):
        seen[name] = feature_extractor_weights_path
        return Stub()

    monkeypatch.setattr(standard, "create_feature_extractor", fake_create)
    (tmp_path / standard.INCEPTION_FILE).write_bytes(b"weights")
    ctx = ctx_for(data.test_x, data, cache_dir, 100, weights_path=str(tmp_path))
    values, na = evaluate(["fid"], ctx)
    assert seen["inception-v3-compat"] == str(tmp_path / standard.INCEPTION_FILE)
    fake, real = ctx.cache["inception-v3-compat"]
    assert values["fid"] == fid_from_features(fake["2048"], real["2048"])
    _, na = evaluate(["precision"], ctx_for(data.test_x, data, cache_dir, 100, weights_path=str(tmp_path)))
    assert na["precision"] == f"not available: place {standard.VGG16_FILE} at {tmp_path / standard.VGG16_FILE} or set eval.weights_path"


# --- end to end: a suite on an unlabelled target ------------------------------------------------------------
@pytest.mark.slow  # end to end (seconds: a 20-step dummy run and the tiny extractor)
def test_unlabelled_suite_end_to_end(tmp_path):
    import bench

    suite = {
        "name": "unlabelled",
        "dataset": {"name": UNLABELLED, "limit": 10},
        "budget": {"steps": 20, "eval_every": 20, "batch_size": 8},
        "eval": {"num_samples": 250, "metrics": ["fid_domain", "kid_domain", "ct_domain", "intra_ssl", "modes"], "history_metrics": []},
        "seeds": [0],
        "runner": {"threads": 1},
        "adapters": {"dummy": {}},
        "strategies": {"scratch": {}},
    }
    df = bench.run_suite(suite, out=tmp_path / "runs", reports=tmp_path / "reports", device="cpu", progress=False)
    assert len(df) == 1 and df["status"].iloc[0] == "completed"
    [run_dir] = [p for p in (tmp_path / "runs" / "unlabelled").iterdir() if (p / "result.json").is_file()]
    result = json.loads((run_dir / "result.json").read_text())
    assert {"fid_domain", "kid_domain", "ct_domain", "intra_ssl"} <= set(result["metrics"])
    assert result["protocol"]["extractor"]["name"] == "label-free extractor" and result["protocol"]["modes"] == ssl.MODES_NO_LABELS
    assert result["metric_info"]["domain_classifier"]["kind"] == ssl.KIND and result["not_applicable"]["modes"] == ssl.NO_LABELS
    html = (tmp_path / "reports" / "unlabelled" / "index.html").read_text()
    assert "n/a, because the data set has no labels" in html
