"""Bad input: every mistake a user can make in a suite or on the command line exits 2 with one line that names
the file (or option), the key and the fix, and never shows a traceback. A bad external weights file fails
only its own run."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch
import yaml
from click.testing import CliRunner

from bench.cli import main
from bench.store import runs as store

GOOD = "name: errs\ndataset: {name: digits}\nbudget: {steps: 4, batch_size: 8}\neval: {num_samples: 20, metrics: [bpd]}\nadapters: {dummy: {}}\nrunner: {threads: 1}\n"


def invoke(*args: str):
    res = CliRunner().invoke(main, list(args))
    assert res.exception is None or isinstance(res.exception, SystemExit), f"uncaught {res.exception!r}\n{res.output}"
    return res


def assert_one_line_error(res, *fragments: str) -> str:
    assert res.exit_code == 2, res.output
    lines = res.output.strip("\n").split("\n")
    assert len(lines) == 1, res.output
    assert lines[0].startswith("error: ") and "Traceback" not in res.output
    for f in fragments:
        assert f in lines[0], (f, lines[0])
    return lines[0]


def write(tmp_path: Path, text: str, name: str = "suite.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# (suite text, fragments the one-line message must contain)
BAD_SUITES = {
    "misspelled_adapter": (GOOD.replace("dummy: {}", "dumy: {}"), ["adapters.dumy", "unknown adapter 'dumy'", "did you mean 'dummy'?"]),
    "misspelled_key": (GOOD.replace("budget:", "budgte:"), ["budgte", "unknown key", "did you mean 'budget'?"]),
    "misspelled_adapter_option": (GOOD.replace("dummy: {}", "dummy: {lrr: 0.1}"), ["adapters.dummy.lrr", "did you mean 'lr'?"]),
    "wrong_type": (GOOD.replace("steps: 4", "steps: four"), ["budget.steps", "expected an integer", "'four'"]),
    "wrong_type_list": (GOOD.replace("metrics: [bpd]", "metrics: bpd"), ["eval.metrics", "expected a list"]),
    "unknown_metric": (GOOD.replace("metrics: [bpd]", "metrics: [fdi_domain]"), ["eval.metrics[0]", "did you mean 'fid_domain'?"]),
    "invalid_yaml": (GOOD.replace("adapters: {dummy: {}}", "adapters: {dummy: {}"), ["invalid YAML", "line "]),
    "bad_date_value": (GOOD + "description: 2024-13-01\n", ["invalid YAML value", "quote the value"]),
    "deep_nesting": (GOOD + "description: " + "[" * 3000 + "]" * 3000 + "\n", ["nested too deeply"]),
    "huge_number": (
        GOOD.replace("runner: {threads: 1}", "runner: {diverge_threshold: " + "9" * 400 + "}"),
        ["runner.diverge_threshold", "too large"],
    ),
    "not_a_mapping": ("- just\n- a list\n", ["a suite must be a YAML mapping"]),
    "missing_adapter_module": (
        GOOD.replace("dummy: {}", "no_such_module_xyz:MyGAN: {}"),
        ["cannot import adapter module 'no_such_module_xyz'"],
    ),
    "missing_adapter_class": (GOOD.replace("dummy: {}", "json:MyGAN: {}"), ["module 'json' has no class 'MyGAN'"]),
    "empty_adapter_module": (GOOD.replace("dummy: {}", "':MyGAN': {}"), ["adapters.:MyGAN", "cannot"]),
    "not_an_adapter": (GOOD.replace("dummy: {}", "json:JSONDecoder: {}"), ["must subclass bench.Adapter"]),
    "seed_out_of_range": (GOOD + "seeds: [0, 5000000000]\n", ["seeds must be distinct integers"]),
    "duplicate_seeds": (GOOD + "seeds: [1, 1]\n", ["seeds must be distinct"]),
    "strategy_name_path": (GOOD + "strategies: {'a/b': {}}\n", ["strategy names must be plain names"]),
    "negative_freeze": (GOOD + "strategies: {f: {freeze: {discriminator: -1}}}\n", ["freeze counts must be >= 0"]),
    "zero_threads": (GOOD.replace("threads: 1", "threads: 0"), ["threads must be >= 1"]),
    "missing_include": ("include: base.yaml\n" + GOOD, ["suite.yaml: include: included file not found"]),
    "bad_sha": (
        GOOD + "strategies: {ext: {task: external, path: w.safetensors, sha256: xyz}}\n",
        ["strategies.ext.sha256", "64 hex digits"],
    ),
    "control_char_in_key": (GOOD.replace("budget:", '"bud\\rget\\u2028":'), ["unknown key"]),
}


@pytest.mark.parametrize("case", list(BAD_SUITES))
def test_bad_suite_validate_exits_2_one_line(tmp_path: Path, case: str) -> None:
    text, fragments = BAD_SUITES[case]
    path = write(tmp_path, text)
    line = assert_one_line_error(invoke("validate", str(path)), *fragments)
    assert str(path) in line  # names the file


@pytest.mark.parametrize("case", ["misspelled_adapter", "wrong_type", "invalid_yaml", "missing_adapter_module"])
def test_bad_suite_run_exits_2_before_anything_runs(tmp_path: Path, case: str) -> None:
    text, fragments = BAD_SUITES[case]
    path = write(tmp_path, text)
    assert_one_line_error(invoke("run", str(path), "--out", str(tmp_path / "runs")), *fragments)
    assert not (tmp_path / "runs").exists()


def test_unknown_dataset_fails_the_run_command_before_training(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("name: digits", "name: digts"))
    assert_one_line_error(invoke("run", str(path), "--out", str(tmp_path / "runs")), "dataset.name", "did you mean 'digits'?")
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("command", ["validate", "run"])
def test_suite_file_that_does_not_exist(tmp_path: Path, command: str) -> None:
    missing = tmp_path / "nope.yaml"
    assert_one_line_error(invoke(command, str(missing)), str(missing), "suite file not found")


def test_suite_path_is_a_folder_or_binary(tmp_path: Path) -> None:
    assert_one_line_error(invoke("validate", str(tmp_path)), "suite file not found")
    binary = tmp_path / "b.yaml"
    binary.write_bytes(b"\xff\xfe\x00\x81" * 8)
    assert_one_line_error(invoke("validate", str(binary)), str(binary))


def test_only_that_matches_nothing(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    assert_one_line_error(
        invoke("run", str(path), "--out", str(tmp_path / "runs"), "--only", "cnn_gan-*"), "--only 'cnn_gan-*' matches no run", "--dry-run"
    )
    assert not (tmp_path / "runs").exists()


def test_unknown_executor_and_device_are_click_usage_errors(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    for args in (["--executor", "slurm"], ["--device", "tpu"]):
        res = invoke("run", str(path), *args)
        assert res.exit_code == 2 and "Traceback" not in res.output and "Invalid value" in res.output


def test_external_weights_with_wrong_sha256_fail_that_run_only(tmp_path: Path) -> None:
    """A pinned weights file whose bytes differ is refused before it is loaded; the other runs still finish."""
    from safetensors.torch import save_file

    weights = tmp_path / "w.safetensors"
    save_file({"x": torch.zeros(2)}, str(weights))
    wrong = hashlib.sha256(b"not these bytes").hexdigest()
    suite = yaml.safe_load(GOOD)
    suite["strategies"] = {"scratch": {}, "ext": {"task": "external", "path": str(weights), "sha256": wrong}}
    path = write(tmp_path, yaml.safe_dump(suite))
    res = invoke("run", str(path), "--out", str(tmp_path / "runs"), "--reports", str(tmp_path / "rep"), "--quiet", "--device", "cpu")
    assert res.exit_code == 1, res.output  # a run did not complete; the suite itself was valid
    results = {r.strategy: r for r in store.list_results(tmp_path / "runs" / "errs")}
    assert results["scratch"].status == "completed"
    ext = results["ext"]
    assert ext.status == "failed"
    assert "sha256 mismatch" in ext.error and wrong in ext.error and "strategies.ext.sha256" in ext.error
