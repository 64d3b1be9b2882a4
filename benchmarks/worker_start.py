"""Where `--jobs` workers come from: spawned (each imports the harness) against forked from the fork server that
imported it once (bench.exec.forkserver, the default where the platform has one), side by side.

Each mode runs a whole suite with the defaults (`bench run`, `--jobs auto`) in a fresh `python` process into its own fresh out
folder, with a copy of one warm extractor cache (so both modes skip the one-time domain classifier alike), timed
from the process's start to its exit. "spawn" patches bench.exec.forkserver.context to return the spawn
context, which is what the harness did before. Modes alternate over --repeats; the median is printed with the
ratio. Wall time only: a forked worker is the fork server's child, not the launcher's, so the launcher's
RUSAGE_CHILDREN does not hold its CPU.

    .venv/bin/python benchmarks/worker_start.py [--suite suites/smoke.yaml] [--repeats 2] [--only GLOB]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import machine, table

ROOT = Path(__file__).resolve().parents[1]

LAUNCH = """
import sys
import multiprocessing as mp
import bench.exec.forkserver as fs
if sys.argv[1] == "spawn":
    fs.context = lambda: mp.get_context("spawn")
from bench.cli import entry
mode, suite, out, only = sys.argv[1:5]
sys.argv = ["bench", "run", suite, "--out", out + "/runs", "--reports", out + "/reports", "--quiet", "--jobs", "auto"]
sys.argv += ["--only", only] if only else []
entry()
"""


def one(mode: str, suite: Path, out: Path, cache: Path, only: str | None) -> float:
    shutil.rmtree(out, ignore_errors=True)
    (out / "runs").mkdir(parents=True)
    shutil.copytree(cache, out / "runs" / ".cache")
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-c", LAUNCH, mode, str(suite), str(out), only or ""], capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        sys.exit(f"{mode} exited {res.returncode}:\n{res.stdout[-2000:]}\n{res.stderr[-2000:]}")
    return wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--suite", type=Path, default=ROOT / "suites" / "smoke.yaml")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--only", default=None, help="run only the runs matching this glob (as bench run --only)")
    args = ap.parse_args()
    print(f"start: {machine()}")
    walls: dict[str, list[float]] = {"spawn": [], "forkserver": []}
    with tempfile.TemporaryDirectory() as tmp:
        warm = Path(tmp) / "warm"  # one run (spawn: no fork server yet) fills the extractor cache both modes copy
        one("spawn", args.suite, warm, _empty(Path(tmp)), args.only)
        cache = warm / "runs" / ".cache"
        for r in range(args.repeats):
            for mode in ("spawn", "forkserver") if r % 2 == 0 else ("forkserver", "spawn"):
                walls[mode].append(one(mode, args.suite, Path(tmp) / mode, cache, args.only))
                print(f"  {mode} repeat {r + 1}: {walls[mode][-1]:.1f} s", flush=True)
    med = {m: statistics.median(v) for m, v in walls.items()}
    rows = [[m, f"{med[m]:.1f}", " ".join(f"{w:.1f}" for w in walls[m]), f"{med[m] / med['spawn']:.2f}"] for m in walls]
    print(table(rows, ["workers", "median wall s", "each", "ratio to spawn"]))
    print(f"end: {machine()}")


def _empty(tmp: Path) -> Path:
    (tmp / "empty-cache").mkdir(exist_ok=True)
    return tmp / "empty-cache"


if __name__ == "__main__":
    main()
