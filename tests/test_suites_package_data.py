"""Bundled suites travel with a wheel install, and `bench run NAME` / `bench list suites` find them there."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from bench.suite import load

ROOT = Path(__file__).resolve().parents[1]


def test_package_data_link_carries_every_suite():
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    link = ROOT / "bench" / "suite" / "bundled"
    assert link.is_dir() and link.resolve() == (ROOT / "suites").resolve()
    globs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["bench.suite"]
    carried = {p.name for g in globs for p in (ROOT / "bench" / "suite").glob(g)}
    assert carried == {p.name for p in (ROOT / "suites").glob("*.yaml")}


def test_suites_found_by_name_from_the_package_alone(tmp_path, monkeypatch):
    # A wheel install: no suites/ in the working directory, none beside the package; only the package data.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(load, "SUITE_DIRS", (Path("suites"), tmp_path / "nowhere", load.SUITE_DIRS[-1]))
    found = load.bundled_suites()
    assert "smoke" in found and "digits-strategies" in found
    assert load.resolve_suite(Path("smoke")) == found["smoke"]


@pytest.mark.slow
def test_wheel_contains_the_suites(tmp_path):
    pytest.importorskip("setuptools")  # the wheel is built without isolation: no network, the venv's setuptools
    out = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", str(ROOT), "-w", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    if out.returncode != 0 and "No module named" in out.stderr:
        pytest.skip(f"cannot build a wheel here: {out.stderr.strip().splitlines()[-1]}")
    assert out.returncode == 0, out.stderr
    (wheel,) = tmp_path.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for suite in (ROOT / "suites").glob("*.yaml"):
        assert f"bench/suite/bundled/{suite.name}" in names
