"""Hand-written result.json records and suite folders for the report tests (test_report, test_verdict).
They test rendering only, never measured numbers."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from bench.store import runs as store
from bench.store.result import RunResult


def make_result(adapter: str, strategy: str, seed: int, status: str = "completed", metrics=None, na=None, error=None, **extra) -> dict:
    return {
        "run_id": f"{adapter}-{strategy}-s{seed}-00000000",
        "suite": "t",
        "adapter": adapter,
        "family": "gan",
        "strategy": strategy,
        "task": "scratch" if strategy == "scratch" else "supervised",
        "seed": seed,
        "status": status,
        "error": error,
        "metrics": metrics or {},
        "not_applicable": na or {},
        "metric_info": {"domain_classifier": {"accuracy": 0.9712}} if status == "completed" else {},
        "protocol": {"version": "test"},
        "spec": {"eval": {"metrics": ["fid_domain", "bpd"]}},
        "env": {"versions": {"torch": "x"}, "device": "cpu", "git_commit": "abc123"},
        "finished_at": "2026-01-01T00:00:00+0000",
        **extra,
    }


def typed(results: list[dict]) -> list[RunResult]:
    """The results as the report reads them from disk."""
    return [RunResult.from_json(r) for r in results]


def write_suite(root: Path, results: list[dict], suite_yaml: str = "name: t\n") -> Path:
    suite_dir = root / "runs" / "t"
    suite_dir.mkdir(parents=True)
    (suite_dir / "suite.yaml").write_text(suite_yaml)
    for r in results:
        d = suite_dir / r["run_id"]
        store.atomic_write_json(d / "result.json", r)
        (d / "history.csv").write_text("step,train_seconds,loss,fid_domain\n1,0.1,2.0,\n2,0.2,1.5,30\n")
        if r["status"] == "completed":
            Image.new("L", (16, 16), 128).save(d / "samples.png")
    return suite_dir
