"""Per-run pages (runs/<run_id>.html): status, error, metrics, history table and curves, samples, spec.

A suite can have thousands of runs, so these pages use no matplotlib: curves are small inline SVG
polylines computed here, and a page costs one template render.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import re
from pathlib import Path
from typing import Any

from bench.report.stats import MetricMeta, fmt_num
from bench.store.result import RunResult

SVG_W, SVG_H, PAD = 260, 110, 6
MAX_CURVES = 8


def safe_name(run_id: str) -> str:
    """A file name for a run's page and image: run ids are made of safe characters already, but a
    hand-edited result.json must not be able to write outside the report folder."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", run_id).lstrip(".") or "run"
    if len(name) > 150:  # file names are limited to 255 bytes; a hand-edited run_id may be longer
        name = f"{name[:130]}-{hashlib.sha256(run_id.encode('utf-8', 'surrogatepass')).hexdigest()[:12]}"
    return name


def read_history(path: Path) -> tuple[list[str], list[dict[str, float]]]:
    """history.csv as (columns, rows of floats); blank cells (a loss row has no eval metrics) are dropped."""
    if not path.is_file():
        return [], []
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        cols = list(reader.fieldnames or [])
        rows = []
        for raw in reader:
            row: dict[str, float] = {}
            for k, v in raw.items():
                if k is None or v in (None, ""):
                    continue
                try:
                    row[k] = float(v)
                except ValueError:
                    continue  # a non-numeric cell cannot be plotted; the table shows the numbers only
            if "step" in row:
                rows.append(row)
    return cols, rows


def polyline(xs: list[float], ys: list[float]) -> dict[str, Any] | None:
    """SVG points for one curve scaled into the box, plus the ranges for the axis labels."""
    pts = [(x, y) for x, y in zip(xs, ys, strict=True) if math.isfinite(x) and math.isfinite(y)]
    if not pts:
        return None
    x0, x1 = min(p[0] for p in pts), max(p[0] for p in pts)
    y0, y1 = min(p[1] for p in pts), max(p[1] for p in pts)
    dx, dy = (x1 - x0) or 1.0, (y1 - y0) or 1.0
    w, h = SVG_W - 2 * PAD, SVG_H - 2 * PAD
    points = " ".join(f"{PAD + (x - x0) / dx * w:.1f},{PAD + h - (y - y0) / dy * h:.1f}" for x, y in pts)
    return {"points": points, "x0": fmt_num(x0), "x1": fmt_num(x1), "y0": fmt_num(y0), "y1": fmt_num(y1), "n": len(pts)}


def curves(cols: list[str], rows: list[dict[str, float]], meta: dict[str, MetricMeta]) -> list[dict[str, Any]]:
    out = []
    for col in [c for c in cols if c not in ("step", "train_seconds")][:MAX_CURVES]:
        have = [r for r in rows if col in r]
        line = polyline([r["step"] for r in have], [r[col] for r in have])
        if line:
            m = meta.get(col)
            out.append({"name": col, "arrow": m.arrow if m else "", **line})
    return out


def _json(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=True, default=str) if obj not in (None, {}, []) else ""


def context(
    result: RunResult, history: tuple[list[str], list[dict[str, float]]], meta: dict[str, MetricMeta], sample_src: str | None
) -> dict[str, Any]:
    """Everything run.html shows, as plain values (the template only lays it out)."""
    cols, rows = history
    metrics = result.metrics
    na = result.not_applicable
    names = [*metrics, *(k for k in na if k not in metrics)]
    mrows = []
    for name in names:
        m = meta.get(name)
        v = metrics.get(name)
        mrows.append(
            {
                "name": name,
                "value": fmt_num(float(v)) if isinstance(v, int | float) else ("n/a" if name in na else "–"),
                "exact": repr(v) if v is not None else "",
                "arrow": m.arrow if m else "",
                "direction": m.direction if m else "",
                "unit": m.unit if m else "",
                "na": na.get(name, ""),
            }
        )
    return {
        "r": result,
        "status": result.status,
        "metric_rows": mrows,
        "curves": curves(cols, rows, meta),
        "hist_cols": cols,
        "hist_rows": [[fmt_num(row[c]) if c in row else "" for c in cols] for row in rows],
        "sample_src": sample_src,
        "svg": {"w": SVG_W, "h": SVG_H, "pad": PAD},
        "blobs": [
            (title, text)
            for title, text in (
                ("Timings (seconds)", _json(result.timings)),
                ("Pretraining", _json(result.pretrain)),
                ("First losses", _json(result.first_losses)),
                ("Metric info (domain classifier)", _json(result.metric_info)),
                ("Protocol", _json(result.protocol)),
                ("Resolved spec", _json(result.spec)),
                ("Environment", _json(result.env)),
            )
            if text
        ],
    }
