"""The verdict: what is called significant, its sentences, flags, heatmap and exports, and what the report says
when a suite has nothing to compare."""

from __future__ import annotations

import pandas as pd
import pytest
from _reports import make_result, typed, write_suite
from PIL import Image

from bench.report import stats
from bench.report.render import render_report
from bench.report.stats import MetricMeta


# --- the verdict ----------------------------------------------------------------------------------
def verdict_results() -> list[dict]:
    """cnn_gan: `sup` lowers fid by ~25% on every seed (resolves); `two` has only 2 seeds; `noise` is noise.
    One `sup` run covers 4 of the 5 target classes; a data-copying metric falls under its flag threshold."""
    base = [40.0, 44.0, 38.0, 47.0, 41.0]
    noise = [1.5, -2.0, 0.5, 2.5, -1.5]
    out = []
    for seed, b in enumerate(base):
        spec = {"eval": {"metrics": ["fid_domain", "modes"]}, "dataset": {"classes": [5, 6, 7, 8, 9]}}
        out.append(make_result("cnn_gan", "scratch", seed, metrics={"fid_domain": b, "modes": 5.0}, spec=spec))
        sup = {"fid_domain": 0.75 * b + 0.1 * seed, "modes": 4.0 if seed == 2 else 5.0, "copy_stat": -4.0 if seed == 0 else 1.0}
        out.append(make_result("cnn_gan", "sup$x", seed, metrics=sup, spec=spec))
        out.append(make_result("cnn_gan", "noise", seed, metrics={"fid_domain": b + noise[seed], "modes": 5.0}, spec=spec))
        if seed < 2:
            out.append(make_result("cnn_gan", "two", seed, metrics={"fid_domain": 0.5 * b, "modes": 5.0}, spec=spec))
    out.append(make_result("cnn_gan", "noise", 5, status="diverged", error="non-finite loss"))
    return out


VMETA = {
    "fid_domain": MetricMeta("fid_domain", False),
    "modes": MetricMeta("modes", True),
    "copy_stat": MetricMeta("copy_stat", True, flag_below=-3.0),
}


def test_verdict_calls_only_what_resolves():
    from bench.report.verdict import build_verdict

    res = typed(verdict_results())
    comp = stats.comparisons_for(res, VMETA)
    v = build_verdict(comp, "fid_domain", VMETA, res, None)
    assert v is not None and v.baseline == "scratch" and v.strategies == ["noise", "sup$x", "two"]
    sup, two, noise = (v.cells[("cnn_gan", s)] for s in ("sup$x", "two", "noise"))
    assert sup.significant and sup.better is True and sup.rel == pytest.approx(-0.25, abs=0.01)
    assert not two.significant and "at least 3" in two.why and two.n_pairs == 2
    assert not noise.significant and "p_holm" in noise.why
    sentence = v.sentences["cnn_gan"]
    assert sentence.startswith("sup$x lowers cnn_gan's fid_domain by 25% [") and "(better)" in sentence
    assert "P(improvement) = 1.00" in sentence and "no other strategy resolves at n = 2–5" in sentence  # two has 2 pairs, noise 5
    kinds = {(f.strategy, f.kind) for f in v.flags}
    assert ("sup$x", "collapse") in kinds and ("sup$x", "memorisation") in kinds and ("noise", "collapse") in kinds
    texts = " ".join(f.text for f in v.flags)
    assert "fewer modes than the real data (s2: 4)" in texts and "copy_stat below -3" in texts and "1 of 6 runs diverged" in texts


def test_verdict_in_html_markdown_and_heatmap(tmp_path):
    res = verdict_results()
    suite_dir = write_suite(tmp_path, res, suite_yaml="name: t\nheadline: fid_domain\n")
    written = render_report(suite_dir, tmp_path / "rep", ("html", "md"))
    html = written["html"].read_text()
    # The verdict comes first: before the results table.
    assert html.index('id="verdict"') < html.index('id="results"')
    assert "sup$x lowers cnn_gan&#39;s fid_domain by 25%" in html and 'src="img/verdict.png"' in html
    assert "fewer modes than the real data" in html and "n = 2 paired seed(s)" in html
    png = tmp_path / "rep" / "img" / "verdict.png"
    assert png.is_file() and Image.open(png).size[0] > 300
    md = written["md"].read_text()
    assert md.index("## Verdict") < md.index("## Results") and "sup$x lowers" in md.replace("\\", "")


def test_baseline_key_changes_the_reference(tmp_path):
    res = verdict_results()
    suite_dir = write_suite(tmp_path, res, suite_yaml="name: t\nbaseline: noise\n")
    html = render_report(suite_dir, tmp_path / "rep")["html"].read_text()
    assert "Verdict: fid_domain against <em>noise</em>" in html
    from bench.stats.aggregate import write_tables

    write_tables(suite_dir)
    comp = pd.read_csv(suite_dir / "comparisons.csv")
    assert set(comp["baseline"]) == {"noise"} and "scratch" in set(comp["strategy"])


def test_heatmap_labels_are_plain_text(tmp_path):
    """A `$` in a strategy name must be printed, not start matplotlib math text (which would raise on '$x')."""
    from bench.report.heatmap import verdict_heatmap
    from bench.report.verdict import build_verdict

    res = verdict_results()
    for r in res:
        r["strategy"] = r["strategy"].replace("noise", "a$b^c_d")
    res = typed(res)
    v = build_verdict(stats.comparisons_for(res, VMETA), "fid_domain", VMETA, res, None)
    assert verdict_heatmap(v, tmp_path / "v.png") and (tmp_path / "v.png").stat().st_size > 5000


def test_one_strategy_says_nothing_to_compare_and_still_flags(tmp_path):
    """A suite with one strategy (smoke) gets a verdict section that says why nothing is compared, and keeps
    the flags: a collapsed run matters without a comparison too."""
    spec = {"eval": {"metrics": ["fid_domain", "modes"]}, "dataset": {"classes": [5, 6, 7, 8, 9]}}
    res = [
        make_result(a, "scratch", s, metrics={"fid_domain": 10.0 + s, "modes": 3.0 if (a, s) == ("vae", 1) else 5.0}, spec=spec)
        for a in ("cnn_gan", "vae")
        for s in (0, 1)
    ]
    suite_dir = write_suite(tmp_path, res)
    written = render_report(suite_dir, tmp_path / "rep", ("html", "md"))
    html = written["html"].read_text()
    assert html.index('id="verdict"') < html.index('id="results"')
    assert "Nothing to compare: every adapter runs one strategy (scratch)" in html
    assert "vae / scratch: 1 of 2 runs cover fewer modes than the real data (s1: 3)" in html
    assert "comparisons behind the verdict" not in html and "verdict.png" not in html
    md = written["md"].read_text().replace("\\", "")
    assert md.index("## Verdict") < md.index("## Results") and "Nothing to compare" in md and "s1: 3" in md


def test_missing_baseline_is_named():
    from bench.report.verdict import build_verdict

    res = typed([make_result("cnn_gan", s, seed, metrics={"fid_domain": 1.0 + seed}) for s in ("a", "b") for seed in (0, 1)])
    v = build_verdict(stats.comparisons_for(res, VMETA), "fid_domain", VMETA, res, None)
    assert v is not None and not v.compared and "no run uses the baseline strategy 'scratch'" in v.note
    assert build_verdict(stats.comparisons_for([], VMETA), "fid_domain", VMETA, [], None) is None


def test_margin_gives_equivalence_and_every_printed_interval_agrees_with_its_call(tmp_path):
    """`margin: 10%`: a strategy within ±1% of scratch on every seed is 'equivalent'; in the Markdown table every
    row's simultaneous interval excludes 0 exactly when the row is called better or worse; the HTML carries
    the one-line-per-comparison table and the interval-against-seeds figure."""
    import re

    res = verdict_results()
    base = [40.0, 44.0, 38.0, 47.0, 41.0]
    spec = {"eval": {"metrics": ["fid_domain", "modes"]}}
    res += [
        make_result("cnn_gan", "same", s, metrics={"fid_domain": b * (1 + 0.002 * (-1) ** s), "modes": 5.0}, spec=spec)
        for s, b in enumerate(base)
    ]
    suite_dir = write_suite(tmp_path, res, suite_yaml="name: t\nheadline: fid_domain\nmargin: 10%\n")
    written = render_report(suite_dir, tmp_path / "rep", ("html", "md"))
    md = written["md"].read_text().replace("\\", "")
    assert "fid_domain is equivalent to the baseline's within ±10%:" in md and "same +0.0% [" in md
    rows = [line for line in md.split("## Results")[0].splitlines() if line.startswith("| cnn_gan |")]
    assert len(rows) == 4
    for line in rows:
        cells = [c.strip() for c in line.strip("|").split("|")]
        decision, rel = cells[2], cells[3]
        m = re.search(r"\[([−+]?[\d.]+)%, ([−+]?[\d.]+)%\]", rel)
        called = decision.startswith(("better", "worse"))
        if m is None:  # no interval: fewer than 3 pairs
            assert not called
            continue
        lo, hi = (float(x.replace("−", "-")) for x in m.groups())
        assert (lo > 0 or hi < 0) == called, line
    assert any(r.split("|")[3].strip().startswith("equivalent") for r in rows)
    html = written["html"].read_text()
    assert "One line per comparison" in html and 'src="img/intervals.png"' in html
    assert (tmp_path / "rep" / "img" / "intervals.png").is_file()
