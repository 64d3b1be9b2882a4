"""The contributor path from a fresh shell: `bench new adapter` and the README's adapter example, each run from
another working directory with no PYTHONPATH (the `module:Class` resolves from the suite file's folder)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_adapter_code() -> str:
    section = README.read_text().split("## Add a baseline", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


BENCH = [sys.executable, "-m", "bench.cli"]
TINY = {"steps": 4, "batch_size": 16}
TINY_EVAL = {"num_samples": 50, "metrics": ["images_per_second"]}


def bench(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([*BENCH, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=540)


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    (tmp_path / "elsewhere").mkdir()
    return tmp_path / "elsewhere"


def shrink(suite: Path, adapter: str) -> None:
    """The same suite, cut to one adapter and a budget of seconds."""
    data = yaml.safe_load(suite.read_text())
    data.update(budget=TINY, eval=TINY_EVAL, adapters={adapter: data["adapters"][adapter]})
    suite.write_text(yaml.safe_dump(data, sort_keys=False))


def ran(runs: Path, suite: str) -> dict:
    (result,) = [json.loads(p.read_text()) for p in (runs / suite).glob("*/result.json")]
    return result


@pytest.mark.slow
def test_scaffold_passes_the_contract_and_runs(tmp_path, elsewhere):
    made = bench("new", "adapter", "my_gan", "--dir", str(tmp_path / "proj"), cwd=elsewhere)
    assert made.returncode == 0, made.stderr
    code, suite = tmp_path / "proj" / "my_gan.py", tmp_path / "proj" / "my_gan.yaml"
    assert "THE CONTRACT" in code.read_text() and "my_gan:MyGan" in suite.read_text()
    again = bench("new", "adapter", "my_gan", "--dir", str(tmp_path / "proj"), cwd=elsewhere)
    assert again.returncode == 2 and again.stderr.startswith("error: ") and "already exists" in again.stderr
    assert "Traceback" not in again.stderr
    checked = bench("validate", str(suite), cwd=elsewhere)  # unmodified: the contract check runs on it
    assert checked.returncode == 0 and "adapter contracts checked" in checked.stdout, checked.stderr
    shrink(suite, "my_gan:MyGan")
    out = bench("run", str(suite), "--out", str(tmp_path / "runs"), "--reports", str(tmp_path / "rep"), "--quiet", cwd=elsewhere)
    assert out.returncode == 0, out.stderr[-2000:]
    result = ran(tmp_path / "runs", "my_gan")
    assert result["status"] == "completed" and result["family"] == "gan"


@pytest.mark.slow
def test_readme_example_from_another_folder_without_pythonpath(tmp_path, elsewhere):
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "my_adapters.py").write_text(readme_adapter_code())
    suite = proj / "suite.yaml"
    suite.write_text(yaml.safe_dump({"name": "mlp", "dataset": {"name": "digits"}, "adapters": {"my_adapters:MLPGAN": {"hidden": 128}}}))
    shrink(suite, "my_adapters:MLPGAN")
    checked = bench("validate", "../proj/suite.yaml", cwd=elsewhere)
    assert checked.returncode == 0, checked.stderr
    out = bench("run", "../proj/suite.yaml", "--out", "runs", "--reports", "rep", "--quiet", cwd=elsewhere)
    assert out.returncode == 0, out.stderr[-2000:]
    assert ran(elsewhere / "runs", "mlp")["status"] == "completed"


def test_new_adapter_refuses_bad_and_taken_names(tmp_path):
    from bench.core.errors import BenchError
    from bench.scaffold import new_adapter

    for name in ("my-gan", "class", "json"):
        with pytest.raises(BenchError):
            new_adapter(name, tmp_path)
    assert not list(tmp_path.iterdir())


def test_module_resolution_leaves_sys_path_as_it_was(tmp_path, monkeypatch):
    from bench.adapter.base import get_adapter

    (tmp_path / "suite_dir_adapters.py").write_text(readme_adapter_code())
    monkeypatch.chdir(tmp_path.parent)  # not the module's folder: only `search` finds it
    before = list(sys.path)
    try:
        cls = get_adapter("suite_dir_adapters:MLPGAN", search=(str(tmp_path),))
        assert cls.__name__ == "MLPGAN" and sys.path == before
    finally:
        sys.modules.pop("suite_dir_adapters", None)
