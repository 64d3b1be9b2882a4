"""The adapter contract check (bench.adapter.contract): each contract mistake gets its one line, in `bench validate`
(exit 2) and in a run (the run fails with that line); the check leaves the run's random streams alone."""

from __future__ import annotations

import json
import textwrap

import pytest
import torch
from click.testing import CliRunner
from torch import nn

from baselines.dummy import Dummy
from baselines.lstm_seq import LSTMSeq
from bench.adapter.base import ADAPTERS, CONDITIONAL_FAMILIES, Adapter, Part
from bench.adapter.contract import check_adapter
from bench.cli import main
from bench.data.datasets import load_dataset
from bench.data.style import with_style
from bench.suite.schema import parse
from bench.suite.spec import DatasetSpec


@pytest.fixture(scope="module")
def data():
    return load_dataset(DatasetSpec(name="digits"))


def lines_for(cls, data, **config):
    return check_adapter(lambda: cls(parse(cls.Config, config, "adapters.x"), data.info, "cpu"), data, "cpu")


class FloatLoss(Dummy):
    def train_step(self, batch, step):
        return {"nll": float(super().train_step(batch, step)["nll"])}


class Forgetful(Adapter):
    """Dummy's model, in a class that never sets `family`."""

    Config = Dummy.Config

    def __init__(self, config, info, device):
        super().__init__(config, info, device)
        self.inner = Dummy(config, info, device)

    def train_step(self, batch, step):
        return self.inner.train_step(batch, step)

    def sample(self, n, generator):
        return self.inner.sample(n, generator)

    def log_likelihood(self, batch):
        return self.inner.log_likelihood(batch)


class WrongVocab(LSTMSeq):
    def parts(self):
        part = super().parts()["sequence"]
        return {"sequence": Part(part.module, "sequence", vocab=self.info.levels + 2, blocks=part.blocks)}


class FlatSequence(LSTMSeq):
    """A sequence part whose module returns (N·T)×V logits, as the issue's out-of-tree PixelCNN did."""

    def parts(self):
        part = super().parts()["sequence"]
        return {"sequence": Part(_Flatten(part.module), "sequence", vocab=part.vocab, blocks=part.blocks)}


class _Flatten(nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, tokens):
        return self.inner(tokens).flatten(0, 1)


class FloatSamples(Dummy):
    def sample(self, n, generator):
        return super().sample(n, generator).float()


class OffGrid(Dummy):
    def sample(self, n, generator):
        return super().sample(n, generator) | 1  # odd bytes: not on the 17-level grid (0, 16, 32, ...)


class BadLikelihood(Dummy):
    def log_likelihood(self, batch):
        return super().log_likelihood(batch).unsqueeze(1)


@pytest.mark.parametrize(
    "cls, expected",
    [
        (FloatLoss, "FloatLoss.train_step(batch, step) returned nll = "),
        (Forgetful, "Forgetful.family: missing, so it would run as 'other'; expected a class attribute, one of gan"),
        (WrongVocab, "WrongVocab.parts()['sequence']: vocab=19; expected levels + 1 = 18"),
        (FlatSequence, "FlatSequence.parts()['sequence'] (sequence): module(tokens, int64 N×T = (4, 64), start token 17 first) returned"),
        (FloatSamples, "FloatSamples.sample(4, generator) returned a float32 tensor of shape (4, 1, 8, 8); expected a uint8 tensor"),
        (OffGrid, "OffGrid.sample(4, generator) returned pixel value"),
        (
            BadLikelihood,
            "BadLikelihood.log_likelihood(batch) returned a float32 tensor of shape (4, 1); expected None or a float tensor of shape (4,)",
        ),
    ],
)
def test_each_mistake_gets_its_line(cls, expected, data):
    lines = lines_for(cls, data)
    assert len(lines) == 1 and lines[0].startswith(expected), lines
    assert "\n" not in lines[0] and len(lines[0]) < 400


def test_float_loss_line_says_why(data):
    (line,) = lines_for(FloatLoss, data)
    assert "(float); expected a 0-dim float tensor" in line and "loss.detach()" in line


def test_flat_sequence_line_names_the_expected_shape(data):
    (line,) = lines_for(FlatSequence, data)
    assert "returned a float32 tensor of shape (256, 18); expected logits N×T×vocab = (4, 64, 18)" in line


@pytest.mark.parametrize("key", ADAPTERS.keys())
def test_every_registered_adapter_passes(key, data):
    cls = ADAPTERS.get(key)
    if cls.family in CONDITIONAL_FAMILIES:  # a stylize adapter is checked on content with its style set
        data = with_style(data, DatasetSpec("photos"))
    assert lines_for(cls, data) == []


@pytest.mark.parametrize("key", [k for k in ADAPTERS.keys() if ADAPTERS.get(k).family in CONDITIONAL_FAMILIES])  # noqa: SIM118
def test_a_stylize_adapter_without_a_style_set_gets_one_line(key, data):
    (line,) = lines_for(ADAPTERS.get(key), data)
    assert "needs a style set" in line and "style: {name: photos}" in line


def test_check_leaves_random_streams_alone(data):
    torch.manual_seed(3)
    want = torch.rand(3)
    torch.manual_seed(3)
    lines_for(Dummy, data)
    assert torch.equal(torch.rand(3), want)


ADAPTER_FILE = """
import torch
from baselines.dummy import Dummy

class FloatLoss(Dummy):
    def train_step(self, batch, step):
        return {"nll": float(super().train_step(batch, step)["nll"])}
"""


@pytest.fixture
def bad_suite(tmp_path, tiny_suite):
    import sys

    (tmp_path / "bad_adapters.py").write_text(textwrap.dedent(ADAPTER_FILE))
    suite = {**tiny_suite, "name": "bad", "adapters": {"bad_adapters:FloatLoss": {}}}
    path = tmp_path / "bad.yaml"
    path.write_text(json.dumps(suite))  # JSON is YAML
    yield path
    sys.modules.pop("bad_adapters", None)


def test_validate_exits_2_with_the_line(bad_suite):
    res = CliRunner().invoke(main, ["validate", str(bad_suite)])
    assert res.exit_code == 2
    (line,) = [ln for ln in res.output.splitlines() if ln.strip()]
    assert line.startswith(f"error: {bad_suite}: adapters.bad_adapters:FloatLoss: FloatLoss.train_step(batch, step) returned nll = ")
    assert "Traceback" not in res.output


def test_run_fails_with_the_line(bad_suite, tmp_path):
    runs = tmp_path / "runs"
    res = CliRunner().invoke(main, ["run", str(bad_suite), "--out", str(runs), "--reports", str(tmp_path / "rep"), "--quiet"])
    assert res.exit_code == 1, res.output
    (result,) = [json.loads(p.read_text()) for p in (runs / "bad").glob("*/result.json")]
    assert result["status"] == "failed"
    assert result["error"].startswith("ContractError: FloatLoss.train_step(batch, step) returned nll = ")
    assert "\n" not in result["error"]
