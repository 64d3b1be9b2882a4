"""Does a suite slow down in proportion when the machine is shared, or fall off a cliff?

Runs `bench run SUITE` (default smoke; `--only GLOB` for a subset) with the default settings, as a subprocess
into a fresh out folder, first alone and then beside N busy processes (`python -c "while True: pass"`, each
bounded in time and killed when its phase ends) for each N in --busy. Every phase starts from the same warm
cache (a first, untimed pass trains the domain classifier and fills the pretraining cache), so the phases
differ only in what runs beside them.

The fair share: alone, the suite keeps k cores busy on average (k = its CPU seconds / its wall seconds, over
all its processes). Beside N busy processes on C usable cores, a fair scheduler gives each runnable thread
C / (N + k) of a core once N + k > C, so the fair slowdown is max(1, (N + k) / C). A suite that slows
much more than that loses time to its own threads waiting for each other (an OpenMP barrier waiting for a
descheduled thread), which is the cliff. On a machine that other jobs already load, "alone" is not alone:
the load average is printed beside every phase; compare only ratios printed by one invocation.

    .venv/bin/python benchmarks/contention.py [--suite suites/smoke.yaml] [--only 'cnn_gan-*'] [--busy 1,2]
        [--threads N] [--bench-args '--jobs 1'] [--timeout 900]

`--threads N` runs the suite with `runner.threads: N` overlaid (through `include:`), e.g. to compare the
defaults with the old "every core" behaviour (`--threads 2` on 2 cores). `--bench-args` is passed to
`bench run` as is (e.g. '--jobs 1' for sequential).
"""

from __future__ import annotations

import argparse
import os
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from _common import machine, table

ROOT = Path(__file__).resolve().parents[1]
SPIN = "import time\nend = time.time() + {limit}\nwhile time.time() < end: pass\n"


def usable_cores() -> int:
    sys.path.insert(0, str(ROOT))
    try:
        from bench.core.env import usable_cores as cores  # the layout after issue 20
    except ImportError:
        from bench.env import usable_cores as cores
    return cores()


def load() -> float:
    return os.getloadavg()[0]


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def bench_run(suite: Path, out: Path, cache: Path | None, extra: list[str], timeout: float) -> tuple[float, float, bool]:
    """(wall seconds, CPU seconds of the suite's processes, finished) of one `bench run` into a fresh `out`."""
    shutil.rmtree(out, ignore_errors=True)
    (out / "runs").mkdir(parents=True)
    if cache is not None:
        shutil.copytree(cache, out / "runs" / ".cache")
    cmd = [sys.executable, "-m", "bench.cli", "run", str(suite), "--out", str(out / "runs"), "--reports", str(out / "reports"), "--quiet"]
    cmd += ["--device", "cpu", *extra]
    cpu0, t0 = children_cpu(), time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        text, _ = proc.communicate(timeout=timeout)
        finished = True
    except subprocess.TimeoutExpired:
        proc.kill()  # the suite's own child processes (--jobs workers) exit with it: their queue closes
        text, _ = proc.communicate()
        finished = False
    wall, cpu = time.perf_counter() - t0, children_cpu() - cpu0
    if finished and proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} exited {proc.returncode}:\n{text[-3000:]}")
    return wall, cpu, finished


def spinners(n: int, limit: float) -> list[subprocess.Popen]:
    """n busy processes, each ending by itself after `limit` seconds should this script die first."""
    return [subprocess.Popen([sys.executable, "-c", SPIN.format(limit=limit)]) for _ in range(n)]


def stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        p.kill()
    for p in procs:
        p.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--suite", type=Path, default=ROOT / "suites" / "smoke.yaml")
    ap.add_argument("--only", default=None, metavar="GLOB", help="only the runs matching GLOB (as bench run --only)")
    ap.add_argument("--busy", default="1,2", help="comma-separated numbers of busy processes, one phase each")
    ap.add_argument("--threads", type=int, default=None, help="overlay runner.threads: N on the suite")
    ap.add_argument("--bench-args", default="", help="extra arguments for bench run, e.g. '--jobs 1'")
    ap.add_argument("--timeout", type=float, default=900, help="seconds a phase may take; a slower one is reported as > timeout")
    args = ap.parse_args()
    busy = [int(n) for n in args.busy.split(",") if n.strip()]
    cores = usable_cores()
    extra = [*shlex.split(args.bench_args), *(["--only", args.only] if args.only else [])]
    print(f"start: {machine()}")
    with tempfile.TemporaryDirectory(prefix="contention-") as tmp:
        tmp = Path(tmp)
        suite = args.suite.resolve()
        name = yaml.safe_load(suite.read_text())["name"]  # an including suite names itself

        def overlay(threads: int, folder: str) -> Path:
            (tmp / folder).mkdir()
            path = tmp / folder / suite.name  # the same file and suite name: the same run folders
            path.write_text(f"include: {suite}\nname: {name}\nrunner: {{threads: {threads}}}\n")
            return path

        timed_suite = overlay(args.threads, "threads") if args.threads is not None else suite
        print(f"suite {args.suite.name}{f' --only {args.only}' if args.only else ''}; bench run {' '.join(extra)}"
              f"{f'; runner.threads: {args.threads}' if args.threads is not None else ' (default settings)'}")  # fmt: skip
        # The caches (domain classifier, real features, pretraining) do not depend on the runs' threads: one
        # thread fills them fastest on a shared machine.
        print("warming the caches (untimed, runner.threads: 1)...", flush=True)
        bench_run(overlay(1, "warm-suite"), tmp / "warm", None, extra, args.timeout)
        cache = tmp / "warm" / "runs" / ".cache"
        rows, base_wall, k = [], None, 1.0
        for n in [0, *busy]:
            procs = spinners(n, args.timeout + 60)
            try:
                time.sleep(1.0 if n else 0.0)  # let the spinners start before the clock does
                before = load()
                wall, cpu, finished = bench_run(timed_suite, tmp / f"busy{n}", cache, extra, args.timeout)
                after = load()
            finally:
                stop(procs)
            if n == 0:
                base_wall, k = wall, max(cpu / wall, 1e-3)
            fair = max(1.0, (n + k) / cores)
            slow = wall / base_wall
            stopped = not finished or (n and rows and rows[0][1].startswith(">"))
            shown = f"{wall:.1f}" if finished else f"> {wall:.0f} (stopped)"
            rows.append([f"beside {n} busy" if n else "alone", shown, f"{cpu / wall:.2f}", f"{slow:.2f}x" if not stopped else "n/a (stopped)",
                         f"{fair:.2f}x", f"{slow / fair:.2f}" if not stopped else "n/a", f"{before:.1f} / {after:.1f}"])  # fmt: skip
            print(f"  {rows[-1][0]}: {shown} s", flush=True)
    print(f"\n{cores} usable cores; alone the suite kept k = {k:.2f} cores busy; fair slowdown = max(1, (N + k) / {cores})")
    print(table(rows, ["phase", "wall s", "cores busy", "slowdown", "fair share", "slowdown / fair", "load 1 min before / after"]))
    print(f"end: load average {', '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
