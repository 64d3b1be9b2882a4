"""The Python API. Everything the CLI does is one of these calls, so notebooks never shell out."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import yaml

from bench import store
from bench.errors import BenchError

if TYPE_CHECKING:
    from bench.result import RunResult
    from bench.spec import RunSpec

Echo = Callable[[str], None]
TERMINAL_METRICS = 5


def _quiet(_: str) -> None:
    pass


def run_suite(
    source: str | Path | dict,
    out: str | Path = "runs",
    reports: str | Path = "reports",
    device: str = "auto",
    executor: str = "local",
    only: str | None = None,
    force: bool = False,
    dry_run: bool = False,
    progress: bool = True,
    echo: Echo = _quiet,
    **executor_options: Any,
) -> pd.DataFrame:
    """Run (or resume) a suite and write results.csv, summary.csv and the HTML report.

    Returns the results table (one row per run); `.attrs` holds `summary`, `report` (the index.html path)
    and `failed` (number of runs that raised). Invalid input raises BenchError before anything runs.
    """
    from bench.aggregate import terminal_table, write_tables
    from bench.data import load_dataset
    from bench.env import pick_device
    from bench.executors import EXECUTORS
    from bench.suite import expand, load_suite, suite_to_dict

    suite = load_suite(source)
    runs = expand(suite, only)
    if executor not in EXECUTORS:
        raise BenchError(f"--executor {executor}: unknown executor", fix=f"use one of {', '.join(EXECUTORS)}")
    dev = pick_device(device)
    load_dataset(suite.dataset)  # fail fast (exit 2) on missing data, before any run starts
    suite_dir = Path(out) / suite.name
    cache_dir = Path(out) / ".cache"
    todo = [r for r in runs if force or not store.is_done(suite_dir / r.run_id)]
    echo(f"suite {suite.name}: {len(runs)} runs ({len(runs) - len(todo)} already done), device {dev}")
    if dry_run:
        for r in runs:
            echo(f"  {'run ' if r in todo else 'done'}  {r.run_id}")
        return pd.DataFrame(
            [{"run_id": r.run_id, "adapter": r.adapter, "strategy": r.strategy, "seed": r.seed, "todo": r in todo} for r in runs]
        )
    suite_dir.mkdir(parents=True, exist_ok=True)
    store.atomic_write_text(suite_dir / "suite.yaml", yaml.safe_dump(suite_to_dict(suite), sort_keys=False))
    if force:
        for r in todo:
            shutil.rmtree(suite_dir / r.run_id, ignore_errors=True)
    failed = done = 0
    start = time.perf_counter()

    def on_done(run: RunSpec, res: RunResult) -> None:
        nonlocal failed, done
        failed += res.status == "failed"
        done += 1
        note = f" — {res.error}" if res.status != "completed" else ""
        echo(f"[{done}/{len(todo)}] {run.run_id}: {res.status}{note}"[:400])

    EXECUTORS[executor](todo, suite_dir, str(dev) if device != "auto" else "auto", cache_dir, on_done, progress, **executor_options)
    df, summary = write_tables(suite_dir)
    report = Path(reports) / suite.name / "index.html"
    if todo or not _report_is_current(suite_dir, report):
        report = render_report(suite_dir, Path(reports) / suite.name)
    # The terminal gets the headline columns; every metric is in summary.csv and the report.
    shown = [*suite.eval.metrics[:TERMINAL_METRICS], "train_seconds"]
    echo("")
    echo(terminal_table(summary, shown))
    hidden = len(suite.eval.metrics) - TERMINAL_METRICS
    if hidden > 0:
        echo(f"(mean ± 95% CI over seeds; {hidden} more metrics in summary.csv and the report)")
    echo(f"\n{len(todo)} runs in {time.perf_counter() - start:.1f}s; results: {suite_dir / 'results.csv'}")
    echo(f"comparisons against the baseline (paired, Holm-corrected): {suite_dir / 'comparisons.csv'}")
    echo(f"report: {report.resolve().as_uri()}")
    df.attrs.update(summary=summary, report=report, failed=failed)
    return df


def _report_is_current(suite_dir: Path, report: Path) -> bool:
    """True when the report is newer than every result: a rerun of a finished suite need not redraw it."""
    if not report.is_file():
        return False
    newest = max((p.stat().st_mtime for p in suite_dir.glob("*/result.json")), default=0.0)
    return report.stat().st_mtime >= newest


def load_results(runs_dir: str | Path) -> pd.DataFrame:
    """The results table of a suite folder (runs/<suite>), or of every suite under a runs folder."""
    from bench.aggregate import results_frame

    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        raise BenchError("runs folder not found", file=str(runs_dir), fix="pass runs/<suite> as written by `bench run`")
    results = store.list_results(runs_dir) or [r for d in sorted(runs_dir.iterdir()) if d.is_dir() for r in store.list_results(d)]
    return results_frame(results)


def render_report(suite_dir: str | Path, out: str | Path | None = None, formats: tuple[str, ...] = ("html",), warn: Echo = _quiet) -> Path:
    """Re-render the report of a run folder without training anything.

    formats: any of html (index.html, per-run pages, figures), md (summary.md), tex (summary.tex, booktabs)
    and csv (summary.csv with Δ vs scratch and Welch p-values), all written into `out`
    (default reports/<suite>). Returns index.html when html is asked for, else the first file written.
    A result.json that is not a valid RunResult is left out, and `warn` gets one line naming it.
    """
    from bench.aggregate import write_tables
    from bench.report import render_report as _render

    suite_dir = Path(suite_dir)
    if not suite_dir.is_dir() or not any(suite_dir.glob("*/result.json")):
        raise BenchError("no results here", file=str(suite_dir), fix="pass the runs/<suite> folder of a suite that has run")
    unknown = [f for f in formats if f not in ("html", "md", "tex", "csv")]
    if unknown or not formats:
        raise BenchError(f"unknown report format {', '.join(unknown) or '(none)'}", fix="use html, md, tex or csv")
    store.list_results(suite_dir, warn)  # only to name the results that tables and report leave out
    write_tables(suite_dir)
    written = _render(suite_dir, Path(out) if out else Path("reports") / suite_dir.name, tuple(formats))
    return written.get("html") or next(iter(written.values()))
