"""The fault sweep's reliability cases (issue 25): caches that check themselves, adapter code that exits or
interrupts, results from elsewhere mixed into a report, hangs and held runs, signals to launchers and their
`--jobs` workers, environment variables and messages that must name the real cause.

Every case that could hang runs `bench` as a real process with a timeout (a hang is an outcome, never a
stuck sweep); the others run in this process like the rest of the sweep.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from _faults import BASE, BENCH, Case, Outcome, bench, finished, run, with_, write_suite

HOSTILE = """
import os, sys, threading, time
from baselines.dummy import Dummy

class _Base(Dummy):
    at = 2  # the contract check calls train_step(batch, 0): misbehave later, inside the run
class ExitStep(_Base):
    def train_step(self, batch, step):
        if step == self.at: sys.exit(0)
        return super().train_step(batch, step)
class ExitCode(_Base):
    def train_step(self, batch, step):
        if step == self.at: raise SystemExit(3)
        return super().train_step(batch, step)
class KbdStep(_Base):
    def train_step(self, batch, step):
        if step == self.at: raise KeyboardInterrupt
        return super().train_step(batch, step)
class BaseExc(_Base):
    def train_step(self, batch, step):
        if step == self.at: raise BaseException("odd")
        return super().train_step(batch, step)
class KbdSample(_Base):
    calls = 0
    def sample(self, n, generator):
        KbdSample.calls += 1
        if KbdSample.calls > 1: raise KeyboardInterrupt
        return super().sample(n, generator)
class SleepStep(_Base):
    def train_step(self, batch, step):
        if step == self.at: time.sleep(10**6)
        return super().train_step(batch, step)
class WaitStep(_Base):
    def train_step(self, batch, step):
        if step == self.at: threading.Event().wait()
        return super().train_step(batch, step)
class SpinStep(_Base):
    def train_step(self, batch, step):
        while step == self.at: pass
        return super().train_step(batch, step)
class SleepSample(_Base):
    calls = 0
    def sample(self, n, generator):
        SleepSample.calls += 1
        if SleepSample.calls > 1: time.sleep(10**6)
        return super().sample(n, generator)
class Slow(_Base):
    def train_step(self, batch, step):
        time.sleep(0.5)
        return super().train_step(batch, step)
class InitRaises(_Base):
    def __init__(self, config, info, device):
        raise ValueError("my own check failed")
class InitExits(_Base):
    def __init__(self, config, info, device):
        sys.exit(0)
"""
IMPORT_EXIT = "import sys\nsys.exit(0)\n"
IMPORT_KBD = "raise KeyboardInterrupt\n"


def proc(tmp: Path, *args: str, timeout: float = 240, env: dict | None = None) -> Outcome:
    """`bench ARGS` as a real process with a timeout: a hang is an outcome (code None), never a stuck sweep."""
    try:
        p = subprocess.run([*BENCH, *args], cwd=tmp, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})})
    except subprocess.TimeoutExpired as err:
        return Outcome(None, f"hang: no exit after {timeout}s {err.stdout or ''}{err.stderr or ''}")
    return Outcome(p.returncode, p.stdout + p.stderr)


def hostile_suite(tmp: Path, cls: str, runner: dict | None = None, **over) -> Path:
    (tmp / "hostile.py").write_text(HOSTILE)
    data = {**BASE, "adapters": {f"hostile:{cls}": {}, "dummy": {}}, "seeds": [0], "strategies": {"scratch": {}}}
    data["runner"] = {**BASE["runner"], **(runner or {})}
    data.update(over)
    return write_suite(tmp, data)


def run_args(path: Path, *extra: str) -> tuple[str, ...]:
    return ("run", str(path), "--out", "runs", "--reports", "rep", "--quiet", "--device", "cpu", *extra)


def _statuses(tmp: Path) -> dict[str, str]:
    rows = list(csv.DictReader((tmp / "runs" / "sweep" / "results.csv").open())) if (tmp / "runs/sweep/results.csv").is_file() else []
    return {r["adapter"]: r["status"] for r in rows}


def adapter_case(cls: str, words: str, runner: dict | None = None, real: bool = False, kind: str = "adapter", **over) -> Case:
    """A hostile adapter beside the dummy: its run fails naming why, the dummy's completes, exit 1."""

    def body(tmp: Path) -> tuple[Outcome, str | None]:
        path = hostile_suite(tmp, cls, runner, **over)
        out = proc(tmp, *run_args(path), timeout=300) if real else bench(*run_args(path), cwd=tmp)
        st = _statuses(tmp)
        if st.get("dummy") != "completed" or st.get(f"hostile:{cls}") != "failed":
            return out, f"statuses {st or 'missing (no results.csv)'}"
        return out, None if words.lower() in out.output.lower() else f"no {words!r} in the output"

    return Case(f"{kind}: {cls} {'(process)' if real else ''}".strip(), body, (1,))


def validate_case(label: str, module: str, cls: str, words: str) -> Case:
    def body(tmp: Path) -> tuple[Outcome, str | None]:
        (tmp / "hostile.py").write_text(HOSTILE)
        (tmp / "imp_mod.py").write_text(module)
        path = write_suite(tmp, {**BASE, "adapters": {f"{'imp_mod' if module else 'hostile'}:{cls}": {}}})
        out = proc(tmp, "validate", str(path), timeout=200)
        lines = [x for x in out.output.strip().splitlines() if x]
        return out, None if len(lines) == 1 and words in out.output else f"not one line naming {words!r}"

    return Case(f"adapter: {label}", body, (2,))


def adapter_cases() -> list[Case]:
    return [
        adapter_case("ExitStep", "sys.exit"),
        adapter_case("ExitCode", "SystemExit(3)"),
        adapter_case("KbdStep", "KeyboardInterrupt"),
        adapter_case("KbdSample", "KeyboardInterrupt"),
        adapter_case("BaseExc", "odd"),
        adapter_case("ExitStep", "sys.exit", real=True),
        validate_case("sys.exit at import -> validate", IMPORT_EXIT, "X", "sys.exit"),
        validate_case("KeyboardInterrupt at import -> validate", IMPORT_KBD, "X", "KeyboardInterrupt"),
        validate_case("ValueError in __init__ -> validate", "", "InitRaises", "my own check failed"),
        validate_case("sys.exit in __init__ -> validate", "", "InitExits", "sys.exit"),
    ]


# --- hangs and held runs ------------------------------------------------------------------------------
def hang_cases() -> list[Case]:
    tight = {"stall_seconds": 3}
    return [
        adapter_case("SleepStep", "stalled", tight, real=True, kind="hang"),
        adapter_case("WaitStep", "stalled", tight, real=True, kind="hang"),
        adapter_case("SpinStep", "stalled", tight, real=True, kind="hang"),
        adapter_case("SleepSample", "stalled", tight, real=True, kind="hang"),
        adapter_case("Slow", "timed out", {"timeout": 4}, real=True, kind="hang", budget={**BASE["budget"], "steps": 40}),
        Case("hang: a run held by another live process, no --wait", held_elsewhere, (0,)),
        Case("hang: --quiet run prints an 'alive' line", alive_line, (1,)),
    ]


def held_elsewhere(tmp: Path) -> tuple[Outcome, str | None]:
    """A process holds one run's lock (alive, heartbeating) and never finishes it: the launcher must list it
    and return, not wait for ever."""
    finished(tmp)
    path = write_suite(tmp, BASE)
    sdir = tmp / "runs" / "sweep"
    victim = sorted(p for p in sdir.iterdir() if p.is_dir() and not p.name.startswith("."))[0]
    (victim / "result.json").unlink()
    code = (
        "import sys, time; from pathlib import Path; from bench.store import locks, claims;"
        f"l = locks.try_acquire(claims.run_lock(Path({str(sdir)!r}), {victim.name!r})); print('held', flush=True); time.sleep(600)"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        holder.stdout.readline()
        t0 = time.time()
        out = proc(tmp, *run_args(path), timeout=150)
        took = time.time() - t0
    finally:
        holder.kill()
        holder.wait()
    if out.code is None:
        return out, "waited for the held run"
    return out, None if victim.name in out.output and "elsewhere" in out.output else f"held run not listed (took {took:.0f}s)"


def alive_line(tmp: Path) -> tuple[Outcome, str | None]:
    path = hostile_suite(tmp, "SleepStep", {"stall_seconds": 8})
    code = (
        "import sys\ntry:\n    import bench.runner.watchdog as w; w.ALIVE_SECONDS = 2\nexcept ImportError:\n    pass\nfrom bench.cli import main;"
        f"sys.argv = ['bench', *{list(run_args(path))!r}, '--jobs', '1']; main()"  # in this process, where the patch is
    )
    try:
        p = subprocess.run([sys.executable, "-c", code], cwd=tmp, capture_output=True, text=True, timeout=240)
    except subprocess.TimeoutExpired:
        return Outcome(None, "hang"), "hang"
    out = Outcome(p.returncode, p.stdout + p.stderr)
    return out, None if "alive:" in out.output else "no alive line during 8 silent seconds"


# --- signals ----------------------------------------------------------------------------------------------
LONG = {**BASE, "budget": {"steps": 400000, "eval_every": 0, "batch_size": 8}, "runner": {"threads": 1, "checkpoint_every": 500}}


def _workers(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-f", "multiprocessing.spawn"], capture_output=True, text=True).stdout.split()
    kids = []
    for w in map(int, out):
        try:
            stat = Path(f"/proc/{w}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(stat[2]) == pid or int(stat[1]) == pid:  # same process group as the launcher, or its child
            kids.append(w)
    return kids


def signal_case(sig: signal.Signals, jobs: int) -> Case:
    def body(tmp: Path) -> tuple[Outcome, str | None]:
        path = write_suite(tmp, LONG)
        cmd = [*BENCH, *run_args(path), *(["--jobs", str(jobs)] if jobs > 1 else [])]
        p = subprocess.Popen(cmd, cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
        deadline = time.time() + 180
        while time.time() < deadline and not list((tmp / "runs" / "sweep").glob("*/checkpoint.pt")):
            time.sleep(0.5)
        before = _workers(p.pid)
        if sig == signal.SIGINT:
            os.killpg(p.pid, sig)  # a terminal's Ctrl-C reaches the whole process group
        else:
            os.kill(p.pid, sig)
        try:
            text, _ = p.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            return Outcome(None, "hang after the signal"), "launcher did not stop"
        time.sleep(5)
        left = [w for w in before if Path(f"/proc/{w}").exists()]
        for w in left:
            os.kill(w, signal.SIGKILL)
        out = Outcome(p.returncode, text)
        if left:
            return out, f"{len(left)} of {len(before)} workers still alive 5 s after the launcher ended"
        if jobs > 1 and not before:
            return out, "no worker seen (the check proves nothing)"
        return out, None

    codes = {signal.SIGINT: (130,), signal.SIGTERM: (143, -15), signal.SIGKILL: (-9,)}[sig]
    return Case(f"signal: {sig.name} to a {'--jobs ' + str(jobs) if jobs > 1 else 'sequential'} launcher", body, codes)


def signal_cases() -> list[Case]:
    return [signal_case(signal.SIGINT, 1), signal_case(signal.SIGINT, 2), signal_case(signal.SIGTERM, 2), signal_case(signal.SIGKILL, 2)]


# --- environment and messages -------------------------------------------------------------------------
def env_case(var: str, value: str, words: str) -> Case:
    def body(tmp: Path) -> tuple[Outcome, str | None]:
        if var == "BENCH_DATA" and value == "FILE":
            (tmp / "afile").write_text("x")
        env = {var: str(tmp / "afile") if value == "FILE" else value}
        out = proc(tmp, *run_args(write_suite(tmp, BASE)), timeout=200, env=env)
        lines = [x for x in out.output.strip().splitlines() if x]
        return out, None if len(lines) == 1 and words in out.output else f"not one line naming {words}"

    return Case(f"env: {var}={value}", body, (2,))


def message_case(label: str, make: Callable[[Path], Path], words: str, command: str = "validate") -> Case:
    def body(tmp: Path) -> tuple[Outcome, str | None]:
        path = make(tmp)
        out = bench(command, str(path), cwd=tmp)
        return out, None if words in out.output else f"message does not name {words!r}"

    return Case(f"message: {label}", body, (2,))


def _utf16(tmp: Path) -> Path:
    p = tmp / "s.yaml"
    p.write_bytes(json.dumps(BASE).encode("utf-16"))
    return p


def _binary(tmp: Path) -> Path:
    p = tmp / "s.yaml"
    p.write_bytes(bytes(range(256)) * 8)
    return p


def _chain(tmp: Path) -> Path:
    write_suite(tmp, BASE, "base.yaml")
    n = 1200
    for i in range(n):
        (tmp / f"c{i}.yaml").write_text(
            f"include: {'c' + str(i + 1) if i < n - 1 else 'base'}.yaml\n" + ("name: chain\n" if i == 0 else "")
        )
    return tmp / "c0.yaml"


def _huge_dim(tmp: Path) -> Path:
    return write_suite(tmp, {**BASE, "adapters": {"transformer_gan": {"dim": 65536, "depth": 2}}})


def closed_stdout(tmp: Path) -> tuple[Outcome, str | None]:
    """stdout closed by its reader (`bench run … | head -c0`) after the runs: the runs' exit code, not 2."""
    path = write_suite(tmp, BASE)
    r, w = os.pipe()
    os.close(r)  # the reader is gone before the first line
    try:
        p = subprocess.run([*BENCH, *run_args(path)], cwd=tmp, stdout=w, stderr=subprocess.PIPE, text=True, timeout=300)
    finally:
        os.close(w)
    out = Outcome(p.returncode, p.stderr)
    done = (tmp / "runs" / "sweep" / "results.csv").is_file()
    return out, None if done else "no results.csv"


def env_message_cases() -> list[Case]:
    return [
        env_case("BENCH_LOCK_STALE_SECONDS", "-5", "BENCH_LOCK_STALE_SECONDS"),
        env_case("BENCH_LOCK_STALE_SECONDS", "abc", "BENCH_LOCK_STALE_SECONDS"),
        env_case("BENCH_LOCK_STALE_SECONDS", "1", "BENCH_LOCK_STALE_SECONDS"),
        env_case("BENCH_LIMITS", "steps=lots", "BENCH_LIMITS"),
        env_case("BENCH_DATA", "FILE", "BENCH_DATA"),
        message_case("UTF-16 suite file", _utf16, "UTF-16"),
        message_case("binary suite file", _binary, "binary"),
        message_case("include chain of 1200 files", _chain, "c0.yaml: include"),
        message_case("ViT dim 65536 (allocation fails)", _huge_dim, "adapters.transformer_gan.dim"),
        Case("message: stdout closed before the runs end", closed_stdout, (0,)),
    ]


# --- reports that would mix -------------------------------------------------------------------------
def _report(tmp: Path, tamper: Callable[[Path, Path], None], words: str) -> tuple[Outcome, str | None]:
    sdir = finished(tmp)
    n = len(list(sdir.glob("*/result.json")))
    tamper(tmp, sdir)
    out = bench("report", str(sdir), "--out", "rep2", cwd=tmp)
    rows = list(csv.DictReader((sdir / "results.csv").open()))
    if len(rows) != n:
        return out, f"results.csv has {len(rows)} rows, the suite's grid {n}"
    return out, None if words in out.output else f"no line saying {words!r}"


def _foreign(tmp: Path, sdir: Path) -> None:
    other = tmp / "other"
    other.mkdir()
    run(other, with_("name", "othersuite"))
    src = next((other / "runs" / "othersuite").glob("*-s0-*/result.json")).parent  # renamed to -s7- below: must be an s0 run
    import shutil

    shutil.copytree(src, sdir / (src.name.replace("-s0-", "-s7-")))
    res = json.loads((sdir / src.name.replace("-s0-", "-s7-") / "result.json").read_text())
    res["run_id"] = src.name.replace("-s0-", "-s7-")
    (sdir / res["run_id"] / "result.json").write_text(json.dumps(res))


def _old_protocol(tmp: Path, sdir: Path) -> None:
    src = sorted(sdir.glob("*/result.json"))[0].parent
    dst = sdir / (src.name[:-8] + "0badc0de")
    import shutil

    shutil.copytree(src, dst)
    res = json.loads((dst / "result.json").read_text())
    res["run_id"], res["spec"]["protocol_version"] = dst.name, "1"
    res["metrics"] = {k: 999.0 for k in res["metrics"]}
    (dst / "result.json").write_text(json.dumps(res))


def _older_cell(tmp: Path, sdir: Path) -> None:
    src = sorted(sdir.glob("*/result.json"))[0].parent
    dst = sdir / (src.name[:-8] + "0ldc0de0")
    import shutil

    shutil.copytree(src, dst)
    res = json.loads((dst / "result.json").read_text())
    res["run_id"], res["finished_at"] = dst.name, "2000-01-01T00:00:00+0000"
    res["metrics"] = {k: 999.0 for k in res["metrics"]}
    (dst / "result.json").write_text(json.dumps(res))


def mixing_cases() -> list[Case]:
    return [
        Case("mixing: a run folder copied from another suite -> report", lambda t: _report(t, _foreign, "another suite"), (0,)),
        Case("mixing: a protocol-1 result beside protocol-2 -> report", lambda t: _report(t, _old_protocol, "protocol 1"), (0,)),
        Case("mixing: an older run of the same cell -> report", lambda t: _report(t, _older_cell, "older than"), (0,)),
    ]


# --- caches -------------------------------------------------------------------------------------------
CACHED = {
    **BASE,
    "eval": {"num_samples": 40, "metrics": ["bpd", "fid_domain"]},
    "seeds": [0],
    "strategies": {"gen": {"task": "generative", "source": {"name": "digits", "classes": [0, 1, 2, 3, 4]}, "steps": 3}},
}


def _flip(path: Path, where: float = 0.9, bit: int = 1) -> None:
    data = bytearray(path.read_bytes())
    i = int(len(data) * where)
    data[i] ^= bit
    path.write_bytes(bytes(data))


def _metrics(tmp: Path) -> dict:
    rows = list(csv.DictReader((tmp / "runs" / "sweep" / "results.csv").open()))
    return {r["run_id"]: (r.get("fid_domain"), r.get("bpd")) for r in rows}


def cache_case(label: str, target: Callable[[Path], list[Path]], where: float, bit: int) -> Case:
    def body(tmp: Path) -> tuple[Outcome, str | None]:
        # Real processes: this one's memo of the domain classifier would otherwise skip the disk cache.
        path = write_suite(tmp, CACHED)
        first = proc(tmp, *run_args(path), timeout=600)
        if first.code != 0:
            return first, "the first run failed"
        before = _metrics(tmp)
        files = target(tmp / "runs" / ".cache")
        if not files:
            return first, "no cache entry of this kind"
        for f in files:
            _flip(f, where, bit)
        out = proc(tmp, *run_args(path, "--force"), timeout=600)
        after = _metrics(tmp)
        if after != before:
            return out, f"numbers changed: {before} -> {after}"
        return out, None if "warning: cache entry" in out.output else "no warning line naming the entry"

    return Case(f"cache: {label}", body, (0,))


def cache_cases() -> list[Case]:
    feats = lambda c: sorted((c / "features").glob("*.safetensors"))  # noqa: E731
    return [
        cache_case("real features, one low bit flipped", feats, 0.9, 1),
        cache_case("real features, an exponent bit flipped", feats, 0.9, 0x40),
        cache_case("real features, header byte flipped", feats, 0.001, 0x20),
        cache_case("domain classifier weights, one bit", lambda c: sorted((c / "domain").glob("*.safetensors")), 0.9, 1),
        cache_case("domain classifier record, one digit", lambda c: sorted((c / "domain").glob("*.json")), 0.5, 1),
        cache_case("pretrained checkpoint weights, one bit", lambda c: sorted((c / "pretrain").glob("*/weights.safetensors")), 0.9, 1),
        cache_case("pretrained checkpoint meta.json, one bit", lambda c: sorted((c / "pretrain").glob("*/meta.json")), 0.5, 1),
    ]


def reliability_cases() -> list[Case]:
    return [*cache_cases(), *adapter_cases(), *mixing_cases(), *hang_cases(), *signal_cases(), *env_message_cases()]
