"""Load: a 200-run suite with tiny budgets, in one process, must not grow in memory from run to run.

Generates a suite of dummy (and cnn_gan, when registered) × N seeds with a few training steps each, runs it
in-process through `bench.api.run_suite` (the local executor), records the process RSS after every run
(/proc/self/status VmRSS; no psutil needed) and prints RSS at runs 1, 50, 100 and 200 plus the slope of a
least-squares line over the second half (after warm-up allocations such as the domain classifier). The
report is rendered at the end, as `bench run` would.

    .venv/bin/python benchmarks/load_200_runs.py [--runs 200] [--out /tmp/load200] [--steps 5]
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status (Linux only)")


def slope(ys: list[float]) -> float:
    """Least-squares MB per run."""
    n = len(ys)
    if n < 2:
        return 0.0
    mx, my = (n - 1) / 2, sum(ys) / n
    return sum((i - mx) * (y - my) for i, y in enumerate(ys)) / sum((i - mx) ** 2 for i in range(n))


def build_suite(runs: int, steps: int) -> dict:
    from bench.adapter.base import ADAPTERS

    adapters: dict[str, dict] = {"dummy": {}}
    if "cnn_gan" in ADAPTERS:
        adapters["cnn_gan"] = {}
    seeds = list(range((runs + len(adapters) - 1) // len(adapters)))
    return {
        "name": "load200",
        "description": "benchmarks/load_200_runs.py: many tiny runs, to check memory does not grow",
        "dataset": {"name": "digits"},
        "budget": {"steps": steps, "eval_every": 0, "batch_size": 16},
        "eval": {"num_samples": 100, "metrics": ["bpd", "modes"]},
        "seeds": seeds,
        "adapters": adapters,
        "runner": {"threads": 1, "log_every": steps},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--out", type=Path, default=Path("/tmp/bench_load200"))
    args = ap.parse_args()

    import bench.exec.outcome as executors
    from bench.api import run_suite

    shutil.rmtree(args.out, ignore_errors=True)
    samples: list[float] = []
    original = executors.execute_one

    def measured(*a, **kw):
        res = original(*a, **kw)  # execute_one has already freed the run (gc, CUDA cache) when it returns
        samples.append(rss_mb())
        return res

    executors.execute_one = measured  # run_local looks it up at call time
    suite = build_suite(args.runs, args.steps)
    t0 = time.perf_counter()
    df = run_suite(suite, out=args.out / "runs", reports=args.out / "reports", device="cpu", progress=False)
    seconds = time.perf_counter() - t0
    samples = samples[: args.runs]
    n = len(samples)
    print(f"{len(df)} runs ({', '.join(f'{k}: {v}' for k, v in df['status'].value_counts().items())}) in {seconds:.0f}s")
    for i in (1, 50, 100, 200):
        if i <= n:
            print(f"RSS after run {i:>3}: {samples[i - 1]:8.1f} MB")
    half = samples[n // 2 :]
    print(f"slope over runs {n // 2 + 1}..{n}: {slope(half) * 1000:+.1f} kB/run; over all runs: {slope(samples) * 1000:+.1f} kB/run")
    print(f"report: {df.attrs['report']}")


if __name__ == "__main__":
    main()
