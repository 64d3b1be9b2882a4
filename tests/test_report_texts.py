"""Texts a researcher reads in the report and the CLI (issue 24): each wrong text once found, with its test.

Directions come from one table (bench/metrics/info.py); a loss key may not shadow a metric name; sample grids
are shown at an integer scale beside real images. Rendering only: hand-written result.json records.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from _reports import make_result, typed, write_suite
from click.testing import CliRunner
from PIL import Image

from baselines.dummy import Dummy
from bench.adapter.contract import check_adapter
from bench.cli import main
from bench.metrics.info import METRIC_INFO
from bench.report import stats
from bench.report.render import SAMPLE_TARGET_PX, render_report
from bench.suite.schema import parse


def test_report_help_promises_no_welch_p_values():
    out = CliRunner().invoke(main, ["report", "--help"]).output
    assert "Welch" not in out and "Holm" in out


def test_directions_come_from_the_metric_table():
    meta = stats.metric_meta(["ct_domain", "params", "fid_domain", "not_a_metric"])
    assert meta["ct_domain"].direction == "closest to 0 is best" and meta["ct_domain"].arrow == "→0"
    assert meta["params"].direction.startswith("no better direction") and meta["params"].arrow == ""
    assert meta["fid_domain"].direction == "lower is better" and meta["fid_domain"].arrow == "↓"
    assert meta["not_a_metric"].arrow == "?"
    for name, info in METRIC_INFO.items():  # one wording, shared by the report and `bench list metrics`
        assert meta_direction(name) == info.direction


def meta_direction(name: str) -> str:
    return stats.metric_meta([name])[name].direction


def test_no_best_star_for_a_metric_whose_ideal_is_a_value():
    # scratch's 8.14 was starred "best" on ct_domain, though ~0 is ideal
    res = [
        make_result("cnn_gan", s, seed, metrics={"ct_domain": v + seed})
        for s, v in (("scratch", 8.14), ("supervised", 0.1))
        for seed in (0, 1)
    ]
    rows = stats.build_rows(typed(res), ["ct_domain"], stats.metric_meta(["ct_domain"]))
    assert not any(r.cells["ct_domain"].best for r in rows)


def test_list_metrics_says_the_direction(monkeypatch):
    out = CliRunner().invoke(main, ["list", "metrics"]).output
    line = next(ln for ln in out.splitlines() if ln.startswith("ct_domain"))
    assert "closest to 0 is best" in line and "higher" not in line.split("data-copying")[0]


def test_cell_hover_lists_the_seed_values_and_one_point_is_singular(tmp_path):
    res = [make_result("cnn_gan", "scratch", s, metrics={"fid_domain": 40.0 + s}) for s in (0, 1)]
    res[0]["protocol"] = {"version": "test", "note": "a · b"}
    suite_dir = write_suite(tmp_path, res)
    # a column logged once (eval_every: 0 logs only the final evaluation)
    (suite_dir / res[0]["run_id"] / "history.csv").write_text("step,train_seconds,loss,fid_domain\n1,0.1,2.0,\n2,0.2,1.5,30\n")
    html = render_report(suite_dir, tmp_path / "rep")["html"].read_text()
    assert "built-in method" not in html
    assert 'title="seeds: 40, 41' in html
    assert "\\u00b7" not in html and "a · b" in html  # the protocol JSON keeps its characters
    page = (tmp_path / "rep" / "runs" / f"{res[0]['run_id']}.html").read_text()
    assert "(1 points)" not in page and "(1 point)" in page


class ShadowingLoss(Dummy):
    def train_step(self, batch, step):
        return {"bpd": super().train_step(batch, step)["nll"]}


def test_a_loss_named_like_a_metric_is_refused_in_one_line():
    from bench.data.datasets import load_dataset
    from bench.suite.spec import DatasetSpec

    data = load_dataset(DatasetSpec(name="digits"))
    lines = check_adapter(lambda: ShadowingLoss(parse(Dummy.Config, {}, "adapters.x"), data.info, "cpu"), data, "cpu")
    assert len(lines) == 1 and "loss named 'bpd'" in lines[0] and "rename it" in lines[0] and "\n" not in lines[0], lines


@pytest.mark.parametrize("side", [8, 16, 265, 400])
def test_sample_grids_at_an_integer_scale_beside_real_images(tmp_path, side):
    res = [make_result("cnn_gan", "scratch", 0, metrics={"fid_domain": 40.0})]
    suite_dir = write_suite(tmp_path, res)
    run = suite_dir / res[0]["run_id"]
    Image.new("L", (side, side), 128).save(run / "samples.png")
    Image.new("L", (side, side), 200).save(run / "real.png")
    html = render_report(suite_dir, tmp_path / "rep")["html"].read_text()
    imgs = re.findall(r'<img src="(img/runs/[^"]+)" width="(\d+)" height="(\d+)"', html)
    assert {src.rsplit("/", 1)[1].startswith("real") for src, _, _ in imgs} == {True, False}  # real beside samples
    for _, w, h in imgs:
        assert int(w) % side == 0 and int(h) % side == 0 and int(w) >= side  # never shrunk, never fractional
        assert int(w) <= max(side, SAMPLE_TARGET_PX)
    assert 'href="img/runs/' in html  # click for the full-size file


def test_na_runs_are_one_grey_matrix_and_never_red(tmp_path):
    why = "task 'autoregressive' needs a 'sequence' part"
    res = [make_result("cnn_gan", "scratch", s, metrics={"fid_domain": 40.0 + s}) for s in (0, 1)]
    res += [make_result("cnn_gan", "ar", s, status="not_applicable", error=why) for s in (0, 1)]
    res += [make_result("vae", "scratch", 0, status="failed", error="RuntimeError: boom")]
    html = render_report(write_suite(tmp_path, res), tmp_path / "rep")["html"].read_text()
    matrix = html.split('id="na"', 1)[1].split('id="problems"', 1)[0]
    assert "Not applicable by design (2 runs)" in html and matrix.count("n/a<sup>") == 1  # one cell per pair
    assert "needs a &#39;sequence&#39; part" in matrix
    failed = html.split('id="problems"', 1)[1].split('id="runs"', 1)[0]
    assert "RuntimeError: boom" in failed and "sequence" not in failed  # the failure section has failures only
    # in the run lists the n/a reason is grey, the failure red
    assert re.search(r'<td class="why">task &#39;autoregressive', html) and '<td class="err">RuntimeError: boom' in html


NA_SUITE = """
name: na
dataset: {name: digits}
budget: {steps: 2, eval_every: 0, batch_size: 8}
eval: {num_samples: 16, metrics: [modes]}
seeds: [0, 1]
runner: {threads: 1}
adapters: {dummy: {}}
strategies:
  scratch: {}
  ar: {task: autoregressive, steps: 1, source: {name: digits}}
"""


@pytest.mark.slow  # builds the adapters twice (validate, dry run)
def test_validate_and_dry_run_mark_na_runs(tmp_path):
    suite = tmp_path / "na.yaml"
    suite.write_text(NA_SUITE)
    out = CliRunner().invoke(main, ["validate", str(suite)])
    assert out.exit_code == 0, out.output
    assert "2 runs will be n/a by design" in out.output
    assert "n/a  dummy × ar: autoregressive needs a part with role sequence" in out.output
    dry = CliRunner().invoke(main, ["run", str(suite), "--dry-run", "--out", str(tmp_path / "runs")])
    assert dry.exit_code == 0, dry.output
    marked = [ln for ln in dry.output.splitlines() if "(n/a:" in ln]
    assert len(marked) == 2 and all("dummy-ar-" in ln for ln in marked), dry.output


def test_report_folder_carries_its_csvs_a_reproduce_box_and_a_citation(tmp_path):
    res = [make_result("cnn_gan", "scratch", s, metrics={"fid_domain": 40.0 + s}) for s in (0, 1)]
    suite_dir = write_suite(tmp_path, res, suite_yaml="name: t\nseeds: [0, 1]\n")
    for name in ("results.csv", "summary.csv", "comparisons.csv"):
        (suite_dir / name).write_text(f"{name},x\n1,2\n")
    rep = tmp_path / "rep"
    html = render_report(suite_dir, rep)["html"].read_text()
    for name in ("results.csv", "summary.csv", "comparisons.csv", "suite.yaml"):
        assert (rep / "data" / name).read_text() == (suite_dir / name).read_text()
        assert f'href="data/{name}"' in html
    box = html.split('id="reproduce"', 1)[1].split('id="provenance"', 1)[0]
    assert "git checkout abc123" in box and "bench run REPORT/data/suite.yaml" in box
    assert "@software{bench_pretrain" in box and "commit abc123" in box and "year = {2026}" in box


def test_citation_cff_and_the_report_bibtex_agree():
    import yaml

    from bench.core.version import __version__
    from bench.report import cite

    cff = yaml.safe_load((Path(__file__).resolve().parents[1] / "CITATION.cff").read_text())
    assert cff["title"] == cite.TITLE and cff["authors"][0]["name"] == cite.AUTHORS and str(cff["version"]) == __version__


def test_bench_show_prints_the_config_with_defaults_and_docs():
    out = CliRunner().invoke(main, ["show", "cnn_gan"])
    assert out.exit_code == 0, out.output
    line = next(ln for ln in out.output.splitlines() if ln.startswith("width "))
    assert "int" in line and "32" in line and "base channels" in line
    bad = CliRunner().invoke(main, ["show", "nope"])
    assert bad.exit_code == 2 and "unknown adapter 'nope'" in bad.output


def test_distance_metrics_have_units_in_the_table_header(tmp_path):
    assert METRIC_INFO["fid_domain"].unit and METRIC_INFO["kid_domain"].unit
    res = [make_result("cnn_gan", "scratch", s, metrics={"fid_domain": 40.0 + s}) for s in (0, 1)]
    html = render_report(write_suite(tmp_path, res), tmp_path / "rep")["html"].read_text()
    assert f'<span class="sub unit">{METRIC_INFO["fid_domain"].unit}</span>' in html


def test_terminal_table_leads_with_the_baseline_and_shows_delta():
    import pandas as pd

    from bench.stats.aggregate import summary_frame, terminal_table

    rows = [
        {"run_id": f"{s}{seed}", "adapter": "a", "family": "gan", "strategy": s, "task": "scratch", "seed": seed}
        | {"status": "completed", "error": None, "m": v + seed}
        for s, v in (("alpha", 5.0), ("scratch", 2.0), ("zeta", 1.0))
        for seed in (0, 1)
    ]
    text = terminal_table(summary_frame(pd.DataFrame(rows)), ["m"], "scratch")
    body = text.splitlines()
    assert "Δ m" in body[0]
    assert [ln.split()[1] for ln in body[2:]] == ["scratch", "alpha", "zeta"]
    assert "baseline" in body[2] and "+3" in body[3] and "-1" in body[4]


def test_the_verdict_gives_each_strategy_its_cost(tmp_path):
    res = [
        make_result("cnn_gan", s, seed, metrics={"fid_domain": v + seed, "total_seconds": t})
        for s, v, t in (("scratch", 40.0, 5.0), ("supervised", 30.0, 15.0))
        for seed in (0, 1, 2)
    ]
    html = render_report(write_suite(tmp_path, res), tmp_path / "rep")["html"].read_text()
    line = html.split('class="legend verdict-cost"', 1)[1].split("</p>", 1)[0]
    assert "scratch 5 s" in line and "supervised 15 s (×3)" in line


@pytest.mark.slow  # two dry runs build the adapters
def test_key_value_overrides_are_validated_change_the_run_ids_and_are_recorded(tmp_path):
    from bench.suite.load import load_suite
    from bench.suite.overrides import header

    suite = tmp_path / "na.yaml"
    suite.write_text(NA_SUITE)
    assert load_suite(suite, ["budget.steps=7", "seeds=[3]"]).budget.steps == 7
    bad = CliRunner().invoke(main, ["validate", str(suite), "budget.stepz=3"])
    assert bad.exit_code == 2 and "budget.stepz: unknown key 'stepz' (did you mean 'steps'?)" in bad.output
    assert "not key=value" in CliRunner().invoke(main, ["validate", str(suite), "budget.steps"]).output

    def ids(*over: str) -> set[str]:
        out = CliRunner().invoke(main, ["run", str(suite), *over, "--dry-run", "--out", str(tmp_path / "runs")])
        assert out.exit_code == 0, out.output
        return {ln.split()[1] for ln in out.output.splitlines() if ln.startswith("  run ")}

    assert ids() != ids("budget.steps=3")
    res = [make_result("cnn_gan", "scratch", s, metrics={"fid_domain": 40.0 + s}) for s in (0, 1)]
    suite_dir = write_suite(tmp_path / "r", res, suite_yaml=header(["budget.steps=3"]) + "name: t\n")
    html = render_report(suite_dir, tmp_path / "rep")["html"].read_text()
    box = html.split('id="reproduce"', 1)[1].split('id="provenance"', 1)[0]
    assert "command-line overrides" in box and "<code>budget.steps=3</code>" in box


def test_bench_compare_puts_two_runs_folders_side_by_side(tmp_path):
    a = write_suite(tmp_path / "a", [make_result("cnn_gan", "scratch", s, metrics={"fid_domain": 40.0 + s}) for s in (0, 1, 2)])
    b = write_suite(tmp_path / "b", [make_result("cnn_gan", "scratch", s, metrics={"fid_domain": 30.0 + s}) for s in (0, 1, 2)])
    out = CliRunner().invoke(main, ["compare", str(a), str(b)])
    assert out.exit_code == 0, out.output
    line = next(ln for ln in out.output.splitlines() if "fid_domain" in ln)
    assert "41 ± 2.5 n=3" in line and "31 ± 2.5 n=3" in line and "-10 [" in line
    empty = CliRunner().invoke(main, ["compare", str(a), str(tmp_path / "nothing")])
    assert empty.exit_code == 2 and "no finished runs" in empty.output


def test_suites_are_listed_and_loaded_by_name(tmp_path, monkeypatch):
    from bench.suite.load import load_suite

    monkeypatch.chdir(tmp_path)  # not the checkout: the bundled suites are found beside the package
    out = CliRunner().invoke(main, ["list", "suites"]).output
    assert any(ln.split()[0] == "smoke" for ln in out.splitlines()), out
    assert load_suite("smoke").name == "smoke"
    missing = CliRunner().invoke(main, ["validate", "no-such-suite"])
    assert missing.exit_code == 2 and "suite file not found" in missing.output
