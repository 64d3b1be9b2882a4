"""A suite's cost in CPU seconds, measured on tuning seeds, and what that predicts for its own seeds.

On a shared machine wall time says more about the neighbours than about the suite: at load 10 on 2 cores a
one-thread run gets a fifth of a core. CPU seconds (user + system, of this process and its workers) are what
the suite itself costs, so this script runs the suite (`bench run`, `runner.threads: 1`, `--jobs 1`, each in
a fresh process and a fresh --out, so nothing is cached) on two seed sets, the given ones and their first
seed alone, and splits the CPU time into
- a fixed part, once per suite (the domain extractor, data loading, the report): cpu(1 seed) - per seed;
- a per-seed part: cpu(all given seeds) - cpu(1 seed), divided by the extra seeds;
then predicts the suite's seeds: fixed + per_seed * len(seeds), and the wall time on C idle cores with
`--jobs C` as that divided by C (an estimate: it assumes the runs split evenly and no core is shared).

    python benchmarks/suite_cpu.py suites/mnist5k-fewshot.yaml --seeds 100-101 [--out /tmp/suite_cpu] [--cores 2]

Seeds must be >= 100 (the seeds rule: tuning and sizing never touch the reported seeds).
"""

from __future__ import annotations

import argparse
import copy
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import yaml

TUNING_FLOOR = 100


def child_cpu_seconds() -> float:
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return kids.ru_utime + kids.ru_stime


def measure(suite: dict, seeds: list[int], out: Path) -> tuple[float, float, int]:
    """(cpu seconds, wall seconds, runs) of `bench run` on the suite with `seeds`, in a fresh process and --out."""
    s = copy.deepcopy(suite)
    s["seeds"] = seeds
    s["name"] = f"{suite['name']}-cpu{len(seeds)}"
    s.setdefault("runner", {})["threads"] = 1
    folder = out / s["name"]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "suite.yaml"
    path.write_text(yaml.safe_dump(s, sort_keys=False))
    cmd = [sys.executable, "-m", "bench.cli", "run", str(path), "--out", str(folder / "runs"), "--reports", str(folder / "reports")]
    cpu0, t0 = child_cpu_seconds(), time.perf_counter()
    subprocess.run([*cmd, "--device", "cpu"], check=True, stdout=subprocess.DEVNULL)
    runs = len(list((folder / "runs" / s["name"]).glob("*/result.json")))
    return child_cpu_seconds() - cpu0, time.perf_counter() - t0, runs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("suite", type=Path)
    ap.add_argument("--seeds", default="100-101", help="tuning seeds, e.g. 100-101 (>= 100)")
    ap.add_argument("--out", type=Path, default=Path("/tmp/suite_cpu"))
    ap.add_argument("--cores", type=int, default=2)
    args = ap.parse_args()
    lo, _, hi = args.seeds.partition("-")
    seeds = list(range(int(lo), int(hi or lo) + 1))
    if min(seeds) < TUNING_FLOOR or len(seeds) < 2:
        print(f"error: --seeds needs at least two seeds, all >= {TUNING_FLOOR}", file=sys.stderr)
        sys.exit(2)
    suite = yaml.safe_load(args.suite.read_text())
    load0 = os.getloadavg()
    one = measure(suite, seeds[:1], args.out)
    every = measure(suite, seeds, args.out)
    load1 = os.getloadavg()
    per_seed = (every[0] - one[0]) / (len(seeds) - 1)
    fixed = one[0] - per_seed
    n = len(suite.get("seeds", [0]))
    total = fixed + per_seed * n
    print(f"{args.suite}: cpu seconds, one thread per run, load average {load0[0]:.1f} -> {load1[0]:.1f} on {os.cpu_count()} cpus")
    print(f"  seeds {seeds[:1]}: {one[0]:.0f} cpu s ({one[2]} runs, {one[1]:.0f} s wall)")
    print(f"  seeds {seeds}: {every[0]:.0f} cpu s ({every[2]} runs, {every[1]:.0f} s wall)")
    print(f"  fixed (once per suite): {fixed:.0f} cpu s; per seed: {per_seed:.0f} cpu s")
    print(
        f"  the suite's {n} seeds: {total:.0f} cpu s = {total / 60:.1f} min on one core; about {total / args.cores / 60:.1f} min on {args.cores} idle cores with --jobs {args.cores}"
    )


if __name__ == "__main__":
    main()
