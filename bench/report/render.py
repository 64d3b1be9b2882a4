"""Render reports/<suite>/: index.html (headline table, figures, samples, provenance), a page per run,
and the md/tex/csv exports. Self-contained: CSS is inlined, images are files beside the page (img/),
there are no scripts or fonts from the network, so the folder works from file:// and when copied.
User strings (suite names, adapter configs, errors) are autoescaped by jinja2; autoescape stays on.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2

from bench.report import cite, export, folder, plots, runpage
from bench.report.heatmap import verdict_heatmap
from bench.report.reference import reference_rows
from bench.report.seqplot import interval_vs_seeds
from bench.report.seqplot import traces as seq_traces
from bench.report.stats import (
    Cell,
    MetricMeta,
    Row,
    baseline_strategy,
    build_rows,
    ceilings,
    comparisons_for,
    fmt_delta,
    fmt_num,
    fmt_p,
    metric_meta,
    ordered_metrics,
    saturated,
)
from bench.report.sweep_plot import delta_vs_sweep, sweep_axes
from bench.report.verdict import Verdict, build_verdict, interval, interval_legend, mde_legend, pct, still_needed
from bench.stats.aggregate import results_frame, suite_options
from bench.store import runs as store
from bench.store.result import RunResult

if TYPE_CHECKING:
    import pandas as pd

COLLAPSE_ROWS = 30  # more headline rows than this: one collapsible table per adapter
COLLAPSE_RUNS = 100  # more runs than this: run lists start closed
STATUS_CLASS = {"completed": "ok", "diverged": "div", "failed": "fail", "not_applicable": "na"}


def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("bench.report", "templates"),
        autoescape=jinja2.select_autoescape(["html", "xml"], default=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(fmt_num=fmt_num, status_class=STATUS_CLASS, pct=pct)
    return env


def _cell_view(c: Cell, notes: export.Footnotes) -> dict[str, Any]:
    if not c.has_value:
        return {"na": True, "reason": c.na or "no value", "ref": notes.ref(c.na or "no value")}
    return {
        "na": False,
        "mean": fmt_num(c.mean),
        "ci": fmt_num(c.ci95, 2) if c.ci95 == c.ci95 else "",
        "n": c.n,
        "best": c.best,
        "bound": c.bound,
        "baseline": c.baseline,
        "delta": fmt_delta(c.delta) if c.delta is not None else "",
        "stars": c.stars,
        "p": fmt_p(c.p, c.note) if c.delta is not None else "",
        "seed_values": ", ".join(fmt_num(v) for v in c.values),  # not "values": jinja's c.values is dict.values
    }


def _row_view(r: Row, metrics: list[str], notes: export.Footnotes, by_id: dict[str, RunResult]) -> dict[str, Any]:
    seeds = [
        {"href": f"runs/{runpage.safe_name(i)}.html", "seed": by_id[i].seed, "status": by_id[i].status, "run_id": i}
        for i in sorted(r.run_ids, key=lambda i: by_id[i].seed)
    ]
    return {"row": r, "runs": export.runs_text(r), "seeds": seeds, "cells": [_cell_view(r.cells[m], notes) for m in metrics]}


def _distinct(values: list[Any]) -> list[tuple[Any, int]]:
    """Distinct values (dicts compared by their JSON) with how many runs had each, most common first."""
    counts: Counter[str] = Counter(json.dumps(v, sort_keys=True, default=str) for v in values if v not in (None, {}, ""))
    return [(json.loads(k), n) for k, n in counts.most_common()]


def _acc(clf: Any, key: str) -> str:
    v = clf.get(key) if isinstance(clf, dict) else None
    return f"{v:.4f}" if isinstance(v, int | float) else ""


def _provenance(results: list[RunResult], suite_dir: Path) -> dict[str, Any]:
    env = [r.env for r in results]
    dates = sorted(r.finished_at for r in results if r.finished_at)
    yaml_path = suite_dir / "suite.yaml"
    return {
        "suite_yaml": yaml_path.read_text() if yaml_path.is_file() else "",
        "protocols": [
            (json.dumps(p, indent=2, sort_keys=True, ensure_ascii=False), n) for p, n in _distinct([r.protocol for r in results])
        ],
        "classifiers": [
            {
                "accuracy": _acc(c, "accuracy"),
                "digit_accuracy": _acc(c, "digit_accuracy"),
                "kind": c.get("kind") if isinstance(c, dict) else None,  # "self-supervised": the target has no labels
                "json": json.dumps(c, indent=2, sort_keys=True, ensure_ascii=False),
                "n": n,
            }
            for c, n in _distinct([(r.metric_info or {}).get("domain_classifier") for r in results])
        ],
        "versions": [
            (json.dumps(v, indent=2, sort_keys=True, ensure_ascii=False), n) for v, n in _distinct([e.get("versions") for e in env])
        ],
        "pretraining": _pretraining(results),
        "commits": _distinct([e.get("git_commit") for e in env]),
        "devices": _distinct([e.get("device") for e in env]),
        "first": dates[0] if dates else "",
        "last": dates[-1] if dates else "",
    }


_SEED_RULES = {
    "per_run": "each run pretrains its own checkpoint (seed derived from the run's seed), so intervals include pretraining variance",
    "shared": "one checkpoint shared by every seed (pretrain_seed: shared): intervals leave out pretraining variance",
    "fixed": "one checkpoint from a fixed pretraining seed for every run: intervals leave out pretraining variance",
}


def _pretraining(results: list[RunResult]) -> list[dict[str, Any]]:
    """Per pretraining seed rule: the strategies that used it, and how many distinct checkpoints their runs had,
    so a reader sees whether the intervals include pretraining variance without reading the suite YAML."""
    by: dict[str, list[RunResult]] = {}
    for r in results:  # runs that trained after pretraining (n/a and failed runs say nothing about the numbers)
        if r.status in ("completed", "diverged") and r.pretrain and r.pretrain.get("seed_rule"):
            rule = str(r.pretrain["seed_rule"])
            by.setdefault(rule, []).append(r)
    return [
        {
            "rule": f"seed {rule}" if rule.isdigit() else rule,
            "why": _SEED_RULES.get("fixed" if rule.isdigit() else rule, ""),
            "strategies": ", ".join(sorted({r.strategy for r in rs})),
            "checkpoints": len({(r.adapter, r.pretrain.get("cache_key")) for r in rs}),
            "runs": len(rs),
        }
        for rule, rs in sorted(by.items())
    ]


def _suite_name(results: list[RunResult], suite_dir: Path) -> str:
    names = [r.suite for r in results if r.suite]
    return str(Counter(names).most_common(1)[0][0]) if names else suite_dir.name


SAMPLE_TARGET_PX = 280  # a sample grid is shown at the largest integer multiple of its size that fits this


def png_size(path: Path) -> tuple[int, int]:
    """Width and height of a PNG from its header (IHDR), without decoding it."""
    head = path.read_bytes()[:24]
    if head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return (0, 0)
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


def _image(src_file: Path, rel: str) -> dict[str, Any]:
    """An image as the page shows it: its file, and a width and height that are an integer multiple of its
    pixel size. A fractional scale (the old `width: 160px` on a 265-px grid) drops rows and columns of a
    nearest-neighbour grid, which turns 8-px digits into stripes."""
    w, h = png_size(src_file)
    k = max(1, SAMPLE_TARGET_PX // w) if w else 1
    return {"src": rel, "w": w * k, "h": h * k, "scale": k, "px": f"{w}×{h}"}


def _copy_samples(results: list[RunResult], suite_dir: Path, img_dir: Path) -> tuple[dict[str, dict], dict[str, dict]]:
    """Copy each run's samples.png beside the page, and its real.png (real test images, drawn the same way)
    once per distinct file. Returns run_id → sample image, run_id → real image (see `_image`)."""
    samples: dict[str, dict] = {}
    real: dict[str, dict] = {}
    seen: dict[bytes, dict] = {}
    for r in results:
        src = suite_dir / r.run_id / "samples.png"
        if src.is_file():
            name = f"{runpage.safe_name(r.run_id)}.png"
            shutil.copyfile(src, img_dir / name)
            samples[r.run_id] = _image(img_dir / name, f"img/runs/{name}")
        ref = suite_dir / r.run_id / "real.png"
        if ref.is_file():
            data = ref.read_bytes()
            if data not in seen:
                name = f"real_{len(seen)}.png"
                (img_dir / name).write_bytes(data)
                seen[data] = _image(img_dir / name, f"img/runs/{name}")
            real[r.run_id] = seen[data]
    return samples, real


def _sample_grid(rows: list[Row], samples: dict[str, dict], real: dict[str, dict], by_id: dict[str, RunResult]) -> list[dict[str, Any]]:
    """Per adapter: the real-image grid, then one sample grid per strategy (the lowest completed seed)."""
    grid = []
    for adapter in sorted({r.adapter for r in rows}):
        cells = []
        ref = None
        for r in (r for r in rows if r.adapter == adapter):
            if r.counts.get("not_applicable") == r.n_runs:  # n/a by design: the n/a matrix says why
                continue
            done = sorted((i for i in r.run_ids if i in samples), key=lambda i: by_id[i].seed)
            pick = done[0] if done else None
            ref = ref or next((real[i] for i in r.run_ids if i in real), None)
            cells.append(
                {
                    "strategy": r.strategy,
                    "img": samples[pick] if pick else None,
                    "href": f"runs/{runpage.safe_name(pick)}.html" if pick else None,
                    "seed": by_id[pick].seed if pick else None,
                    "why": "" if pick else (r.problems or "no samples.png"),
                }
            )
        grid.append({"adapter": adapter, "real": ref, "cells": cells})
    return grid


def _figures(
    rows: list[Row], results: list[RunResult], histories: dict[str, Any], quality: list[str], meta, fig_dir: Path
) -> dict[str, Any]:
    import matplotlib

    with matplotlib.rc_context({"text.parse_math": False}):  # names are plain text: a `$` must not start math
        return _draw_figures(rows, results, histories, quality, meta, fig_dir)


def _draw_figures(
    rows: list[Row], results: list[RunResult], histories: dict[str, Any], quality: list[str], meta, fig_dir: Path
) -> dict[str, Any]:
    colors = plots.strategy_colors(sorted({r.strategy for r in rows}))
    figs: dict[str, Any] = {"bars": None, "compute": None, "curves": []}
    if plots.bar_charts(rows, quality, meta, colors, fig_dir / "bars.png"):
        figs["bars"] = "img/bars.png"
    if plots.quality_vs_compute(rows, quality, meta, colors, fig_dir / "quality_vs_compute.png"):
        figs["compute"] = "img/quality_vs_compute.png"
    for i, adapter in enumerate(sorted({r.adapter for r in rows})):
        per: dict[str, list] = {}
        for r in results:
            if r.adapter == adapter and r.status == "completed" and histories[r.run_id][1]:
                per.setdefault(r.strategy, []).append(histories[r.run_id][1])
        name = f"curves_{i}.png"
        if per and plots.learning_curves(adapter, per, quality, meta, colors, fig_dir / name):
            figs["curves"].append({"adapter": adapter, "src": f"img/{name}"})
    return figs


def _sweep_figure(sweep: tuple[pd.DataFrame, str] | None, strategies: list[str], img_dir: Path) -> dict[str, str] | None:
    """The Δ-against-swept-value figure (bench/report/sweep_plot.py), when the suite sweeps something."""
    if sweep is None:
        return None
    comparisons, metric = sweep
    path = img_dir / "sweep.png"
    import matplotlib

    with matplotlib.rc_context({"text.parse_math": False}):
        drawn = delta_vs_sweep(comparisons, metric, plots.strategy_colors(strategies), path)
    axes = ", ".join(a.split(".", 1)[1] for a in sweep_axes(comparisons))
    return {"src": "img/sweep.png", "axes": axes, "metric": metric} if drawn else None


def _na_matrix(results: list[RunResult], baseline: str | None) -> dict[str, Any] | None:
    """The runs that are n/a by design (a strategy needs a part the adapter lacks) as one adapter × strategy
    matrix of grey cells with numbered reasons: a property of the pair, not a failure, so not in red."""
    na = [r for r in results if r.status == "not_applicable"]
    if not na:
        return None
    notes = export.Footnotes()
    by_pair: dict[tuple[str, str], list[RunResult]] = {}
    for r in results:
        by_pair.setdefault((r.adapter, r.strategy), []).append(r)
    strategies = sorted({r.strategy for r in results}, key=lambda s: (s != baseline, s))  # the baseline first
    rows = []
    for adapter in sorted({r.adapter for r in results}):
        cells = []
        for s in strategies:
            runs = by_pair.get((adapter, s), [])
            why = [r.error or "not applicable" for r in runs if r.status == "not_applicable"]
            if why:
                cells.append({"na": True, "ref": notes.ref(Counter(why).most_common(1)[0][0]), "n": len(why), "of": len(runs)})
            else:
                cells.append({"na": False, "of": len(runs)})
        rows.append({"adapter": adapter, "cells": cells})
    return {"strategies": strategies, "rows": rows, "reasons": notes.items, "n": len(na)}


DATA_FILES = {  # copied from the runs folder into the report's data/ folder, and linked from the page
    "results.csv": "one row per run: status, every metric, seconds",
    "summary.csv": "one row per adapter × strategy: mean, 95% CI and n per metric",
    "comparisons.csv": "paired comparisons against the baseline: Δ, decision, simultaneous and unadjusted CI, p, Holm-corrected p per family, seeds needed, MDE",
    "suite.yaml": "the suite as run",
}


def _copy_data(suite_dir: Path, out_dir: Path) -> list[dict[str, str]]:
    """The runs folder's tables and suite file, copied beside the page: the report folder is enough to reuse
    the numbers (a copied or mailed report keeps them)."""
    (out_dir / "data").mkdir()
    out = []
    for name, what in DATA_FILES.items():
        src = suite_dir / name
        if src.is_file():
            shutil.copyfile(src, out_dir / "data" / name)
            out.append({"href": f"data/{name}", "name": name, "what": what})
    return out


def _reproduce(results: list[RunResult], prov: dict[str, Any]) -> dict[str, Any]:
    """What a reader needs to redo the runs: the commit, the suite file (in data/) and the exact command."""
    from bench.core.version import __version__

    commits = [c for c, _ in prov["commits"]]
    commit = commits[0] if commits else None
    year = (prov["last"] or "")[:4] or None
    checkout = f"git checkout {commit}" if commit else "# the runs recorded no git commit: use bench " + __version__
    lines = [checkout, "pip install -e .", "bench run REPORT/data/suite.yaml   # REPORT: this report's folder"]
    overrides = [
        ln.split(":", 1)[1].strip() for ln in prov["suite_yaml"].splitlines() if ln.startswith("# override from the command line:")
    ]
    return {
        "commands": "\n".join(lines),
        "commit": commit,
        "overrides": overrides,
        "version": __version__,
        "bibtex": cite.bibtex(__version__, commit, year),
    }


def _strategy_cost(rows: list[Row], baseline: str | None) -> list[dict[str, str]]:
    """What each strategy costs, for the verdict: mean total seconds (pretrain + train) over the adapters it
    ran on, and the ratio to the baseline's over the same adapters, so a gain is read beside its price."""
    per: dict[str, dict[str, float]] = {}
    for r in rows:
        c = r.cells.get("total_seconds")
        if c is not None and c.has_value:
            per.setdefault(r.strategy, {})[r.adapter] = c.mean
    base = per.get(baseline or "", {})
    out = []
    for s in sorted(per, key=lambda s: (s != baseline, s)):
        secs = per[s]
        mean = sum(secs.values()) / len(secs)
        shared = [a for a in secs if a in base and base[a] > 0]
        ratio = sum(secs[a] / base[a] for a in shared) / len(shared) if shared and s != baseline else None
        out.append({"strategy": s, "seconds": fmt_num(mean), "adapters": str(len(secs)), "ratio": f"×{ratio:.2g}" if ratio else ""})
    return out


def _run_link(r: RunResult) -> dict[str, Any]:
    """What a row of the runs tables shows (templates/_macros.html runs_table)."""
    return {
        "run_id": r.run_id,
        "strategy": r.strategy,
        "seed": r.seed,
        "status": r.status,
        "error": r.error,
        "href": f"runs/{runpage.safe_name(r.run_id)}.html",
    }


def render_report(suite_dir: Path, out_dir: Path, formats: tuple[str, ...] = ("html",)) -> dict[str, Path]:
    """Render the requested formats of suite_dir's results into out_dir; returns format → written path."""
    suite_dir, out_dir = Path(suite_dir), Path(out_dir)
    t0 = time.perf_counter()
    results = store.list_results(suite_dir)
    metrics = ordered_metrics(results)
    meta: dict[str, MetricMeta] = metric_meta(metrics)
    flat = saturated(results)  # shown in a note below the table, never as a headline column
    quality = [m for m in metrics if not meta[m].cost and m not in flat]
    cost = [m for m in metrics if meta[m].cost]
    options = suite_options(suite_dir)
    baseline = options.get("baseline") if isinstance(options.get("baseline"), str) else None
    headline = headline_metric(options, quality)
    options = {**options, "headline": headline}  # the confirmatory family is the verdict's metric
    by_value = comparisons_for(results, meta, baseline, options)  # one row per swept value: the sweep figure's data
    results = _fold_sweep(results)  # tables, verdict and plots show each swept value as its own row
    comparisons = comparisons_for(results, meta, baseline, options)
    rows = build_rows(results, metrics, meta, comparisons, baseline)
    verdict = build_verdict(comparisons, headline, meta, results, baseline)
    if verdict is not None and verdict.compared:  # each comparison's interval as the seeds arrived
        verdict.traces = seq_traces(
            results_frame(results), comparisons, headline, meta[headline].higher_is_better if headline in meta else None
        )
    suite = _suite_name(results, suite_dir)
    if "html" not in formats:  # exports only: each file is replaced atomically, beside an existing report
        out_dir.mkdir(parents=True, exist_ok=True)
        return export.write_exports(formats, out_dir, suite, rows, quality, cost, meta, verdict)
    # The HTML report (pages, figures, images) is built in a fresh folder and swapped in as a whole, so a
    # kill or a concurrent render never leaves a report with broken links.
    keep = tuple(n for f, n in export.FILES.items() if f not in formats)
    with folder.staged(out_dir, keep=keep) as tmp:
        written = export.write_exports(formats, tmp, suite, rows, quality, cost, meta, verdict)
        sweep = (by_value, headline)
        written["html"] = _render_html(suite_dir, tmp, suite, results, rows, metrics, quality, cost, meta, t0, verdict, sweep)
    return {f: out_dir / p.relative_to(tmp) for f, p in written.items()}


def _fold_sweep(results: list[RunResult]) -> list[RunResult]:
    """The runs with their sweep point in the adapter's label (`cnn_gan · limit 25`), so every table and figure
    keyed by adapter × strategy keeps the swept values apart instead of averaging over them. Numbers are
    right-aligned with spaces, so the labels' plain string order is numeric order (25 before 100); HTML shows
    the padding as one space."""
    width: dict[str, int] = {}
    for r in results:
        for k, v in (r.spec.get("swept") or {}).items():
            width[k] = max(width.get(k, 0), len(str(v)))

    def label(k: str, v: Any) -> str:
        numeric = isinstance(v, (int, float)) and not isinstance(v, bool)
        return f"{k.split('.', 1)[-1]} {str(v).rjust(width[k]) if numeric else v}"

    out = []
    for r in results:
        point = r.spec.get("swept") or {}
        tag = " · ".join(label(k, v) for k, v in point.items())
        out.append(dataclasses.replace(r, adapter=f"{r.adapter} · {tag}") if point else r)
    return out


def headline_metric(options: dict, quality: list[str]) -> str:
    """The suite's `headline:`, else fid_domain when measured, else the first quality metric."""
    named = options.get("headline")
    if isinstance(named, str) and named:
        return named
    return "fid_domain" if "fid_domain" in quality or not quality else quality[0]


def _verdict_view(v: Verdict | None, img_dir: Path) -> dict[str, Any] | None:
    if v is None:
        return None
    heat = "img/verdict.png" if verdict_heatmap(v, img_dir / "verdict.png") else None
    seq = "img/intervals.png" if v.traces and interval_vs_seeds(v.traces, v.metric, img_dir / "intervals.png") else None
    cells = [{"c": c, "interval": interval(c).strip(), "needed": still_needed(c)} for _, c in sorted(v.cells.items())]
    by_adapter = [(a, v.sentences[a], v.mde[a]) for a in v.adapters]
    return {
        "v": v,
        "heatmap": heat,
        "seqplot": seq,
        "cells": cells,
        "by_adapter": by_adapter,
        "mde_legend": mde_legend(v),
        "interval_legend": interval_legend(v),
    }


def _render_html(suite_dir, out_dir, suite, results, rows, metrics, quality, cost, meta, t0, verdict=None, sweep=None) -> Path:
    flat = saturated(results)  # metrics every run and the real data max out: a note, not a headline column
    # out_dir is a fresh staging folder: img/ and runs/ hold only the pages of runs that exist now.
    (out_dir / "img" / "runs").mkdir(parents=True)
    (out_dir / "runs").mkdir()
    by_id = {r.run_id: r for r in results}
    histories = {i: runpage.read_history(suite_dir / i / "history.csv") for i in by_id}
    samples, real = _copy_samples(results, suite_dir, out_dir / "img" / "runs")
    env = _env()
    run_tpl = env.get_template("run.html")
    for i, r in by_id.items():
        src = f"../{samples[i]['src']}" if i in samples else None
        page = run_tpl.render(suite=suite, **runpage.context(r, histories[i], meta, src))
        (out_dir / "runs" / f"{runpage.safe_name(i)}.html").write_text(page, encoding="utf-8")
    headline = quality + (["total_seconds"] if "total_seconds" in cost else [])
    notes = export.Footnotes()
    views = [_row_view(r, headline, notes, by_id) for r in rows]
    cost_views = [_row_view(r, cost, notes, by_id) for r in rows]
    adapters = sorted({r.adapter for r in rows})
    status_totals = Counter(r.status for r in results)
    problems = [r for r in results if r.status in ("failed", "diverged")]  # n/a runs: the grey matrix
    # Run folders without a valid result.json: still running, interrupted, or corrupt. Never silently dropped.
    unfinished = sorted(d.name for d in suite_dir.iterdir() if d.is_dir() and not d.name.startswith(".") and d.name not in by_id)
    prov = _provenance(results, suite_dir)
    data_files = _copy_data(suite_dir, out_dir)
    figs = _figures(rows, results, histories, quality, meta, out_dir / "img")
    verdict_view = _verdict_view(verdict, out_dir / "img")
    figs["sweep"] = _sweep_figure(sweep, sorted({r.strategy for r in rows}), out_dir / "img")
    html = env.get_template("index.html").render(
        suite=suite,
        description=next((str(r.spec.get("description")) for r in results if r.spec.get("description")), ""),
        synthetic=any(r.synthetic for r in results),
        generated=time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        n_runs=len(results),
        status_totals=[(s, status_totals.get(s, 0)) for s in STATUS_CLASS],
        headline=headline,
        reference=reference_rows(suite_dir, headline),
        saturated=flat,
        ceilings={m: why for m, why in ceilings(results).items() if m not in flat},
        cost=cost,
        meta=meta,
        groups=[(a, [v for v in views if v["row"].adapter == a]) for a in adapters],
        cost_groups=[(a, [v for v in cost_views if v["row"].adapter == a]) for a in adapters],
        collapse=len(rows) > COLLAPSE_ROWS,
        collapse_runs=len(results) > COLLAPSE_RUNS,
        notes=notes.items,
        baseline=verdict.baseline if verdict else baseline_strategy(rows),
        verdict=verdict_view,
        figs=figs,
        sample_grid=_sample_grid(rows, samples, real, by_id),
        stylize_reference=next(
            (r.metric_info["stylize_reference"] for r in results if (r.metric_info or {}).get("stylize_reference")), None
        ),
        strategies=sorted({r.strategy for r in rows}),
        unfinished=unfinished,
        problems=[_run_link(p) for p in problems],
        strategy_cost=_strategy_cost(rows, verdict.baseline if verdict else baseline_strategy(rows)),
        na_matrix=_na_matrix(results, verdict.baseline if verdict else baseline_strategy(rows)),
        runs_by_adapter=[(a, [_run_link(r) for r in results if r.adapter == a]) for a in adapters],
        exports=[(f, n) for f, n in export.FILES.items() if (out_dir / n).is_file()],
        prov=prov,
        data_files=data_files,
        reproduce=_reproduce(results, prov),
        render_seconds=time.perf_counter() - t0,
    )
    store.atomic_write_text(out_dir / "index.html", html)
    return out_dir / "index.html"


__all__ = ["render_report"]
