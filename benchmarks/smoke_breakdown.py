"""Where the smoke suite's wall time goes: start-up, pretraining, training, evaluation, report.

Runs suites/smoke.yaml end to end through bench.api.run_suite (as `bench run` does) into a temporary out
folder, and splits the wall time since this script started into:
- start-up: imports (bench, torch, the baselines) and loading the data set;
- pretraining, training (with compile, if any) and evaluation: summed from every run's result.json timings
  (evaluation includes the one-time domain classifier training, shown on its own line too);
- per-run overhead: each run's wall time outside those (building the adapter, checkpoints, samples.png,
  result files);
- report: results.csv/summary.csv and the HTML report;
- other: whatever is left (suite loading and validation, printing).
Timers are wrappers put around the harness's functions from here; the harness itself is not changed. They
only see this process, so the suite runs in it, in sequence (`jobs=1`): the split is of CPU work, and the wall
time of the default `--jobs auto` is measured by timing `bench run` itself (see docs/guide.md, Performance).

    .venv/bin/python benchmarks/smoke_breakdown.py [--suite suites/smoke.yaml] [--device cpu]
"""

from __future__ import annotations

import time

T0 = time.perf_counter()  # before the heavy imports, which are part of start-up

import argparse  # noqa: E402
import functools  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from collections import defaultdict  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

import bench.api  # noqa: E402
import bench.data.datasets  # noqa: E402
import bench.exec.outcome  # noqa: E402
import bench.metrics.domain  # noqa: E402
import bench.runner.run  # noqa: E402
import bench.stats.aggregate  # noqa: E402

T_IMPORTS = time.perf_counter() - T0
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from _common import machine, table  # noqa: E402

SPENT: dict[str, float] = defaultdict(float)


def timer(module, name: str, label: str) -> None:
    """Replace module.name by a wrapper that adds its wall time to SPENT[label]."""
    fn = getattr(module, name)

    @functools.wraps(fn)
    def wrapped(*a, **kw):
        t = time.perf_counter()
        try:
            return fn(*a, **kw)
        finally:
            SPENT[label] += time.perf_counter() - t

    setattr(module, name, wrapped)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--suite", default=str(ROOT / "suites" / "smoke.yaml"))
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()

    timer(bench.data.datasets, "load_dataset", "data")
    timer(bench.runner.run, "load_dataset", "data in runs")  # bound by name in the runner; memoised, so ~0
    timer(bench.exec.outcome, "execute_one", "runs")
    timer(bench.metrics.domain, "get_domain_classifier", "domain classifier")
    timer(bench.stats.aggregate, "write_tables", "report")
    timer(bench.api, "render_report", "report")
    with tempfile.TemporaryDirectory(prefix="bench-smoke-") as tmp:
        t_suite = time.perf_counter()
        df = bench.api.run_suite(
            args.suite, out=Path(tmp) / "runs", reports=Path(tmp) / "reports", device=args.device, progress=False, jobs=1
        )
        t_suite = time.perf_counter() - t_suite
        results = [json.loads(p.read_text()) for p in sorted((Path(tmp) / "runs").glob("*/*/result.json"))]
    total = time.perf_counter() - T0
    tim = defaultdict(float)
    for r in results:
        for k in ("pretrain", "train", "eval", "compile"):
            tim[k] += float(r.get("timings", {}).get(k) or 0.0)
    per_run = SPENT["runs"] - tim["pretrain"] - tim["train"] - tim["eval"] - tim["compile"] - SPENT["data in runs"]
    startup = T_IMPORTS + SPENT["data"] + SPENT["data in runs"]
    rows_spec = [
        ("start-up: imports", T_IMPORTS),
        ("start-up: data (load_dataset, all calls)", SPENT["data"] + SPENT["data in runs"]),
        ("pretraining", tim["pretrain"]),
        ("training", tim["train"]),
        ("compile", tim["compile"]),
        ("evaluation", tim["eval"]),
        ("  of which: domain classifier (trained once, then cached)", SPENT["domain classifier"]),
        ("per-run overhead (build, checkpoints, samples, files)", per_run),
        ("report (tables + HTML)", SPENT["report"]),
    ]
    accounted = startup + tim["pretrain"] + tim["train"] + tim["compile"] + tim["eval"] + per_run + SPENT["report"]
    rows_spec.append(("other (suite validation, printing)", total - accounted))
    rows = [[name, f"{sec:.2f}", f"{100 * sec / total:.1f}%"] for name, sec in rows_spec]
    rows.append(["**total wall time**", f"**{total:.2f}**", "100%"])
    status = ", ".join(f"{r['run_id']}: {r['status']}" for r in results)
    print(f"machine: {machine()}; torch threads now {torch.get_num_threads()}")
    print(f"suite {args.suite}: {len(df)} runs in {t_suite:.1f}s ({status})\n")
    print(table(rows, ["phase", "seconds", "share of wall time"]))


if __name__ == "__main__":
    main()
