"""Render reports/<suite>/index.html from a run folder. Self-contained: images are copied beside the page,
so the folder works from file:// and when copied elsewhere. User strings are autoescaped by jinja2."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import jinja2

from bench import store
from bench.aggregate import fmt, metric_columns, results_frame, summary_frame


def _env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("bench.report", "templates"),
        autoescape=jinja2.select_autoescape(["html", "xml"], default=True),
        undefined=jinja2.StrictUndefined,
    )


def render_report(suite_dir: Path, out_dir: Path) -> Path:
    from bench.metrics import METRICS

    suite_dir, out_dir = Path(suite_dir), Path(out_dir)
    results = store.list_results(suite_dir)
    df = results_frame(results)
    summary = summary_frame(df)
    metrics = metric_columns(df)
    img_dir = out_dir / "img"
    img_dir.mkdir(parents=True, exist_ok=True)
    samples = []
    for r in results:
        src = suite_dir / r["run_id"] / "samples.png"
        if src.is_file():
            shutil.copyfile(src, img_dir / f"{r['run_id']}.png")
            samples.append(
                {
                    "run_id": r["run_id"],
                    "adapter": r["adapter"],
                    "strategy": r["strategy"],
                    "seed": r["seed"],
                    "src": f"img/{r['run_id']}.png",
                }
            )
    direction = {m: ("↑" if METRICS.get(m).higher_is_better else "↓") if m in METRICS else "" for m in metrics}
    rows = []
    for _, r in summary.iterrows():
        cells = [fmt(r[f"{m}_mean"], r[f"{m}_ci95"]) for m in metrics]
        rows.append(
            {"adapter": r["adapter"], "strategy": r["strategy"], "n": int(r["n_completed"]), "runs": int(r["n_runs"]), "cells": cells}
        )
    suite_yaml = (suite_dir / "suite.yaml").read_text() if (suite_dir / "suite.yaml").is_file() else ""
    html = (
        _env()
        .get_template("index.html")
        .render(
            suite=suite_dir.name,
            metrics=metrics,
            direction=direction,
            rows=rows,
            samples=samples,
            failures=[r for r in results if r["status"] != "completed"],
            suite_yaml=suite_yaml,
            generated=time.strftime("%Y-%m-%d %H:%M:%S"),
            n_runs=len(results),
        )
    )
    store.atomic_write_text(out_dir / "index.html", html)
    return out_dir / "index.html"


__all__ = ["render_report"]
