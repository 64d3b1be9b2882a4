"""Fault sweep: replay hostile and unlucky inputs against the real `bench` command, one process per case.

Not a unit test (it takes minutes and mounts file systems): run it before resolving a robustness issue
and paste the summary.

    python benchmarks/fault_sweep.py [--only SUBSTRING] [--keep] [--subprocess]

Every case prints one line: its name, the exit code, whether a Python traceback appeared, and whether the
outcome was the expected one (exit code and the case's own check). The bar is 0 tracebacks. Groups: bad
names; bad values (NaN/inf, limits, duplicate keys, alias bombs, oversized files, a non-suite include);
corrupted and mistyped result files; kills during reporting; concurrent renders; file-system faults
(read-only, full, a folder or a file in the wrong place; these need root for mount and are skipped
otherwise); leftover temp files and file modes.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _faults  # noqa: E402
from _faults import BASE, BENCH, Case, Outcome, bench, finished, links_ok, run, validate, with_, write_suite  # noqa: E402
from _faults_fs import fs_cases, other_cases  # noqa: E402
from _faults_rel import reliability_cases  # noqa: E402


# --- names and values ---------------------------------------------------------------------------------
def bomb(level: int = 8) -> str:
    if level == 0:
        return "&a0 [" + ", ".join(["lol"] * 9) + "]"
    return f"&a{level} [{bomb(level - 1)}, " + ", ".join([f"*a{level - 1}"] * 8) + "]"


BOMB_PATHS = [
    "name",
    "description",
    "seeds",
    "dataset.name",
    "dataset.classes",
    "eval.metrics",
    "eval.num_samples",
    "budget.steps",
    "adapters.dummy.lr",
    "adapters.dummy",
    "strategies.other",
    "strategies.other.task",
    "strategies.other.freeze",
    "strategies.other.parts",
    "strategies.other.source",
    "runner.threads",
    "version",
]


def bomb_text(path: str) -> str:
    return yaml.safe_dump(with_(path, "BOMB_HERE"), default_flow_style=False, sort_keys=False).replace("BOMB_HERE", bomb())


def csv_check(tmp: Path) -> tuple[Outcome, str | None]:
    import csv

    out = run(tmp, with_("strategies", {'=HYPERLINK("evil")': {}, "@sum": {}}))
    path = tmp / "runs" / "sweep" / "results.csv"
    cells = [row["strategy"] for row in csv.DictReader(path.open())] if path.is_file() else []
    bad = [c for c in cells if c[:1] in "=+-@"]
    return out, (f"formula cell in results.csv: {bad[0][:60]}" if bad else None if cells else "no results.csv")


def shadow(tmp: Path) -> tuple[Outcome, str | None]:
    secret = tmp / "shadow"
    secret.write_text("root:$6$s3cr3tHash:20228:0:99999:7:::\n")
    out = bench("validate", str(write_suite(tmp, {"include": str(secret), "name": "x"})), cwd=tmp)
    return out, ("echoed the included file" if "s3cr3t" in out.output else None)


def big_file(tmp: Path) -> tuple[Outcome, str | None]:
    path = tmp / "s.yaml"
    with path.open("w") as f:
        f.write("name: big\ndataset: {name: digits}\nadapters: {dummy: {}}\nseeds: [")
        f.write(",".join(map(str, range(2_000_000))) + "]\n")
    t0 = time.perf_counter()
    out = bench("validate", str(path), cwd=tmp)
    return out, (None if time.perf_counter() - t0 < 30 else "took over 30 s")


def name_cases() -> list[Case]:
    cases = [
        Case("name: strategy of 100 emoji (400 bytes)", validate(with_("strategies", {"😀" * 100: {}}))),
        Case("name: suite name of 40 emoji", validate(with_("name", "😀" * 40))),
        Case("name: strategy with '/'", validate(with_("strategies", {"a/b": {}}))),
        Case("name: '$' in strategy names, run + report", lambda t: _dollar(t), (0,)),
        Case("name: formula strategy names in results.csv", csv_check, (0,)),
    ]
    return cases


def _dollar(tmp: Path) -> tuple[Outcome, str | None]:
    out = run(tmp, with_("strategies", {"a$b": {}, "$x^{$": {}, "scratch": {}}))
    return out, links_ok(tmp / "rep" / "sweep" / "index.html")


def value_cases() -> list[Case]:
    cases = [Case(f"value: adapters.dummy.lr = {v}", validate(with_("adapters.dummy.lr", float(v)))) for v in ("nan", "inf", "-inf")]
    cases += [
        Case("value: strategy lr = nan", validate(with_("strategies.other", {"task": "scratch", "lr": float("nan")}))),
        Case("limit: eval.num_samples = 10**12", validate(with_("eval.num_samples", 10**12))),
        Case("limit: budget.steps = 2**70", validate(with_("budget.steps", 2**70))),
        Case("limit: duplicate key", validate("name: a\nname: b\ndataset: {name: digits}\nadapters: {dummy: {}}\n")),
        Case("limit: 2M-entry seed list (16 MB file)", big_file),
        Case("leak: include of a shadow-like file", shadow),
    ]
    cases += [Case(f"bomb: 9-level alias bomb in {p}", validate(bomb_text(p))) for p in BOMB_PATHS]
    return cases


# --- corrupted and mistyped result files --------------------------------------------------------------
TAMPER = {
    "env: string": lambda r: {**r, "env": "x"},
    "spec: string": lambda r: {**r, "spec": "x"},
    "timings: string": lambda r: {**r, "timings": "x"},
    "protocol: string": lambda r: {**r, "protocol": "x"},
    "metric_info: string": lambda r: {**r, "metric_info": "x"},
    "seed: 'abc'": lambda r: {**r, "seed": "abc"},
    "adapter: list": lambda r: {**r, "adapter": ["a"]},
    "strategy: dict": lambda r: {**r, "strategy": {"a": 1}},
    "metrics: string": lambda r: {**r, "metrics": "x"},
    "metrics: value string": lambda r: {**r, "metrics": {"bpd": "x"}},
    "status: unknown": lambda r: {**r, "status": "weird"},
    "error: dict": lambda r: {**r, "status": "failed", "error": {"a": 1}},
    "not_applicable: list": lambda r: {**r, "not_applicable": [1]},
    "finished_at: number": lambda r: {**r, "finished_at": 5},
    "whole file: list": lambda r: [r],
}
RAW = {"truncated JSON": lambda t: t[: len(t) // 2], "empty file": lambda t: "", "NaN literal": lambda t: t.replace("{", '{"x": NaN,', 1)}


def tamper_case(label: str, command: str) -> Case:
    def body(tmp: Path) -> tuple[Outcome, str | None]:
        sdir = finished(tmp)
        target = sorted(sdir.glob("*/result.json"))[0]
        text = target.read_text()
        target.write_text(RAW[label](text) if label in RAW else json.dumps(TAMPER[label](json.loads(text))))
        if command == "report":
            out = bench("report", str(sdir), "--out", "rep2", cwd=tmp)
            return out, links_ok(tmp / "rep2" / "index.html") if out.code == 0 else None
        return run(tmp, BASE), links_ok(tmp / "rep" / "sweep" / "index.html")

    return Case(f"result: {label} -> bench {command}", body, (0, 1))


def result_cases() -> list[Case]:
    return [tamper_case(label, cmd) for label in [*TAMPER, *RAW] for cmd in ("report", "run")]


# --- kills during reporting, concurrent renders -------------------------------------------------------
def kill_case(delay: float) -> Case:
    def body(tmp: Path) -> tuple[Outcome, str | None]:
        sdir = finished(tmp)
        shutil.rmtree(tmp / "rep", ignore_errors=True)
        # A complete report, newer than every result: a kill while it is redrawn must not leave a report
        # that a rerun then takes for current.
        first = bench("report", str(sdir), "--out", "rep/sweep", cwd=tmp)
        p = subprocess.Popen(
            [*BENCH, "report", str(sdir), "--out", "rep/sweep"], cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        rep = tmp / "rep"
        deadline = time.time() + 120
        while time.time() < deadline and p.poll() is None:  # wait until rendering has begun, then kill
            if not (rep / "sweep" / "img").is_dir() or any(x.name.startswith(".sweep.render-") for x in rep.iterdir()):
                break
            time.sleep(0.01)
        time.sleep(delay)
        p.send_signal(signal.SIGKILL)
        p.wait()
        out = run(tmp, BASE)
        out.output = first.output + out.output
        return out, links_ok(tmp / "rep" / "sweep" / "index.html")

    return Case(f"kill: -9 {delay:.2f}s into a render by `bench report`, then `bench run`", body, (0,))


def concurrent(tmp: Path) -> tuple[Outcome, str | None]:
    sdir = finished(tmp)
    procs = [
        subprocess.Popen(
            [*BENCH, "report", str(sdir), "--out", "rep/sweep"], cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        for _ in range(4)
    ]
    outs = [p.communicate()[0] for p in procs]
    code = max(p.returncode for p in procs)
    leftovers = [p.name for p in (tmp / "rep").iterdir() if p.name.startswith(".")]
    return Outcome(code, "\n".join(outs)), links_ok(tmp / "rep" / "sweep" / "index.html") or (f"left {leftovers}" if leftovers else None)


def render_cases() -> list[Case]:
    return [*(kill_case(d) for d in (0.0, 0.05, 0.2, 0.5, 1.0)), Case("concurrent: 4 renders of one report", concurrent, (0,))]


# --- driver -------------------------------------------------------------------------------------------
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="", help="run only cases whose name contains this")
    ap.add_argument("--skip", action="append", default=[], help="skip cases whose name contains this (repeatable)")
    ap.add_argument("--keep", action="store_true", help="keep the case folders (printed)")
    ap.add_argument("--subprocess", action="store_true", help="every case as a real `bench` process (slow)")
    ap.add_argument("--reliability", action="store_true", help="only the reliability cases (benchmarks/_faults_rel.py)")
    args = ap.parse_args()
    _faults.SUBPROCESS = args.subprocess
    every = (*name_cases(), *value_cases(), *result_cases(), *render_cases(), *fs_cases(), *other_cases())
    cases = [
        c
        for c in (*([] if args.reliability else every), *reliability_cases())
        if args.only in c.name and not any(k in c.name for k in args.skip)
    ]
    root = Path(tempfile.mkdtemp(prefix="fault_sweep_"))
    tracebacks = unexpected = 0
    kinds: dict[str, list[int]] = {}  # kind -> [cases, tracebacks, hangs, unexpected]
    t0 = time.perf_counter()
    for i, case in enumerate(cases):
        tmp = root / f"case{i:03d}"
        tmp.mkdir()
        try:
            out, problem = case.body(tmp)
        except Exception as err:  # the sweep's own check broke: count it, never hide it
            out, problem = Outcome(None, ""), f"sweep error {type(err).__name__}: {err}"
        except BaseException as err:  # escaped `bench` in this process (SystemExit, BaseException): a traceback
            if isinstance(err, KeyboardInterrupt) and not isinstance(getattr(err, "__context__", None), BaseException):
                raise
            out, problem = Outcome(None, f"Traceback (most recent call last): {type(err).__name__}: {err}"), "escaped the command"
        ok = out.code in case.expect and not out.traceback and problem is None
        tracebacks += out.traceback
        unexpected += not ok
        k = kinds.setdefault(case.name.split(":")[0], [0, 0, 0, 0])
        k[0] += 1
        k[1] += out.traceback
        k[2] += out.code is None and "hang" in out.output[:40]
        k[3] += not ok
        skipped = out.output.startswith("skipped")
        verdict = "skip" if skipped else "ok" if ok else f"UNEXPECTED{': ' + problem if problem else ''}"
        print(f"{case.name[:70]:<70} exit={out.code!s:<4} traceback={'YES' if out.traceback else 'no ':<3}  {verdict}", flush=True)
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"\n{'kind':<10} {'cases':>5} {'tracebacks':>10} {'hangs':>5} {'unexpected':>10}")
    for kind, (n, tb, hangs, bad) in kinds.items():
        print(f"{kind:<10} {n:>5} {tb:>10} {hangs:>5} {bad:>10}")
    print(f"\n{len(cases)} cases in {time.perf_counter() - t0:.0f}s: {tracebacks} tracebacks, {unexpected} unexpected outcomes")
    print(f"case folders: {root}" if args.keep else "", end="")
    shutil.rmtree(Path(tempfile.gettempdir()) / f"fault_sweep_finished_{os.getpid()}", ignore_errors=True)
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    return 1 if tracebacks else 0


if __name__ == "__main__":
    sys.exit(main())
