"""Are two runs of the same suite bit-identical? For refactors that must not change a number.

    python benchmarks/compare_runs.py /tmp/before/smoke /tmp/after/smoke
    python benchmarks/compare_runs.py --by-name /tmp/before/smoke /tmp/after/smoke   # across a code change

A change to the harness's code changes every run id (its hash covers the code), so `--by-name` pairs runs by
their readable name (adapter-strategy-[point-]seed: the id without its hash) instead of by id.

Compares, for every run present on both sides: the status, every metric except the wall-clock ones (as the
float64's bits), the first losses, and history.csv without its train_seconds column (as text); then
results.csv's non-timing columns as text (pandas writes the shortest round-trip repr, so equal text is equal
bits). Exits 1 when anything differs or no run was compared.
"""

from __future__ import annotations

import argparse
import json
import struct
import sys
from pathlib import Path

import pandas as pd

TIMING = {"pretrain_seconds", "train_seconds", "eval_seconds", "total_seconds", "images_per_second", "peak_memory_mb"}


def bits(v: float | None) -> str | None:
    return None if v is None else struct.pack(">d", float(v)).hex()


def text_csv(path: Path, drop: set[str], by_name: bool = False) -> pd.DataFrame:
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    if by_name:
        df = df.assign(run_id=df["run_id"].map(name)).sort_values("run_id").reset_index(drop=True)
    return df[[c for c in df.columns if c not in drop]]


def name(run_id: str) -> str:
    """The run id without its hash: adapter-strategy-[point-]s<seed>."""
    return run_id.rsplit("-", 1)[0]


def compare_run(a: Path, b: Path) -> list[str]:
    """What differs between one run's folders (empty: identical)."""
    ra, rb = (json.loads((d / "result.json").read_text()) for d in (a, b))
    out = [] if ra["status"] == rb["status"] else [f"status {ra['status']} != {rb['status']}"]
    ma, mb = ({k: v for k, v in r["metrics"].items() if k not in TIMING} for r in (ra, rb))
    out += [f"metric {k}" for k in sorted(set(ma) | set(mb)) if bits(ma.get(k)) != bits(mb.get(k))]
    fa, fb = ra.get("first_losses") or {}, rb.get("first_losses") or {}
    out += [f"first loss {k}" for k in sorted(set(fa) | set(fb)) if bits(fa.get(k)) != bits(fb.get(k))]
    if not text_csv(a / "history.csv", {"train_seconds"}).equals(text_csv(b / "history.csv", {"train_seconds"})):
        out.append("history.csv")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("before", type=Path, help="runs/<suite> folder of the reference")
    ap.add_argument("after", type=Path, help="runs/<suite> folder to check")
    ap.add_argument("--by-name", action="store_true", help="pair runs by name (the id without its hash), across code changes")
    args = ap.parse_args()
    key = name if args.by_name else (lambda rid: rid)
    runs = {side: {key(p.parent.name): p.parent for p in d.glob("*/result.json")} for side, d in (("a", args.before), ("b", args.after))}
    common = sorted(set(runs["a"]) & set(runs["b"]))
    print(f"runs finished: before {len(runs['a'])}, after {len(runs['b'])}; compared {len(common)}")
    bad = 0
    for rid in common:
        diff = compare_run(runs["a"][rid], runs["b"][rid])
        bad += bool(diff)
        print(f"  {rid}: {'identical' if not diff else 'DIFFERENT: ' + ', '.join(diff)}")
    ca, cb = args.before / "results.csv", args.after / "results.csv"
    if ca.exists() and cb.exists():
        ta, tb = text_csv(ca, TIMING, args.by_name), text_csv(cb, TIMING, args.by_name)
        same = ta.equals(tb)
        bad += not same
        print(f"results.csv: {len(ta)} rows x {ta.shape[1]} columns (timings aside): {'identical' if same else 'DIFFERENT'}")
    else:
        print("results.csv: not on both sides yet (written when a suite finishes)")
    return 1 if bad or not common else 0


if __name__ == "__main__":
    sys.exit(main())
