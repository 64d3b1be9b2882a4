"""Tune an adapter's settings the way the seeds rule asks: on seeds >= 100 only, paired against the shipped ones.

Takes a shipped suite, keeps one adapter (and, optionally, some strategies), replaces its seeds with tuning
seeds (refusing any below 100), and runs the shipped settings plus one variant per `--try` through the
harness (`bench run`, one suite per variant, one shared `--out` so the domain extractor is trained once).
Prints per variant and strategy the mean of the metric and the paired difference to the shipped settings
(same strategy, same seed), with a t-test p-value that is *not* corrected: a screen, not a verdict.

    python benchmarks/tune.py suites/digits-strategies.yaml --adapter transformer_gan \\
        --strategies scratch,supervised,photos --seeds 100-104 \\
        --try lr_d=2e-4 --try r1_gamma=0.1 --try d_steps=2 --try ema=0 --try dim=64,heads=4

Each variant's runs are ordinary run folders under OUT/tune-<label>/, so a rerun resumes and the report of
each variant can be opened like any other.
"""

from __future__ import annotations

import argparse
import copy
import subprocess
import sys
from pathlib import Path

import pandas as pd
import yaml
from scipy import stats

ROOT = Path(__file__).resolve().parent.parent
TUNING_FLOOR = 100  # the seeds rule: hyper-parameters are tuned on seeds >= 100; reports use seeds from 0


def fail(message: str) -> None:
    """Bad input: one line on stderr, exit 2 (as `bench` does)."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def parse_seeds(text: str) -> list[int]:
    lo, _, hi = text.partition("-")
    try:
        seeds = list(range(int(lo), int(hi) + 1)) if hi else [int(s) for s in text.split(",")]
    except ValueError:
        fail(f"--seeds {text}: expected a range lo-hi or a comma list of integers, e.g. 100-104")
    if min(seeds) < TUNING_FLOOR:
        fail(f"--seeds {text}: tuning uses seeds >= {TUNING_FLOOR} only; the reported seeds start at 0")
    return seeds


def _scalar(text: str) -> object:
    """A number when it reads as one (`2e-4` too, which YAML 1.1 keeps as text), else the YAML scalar."""
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return yaml.safe_load(text)


def parse_try(text: str) -> dict:
    """`lr_d=2e-4,heads=4` → {'lr_d': 0.0002, 'heads': 4} (values read as YAML scalars)."""
    out = {}
    for pair in filter(None, text.split(",")):
        key, eq, value = pair.partition("=")
        if not eq:
            fail(f"--try {text}: expected key=value[,key=value]")
        out[key.strip()] = _scalar(value)
    return out


def variant_suites(suite: dict, adapter: str, strategies: list[str], seeds: list[int], tries: list[dict]) -> dict[str, dict]:
    if adapter not in suite.get("adapters", {}):
        fail(f"--adapter {adapter}: not in the suite's adapters ({', '.join(suite.get('adapters', {}))})")
    base = copy.deepcopy(suite)
    base["seeds"] = seeds
    if strategies:
        base["strategies"] = {k: v for k, v in suite["strategies"].items() if k in strategies}
    out = {}
    for over in [{}, *tries]:
        label = "shipped" if not over else "-".join(f"{k}={v}" for k, v in over.items())
        s = copy.deepcopy(base)
        s["name"] = f"tune-{label}".replace("=", "").replace(".", "p")
        s["adapters"] = {adapter: {**(suite["adapters"][adapter] or {}), **over}}
        out[label] = s
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("suite", type=Path)
    p.add_argument("--adapter", required=True)
    p.add_argument("--strategies", default="", help="comma-separated; default: all of the suite's")
    p.add_argument("--seeds", default="100-104", help="a range lo-hi or a comma list, all >= 100")
    p.add_argument("--try", dest="tries", action="append", default=[], help="key=value[,key=value]: one variant")
    p.add_argument("--metric", default="fid_domain")
    p.add_argument("--out", type=Path, default=Path("/tmp/bench-tune"))
    args = p.parse_args()
    suite = yaml.safe_load(args.suite.read_text())
    strategies = [s for s in args.strategies.split(",") if s]
    variants = variant_suites(suite, args.adapter, strategies, parse_seeds(args.seeds), [parse_try(t) for t in args.tries])
    frames = {}
    for label, s in variants.items():
        path = args.out / f"{s['name']}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(s, sort_keys=False))
        cmd = [sys.executable, "-m", "bench.cli", "run", str(path), "--out", str(args.out / "runs"), "--reports", str(args.out / "rep")]
        print(f"--- {label}: {' '.join(cmd[2:])}", flush=True)
        subprocess.run([*cmd, "--quiet"], cwd=ROOT, check=False)
        df = pd.read_csv(args.out / "runs" / s["name"] / "results.csv")
        frames[label] = df[df["status"] == "completed"].set_index(["strategy", "seed"])[args.metric]
    base = frames["shipped"]
    rows = []
    for label, v in frames.items():
        for strategy in sorted(set(v.index.get_level_values(0))):
            mine, ref = v.loc[strategy], base.loc[strategy] if strategy in base.index else pd.Series(dtype=float)
            diff = (mine - ref).dropna()
            p_value = stats.ttest_1samp(diff, 0).pvalue if len(diff) >= 2 and label != "shipped" else float("nan")
            rows.append(
                [label, strategy, len(mine), f"{mine.mean():.4g}", f"{diff.mean():+.3g}" if label != "shipped" else "", f"{p_value:.2g}"]
            )
    print(f"\n{args.metric} on tuning seeds {args.seeds} (paired Δ to the shipped settings; p uncorrected: a screen)\n")
    print(pd.DataFrame(rows, columns=["variant", "strategy", "n", "mean", "Δ paired", "p"]).to_string(index=False))


if __name__ == "__main__":
    main()
