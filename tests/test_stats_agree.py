"""summary.csv and the report show the same statistics: both come from aggregate.seed_stats."""

from __future__ import annotations

import math

from bench.report.stats import build_rows, metric_meta
from bench.stats.aggregate import results_frame, summary_frame
from bench.store.result import RunResult

VALUES = {"a": [0.1, 0.2, 0.7000000000000001], "b": [3.3, 1e-9, 2.25, 7.0], "c": [5.0]}


def _results() -> list[RunResult]:
    out = []
    for strategy, vals in VALUES.items():
        for seed, v in enumerate(vals):
            out.append(
                RunResult.from_json(
                    {
                        "run_id": f"x-{strategy}-s{seed}",
                        "suite": "t",
                        "adapter": "x",
                        "family": "gan",
                        "strategy": strategy,
                        "task": "scratch",
                        "seed": seed,
                        "status": "completed",
                        "metrics": {"fid_domain": v},
                    }
                )
            )
    return out


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


def test_report_cells_equal_summary_csv_bit_for_bit() -> None:
    results = _results()
    summary = summary_frame(results_frame(results)).set_index("strategy")
    rows = {r.strategy: r for r in build_rows(results, ["fid_domain"], metric_meta(["fid_domain"]))}
    for strategy in VALUES:
        cell, s = rows[strategy].cells["fid_domain"], summary.loc[strategy]
        assert cell.n == s["fid_domain_n"] == len(VALUES[strategy])
        for stat in ("mean", "std", "ci95"):
            assert _same(getattr(cell, stat), float(s[f"fid_domain_{stat}"])), (strategy, stat)
    assert math.isnan(rows["c"].cells["fid_domain"].ci95)  # one seed: no interval
