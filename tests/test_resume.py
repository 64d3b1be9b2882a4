"""Resume: a run killed at any moment continues from its last checkpoint and ends bit-identical (on CPU) to an
uninterrupted run; corrupt or half-written result.json, checkpoint and cache files are redone, never trusted."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from bench.api import run_suite
from bench.store import runs as store

pytestmark = pytest.mark.slow  # every test here trains and interrupts real runs

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True, scope="module")
def _no_report():
    """These tests are about run folders; skipping the HTML report keeps them fast (it has its own tests)."""
    import bench.api

    mp = pytest.MonkeyPatch()
    mp.setattr(bench.api, "render_report", lambda suite_dir, out, **kw: Path(out) / "index.html")
    yield
    mp.undo()


def tiny_suite(name: str = "resume", **over) -> dict:
    """A dummy suite small enough for a loaded 2-core box; threads=1 because thread oversubscription
    makes tiny CPU ops 10x slower there (and results do not depend on it)."""
    suite = {
        "name": name,
        "dataset": {"name": "digits"},
        "budget": {"steps": 40, "eval_every": 20, "batch_size": 16},
        "eval": {"num_samples": 50, "metrics": ["bpd"]},
        "seeds": [0],
        "adapters": {"dummy": {}},
        "runner": {"checkpoint_every": 10, "log_every": 5, "threads": 1},
    }
    for k, v in over.items():
        suite[k] = {**suite[k], **v} if isinstance(v, dict) and isinstance(suite.get(k), dict) else v
    return suite


def run(suite: dict, out: Path) -> list[dict]:
    df = run_suite(suite, out=out, reports=out / "reports", device="cpu", progress=False)
    assert not df.attrs["failed"]
    return store.list_results(out / suite["name"])


def quality(res: dict) -> dict:
    """Metrics that are a function of the run's numbers; wall-clock cost metrics can never be identical."""
    from bench.metrics.cost import COST_METRICS

    return {k: v for k, v in res.metrics.items() if k not in COST_METRICS or k == "params"}


def history_numbers(run_dir: Path) -> list[dict]:
    with open(run_dir / "history.csv") as f:
        return [{k: v for k, v in row.items() if k != "train_seconds"} for row in csv.DictReader(f)]


def assert_same_run(a: dict, b: dict, dir_a: Path, dir_b: Path) -> None:
    assert a.run_id == b.run_id
    assert a.status == b.status == "completed"
    assert quality(a) == quality(b)  # exact equality, not approx: CPU runs are deterministic
    assert a.first_losses == b.first_losses
    assert a.steps_done == b.steps_done
    assert history_numbers(dir_a / a.run_id) == history_numbers(dir_b / b.run_id)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[Path, dict[str, dict]]:
    """An uninterrupted two-seed run, shared by every comparison below."""
    out = tmp_path_factory.mktemp("reference")
    suite = tiny_suite(seeds=[0, 1])
    return out / suite["name"], {r.seed: r for r in run(suite, out)}


def test_kill9_mid_suite_then_rerun_matches_uninterrupted(tmp_path: Path) -> None:
    """`bench run` in a subprocess, SIGKILLed once the second run's checkpoint.pt appears; the rerun skips the
    finished run, resumes the killed one from its checkpoint, and every metric equals the uninterrupted run's."""
    suite = tiny_suite(seeds=[0, 1], budget={"steps": 150})
    ref_suite = tiny_suite(name="resume_ref_long", seeds=[0, 1], budget={"steps": 150})
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(suite))
    out = tmp_path / "runs"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.cli",
            "run",
            str(path),
            "--out",
            str(out),
            "--reports",
            str(tmp_path / "rep"),
            "--quiet",
            "--device",
            "cpu",
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    killed_at = None
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            ckpts = [p for p in (out / suite["name"]).glob("dummy-scratch-s1-*/checkpoint.pt")]
            if ckpts:
                os.kill(proc.pid, signal.SIGKILL)
                killed_at = ckpts[0].parent
                break
            time.sleep(0.005)
    finally:
        if proc.poll() is None and killed_at is None:
            proc.kill()
        proc.wait()
    assert killed_at is not None, "the subprocess finished or timed out before a checkpoint appeared"
    assert proc.returncode == -signal.SIGKILL
    assert not (killed_at / "result.json").exists()  # killed mid-run, not after
    done_before = {p.parent.name: p.stat().st_mtime_ns for p in (out / suite["name"]).glob("*/result.json")}
    assert len(done_before) == 1  # seed 0 finished before the kill

    results = {r.seed: r for r in run(suite, out)}
    for run_id, mtime in done_before.items():  # the finished run was not redone
        assert (out / suite["name"] / run_id / "result.json").stat().st_mtime_ns == mtime
    assert results[1].resumed_from and results[1].resumed_from[0] > 0
    assert not (killed_at / "checkpoint.pt").exists()

    ref_out = tmp_path / "ref"
    ref_results = {r.seed: r for r in run(ref_suite, ref_out)}
    for seed in (0, 1):
        a, b = results[seed], ref_results[seed]
        assert quality(a) == quality(b)
        assert a.first_losses == b.first_losses
        assert history_numbers(out / suite["name"] / a.run_id) == history_numbers(ref_out / ref_suite["name"] / b.run_id)


def _interrupt_at(monkeypatch, step: int) -> None:
    """Make the dummy's train_step receive a real Ctrl-C (which stops the suite) once at `step`."""
    from baselines.dummy import Dummy

    original = Dummy.train_step

    def train_step(self, batch, s):
        if s == step:
            monkeypatch.setattr(Dummy, "train_step", original)
            _real_ctrl_c()
        return original(self, batch, s)

    monkeypatch.setattr(Dummy, "train_step", train_step)


@pytest.mark.parametrize("stop_at", [7, 25, 39])  # before the first eval, between evals, after the last checkpoint
def test_interrupted_run_resumes_exactly(tmp_path: Path, monkeypatch, reference, stop_at: int) -> None:
    ref_dir, ref = reference
    suite = tiny_suite(seeds=[0, 1])
    _interrupt_at(monkeypatch, stop_at)
    with pytest.raises(KeyboardInterrupt):
        run(suite, tmp_path)
    last = stop_at // 10 * 10  # checkpoint_every is 10; nothing is saved before step 10
    ckpts = list((tmp_path / suite["name"]).glob("dummy-scratch-s0-*/checkpoint.pt"))
    if last:
        (path,) = ckpts
        ckpt = store.load_checkpoint(path)
        assert ckpt is not None and ckpt["step"] == last
    else:
        assert not ckpts
    res = {r.seed: r for r in run(suite, tmp_path)}
    assert res[0].resumed_from == ([last] if last else [])
    for seed in (0, 1):
        assert_same_run(res[seed], ref[seed], tmp_path / suite["name"], ref_dir)


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory) -> Path:
    """A run folder holding a real checkpoint.pt, left by a run interrupted at step 25 (saved at step 20)."""
    out = tmp_path_factory.mktemp("interrupted")
    mp = pytest.MonkeyPatch()
    _interrupt_at(mp, 25)
    try:
        with pytest.raises(KeyboardInterrupt):
            run(tiny_suite(), out)
    finally:
        mp.undo()
    return out


class Planted:
    """Unpickling this would run code; weights_only loading must refuse it."""

    def __reduce__(self):
        return (os.system, (f"touch {os.environ.get('BENCH_TEST_MARKER', '/nonexistent/marker')}",))


def _damage(ckpt: Path, damage: str) -> None:
    good = torch.load(ckpt, weights_only=True)
    if damage == "truncated":  # what a kill during a non-atomic write would leave
        ckpt.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
    elif damage == "garbage":
        ckpt.write_bytes(os.urandom(4096))
    elif damage == "empty":
        ckpt.write_bytes(b"")
    elif damage == "pickled_object":
        torch.save({**good, "adapter": Planted()}, ckpt)
    elif damage == "not_a_dict":
        torch.save([good["step"]], ckpt)
    elif damage == "missing_keys":
        del good["data_rng"]
        torch.save(good, ckpt)
    elif damage == "wrong_shapes":  # loads fine; only the runner can tell it does not fit the adapter
        good["adapter"] = {k: {n: torch.zeros(3) for n in v} if k.startswith("module.") else v for k, v in good["adapter"].items()}
        torch.save(good, ckpt)
    elif damage == "step_mismatch":
        good["loop"]["step"] = good["step"] + 1
        torch.save(good, ckpt)


def _copy_run(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return next(dst.glob("resume/*/checkpoint.pt"))


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty", "pickled_object", "not_a_dict"])
def test_bad_checkpoint_is_not_loaded(tmp_path: Path, monkeypatch, interrupted: Path, damage: str) -> None:
    marker = tmp_path / "pwned"
    monkeypatch.setenv("BENCH_TEST_MARKER", str(marker))
    ckpt = _copy_run(interrupted, tmp_path / "runs")
    assert store.load_checkpoint(ckpt) is not None
    _damage(ckpt, damage)
    assert store.load_checkpoint(ckpt) is None
    assert not marker.exists()  # the planted pickle never ran


@pytest.mark.parametrize("damage", ["truncated", "pickled_object", "wrong_shapes", "missing_keys", "step_mismatch"])
def test_bad_checkpoint_is_redone_from_scratch(tmp_path: Path, monkeypatch, interrupted: Path, reference, damage: str) -> None:
    ref_dir, ref = reference
    marker = tmp_path / "pwned"
    monkeypatch.setenv("BENCH_TEST_MARKER", str(marker))
    out = tmp_path / "runs"
    _damage(_copy_run(interrupted, out), damage)
    (res,) = run(tiny_suite(), out)
    assert not marker.exists()
    assert res.resumed_from == []  # started over instead of trusting it
    assert_same_run(res, ref[0], out / "resume", ref_dir)


BAD_RESULTS = {
    "half_written": lambda good: good[: len(good) // 2],
    "empty": lambda good: b"",
    "binary": lambda good: b"\x00\xff" * 10,
    "not_a_mapping": lambda good: b"[1, 2]",
    "bad_status": lambda good: good.replace(b'"completed"', b'"finished"'),
    "foreign_run_id": lambda good: good.replace(b'"run_id": "dummy', b'"run_id": "other'),
    "bad_metrics": lambda good: json.dumps({**json.loads(good), "metrics": {"bpd": "3.1"}}).encode(),
}


@pytest.mark.parametrize("damage", list(BAD_RESULTS))
def test_bad_result_json_is_not_done(tmp_path: Path, reference, damage: str) -> None:
    import shutil

    ref_dir, ref = reference
    run_dir = tmp_path / ref[0].run_id
    shutil.copytree(ref_dir / ref[0].run_id, run_dir)
    assert store.is_done(run_dir)
    path = run_dir / "result.json"
    path.write_bytes(BAD_RESULTS[damage](path.read_bytes()))
    assert not store.is_done(run_dir)
    assert store.list_results(tmp_path) == []  # never aggregated either


def test_half_written_result_json_is_redone(tmp_path: Path, reference) -> None:
    ref_dir, ref = reference
    suite = tiny_suite()
    (first,) = run(suite, tmp_path)
    path = tmp_path / "resume" / first.run_id / "result.json"
    path.write_bytes(path.read_bytes()[:100])
    (again,) = run(suite, tmp_path)
    assert store.is_done(path.parent)
    assert_same_run(again, ref[0], tmp_path / "resume", ref_dir)


def test_stale_temp_files_are_cleaned(tmp_path: Path) -> None:
    """A kill during an atomic write leaves `.result.json.*.tmp`; it never counts, and the next run removes it."""
    run_dir = tmp_path / "resume" / "dummy-scratch-s0-x"
    run_dir.mkdir(parents=True)
    (run_dir / ".result.json.abc.tmp").write_text('{"status": "compl')
    assert not store.is_done(run_dir)
    store.remove_partial_writes(run_dir)
    assert not any(run_dir.iterdir())


def test_corrupt_cache_files_are_rebuilt(tmp_path: Path, monkeypatch) -> None:
    """Every file under the cache (pretrained checkpoints, the domain classifier, real features) is verified
    on load; a damaged one is rebuilt, and the run's numbers equal those from the intact cache."""
    from bench.metrics import domain_cache

    suite = tiny_suite(
        name="cached",
        budget={"steps": 10, "eval_every": 0},
        eval={"metrics": ["bpd", "modes"]},
        strategies={"gen": {"task": "generative", "source": {"name": "digits", "classes": [0, 1, 2]}, "steps": 5}},
    )
    # The classifier is memoised per process; forget it so this cache folder gets its own files, as a new process would.
    monkeypatch.setattr(domain_cache, "MEMO", domain_cache.Memo(maxsize=4))
    (first,) = run(suite, tmp_path)
    assert first.status == "completed" and not first.pretrain["cached"]
    files = sorted(p for p in (tmp_path / ".cache").rglob("*") if p.is_file())
    assert any("pretrain" in p.parts for p in files) and any("domain" in p.parts for p in files)
    for i, p in enumerate(files):  # half-written or bit-rotted, alternately
        raw = bytearray(p.read_bytes())
        if i % 2 == 0:
            p.write_bytes(bytes(raw[: len(raw) // 2]))
        else:
            raw[len(raw) // 2] ^= 0xFF
            p.write_bytes(bytes(raw))
    monkeypatch.setattr(domain_cache, "MEMO", domain_cache.Memo(maxsize=4))
    df = run_suite(suite, out=tmp_path, reports=tmp_path / "reports", device="cpu", progress=False, force=True)
    (again,) = store.list_results(tmp_path / "cached")
    assert not df.attrs["failed"] and again.status == "completed"
    assert not again.pretrain["cached"]  # rebuilt, not trusted
    assert quality(again) == quality(first)


def _real_ctrl_c() -> None:
    """A real Ctrl-C: SIGINT to this process, which run_suite's handler turns into the suite's stop (a
    KeyboardInterrupt raised by adapter code itself only fails its run; bench.core.interrupt)."""
    import os
    import signal
    import time

    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(5)  # the handler raises here, at once
