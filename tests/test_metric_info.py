"""The metric table (bench.metrics.info): the registry's implementations are registered under its rows, and
`bench report RUNS_DIR` reads it without torch, so a report can be rebuilt where torch is not installed.
The no-torch check runs in a fresh interpreter, since this test process has torch loaded already."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.core.errors import ConfigError
from bench.metrics import METRICS, register_metric
from bench.metrics.info import COST_METRICS, METRIC_INFO

ROOT = Path(__file__).resolve().parents[1]

PROBE = """
import json, sys
from bench.cli import main
try:
    main(["report", sys.argv[1], "--out", sys.argv[2], "--format", "html", "--format", "md", "--format", "csv"])
except SystemExit as done:
    code = done.code
print(json.dumps({"exit": code, "torch": "torch" in sys.modules, "heavy": sorted(m for m in ("torch", "torchvision", "timm", "torch_fidelity") if m in sys.modules)}))
"""


def _make_runs(out: Path) -> Path:
    spec = importlib.util.spec_from_file_location("synthetic_runs", ROOT / "benchmarks" / "synthetic_runs.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("synthetic_runs", mod)
    spec.loader.exec_module(mod)
    return mod.make_runs(out, n_runs=12, n_adapters=2, n_strategies=2, steps=20)


def test_bench_report_never_imports_torch(tmp_path: Path) -> None:
    suite_dir = _make_runs(tmp_path / "runs")
    out = tmp_path / "report"
    proc = subprocess.run([sys.executable, "-c", PROBE, str(suite_dir), str(out)], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert seen["exit"] in (0, None), proc.stdout + proc.stderr
    assert (out / "index.html").is_file() and (out / "summary.md").is_file()
    assert not seen["torch"], f"bench report imported {seen['heavy']}"
    # The directions came from the table, not from a registry that failed to load: every metric has an arrow.
    # The results table (the verdict's table, first in the file, has no metric columns).
    header = next(ln for ln in (out / "summary.md").read_text().splitlines() if ln.startswith("| adapter |") and "runs done" in ln)
    metrics = [c.strip() for c in header.strip("|").split("|")][3:]  # after adapter, strategy and runs done
    assert len(metrics) >= 5 and all(c.endswith(("↑", "↓")) for c in metrics), header


def test_registry_and_table_hold_the_same_metrics() -> None:
    assert dict(METRICS.items()).keys() == METRIC_INFO.keys()
    for name, metric in METRICS.items():
        assert metric.info is METRIC_INFO[name]  # one row, not a copy that could drift
        assert (metric.fn is None) == (name in COST_METRICS)  # cost metrics are measured by the runner


def test_a_metric_without_a_row_is_refused() -> None:
    with pytest.raises(ConfigError, match="bench/metrics/info.py"):
        register_metric("fid_dommain")


def test_figures_clip_intervals_to_the_metrics_bounds():
    """Two seeds give wide t-intervals; a figure draws them inside the values the metric can take."""
    from bench.report.stats import metric_meta

    meta = metric_meta(["recall_domain", "fid_domain", "kid_domain", "unknown"])
    assert meta["recall_domain"].span(0.594, 1.5) == (0.0, 1.0)
    assert meta["fid_domain"].span(182.0, 519.0) == (0.0, 701.0)
    assert meta["kid_domain"].span(2.0, 10.0) == (-8.0, 12.0)  # an unbiased MMD² estimate can be negative
    assert meta["unknown"].span(1.0, 2.0) == (-1.0, 3.0)
    assert all(METRIC_INFO[m].bounds == (0.0, None) for m in COST_METRICS)
