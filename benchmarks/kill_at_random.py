"""Kill a suite with SIGKILL at random moments, resume it each time, and check that it ends exactly as an
uninterrupted run of the same suite does.

The suite is small (the dummy adapter, a generative-pretraining strategy and fid_domain, so that pretraining,
the pretraining cache, the domain classifier cache and checkpoints are all in play). Every launch is a
`bench run` in a subprocess (its own process group, killed whole). To aim the kills, the subprocess runs the
bench CLI through a thin wrapper that records the phase it is in (pretraining, training, evaluation, report)
in a marker file; the harness itself is unchanged. Each launch aims at a phase (see `plan`: all four are covered),
waits until the subprocess is in it, waits a further random 0-`--jitter` seconds and kills it; the phase it was
really in at that instant is what is counted. Runs left unfinished make later launches train again; once
every run is done, later launches are killed while they write the tables and the report.

At the end one launch runs to completion, and then:
- results.csv equals the uninterrupted reference's on every column except wall-clock costs (and which run
  found the pretraining cache warm);
- every run's history.csv numbers are equal too;
- no lock file and no temp file is left behind.

    .venv/bin/python benchmarks/kill_at_random.py [--kills 24] [--seed 0] [--jitter 2]
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import yaml
from _common import machine

ROOT = Path(__file__).resolve().parents[1]
PHASES = ("pretraining", "training", "evaluation", "report")
SETTLE = 0.1  # seconds a "training" mark must last before a kill aimed at training
ORDER = {"pretraining": 0, "training": 1, "evaluation": 1, "report": 2}  # how a suite moves through them
NOT_COMPARED = {
    "pretrain_cached",
    "pretrain_seconds",
    "train_seconds",
    "eval_seconds",
    "total_seconds",
    "images_per_second",
    "peak_memory_mb",
}

SUITE = {
    "name": "killme",
    "dataset": {"name": "digits"},
    "budget": {"steps": 600, "eval_every": 300, "batch_size": 32},
    "eval": {"num_samples": 200, "metrics": ["bpd", "fid_domain", "modes"]},
    "seeds": [0, 1],
    "adapters": {"dummy": {}},
    # gen first: its first run pretrains at once (later ones hit the cache), so pretraining comes early.
    "strategies": {"gen": {"task": "generative", "source": {"name": "digits", "classes": [0, 1, 2, 3, 4]}, "steps": 1500}, "scratch": {}},
    "runner": {"threads": 1, "log_every": 10, "checkpoint_every": 20},
}

# Runs in the subprocess: mark the phase around the harness's own functions, then run the CLI as `bench run`.
WRAPPER = r"""
import sys
from pathlib import Path
marker = Path(sys.argv[1])

def mark(phase):
    marker.write_text(phase)

def around(owner, name, phase, after=None):
    fn = getattr(owner, name, None)
    if fn is None:  # the harness was refactored: point the wrapper at the new names
        sys.exit(f"kill_at_random: {owner.__name__}.{name} not found; update WRAPPER in benchmarks/kill_at_random.py")
    def wrapped(*a, **k):
        mark(phase)
        try:
            return fn(*a, **k)
        finally:
            if after:
                mark(after)
    setattr(owner, name, wrapped)

import bench.stats.aggregate, bench.api, bench.runner.evaluation, bench.runner.loop, bench.runner.run
around(bench.runner.run, "pretrain", "pretraining", after="training")
around(bench.runner.loop.TrainingLoop, "__call__", "training")
around(bench.runner.evaluation.Evaluator, "periodic", "evaluation", after="training")
around(bench.runner.evaluation.Evaluator, "final", "evaluation")
around(bench.stats.aggregate, "write_tables", "report")
around(bench.api, "render_report", "report")
mark("start")
from bench.cli import main
main(["run", *sys.argv[2:]], prog_name="bench")
"""


def command(suite: Path, out: Path, marker: Path) -> list[str]:
    return [sys.executable, "-c", WRAPPER, str(marker), str(suite), "--out", str(out / "runs"), "--reports", str(out / "reports")] + [
        "--device",
        "cpu",
        "--quiet",
    ]


def table(path: Path) -> dict[str, dict[str, str]]:
    with open(path) as f:
        return {row["run_id"]: {k: v for k, v in row.items() if k not in NOT_COMPARED} for row in csv.DictReader(f)}


def histories(suite_dir: Path) -> dict[str, list[dict[str, str]]]:
    out = {}
    for h in sorted(suite_dir.glob("*/history.csv")):
        with open(h) as f:
            out[h.parent.name] = [{k: v for k, v in r.items() if k != "train_seconds"} for r in csv.DictReader(f)]
    return out


def phase_of(marker: Path) -> str:
    try:
        return marker.read_text() or "start"
    except OSError:
        return "start"


def launch_and_kill(cmd: list[str], marker: Path, target: str, jitter: float, rng: random.Random, timeout: float) -> str | None:
    """Start a launch and kill it once it is in `target`, or in a later phase when `target` cannot come any
    more (pretraining is gone once the cache holds the checkpoint; training is gone once every run is done).
    Returns the phase it was in at the kill, or None when it finished first."""
    marker.write_text("start")
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    t0, since = time.perf_counter(), None
    try:
        while proc.poll() is None and time.perf_counter() - t0 < timeout:
            phase = phase_of(marker)
            if phase != target:
                since = None
            elif since is None:
                since = time.perf_counter()
            # Training shows only briefly between evaluations: it must have lasted SETTLE s (not just the mark
            # before the step-0 evaluation), and the kill comes within a short jitter so it lands inside it.
            settled = since is not None and (target != "training" or time.perf_counter() - since >= SETTLE)
            if settled or (phase != "start" and ORDER[phase] > ORDER[target]):
                time.sleep(rng.uniform(0, jitter if target != "training" else SETTLE * 3))
                killed_in = phase_of(marker)
                if proc.poll() is not None:
                    return None
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                return killed_in
            time.sleep(0.01)
        return None
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def plan(kills: int, rng: random.Random) -> list[str]:
    """The phases to aim at, in an order the suite can follow: a quarter at pretraining, then training and
    evaluation shuffled, then a quarter at the tables and report (which only come once every run is done)."""
    edge = max(1, kills // 4)
    middle = [("training", "evaluation")[i % 2] for i in range(kills - 2 * edge)]
    rng.shuffle(middle)
    return ["pretraining"] * edge + middle + ["report"] * edge


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kills", type=int, default=24, help="SIGKILLs to deliver (>= 20 covers each phase several times)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jitter", type=float, default=2.0, help="random extra wait (s) after the phase is reached")
    ap.add_argument("--keep", type=Path, default=None, help="keep the run folders here instead of a temp folder")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # so a launch in flight is killed on the way out
    print(machine())
    with tempfile.TemporaryDirectory(prefix="kill-at-random-") as tmp_name:
        tmp = args.keep or Path(tmp_name)
        tmp.mkdir(parents=True, exist_ok=True)
        suite = tmp / "killme.yaml"
        suite.write_text(yaml.safe_dump(SUITE, sort_keys=False))
        ref, out, marker = tmp / "reference", tmp / "killed", tmp / "phase"
        t = time.perf_counter()
        ref_run = subprocess.run(command(suite, ref, marker), cwd=ROOT, capture_output=True, text=True)
        if ref_run.returncode != 0:
            sys.exit(f"the uninterrupted reference failed ({ref_run.returncode}):\n{ref_run.stdout[-3000:]}\n{ref_run.stderr[-3000:]}")
        print(f"uninterrupted reference: {time.perf_counter() - t:.1f} s")

        kills: list[str] = []
        launches = 0
        for target in plan(args.kills, rng):
            phase = None
            while phase is None:  # a launch that finished before its kill is not counted; aim again
                launches += 1
                phase = launch_and_kill(command(suite, out, marker), marker, target, args.jitter, rng, timeout=600)
            kills.append(phase)
            print(f"kill {len(kills):2d}: aimed at {target:<11} killed in {phase}", flush=True)
        final = subprocess.run(command(suite, out, marker), cwd=ROOT, capture_output=True, text=True)
        if final.returncode != 0:
            sys.exit(f"the final resume failed ({final.returncode}):\n{final.stdout[-3000:]}\n{final.stderr[-3000:]}")

        a, b = table(ref / "runs" / "killme" / "results.csv"), table(out / "runs" / "killme" / "results.csv")
        diffs = [
            f"{rid}.{k}: {a.get(rid, {}).get(k)} != {b.get(rid, {}).get(k)}"
            for rid in sorted(set(a) | set(b))
            for k in sorted(set(a.get(rid, {})) | set(b.get(rid, {})))
            if a.get(rid, {}).get(k) != b.get(rid, {}).get(k)
        ]
        same_history = histories(ref / "runs" / "killme") == histories(out / "runs" / "killme")
        leftovers = [str(p.relative_to(out)) for p in out.rglob("*") if p.name.endswith((".lock", ".tmp", ".break")) or ".tmp-" in p.name]
        print(f"\n{len(kills)} SIGKILLs in {launches} launches; killed in: {dict(Counter(kills))}")
        print(f"results.csv vs uninterrupted: {len(a)} runs, {len(diffs)} differing values" + "".join(f"\n  {d}" for d in diffs[:20]))
        print(f"history.csv numbers equal: {same_history}; leftover lock/temp files: {leftovers or 'none'}")
        if diffs or not same_history or leftovers or len(a) != len(b):
            sys.exit(1)
        print("OK: the killed-and-resumed suite ends identical to the uninterrupted one")


if __name__ == "__main__":
    main()
