"""The README's "Add a baseline" example, run exactly as written, from outside the package."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
import torch
import yaml
from click.testing import CliRunner

from bench.cli import main

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_adapter_code() -> str:
    text = README.read_text()
    section = text.split("## Add a baseline", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.fixture
def my_adapters(tmp_path, monkeypatch):
    (tmp_path / "my_adapters.py").write_text(readme_adapter_code())
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    sys.modules.pop("my_adapters", None)


README_EXAMPLE_MAX_LINES = 45  # "about 40": the promise is that an adapter is short, so hold the example to it


def test_readme_example_is_about_40_lines():
    lines = [ln for ln in readme_adapter_code().splitlines() if ln.strip()]
    assert len(lines) <= README_EXAMPLE_MAX_LINES, (
        f"the README's adapter example should be about 40 non-blank lines (at most {README_EXAMPLE_MAX_LINES}), it has {len(lines)}"
    )


@pytest.mark.slow  # end to end
def test_out_of_tree_adapter_runs_through_cli(my_adapters, tmp_path):
    suite = {
        "name": "contrib",
        "dataset": {"name": "digits"},
        "budget": {"steps": 30, "batch_size": 32},
        "eval": {"num_samples": 100, "metrics": ["fid_domain"]},
        "adapters": {"my_adapters:MLPGAN": {"hidden": 64}},
    }
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(suite))
    res = CliRunner().invoke(
        main, ["run", str(path), "--out", str(tmp_path / "runs"), "--reports", str(tmp_path / "rep"), "--quiet"], catch_exceptions=False
    )
    assert res.exit_code == 0, res.output
    (result,) = [json.loads(p.read_text()) for p in (tmp_path / "runs" / "contrib").glob("*/result.json")]
    assert result["status"] == "completed" and result["adapter"] == "my_adapters:MLPGAN"
    assert result["family"] == "gan" and result["metrics"]["fid_domain"] > 0
    assert result["not_applicable"].get("bpd") is None  # bpd was not asked for


def test_entry_point_registration(my_adapters, monkeypatch):
    from importlib import metadata

    from bench.adapter import base as adapter_mod

    ep = metadata.EntryPoint(name="mlp_gan_ep", value="my_adapters:MLPGAN", group="bench.adapters")
    monkeypatch.setattr(adapter_mod, "entry_points", lambda group: [ep] if group == "bench.adapters" else [])
    reg = adapter_mod.Registry("adapter", adapter_mod._load_builtin)
    monkeypatch.setattr(adapter_mod, "ADAPTERS", reg)
    cls = adapter_mod.get_adapter("mlp_gan_ep")
    assert cls.__name__ == "MLPGAN" and "mlp_gan_ep" in reg


def test_entry_point_to_a_non_adapter_is_a_one_line_config_error(monkeypatch):
    from importlib import metadata

    from bench.adapter import base as adapter_mod
    from bench.core.errors import ConfigError

    ep = metadata.EntryPoint(name="not_an_adapter", value="collections:OrderedDict", group="bench.adapters")
    monkeypatch.setattr(adapter_mod, "entry_points", lambda group: [ep] if group == "bench.adapters" else [])
    monkeypatch.setattr(adapter_mod, "ADAPTERS", adapter_mod.Registry("adapter", adapter_mod._load_builtin))
    with pytest.raises(ConfigError) as err:
        adapter_mod.get_adapter("anything")
    message = str(err.value)
    assert "not_an_adapter" in message and "must subclass bench.Adapter" in message and "\n" not in message


def test_lookup_never_renames_a_registered_class(my_adapters):
    from bench.adapter.base import get_adapter

    cls = get_adapter("my_adapters:MLPGAN")
    assert cls.key == "my_adapters:MLPGAN"  # set once, when it was registered
    cnn = get_adapter("cnn_gan")
    assert get_adapter("baselines.cnn_gan:CNNGAN") is cnn and cnn.key == "cnn_gan"
    assert get_adapter("my_adapters:MLPGAN").key == "my_adapters:MLPGAN"


def test_bundled_baselines_are_entry_points():
    from importlib.metadata import entry_points

    from bench.adapter.base import ADAPTERS

    listed = {ep.name for ep in entry_points(group="bench.adapters")}
    assert set(ADAPTERS.keys()) >= listed >= {"cnn_gan", "transformer_gan", "vae", "lstm_seq", "transformer_seq", "dummy"}
    assert all(ADAPTERS.get(name).key == name for name in listed)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("class Bad(bench.Adapter):\n    family = 'gan'\n    def sample(self, n, g): ...\n", "must implement train_step"),
        ("class Bad:\n    pass\n", "must subclass bench.Adapter"),
        (
            "class Bad(bench.Adapter):\n    family = 'gan'\n    Config = dict\n    def train_step(self, b, s): ...\n    def sample(self, n, g): ...\n",
            "Config must be a @dataclass",
        ),
    ],
)
def test_broken_adapter_class_says_what_contract_expects(tmp_path, monkeypatch, body, expected):
    (tmp_path / "broken_mod.py").write_text("import bench\n" + body)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("broken_mod", None)
    suite = {"name": "b", "dataset": {"name": "digits"}, "adapters": {"broken_mod:Bad": {}}}
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(suite))
    res = CliRunner().invoke(main, ["validate", str(path)])
    assert res.exit_code == 2 and expected in res.output and "Traceback" not in res.output


def test_wrong_sample_shape_and_bad_likelihood_messages():
    from bench.adapter.base import DataInfo, validate_log_likelihood, validate_sample

    info = DataInfo("digits", 1, 8, 17, 10)
    with pytest.raises(TypeError, match=r"must return a uint8 tensor of shape \(4, 1, 8, 8\), got torch.float32"):
        validate_sample(torch.zeros(4, 1, 8, 8), 4, info, "X")
    with pytest.raises(ValueError, match="non-finite"):
        validate_log_likelihood(torch.tensor([float("nan"), -1.0]), 2, "X")
    with pytest.raises(TypeError, match=r"shape \(2,\) in nats"):
        validate_log_likelihood(torch.zeros(2, 3), 2, "X")
