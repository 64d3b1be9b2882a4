from __future__ import annotations

from pathlib import Path

import pytest

from bench.core.errors import BenchError, ConfigError
from bench.suite.load import expand, load_suite


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "s.yaml"
    p.write_text(text)
    return p


def test_valid_suite_expands_to_grid(tiny_suite):
    tiny_suite["seeds"] = [0, 1, 2]
    tiny_suite["strategies"] = {"scratch": {}, "ext": {"task": "external", "path": "w.safetensors"}}
    runs = expand(load_suite(tiny_suite))
    assert len(runs) == 6
    assert len({r.run_id for r in runs}) == 6
    assert runs[0].run_id.startswith("dummy-scratch-s0-")


def test_run_id_is_stable_and_depends_on_spec(tiny_suite):
    a = expand(load_suite(tiny_suite))[0].run_id
    assert expand(load_suite(tiny_suite))[0].run_id == a
    tiny_suite["budget"]["steps"] = 21
    assert expand(load_suite(tiny_suite))[0].run_id != a
    tiny_suite["budget"]["steps"] = 20
    tiny_suite["runner"] = {"log_every": 5}  # speed knobs never change identity
    assert expand(load_suite(tiny_suite))[0].run_id == a


def test_unknown_key_gets_did_you_mean(tmp_path):
    p = write(tmp_path, "name: x\ndataset: {name: digits}\nadapters: {dummy: {}}\nbudgett: {steps: 3}\n")
    with pytest.raises(ConfigError) as e:
        load_suite(p)
    msg = str(e.value)
    assert str(p) in msg and "budgett" in msg and "did you mean 'budget'" in msg


def test_misspelled_adapter_gets_did_you_mean(tiny_suite):
    tiny_suite["adapters"] = {"dumy": {}}
    with pytest.raises(ConfigError, match="did you mean 'dummy'"):
        load_suite(tiny_suite)


def test_adapter_config_is_validated(tiny_suite):
    tiny_suite["adapters"] = {"dummy": {"lr": "fast"}}
    with pytest.raises(ConfigError, match=r"adapters\.dummy\.lr: expected a number"):
        load_suite(tiny_suite)
    tiny_suite["adapters"] = {"dummy": {"lrr": 0.1}}
    with pytest.raises(ConfigError, match="did you mean 'lr'"):
        load_suite(tiny_suite)


@pytest.mark.parametrize(
    ("patch", "fragment"),
    [
        ({"budget": {"steps": "many"}}, "budget.steps: expected an integer"),
        ({"seeds": [0, "one"]}, "seeds[1]: expected an integer"),
        ({"seeds": []}, "at least one seed"),
        ({"eval": {"metrics": ["fid_domian"]}}, "did you mean 'fid_domain'"),
        ({"strategies": {"s": {"task": "supervized"}}}, "did you mean 'supervised'"),
        ({"strategies": {"s": {"task": "supervised"}}}, "needs a source"),
        ({"dataset": {"name": "digitz"}}, "dataset.name: unknown dataset 'digitz' (did you mean 'digits'?)"),  # checked at validation
        ({"name": "../evil"}, "plain folder name"),
    ],
)
def test_bad_values_name_the_key(tiny_suite, patch, fragment):
    tiny_suite.update(patch)
    if fragment is None:
        load_suite(tiny_suite)
        return
    with pytest.raises(BenchError) as e:
        load_suite(tiny_suite)
    assert fragment in str(e.value)


def test_include_overlays_base(tmp_path):
    (tmp_path / "base.yaml").write_text("name: base\ndataset: {name: digits}\nbudget: {steps: 50, batch_size: 16}\nadapters: {dummy: {}}\n")
    p = tmp_path / "child.yaml"
    p.write_text("include: base.yaml\nname: child\nbudget: {steps: 7}\n")
    s = load_suite(p)
    assert s.name == "child" and s.budget.steps == 7 and s.budget.batch_size == 16


def test_include_cycle_is_an_error(tmp_path):
    (tmp_path / "a.yaml").write_text("include: b.yaml\nname: a\n")
    (tmp_path / "b.yaml").write_text("include: a.yaml\nname: b\n")
    with pytest.raises(BenchError, match="include cycle"):
        load_suite(tmp_path / "a.yaml")


def test_only_glob_filters_and_empty_match_is_error(tiny_suite):
    tiny_suite["seeds"] = [0, 1]
    s = load_suite(tiny_suite)
    assert [r.seed for r in expand(s, "dummy-scratch-s1*")] == [1]
    with pytest.raises(BenchError, match="matches no run"):
        expand(s, "nothing-*")


def test_bundled_suites_validate():
    for p in sorted(Path(__file__).resolve().parents[1].glob("suites/*.yaml")):
        assert expand(load_suite(p)), p


def test_exponent_without_a_dot_is_a_number(tmp_path):
    """`lr_d: 2e-4` is a float, not the text '2e-4' that YAML 1.1 makes of it (the error a user met)."""
    p = tmp_path / "s.yaml"
    p.write_text(
        "name: e\ndataset: {name: digits}\nbudget: {steps: 2}\nseeds: [0]\n"
        "adapters: {cnn_gan: {lr_d: 2e-4, lr_g: 1E-3}}\nstrategies: {scratch: {}}\n"
    )
    (run,) = expand(load_suite(p))
    assert run.adapter_config["lr_d"] == 0.0002 and run.adapter_config["lr_g"] == 0.001
