"""The stylize family: fixed evaluation pairs, the metrics' known answers, n/a reasons, the suite's style key,
and the loss network's independence from the scoring networks. Tiny data and a tiny label-free extractor,
so the file takes seconds."""

from __future__ import annotations

import types
from dataclasses import dataclass

import pytest
import torch

from bench.adapter.base import Adapter, to_uint8
from bench.adapter.style_loss import LossNet, StyleLoss
from bench.core.errors import ConfigError
from bench.data.datasets import DatasetSpec, load_dataset
from bench.data.style import STYLES_PER_CONTENT, eval_pairs, with_style
from bench.metrics import evaluate, ssl
from bench.metrics.context import EvalContext
from bench.metrics.ssl_net import SSLConfig
from bench.metrics.stylize import REFERENCES, ssim
from bench.suite.load import parse_suite
from bench.suite.spec import EvalSpec

TINY_SSL = SSLConfig(members=2, steps=4, batch_size=32, width=4, feature_dim=8, proj_dim=4)
METRICS = ["content_acc", "content_ssim", "style_fid", "style_stats", "style_diversity"]


@pytest.fixture(scope="module")
def data():
    return with_style(load_dataset(DatasetSpec("digits")), DatasetSpec("photos"))


class Copy(Adapter):
    """A trivial stylize adapter: it returns the content image (or, with `style`, the style image)."""

    family = "stylize"
    take_style = False

    @dataclass
    class Config:
        pass

    def train_step(self, batch, step):
        return {"loss": torch.zeros(())}

    def stylize(self, content, style):
        return to_uint8(style if self.take_style else content, self.info.levels)


class CopyStyle(Copy):
    take_style = True


class NearestMean:
    """A stand-in domain classifier (nearest class mean in pixels): content_acc must equal its accuracy."""

    def __init__(self, data):
        x = data.train_x.float().flatten(1)
        self.means = torch.stack([x[data.train_y == c].mean(0) for c in range(data.num_classes)])

    def predict(self, u8):
        return torch.cdist(u8.float().flatten(1), self.means).argmin(1)


def context(cls, data, tmp_path, monkeypatch, n: int = 40) -> EvalContext:
    monkeypatch.setattr(ssl, "DEFAULT", TINY_SSL)
    ctx = EvalContext(cls(Copy.Config(), data.info, "cpu"), data, EvalSpec(num_samples=n, metrics=METRICS), "cpu", tmp_path, 0)
    ctx.__dict__["domain"] = NearestMean(data)  # the cached_property's slot: no ensemble trained in a unit test
    return ctx


def test_ssim_known_answers() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (6, 1, 8, 8), generator=g, dtype=torch.uint8)
    assert torch.allclose(ssim(x, x), torch.ones(6, dtype=torch.float64))
    assert torch.allclose(ssim(x, 255 - x), ssim(255 - x, x))  # symmetric
    assert float(ssim(x, 255 - x).mean()) < 0  # an inverted image is anti-correlated in structure
    rgb = x.expand(-1, 3, -1, -1)  # grey as RGB: the same luminance, so the same SSIM
    assert torch.allclose(ssim(rgb, rgb.flip(0)), ssim(x, x.flip(0)), atol=1e-6)


def test_eval_pairs_are_fixed_grouped_and_from_the_test_splits(data) -> None:
    a, b = eval_pairs(data, 40), eval_pairs(data, 40)
    assert all(torch.equal(getattr(a, f), getattr(b, f)) for f in ("content", "style", "label", "group"))
    k = STYLES_PER_CONTENT
    for g in range(40 // k):
        idx = (a.group == g).nonzero().flatten()
        assert len(idx) == k and all(torch.equal(a.content[idx[0]], a.content[i]) for i in idx)  # one content ...
        assert len({a.style[i].numpy().tobytes() for i in idx}) == k  # ... with k different styles
    test_content = {x.numpy().tobytes() for x in data.test_x}
    test_style = {x.numpy().tobytes() for x in data.style.test_x}
    assert all(x.numpy().tobytes() in test_content for x in a.content)
    assert all(x.numpy().tobytes() in test_style for x in a.style)
    # Independent of the run seed and of any global random state.
    torch.manual_seed(123)
    assert torch.equal(eval_pairs(data, 40).style, a.style)


def test_style_set_takes_the_contents_shape_and_levels(data) -> None:
    assert data.style.train_x.shape[1:] == data.train_x.shape[1:] and data.style.levels == data.levels == 17


def test_output_content_known_answers(data, tmp_path, monkeypatch) -> None:
    ctx = context(Copy, data, tmp_path, monkeypatch)
    values, na = evaluate(METRICS, ctx)
    assert na == {}
    p = ctx.pairs
    expected_acc = float((ctx.domain.predict(p.content) == p.label).double().mean())
    assert values["content_acc"] == pytest.approx(expected_acc)  # the classifier's own accuracy on the content
    assert values["content_ssim"] == pytest.approx(1.0)
    assert values["style_diversity"] == 0.0  # one content, four styles, one output
    ref = ctx.info["stylize_reference"]
    assert set(ref) == set(METRICS) and all(set(v) == set(REFERENCES) for v in ref.values())
    assert all(ref[m]["output=content"] == pytest.approx(values[m], abs=1e-5) for m in METRICS)


def test_output_style_known_answers(data, tmp_path, monkeypatch) -> None:
    ctx = context(CopyStyle, data, tmp_path, monkeypatch)
    values, _ = evaluate(METRICS, ctx)
    assert values["style_stats"] == pytest.approx(0.0, abs=1e-9)
    assert values["style_diversity"] > 0
    ref = ctx.info["stylize_reference"]
    assert all(ref[m]["output=style"] == pytest.approx(values[m], abs=1e-5) for m in METRICS)
    assert ref["style_fid"]["output=style"] < ref["style_fid"]["output=content"]  # the scale a reader needs
    assert ref["content_ssim"]["output=style"] < ref["content_ssim"]["output=content"]


def test_metrics_that_do_not_apply_say_why() -> None:
    _, na = evaluate(["fid_domain", "modes"], types.SimpleNamespace(family="stylize"))
    assert "stylize" in na["fid_domain"] and "content_acc" in na["fid_domain"] and "modes" in na
    _, na = evaluate(METRICS, types.SimpleNamespace(family="gan"))
    assert set(na) == set(METRICS) and all("applies to: stylize" in r for r in na.values())


def suite(**extra) -> dict:
    base = {
        "name": "s",
        "dataset": {"name": "digits"},
        "style": {"name": "photos"},
        "eval": {"num_samples": 8, "metrics": ["content_acc"]},
        "adapters": {"adain": {}},
    }
    return {**base, **extra}


def test_the_style_key_is_checked() -> None:
    assert parse_suite(suite()).style.name == "photos"
    with pytest.raises(ConfigError, match="styl"):  # a misspelled key: did-you-mean
        parse_suite({**{k: v for k, v in suite().items() if k != "style"}, "styel": {"name": "photos"}})
    with pytest.raises(ConfigError, match="nmae"):
        parse_suite(suite(style={"nmae": "photos"}))
    with pytest.raises(ConfigError, match="needs a style set") as err:
        parse_suite({k: v for k, v in suite().items() if k != "style"})
    assert err.value.key == "style"
    with pytest.raises(ConfigError, match="only for stylize adapters"):
        parse_suite(suite(adapters={"adain": {}, "dummy": {}}))


def test_loss_network_is_fixed_and_not_a_scoring_network(data) -> None:
    a, b = LossNet(1), LossNet(1)
    torch.manual_seed(5)
    c = LossNet(1)  # the weights come from derive_seed(0, "style_loss"), never the global stream
    assert all(
        torch.equal(x, y) and torch.equal(x, z)
        for x, y, z in zip(a.state_dict().values(), b.state_dict().values(), c.state_dict().values(), strict=True)
    )
    assert not any(p.requires_grad for p in a.parameters())
    loss = StyleLoss(1)
    x = data.test_x[:4].float() / 127.5 - 1
    lc, ls = loss(x, x, x)
    assert float(lc) == 0.0 and float(ls) == 0.0
    # Not the label-free extractor's architecture (SSLNet: BatchNorm blocks, trained on the style set).
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in a.modules())


def test_a_stylize_suite_runs_end_to_end(tmp_path) -> None:
    import json

    import bench

    s = suite(
        budget={"steps": 4, "batch_size": 8},
        eval={"num_samples": 16, "metrics": ["content_ssim", "fid_domain"]},
        adapters={"adain": {"width": 4}},
        strategies={
            "scratch": {},
            "transfer": {"task": "generative", "source": {"name": "digits", "limit": 40}, "steps": 2},
            "ar": {"task": "autoregressive", "source": {"name": "digits"}, "steps": 2},
        },
        runner={"threads": 1},
    )
    df = bench.run_suite(s, out=tmp_path / "runs", reports=tmp_path / "rep", device="cpu", jobs=1)
    assert sorted(df["status"]) == ["completed", "completed", "not_applicable"]
    suite_dir = tmp_path / "runs" / "s"
    for run in suite_dir.glob("adain-*"):
        res = json.loads((run / "result.json").read_text())
        assert res["spec"]["identity"]["style_data"]  # the style set's pixels are in the run id
        if res["status"] == "not_applicable":
            assert "sequence" in res["error"]
            continue
        assert "stylize" in res["not_applicable"]["fid_domain"] and -1 <= res["metrics"]["content_ssim"] <= 1
        assert res["metric_info"]["stylize_reference"]["content_ssim"]["output=content"] == 1.0
        from PIL import Image

        w, h = Image.open(run / "samples.png").size
        assert h < w  # three rows (content / style / output), one column per pair
