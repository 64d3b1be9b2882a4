"""The report: statistics (paired Δ with Holm, best by direction), n/a and failed rows, exports (md/tex/csv), escaping
(XSS), self-containedness, and a real headless Chromium load (skipped when /usr/bin/chromium is absent).

Run folders here are hand-written result.json files or SYNTHETIC ones from benchmarks/synthetic_runs.py;
they test rendering only, never measured numbers.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
from _reports import make_result, typed, write_suite
from click.testing import CliRunner

from bench.report import export, stats
from bench.report.render import render_report
from bench.report.stats import MetricMeta

ROOT = Path(__file__).resolve().parents[1]
XSS = "<script>alert(1)</script>"
CHROMIUM = Path("/usr/bin/chromium")


def _synthetic():
    spec = importlib.util.spec_from_file_location("synthetic_runs", ROOT / "benchmarks" / "synthetic_runs.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["synthetic_runs"] = mod
    spec.loader.exec_module(mod)
    return mod


def grid_results() -> list[dict]:
    """Two adapters; scratch vs supervised with clearly separated fid; a diverged, a failed and an n/a run."""
    out = []
    for seed, (a, b) in enumerate([(40.0, 30.0), (41.0, 31.0), (42.0, 29.5)]):
        out.append(
            make_result("cnn_gan", "scratch", seed, metrics={"fid_domain": a, "total_seconds": 5.0}, na={"bpd": "GANs have no likelihood"})
        )
        out.append(
            make_result(
                "cnn_gan", "supervised", seed, metrics={"fid_domain": b, "total_seconds": 7.0}, na={"bpd": "GANs have no likelihood"}
            )
        )
    out.append(make_result("vae", "scratch", 0, metrics={"fid_domain": 50.0, "bpd": 3.0}))
    out.append(make_result("vae", "supervised", 0, status="diverged", error="non-finite loss at step 7"))
    out.append(make_result("vae", "supervised", 1, status="failed", error="RuntimeError: boom"))
    out.append(make_result("vae", "ar", 0, status="not_applicable", error="task 'autoregressive' needs a 'sequence' part"))
    return out


META = {
    "fid_domain": MetricMeta("fid_domain", False),
    "bpd": MetricMeta("bpd", False),
    "total_seconds": MetricMeta("total_seconds", False, cost=True),
}


def rows_by_key(rows):
    return {(r.adapter, r.strategy): r for r in rows}


# --- stats ----------------------------------------------------------------------------------------
def test_single_seed_cells_get_no_best_and_no_delta():
    res = [
        make_result("cnn_gan", "scratch", 0, metrics={"fid_domain": 40.0}),
        make_result("cnn_gan", "supervised", 0, metrics={"fid_domain": 20.0}),
        make_result("cnn_gan", "autoencode", 0, metrics={"fid_domain": 30.0}),
    ]
    rows = rows_by_key(stats.build_rows(typed(res), ["fid_domain"], META))
    assert not any(r.cells["fid_domain"].best for r in rows.values())
    sup = rows[("cnn_gan", "supervised")].cells["fid_domain"]
    assert sup.delta is None and sup.p is None and sup.stars == "" and sup.n_pairs == 1


def test_best_follows_direction_and_ties_and_unknown():
    res = grid_results()
    rows = rows_by_key(stats.build_rows(typed(res), ["fid_domain"], META))
    assert rows[("cnn_gan", "supervised")].cells["fid_domain"].best  # lower fid wins
    assert not rows[("cnn_gan", "scratch")].cells["fid_domain"].best
    flipped = rows_by_key(stats.build_rows(typed(res), ["fid_domain"], {"fid_domain": MetricMeta("fid_domain", True)}))
    assert flipped[("cnn_gan", "scratch")].cells["fid_domain"].best
    unknown = rows_by_key(stats.build_rows(typed(res), ["fid_domain"], {"fid_domain": MetricMeta("fid_domain", None)}))
    assert not any(c.cells["fid_domain"].best for c in unknown.values())
    # vae has one strategy with numbers: nothing to be best of; equal total_seconds everywhere would tie.
    assert not rows[("vae", "scratch")].cells["fid_domain"].best


def test_paired_delta_against_scratch():
    from scipy.stats import ttest_rel

    rows = rows_by_key(stats.build_rows(typed(grid_results()), ["fid_domain"], META))
    sup, base = rows[("cnn_gan", "supervised")].cells["fid_domain"], rows[("cnn_gan", "scratch")].cells["fid_domain"]
    assert base.baseline and base.delta is None
    assert sup.delta == pytest.approx(30.1666667 - 41.0)
    # The only testable comparison of these results (vae has no pair): Holm leaves its p as it is.
    assert sup.p == pytest.approx(float(ttest_rel(sup.values, base.values).pvalue))
    assert sup.significant and sup.stars == "*" and sup.n_pairs == 3
    assert sup.ci95 == pytest.approx(4.303 * sup.std / math.sqrt(3), rel=1e-3)


def test_na_and_failed_cells_say_why():
    rows = rows_by_key(stats.build_rows(typed(grid_results()), ["fid_domain", "bpd"], META))
    assert rows[("cnn_gan", "scratch")].cells["bpd"].na == "GANs have no likelihood"
    sup = rows[("vae", "supervised")]
    assert sup.counts == {"completed": 0, "diverged": 1, "failed": 1, "not_applicable": 0}
    assert sup.cells["fid_domain"].na == "no completed run: 1 diverged, 1 failed"
    assert sup.problems == "1 diverged, 1 failed"
    assert "needs a 'sequence' part" in rows[("vae", "ar")].cells["fid_domain"].na


# --- exports --------------------------------------------------------------------------------------
def test_markdown_export(tmp_path):
    rows = stats.build_rows(typed(grid_results()), ["fid_domain", "bpd", "total_seconds"], META)
    md = export.to_markdown("t|x", rows, ["fid_domain", "bpd"], ["total_seconds"], META)
    assert "| adapter | strategy | runs done | fid\\_domain ↓ | bpd ↓ |" in md
    assert "**30.2 ± 1.9** (n=3) Δ−10.8\\*" in md
    assert "0/2 (1 diverged, 1 failed)" in md and "0/1 (1 not applicable)" in md
    assert "n/a [1]" in md and "1. GANs have no likelihood" in md
    assert "# t\\|x: results" in md
    # every table line has the same number of unescaped pipes
    table = [ln for ln in md.splitlines() if ln.startswith("|") and "runs done" not in ln and "---" not in ln]
    counts = {len(re.findall(r"(?<!\\)\|", ln)) for ln in table}
    assert len(counts) == 2  # headline (6 cols) and cost (4 cols) tables


def test_latex_export_is_booktabs_and_escaped():
    res = grid_results()
    for r in res:
        r["adapter"] = r["adapter"].replace("cnn_gan", "cnn_gan&50%$#{}~^\\")
    rows = stats.build_rows(typed(res), ["fid_domain", "total_seconds"], META)
    tex = export.to_latex("my_suite", rows, ["fid_domain", "total_seconds"], META)
    for rule in (r"\toprule", r"\midrule", r"\bottomrule", r"\begin{tabular}", r"\end{table}"):
        assert rule in tex
    assert r"cnn\_gan\&50\%\$\#\{\}\textasciitilde{}\textasciicircum{}\textbackslash{}" in tex
    assert r"$\mathbf{30.2 \pm 1.9}^{*}$" in tex
    assert r"$41 \pm 2.5$" in tex
    assert r"fid\_domain $\downarrow$" in tex
    assert "my\\_suite" in tex and "\\label{tab:my-suite}" in tex
    body = tex.split(r"\midrule", 1)[1]
    assert all(len(re.findall(r"(?<!\\)&", ln)) == 4 for ln in body.splitlines() if ln.endswith(r"\\"))


def test_cli_writes_all_formats(tmp_path):
    from bench.cli import main

    suite_dir = write_suite(tmp_path, grid_results())
    out = tmp_path / "rep"
    res = CliRunner().invoke(
        main, ["report", str(suite_dir), "--out", str(out), *sum((["--format", f] for f in ("html", "md", "tex", "csv")), [])]
    )
    assert res.exit_code == 0, res.output
    for name in ("index.html", "summary.md", "summary.tex", "summary.csv"):
        assert (out / name).is_file(), name
    df = pd.read_csv(out / "summary.csv")
    row = df[(df.adapter == "cnn_gan") & (df.strategy == "supervised")].iloc[0]
    assert row["fid_domain_n"] == 3 and bool(row["fid_domain_best"]) and row["fid_domain_p_holm"] < 0.01
    assert bool(row["fid_domain_significant"]) and row["fid_domain_delta_vs_baseline"] == pytest.approx(-10.8333333)
    comp = pd.read_csv(suite_dir / "comparisons.csv")  # `bench report` rewrites the tables too
    assert comp.set_index(["adapter", "strategy", "metric"]).loc[("cnn_gan", "supervised", "fid_domain"), "n_pairs"] == 3
    assert df[(df.adapter == "vae") & (df.strategy == "supervised")].iloc[0]["n_failed"] == 1
    assert "report: file://" in res.output and "tex:" in res.output


def test_bad_format_is_an_input_error(tmp_path):
    from bench.api import render_report as api_render
    from bench.core.errors import BenchError

    suite_dir = write_suite(tmp_path, grid_results())
    with pytest.raises(BenchError):
        api_render(suite_dir, tmp_path / "rep", formats=("pdf",))


# --- HTML -----------------------------------------------------------------------------------------
class _Refs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []
        self.scripts = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.scripts += tag == "script"
        for k in ("href", "src"):
            if a.get(k):
                self.refs.append(a[k])


def check_links(page: Path) -> list[str]:
    """Every relative href/src of a page must exist on disk; no absolute URLs (no CDN, no network)."""
    p = _Refs()
    p.feed(page.read_text())
    bad = []
    for ref in p.refs:
        if ref.startswith("#"):
            continue
        if re.match(r"^[a-z]+:", ref):
            bad.append(f"absolute {ref}")
            continue
        if not (page.parent / ref.split("#")[0]).exists():
            bad.append(ref)
    return bad


def test_html_shows_failed_na_and_provenance(tmp_path):
    suite_dir = write_suite(tmp_path, grid_results(), suite_yaml="name: t\nseeds: [0, 1, 2]\n")
    index = render_report(suite_dir, tmp_path / "rep")["html"]
    html = index.read_text()
    assert "seeds: [0, 1, 2]" in html  # the suite as run
    assert "0.9712" in html and "abc123" in html and "cpu (" in html  # classifier, commit, device
    assert "1 diverged" in html and "1 failed" in html and "RuntimeError: boom" in html
    assert "GANs have no likelihood" in html and "needs a &#39;sequence&#39; part" in html
    assert 'fid_<wbr>domain <span class="dir"' in html and "↓" in html
    assert 'class="num stack best"' in html and "Δ −10.8*" in html and "Δ −10.8**" not in html
    pages = sorted((tmp_path / "rep" / "runs").glob("*.html"))
    assert len(pages) == len(grid_results())
    for page in [index, *pages]:
        assert check_links(page) == [], page
    assert "<svg" in (tmp_path / "rep" / "runs" / "cnn_gan-scratch-s0-00000000.html").read_text()
    # Copied elsewhere, the folder still works: every reference is relative.
    moved = shutil.copytree(tmp_path / "rep", tmp_path / "elsewhere" / "copy")
    assert check_links(Path(moved) / "index.html") == []


def test_xss_is_escaped_everywhere(tmp_path):
    res = grid_results()
    for r in res:
        r["suite"] = f"evil{XSS}"
        r["spec"]["adapter_config"] = {"width": XSS}
    res[-2]["error"] = f"RuntimeError: {XSS}"
    res[-2]["traceback"] = XSS
    res[0]["not_applicable"] = {"bpd": XSS}
    suite_dir = write_suite(tmp_path, res, suite_yaml=f"name: 'evil{XSS}'\nadapters:\n  cnn_gan: {{width: '{XSS}'}}\n")
    written = render_report(suite_dir, tmp_path / "rep", ("html", "md", "tex"))
    for page in [written["html"], *(tmp_path / "rep" / "runs").glob("*.html")]:
        text = page.read_text()
        assert "<script" not in text.lower(), page
        p = _Refs()
        p.feed(text)
        assert p.scripts == 0
    index = written["html"].read_text()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in index
    assert "<script>" not in written["md"].read_text()
    assert "<script>" not in written["tex"].read_text()


def test_one_run_and_synthetic_banner(tmp_path):
    syn = _synthetic()
    suite_dir = syn.make_runs(tmp_path / "runs", n_runs=1, n_adapters=1, n_strategies=1, name="one")
    index = render_report(suite_dir, tmp_path / "rep", ("html", "md", "tex", "csv"))["html"]
    html = index.read_text()
    assert "SYNTHETIC DATA" in html and "1 runs" in html
    assert check_links(index) == []


def test_large_suite_collapses(tmp_path):
    syn = _synthetic()
    suite_dir = syn.make_runs(tmp_path / "runs", n_runs=200, n_adapters=4, n_strategies=10)
    index = render_report(suite_dir, tmp_path / "rep")["html"]
    html = index.read_text()
    assert html.count("<details") >= 8  # per-adapter tables and run lists
    # one sample grid per adapter × strategy, not one per run
    assert len(re.findall(r'<img src="img/runs/', html)) <= 4 * 10
    assert len(list((tmp_path / "rep" / "runs").glob("*.html"))) == 200
    assert len(list((tmp_path / "rep" / "img").glob("*.png"))) <= 4 + 4  # bars, compute, verdict, intervals, a curve figure per adapter


# --- a real browser -------------------------------------------------------------------------------
CHECK_JS = """
<pre id="check"></pre>
<script>
window.addEventListener("load", () => {
  const imgs = [...document.images].map(i => ({src: i.getAttribute("src"), ok: i.complete && i.naturalWidth > 0}));
  const links = [...document.querySelectorAll("a[href]")].map(a => a.getAttribute("href"));
  document.getElementById("check").textContent = JSON.stringify({imgs, links, title: document.title});
});
</script>
"""
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run"]


def _artifacts() -> Path:
    d = Path(os.environ.get("BENCH_ARTIFACTS", ROOT / "tests" / "artifacts"))
    d.mkdir(parents=True, exist_ok=True)
    if d == ROOT / "tests" / "artifacts" and not (d / ".gitignore").exists():
        (d / ".gitignore").write_text("*\n")  # screenshots are outputs, never committed
    return d


def browser_check(page: Path, profile: Path, screenshot: Path | None = None) -> tuple[dict, str]:
    """Load a test copy of `page` (with CHECK_JS injected) in headless Chromium; return the check and stderr."""
    probe = page.with_name(f"_probe_{page.name}")
    # lazy images outside the viewport would never load in a dump; the probe loads them all
    probe.write_text(page.read_text().replace(' loading="lazy"', "").replace("</body>", CHECK_JS + "</body>"))
    cmd = [str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000"]
    out = subprocess.run([*cmd, "--dump-dom", probe.as_uri()], capture_output=True, text=True, timeout=60)
    probe.unlink()
    m = re.search(r'<pre id="check">(.*?)</pre>', out.stdout, re.S)
    assert m and m.group(1), f"check script did not run: {out.stderr[-2000:]}"
    import html as html_mod

    check = json.loads(html_mod.unescape(m.group(1)))
    if screenshot is not None:
        subprocess.run(
            [*cmd, "--window-size=1400,2600", "--hide-scrollbars", f"--screenshot={screenshot}", page.as_uri()],
            capture_output=True,
            text=True,
            timeout=60,
        )
    return check, out.stderr


def console_errors(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if "Uncaught" in ln or ("CONSOLE" in ln and ("error" in ln.lower() or "ERROR:CONSOLE" in ln))]


@pytest.mark.slow  # end to end
def test_report_in_headless_chromium(tmp_path):
    if not CHROMIUM.exists():
        pytest.skip("chromium not installed (/usr/bin/chromium); apt-get install -y chromium")
    syn = _synthetic()
    suite_dir = syn.make_runs(tmp_path / "runs", n_runs=12, n_adapters=2, n_strategies=3, name="browser")
    index = render_report(suite_dir, tmp_path / "rep")["html"]
    shot = _artifacts() / "report_synthetic.png"
    shot.unlink(missing_ok=True)
    run_page = sorted((tmp_path / "rep" / "runs").glob("*.html"))[0]
    for page, png in ((index, shot), (run_page, None)):
        check, stderr = browser_check(page, tmp_path / f"profile-{page.stem}", png)
        assert console_errors(stderr) == [], console_errors(stderr)
        assert check["imgs"], "no images on the page"
        assert [i for i in check["imgs"] if not i["ok"]] == []
        missing = [h for h in check["links"] if not h.startswith("#") and not (page.parent / h.split("#")[0]).exists()]
        assert missing == []
    assert shot.is_file() and shot.stat().st_size > 10_000


def test_provenance_says_which_pretraining_seeds_were_used(tmp_path):
    """Whether the intervals include pretraining variance is on the page, not only in the suite YAML."""
    res = [make_result("cnn_gan", "scratch", s, metrics={"fid_domain": 1.0}) for s in (0, 1)]
    res += [
        make_result("cnn_gan", "gen", s, metrics={"fid_domain": 1.0}, pretrain={"seed_rule": "per_run", "cache_key": f"k{s}"})
        for s in (0, 1)
    ]
    res += [make_result("vae", "gen", s, metrics={"fid_domain": 1.0}, pretrain={"seed_rule": "shared", "cache_key": "one"}) for s in (0, 1)]
    res.append(make_result("vae", "gen", 2, status="not_applicable", pretrain={"seed_rule": "shared", "cache_key": "x"}))
    html = render_report(write_suite(tmp_path, res), tmp_path / "rep")["html"].read_text()
    text = " ".join(re.sub(r"<[^>]+>", " ", html).split())
    assert "per_run (gen): 2 checkpoints for 2 runs; each run pretrains its own checkpoint" in text
    assert "shared (gen): 1 checkpoint for 2 runs; one checkpoint shared by every seed" in text
