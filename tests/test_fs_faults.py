"""File-system faults, made in a temporary folder: read-only folders, a full disk, injected write errors and
a directory where a file should be. `bench run` answers each with one line, never a traceback; runs that
started are recorded, and the others complete."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from bench.cli import main
from bench.store import runs as store
from bench.store.fingerprint import stamp  # run ids as `bench run` makes them (threads, code)

# --- file-system faults, made in a temporary folder --------------------------------------------------------
# Before any run starts, a fault is invalid input: exit 2, one line naming the path and the fix. Once runs
# have started it fails what it touches (a run, the tables, the report), the rest completes, exit 1.
FS_SUITE = {
    "name": "fs",
    "dataset": {"name": "digits"},
    "budget": {"steps": 3, "eval_every": 0, "batch_size": 8},
    "eval": {"num_samples": 20, "metrics": ["bpd"]},
    "seeds": [0, 1],
    "adapters": {"dummy": {}},
    "runner": {"threads": 1},
}


def fs_run(tmp: Path, out: Path | None = None, reports: Path | None = None):
    path = tmp / "fs.yaml"
    path.write_text(yaml.safe_dump(FS_SUITE))
    out, reports = out or tmp / "runs", reports or tmp / "rep"
    res = CliRunner().invoke(main, ["run", str(path), "--out", str(out), "--reports", str(reports), "--quiet", "--device", "cpu"])
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        raise AssertionError(f"uncaught {type(res.exception).__name__}\n{res.output}") from res.exception
    assert "Traceback" not in res.output, res.output
    return res


def one_error(res, code: int, *fragments: str) -> str:
    assert res.exit_code == code, res.output
    (line,) = [x for x in res.output.splitlines() if x.startswith("error: ")]
    for f in fragments:
        assert f in line, (f, line)
    return line


@pytest.fixture
def read_only(tmp_path: Path):
    """Make folders read-only with a bind mount (chmod does not stop root); skipped where mount is not allowed."""
    import subprocess

    mounted: list[Path] = []

    def make(p: Path) -> Path:
        p.mkdir(parents=True, exist_ok=True)
        r = subprocess.run(["mount", "--bind", "-o", "ro", str(p), str(p)], capture_output=True)
        if r.returncode != 0:
            pytest.skip("cannot bind-mount read-only here (needs root)")
        mounted.append(p)
        return p

    yield make
    for p in reversed(mounted):
        subprocess.run(["umount", str(p)], check=False)


def test_read_only_out_folder(tmp_path: Path, read_only) -> None:
    out = read_only(tmp_path / "runs")
    one_error(fs_run(tmp_path, out=out), 2, str(out / "fs"), "Read-only file system", "writable")


def test_read_only_suite_folder(tmp_path: Path, read_only) -> None:
    (tmp_path / "runs" / "fs").mkdir(parents=True)
    read_only(tmp_path / "runs" / "fs")
    one_error(fs_run(tmp_path), 2, "suite.yaml", "Read-only file system")


def test_read_only_finished_suite_keeps_results(tmp_path: Path, read_only) -> None:
    assert fs_run(tmp_path).exit_code == 0
    before = (tmp_path / "runs" / "fs" / "results.csv").read_bytes()
    read_only(tmp_path / "runs")
    one_error(fs_run(tmp_path), 2, "Read-only file system")
    assert (tmp_path / "runs" / "fs" / "results.csv").read_bytes() == before


def test_read_only_reports_folder(tmp_path: Path, read_only) -> None:
    rep = read_only(tmp_path / "rep")
    one_error(fs_run(tmp_path, reports=rep), 2, str(rep), "Read-only file system", "writable")
    assert not (tmp_path / "runs" / "fs" / "results.csv").exists()  # refused before any run


def test_full_disk(tmp_path: Path) -> None:
    """A tiny tmpfs as --out: whatever stage runs out of space, the answer is one line per problem."""
    import subprocess

    out = tmp_path / "tiny"
    out.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24k", "tmpfs", str(out)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        res = fs_run(tmp_path, out=out)
    finally:
        subprocess.run(["umount", str(out)], check=False)
    assert res.exit_code in (1, 2), res.output
    assert any(x.startswith("error: ") and "No space left" in x for x in res.output.splitlines()), res.output


INJECTED = {"EROFS": errno.EROFS, "ENOSPC": errno.ENOSPC, "EACCES": errno.EACCES}


@pytest.mark.parametrize("code", INJECTED)
@pytest.mark.parametrize("target", ["suite.yaml", "results.csv", "result.json", "index.html"])
def test_injected_write_faults(tmp_path: Path, monkeypatch, code: str, target: str) -> None:
    """The rename that publishes `target` fails with `code` (every such write is an atomic replace)."""
    import os

    real = os.replace

    def replace(src, dst, *a, **k):
        if Path(dst).name == target and "-s1-" not in Path(dst).parent.name:  # result.json: only the seed-0 run
            raise OSError(INJECTED[code], os.strerror(INJECTED[code]), str(dst))
        return real(src, dst, *a, **k)

    monkeypatch.setattr(os, "replace", replace)
    res = fs_run(tmp_path)
    results = store.list_results(tmp_path / "runs" / "fs")
    if target == "suite.yaml":  # before any run: invalid input
        one_error(res, 2, "suite.yaml", os.strerror(INJECTED[code]))
        assert results == []
    elif target == "result.json":  # that run fails (and cannot be recorded); the other completes
        one_error(res, 1, "could not be recorded", "result.json")
        assert [r.seed for r in results] == [1]
        assert (tmp_path / "rep" / "fs" / "index.html").is_file()
    elif target == "results.csv":  # the runs are done and kept; the tables are the one problem
        one_error(res, 1, "results.csv", os.strerror(INJECTED[code]))
        assert len(results) == 2 and (tmp_path / "rep" / "fs" / "index.html").is_file()
    else:  # the report is the one problem; runs and tables are complete
        one_error(res, 1, "report", os.strerror(INJECTED[code]))
        assert len(results) == 2 and (tmp_path / "runs" / "fs" / "results.csv").is_file()


@pytest.mark.parametrize("where", ["result.json", "results.csv", "summary.csv", "index.html", "report_folder", "out_folder"])
def test_wrong_kind_of_file_in_place(tmp_path: Path, where: str) -> None:
    """A folder where a file should be, or a file where a folder should be."""
    from bench.suite.load import expand, load_suite

    sdir = tmp_path / "runs" / "fs"
    first = expand(load_suite(FS_SUITE), stamp=lambda r: stamp(r, "cpu"))[0].run_id
    place = {
        "result.json": sdir / first / "result.json",
        "results.csv": sdir / "results.csv",
        "summary.csv": sdir / "summary.csv",
        "index.html": tmp_path / "rep" / "fs" / "index.html",
    }
    if where in place:
        place[where].mkdir(parents=True)
    elif where == "report_folder":
        (tmp_path / "rep").mkdir()
        (tmp_path / "rep" / "fs").write_text("a file")
    else:
        (tmp_path / "runs").write_text("a file")
    res = fs_run(tmp_path)
    if where == "index.html":  # a report folder is replaced as a whole: nothing to complain about
        assert res.exit_code == 0 and (tmp_path / "rep" / "fs" / "index.html").is_file(), res.output
    elif where in ("report_folder", "out_folder"):
        one_error(res, 2)
    else:
        one_error(res, 1, where)
