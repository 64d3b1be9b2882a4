"""Issue 25: the stall watchdog, adapter exits and interrupts, real Ctrl-C, self-checking caches, runs held
elsewhere, results that must not mix, environment variables and messages. Fast: tiny stall limits."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from bench.core import beat, interrupt
from bench.core.errors import BenchError
from bench.runner import watchdog
from bench.runner.watchdog import Stalled, Watchdog
from bench.store import cachefile, claims, locks
from bench.store.result import RunResult
from bench.store.select import comparable


# --- the watchdog ---------------------------------------------------------------------------------------
def test_a_stalled_step_is_stopped_naming_it() -> None:
    t0 = time.monotonic()
    with pytest.raises(Stalled), Watchdog("r", stall_seconds=0.4) as wd:
        beat.beat("train_step at step 3 of 5", step=True)
        time.sleep(30)  # a blocking call: the signal ends it
    assert time.monotonic() - t0 < 10
    assert "train_step at step 3 of 5" in wd.reason and "stalled" in wd.reason


def test_default_limit_is_20x_the_slowest_step_after_the_first(monkeypatch) -> None:
    monkeypatch.setattr(watchdog, "STALL_FLOOR", 0.2)
    wd = Watchdog("r")
    assert wd.limit()[0] == watchdog.OTHER_FLOOR  # before the first step: the generous floor
    for i in range(3):
        wd.on_beat(f"train_step at step {i + 1}", True)
        time.sleep(0.03)
    wd.on_beat("train_step at step 4", True)
    limit, how = wd.limit()
    assert limit == pytest.approx(20 * wd.slowest) and limit > 0.2 and "20x" in how
    wd.on_beat("the evaluation at step 4", False)
    assert wd.limit()[0] == watchdog.OTHER_FLOOR  # outside the loop: the other floor


def test_timeout_bounds_a_run_that_keeps_moving() -> None:
    with pytest.raises(Stalled), Watchdog("r", timeout=0.5) as wd:
        for i in range(1000):
            beat.beat(f"train_step at step {i}", step=True)
            time.sleep(0.02)
    assert wd.reason.startswith("timed out")


def test_watchdog_off_and_quiet_when_nothing_hangs() -> None:
    with Watchdog("r", stall_seconds=0) as wd:
        time.sleep(0.3)
    assert wd.reason is None


# --- interrupts and exits -------------------------------------------------------------------------------
def test_only_a_real_sigint_is_real() -> None:
    with interrupt.watch():
        assert not interrupt.is_real(KeyboardInterrupt())  # raised by code, no signal came
        with pytest.raises(KeyboardInterrupt) as info:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
        assert interrupt.is_real(info.value)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


HOSTILE = textwrap.dedent(
    """
    import sys, time
    from baselines.dummy import Dummy

    class Exits(Dummy):
        def train_step(self, batch, step):
            if step == 2:
                sys.exit(0)
            return super().train_step(batch, step)

    class Interrupts(Dummy):
        def train_step(self, batch, step):
            if step == 2:
                raise KeyboardInterrupt
            return super().train_step(batch, step)

    class Hangs(Dummy):
        def train_step(self, batch, step):
            if step == 2:
                time.sleep(10**6)
            return super().train_step(batch, step)
    """
)


def test_adapter_exits_interrupts_and_hangs_fail_their_run_only(tmp_path: Path, monkeypatch) -> None:
    from bench.api import run_suite

    (tmp_path / "rel_hostile.py").write_text(HOSTILE)
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = {
        "name": "hostile",
        "dataset": {"name": "digits"},
        "budget": {"steps": 4, "eval_every": 0, "batch_size": 8},
        "eval": {"num_samples": 16, "metrics": ["bpd"]},
        "adapters": {"rel_hostile:Exits": {}, "rel_hostile:Interrupts": {}, "rel_hostile:Hangs": {}, "dummy": {}},
        "runner": {"threads": 1, "stall_seconds": 1.5},
    }
    df = run_suite(spec, out=tmp_path / "runs", reports=tmp_path / "rep", device="cpu", progress=False)
    status = dict(zip(df["adapter"], df["status"], strict=True))
    assert status["dummy"] == "completed" and df.attrs["failed"] == 3
    errors = {r.adapter: r.error for r in __import__("bench").store.runs.list_results(tmp_path / "runs" / "hostile")}
    assert "sys.exit" in errors["rel_hostile:Exits"]
    assert "KeyboardInterrupt raised by the run's own code" in errors["rel_hostile:Interrupts"]
    assert "stalled" in errors["rel_hostile:Hangs"] and "train_step at step 3" in errors["rel_hostile:Hangs"]


# --- caches ---------------------------------------------------------------------------------------------
def _flip(path: Path, at: float = 0.9, bit: int = 1) -> None:
    data = bytearray(path.read_bytes())
    data[int(len(data) * at)] ^= bit
    path.write_bytes(bytes(data))


def test_a_flipped_bit_in_a_sealed_tensor_file_is_caught_and_named(tmp_path: Path, capsys) -> None:
    path = tmp_path / "f.safetensors"
    tensors = {"features": torch.randn(50, 8), "logits": torch.randn(50, 3)}
    cachefile.save_tensors(path, tensors)
    assert torch.equal(cachefile.load_tensors(path, "test features")["features"], tensors["features"])
    _flip(path)
    assert cachefile.load_tensors(path, "test features") is None
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(path) in err and "content hash mismatch" in err
    cachefile.save_tensors(path, tensors)  # rebuilt: reads again
    assert cachefile.load_tensors(path, "test features") is not None


def test_an_unsealed_features_entry_is_rebuilt(tmp_path: Path, capsys) -> None:
    from safetensors.torch import save_file

    from bench.metrics import domain_cache

    path = tmp_path / "old.safetensors"
    save_file({"features": torch.zeros(4, 2), "logits": torch.zeros(4, 2)}, str(path))  # an older bench: no seal
    assert domain_cache.load_features(path, ("features", "logits"), 4) is None
    assert "no content hash" in capsys.readouterr().err


def test_a_tampered_record_fails_its_seal(tmp_path: Path, capsys) -> None:
    from bench.store.files import atomic_write_json, read_json

    path = tmp_path / "r.json"
    atomic_write_json(path, cachefile.seal_record({"accuracy": 0.981, "n": 3}))
    assert cachefile.check_record(path, read_json(path), "record") is not None
    path.write_text(path.read_text().replace("0.981", "0.991"))
    assert cachefile.check_record(path, read_json(path), "record") is None
    assert "content hash mismatch" in capsys.readouterr().err


def test_pretrain_cache_entry_with_a_flipped_bit_is_missed_with_a_warning(tmp_path: Path, capsys) -> None:
    from bench.tasks import cache

    cache.save(tmp_path, "k1", {"w": torch.randn(64, 64)}, {"loss_final": 0.5})
    assert cache.load(tmp_path, "k1") is not None
    _flip(cache.entry_dir(tmp_path, "k1") / cache.WEIGHTS)
    assert cache.load(tmp_path, "k1") is None
    assert "pretrained checkpoint" in capsys.readouterr().err
    cache.save(tmp_path, "k2", {"w": torch.randn(4)}, {"loss_final": 0.5})
    meta = cache.entry_dir(tmp_path, "k2") / cache.META
    meta.write_text(meta.read_text().replace("0.5", "0.7"))
    assert cache.load(tmp_path, "k2") is None


# --- runs held elsewhere ----------------------------------------------------------------------------------
def test_a_launcher_lists_runs_held_elsewhere_and_returns(tmp_path: Path) -> None:
    from bench.suite.load import expand, load_suite

    spec = {"name": "held", "dataset": {"name": "digits"}, "adapters": {"dummy": {}}, "seeds": [0]}
    (run,) = expand(load_suite(spec))
    lock = locks.try_acquire(claims.run_lock(tmp_path, run.run_id))  # a live holder (this process)
    assert lock is not None
    seen: list[str] = []
    t0 = time.monotonic()
    try:
        claims.work(
            [run],
            tmp_path,
            lambda r: pytest.fail("ran a held run"),
            lambda r, res: None,
            wait=False,
            on_elsewhere=lambda r, h: seen.append(h),
        )
    finally:
        lock.release()
    assert time.monotonic() - t0 < 5 and len(seen) == 1 and f"pid {os.getpid()}" in seen[0]


# --- workers die with their launcher -------------------------------------------------------------------
def test_a_worker_dies_when_its_launcher_is_killed(tmp_path: Path) -> None:
    child = textwrap.dedent(
        f"""
        import os, sys, time
        from bench.exec.jobs import die_with_parent
        die_with_parent(int(sys.argv[1]))
        open({str(tmp_path / "ready")!r}, 'w').write(str(os.getpid()))
        time.sleep(600)
        """
    )
    launcher = f"import subprocess, sys, os, time; subprocess.Popen([sys.executable, '-c', {child!r}, str(os.getpid())]); time.sleep(600)"
    p = subprocess.Popen([sys.executable, "-c", launcher])
    deadline = time.time() + 120
    while not (tmp_path / "ready").exists() and time.time() < deadline:
        time.sleep(0.2)
    worker = int((tmp_path / "ready").read_text())
    p.kill()
    p.wait()
    deadline = time.time() + 10
    while time.time() < deadline and Path(f"/proc/{worker}").exists() and "Z" not in _state(worker):
        time.sleep(0.1)
    assert not Path(f"/proc/{worker}").exists() or "Z" in _state(worker)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


# --- results that must not mix --------------------------------------------------------------------------
def _res(run_id: str, suite: str = "s", protocol: str = "2", seed: int = 0, finished: str = "2026") -> RunResult:
    spec = {"protocol_version": protocol, "suite_version": 1, "swept": {}}
    return RunResult(run_id, suite, "dummy", "scratch", "scratch", seed, "completed", spec=spec, finished_at=finished)


def test_report_leaves_out_other_suites_protocols_and_older_cells(tmp_path: Path) -> None:
    (tmp_path / "suite.yaml").write_text("name: s\nversion: 1\n")
    results = [
        _res("a-s0-00000001"),
        _res("b-s1-00000002", seed=1),
        _res("c-s2-00000003", suite="elsewhere", seed=2),
        _res("d-s3-00000004", protocol="1", seed=3),
        _res("e-s0-00000005", finished="2000"),  # same cell as the first, older
    ]
    kept, lines = comparable(results, tmp_path)
    assert [r.run_id for r in kept] == ["a-s0-00000001", "b-s1-00000002"]
    assert len(lines) == 3 and any("another suite" in x for x in lines) and any("protocol 1" in x for x in lines)


# --- environment ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["-5", "abc", "1", "nan", "inf"])
def test_bad_lock_stale_seconds_is_one_line(value: str, monkeypatch) -> None:
    monkeypatch.setenv("BENCH_LOCK_STALE_SECONDS", value)
    with pytest.raises(BenchError, match="BENCH_LOCK_STALE_SECONDS"):
        locks.stale_seconds()


def test_bench_data_naming_a_file_is_one_line(tmp_path: Path, monkeypatch) -> None:
    from bench.data.datasets import data_root

    (tmp_path / "f").write_text("x")
    monkeypatch.setenv("BENCH_DATA", str(tmp_path / "f"))
    with pytest.raises(BenchError, match="BENCH_DATA"):
        data_root(None)


def test_utf16_suite_and_long_include_chain_are_named(tmp_path: Path) -> None:
    from bench.suite.load import load_suite

    (tmp_path / "u.yaml").write_bytes("name: x\n".encode("utf-16"))
    with pytest.raises(BenchError, match="UTF-16"):
        load_suite(tmp_path / "u.yaml")
    for i in range(40):
        (tmp_path / f"c{i}.yaml").write_text(f"include: c{i + 1}.yaml\n" + ("name: c\n" if i == 0 else ""))
    (tmp_path / "c40.yaml").write_text("dataset: {name: digits}\nadapters: {dummy: {}}\n")
    with pytest.raises(BenchError, match="include chain") as info:
        load_suite(tmp_path / "c0.yaml")
    assert "c0.yaml" in str(info.value)
