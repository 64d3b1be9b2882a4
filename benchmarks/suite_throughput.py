"""Suite throughput: a whole suite run sequentially, against each way of packing runs onto the device at hand.

Each mode is a `bench run` subprocess on the same suite into its own fresh out folder (cold caches for every
mode alike: each pays for its domain classifier and pretraining once), timed from start to exit, and the
modes are printed side by side: suite wall time, runs per minute, and the ratio to sequential.

- CPU: `--jobs 1` (one process, one run after another: the behaviour before packing) against the default
  `--jobs auto` (one worker per usable core) and `--jobs K` for each K in --jobs-list (default: none). Runs
  use the suite's `runner.threads` (null: one thread) in every mode, so every mode computes the same runs.
- CUDA: the same modes on one GPU (`auto` is 1 there); pass e.g. --jobs-list 2,4,8.

`--repeats R` runs every mode R times, alternating the order, and reports the median. A shared machine's
load changes from minute to minute: compare only numbers printed by one invocation.

    .venv/bin/python benchmarks/suite_throughput.py [--suite suites/smoke.yaml] [--device cpu] [--jobs-list 2,4] [--repeats 1] [--only GLOB]
"""

from __future__ import annotations

import argparse
import csv
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import machine, table

ROOT = Path(__file__).resolve().parents[1]


def children_cpu() -> float:
    """CPU seconds (user + system) of every finished child process so far, workers included."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_mode(suite: Path, device: str, jobs: str, out: Path, only: str | None = None) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds, runs in results.csv) of one `bench run` into a fresh `out`."""
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-m", "bench.cli", "run", str(suite), "--out", str(out / "runs"), "--reports", str(out / "reports")]
    cmd += ["--device", device, "--quiet", "--jobs", str(jobs), *(["--only", only] if only else [])]
    t0, c0 = time.perf_counter(), children_cpu()
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    wall, cpu = time.perf_counter() - t0, children_cpu() - c0
    if res.returncode != 0:
        sys.exit(f"{' '.join(cmd)} exited {res.returncode}:\n{res.stdout[-2000:]}\n{res.stderr[-2000:]}")
    (results,) = (out / "runs").glob("*/results.csv")
    with open(results) as f:
        return wall, cpu, sum(1 for _ in csv.DictReader(f))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--suite", type=Path, default=ROOT / "suites" / "smoke.yaml")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda", "mps"])
    ap.add_argument("--jobs-list", default="", help="comma-separated K of extra --jobs K modes (1 and auto always run)")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--only", default=None, metavar="GLOB", help="only the runs matching GLOB (as bench run --only)")
    args = ap.parse_args()
    modes = ["1", "auto", *(k.strip() for k in args.jobs_list.split(",") if k.strip() and k.strip() not in ("1", "auto"))]
    print(machine())
    walls: dict[str, list[float]] = {k: [] for k in modes}
    cpus: dict[str, list[float]] = {k: [] for k in modes}
    runs = 0
    with tempfile.TemporaryDirectory(prefix="suite-throughput-") as tmp:
        for r in range(args.repeats):
            for k in modes if r % 2 == 0 else modes[::-1]:
                wall, cpu, runs = run_mode(args.suite.resolve(), args.device, k, Path(tmp) / f"jobs{k}", args.only)
                walls[k].append(wall)
                cpus[k].append(cpu)
                print(f"  repeat {r}: --jobs {k}: {wall:.1f} s wall, {cpu:.1f} CPU s; load {os.getloadavg()[0]:.1f}", flush=True)
    seq = statistics.median(walls["1"])
    rows = []
    for k in modes:
        w = statistics.median(walls[k])
        name = {"1": "--jobs 1 (sequential, in one process)", "auto": "--jobs auto (the default)"}.get(k, f"--jobs {k}")
        rows.append([name, f"{w:.1f}", f"{statistics.median(cpus[k]):.1f}", f"{runs / w * 60:.2f}", f"{seq / w:.2f}x"])
    print(
        f"\nsuite {args.suite.name}{f' --only {args.only}' if args.only else ''}, {runs} runs, device {args.device}, median of {args.repeats} repeat(s):"
    )
    print(table(rows, ["mode", "suite wall s", "CPU s (all processes)", "runs/min", "throughput vs sequential"]))
    print(f"end: load average {', '.join(f'{x:.1f}' for x in os.getloadavg())} (other jobs on the machine count in it)")


if __name__ == "__main__":
    main()
