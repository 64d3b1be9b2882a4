"""Where a run's evaluation time goes, stage by stage, next to the training it evaluates.

For each adapter of a suite (default: the main job, suites/digits-strategies.yaml, strategy scratch), in one
process and with the suite's own `runner.threads` (1 unless --threads says otherwise):
1. trains the run exactly as the harness does (Runner.train: the budget's steps, no final evaluation);
2. evaluates the suite's `eval:` block once cold (the first adapter pays the one-time domain classifier and the
   real split's features; they are shown on their own lines) and then `--repeats` times warm, split into stages:
   sampling, features of the samples, features of the training split (ct_domain), each metric on its own with
   the shared inputs ready, and the likelihood (bpd);
3. times the whole warm evaluation as the runner does it (`evaluate(all metrics)` on a fresh context) and prints
   its share of the run: eval / (train + eval) and eval / train.

`--reference` also times the previous implementations (benchmarks/_eval_reference.py: what a speed change
replaced) side by side, interleaved, on the same trained models, prints each stage before → after, and checks
that every metric value is the same to the bit (it lists any that is not).

`--clock cpu` (the default) times this process's CPU seconds, which other jobs on a shared machine disturb
less than wall time; `--clock wall` times wall-clock seconds. Evaluation runs on one thread either way.

`--pools` also reports the thread pools that evaluation's numeric libraries run with (threadpoolctl) beside
torch's, and times the warm evaluation with and without every pool limited to the run's thread count,
interleaved, so the effect of pools that escape `runner.threads` shows as a ratio measured side by side.

A shared machine's load changes from minute to minute: compare only ratios printed by one invocation, and
read the load average printed at the start and the end.

    .venv/bin/python benchmarks/eval_stages.py [--suite suites/digits-strategies.yaml] [--adapters cnn_gan,vae]
        [--seed 2] [--repeats 3] [--threads 1] [--pools] [--reference] [--clock cpu|wall]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, table  # noqa: E402
from _eval_reference import reference  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


CLOCK = {"cpu": time.process_time, "wall": time.perf_counter}
clock = CLOCK["cpu"]  # set by --clock


def timed(fn: Callable[[], object]) -> float:
    t = clock()
    fn()
    return clock() - t


def suite_runs(path: Path, adapters: list[str] | None, strategy: str, seed: int, threads: int | None):
    """The suite's runs of `strategy` and `seed`, one per adapter (all of the suite's, or `adapters`)."""
    import dataclasses

    from bench.suite.load import expand, load_suite

    suite = load_suite(path)
    out = []
    for run in expand(suite):
        if run.strategy != strategy or run.seed != seed or (adapters and run.adapter not in adapters):
            continue
        if threads is not None:
            run = dataclasses.replace(run, runner=dataclasses.replace(run.runner, threads=threads))
        out.append(run)
    if not out:
        sys.exit(f"no run of strategy {strategy!r} and seed {seed} in {path} (adapters {adapters or 'all'})")
    return out


def pool_threads() -> dict[str, int]:
    """Threads of every pool the process has loaded: torch's intra-op, and each BLAS/OpenMP library."""
    from threadpoolctl import threadpool_info

    out = {"torch intra-op": torch.get_num_threads()}
    for p in threadpool_info():
        out[f"{p['user_api']}:{Path(p['filepath']).name.split('-')[0].split('.so')[0]}"] = p["num_threads"]
    return out


def limited(threads: int):
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=threads)


class Stages:
    """The evaluation of one trained adapter, split into its stages (each timed with the previous ones warm)."""

    def __init__(self, adapter, data, spec, device, cache: Path, seed: int):
        self.args = (adapter, data, spec, device, cache, seed)
        self.metrics = list(spec.metrics)

    def context(self):
        from bench.metrics import EvalContext

        return EvalContext(*self.args)

    def split(self) -> dict[str, float]:
        from bench.core import env
        from bench.metrics import evaluate

        ctx = self.context()
        out: dict[str, float] = {}
        with env.preserved_rng():
            out["load classifier + real features"] = timed(lambda: (ctx.domain, ctx.real_features))
            out[f"sampling ({ctx.num_samples})"] = timed(lambda: ctx.samples)
            out["features of the samples"] = timed(lambda: ctx.fake_features)
            if "ct_domain" in self.metrics:
                from bench.metrics.copying import train_features

                out["features of the training split"] = timed(lambda: train_features(ctx))
            for m in self.metrics:
                out[f"metric {m}"] = timed(lambda m=m: evaluate([m], ctx))
        return out

    def whole(self) -> tuple[float, dict[str, float]]:
        """(seconds, metric values) of the evaluation as the runner does it: every metric on a fresh context."""
        from bench.core import env
        from bench.metrics import evaluate

        ctx = self.context()
        out: dict[str, float] = {}
        with env.preserved_rng():
            return timed(lambda: out.update(evaluate(self.metrics, ctx)[0])), out


def measure(run, out: Path, cache: Path, repeats: int, pools: bool, ref: bool = False) -> dict:
    from _common import prepared  # the runner, adapter and data set up as Runner.run does

    from bench.core import env
    from bench.runner import LoopState

    device = torch.device("cpu")
    env.configure_threads(run.runner.threads)
    runner, adapter, data, gen = prepared(run, device, out)
    state = LoopState()
    t_train = timed(lambda: runner.train(adapter, data, state, gen))
    stages = Stages(adapter, data, run.eval, device, cache, run.seed)
    row: dict = {"adapter": run.adapter, "train": t_train, "threads": torch.get_num_threads()}

    cold_clf = (cache / "domain").is_dir() and any((cache / "domain").glob("*.safetensors"))
    ctx = stages.context()
    with env.preserved_rng():
        row["one-time: domain classifier" + (" (from disk)" if cold_clf else "")] = timed(lambda: ctx.domain)
        row["one-time: real features"] = timed(lambda: ctx.real_features)
    stages.whole()  # untimed: the first evaluation in the process also pays imports and the k-means cells
    # Variants interleaved, forward on even repeats and reversed on odd ones, so load drifts hit them alike.
    variants = {"current": nullcontext, **({"reference": reference} if ref else {})}
    splits: dict[str, list] = {v: [] for v in variants}
    wholes: dict[str, list] = {v: [] for v in variants}
    values: dict[str, list] = {v: [] for v in variants}
    wholes_limited = []
    for r in range(repeats):
        for v in list(variants) if r % 2 == 0 else list(variants)[::-1]:
            with variants[v]():
                splits[v].append(stages.split())
                seconds, vals = stages.whole()
            wholes[v].append(seconds)
            values[v].append(vals)
        if pools:
            with limited(run.runner.threads or 1):
                wholes_limited.append(stages.whole()[0])
    for v in variants:
        key = "" if v == "current" else " (reference)"
        row["stages" + key] = {k: statistics.median(s[k] for s in splits[v]) for k in splits[v][0]}
        row["eval" + key] = statistics.median(wholes[v])
    if ref:  # the same model and seed: every value must be the same float, bit for bit
        a, b = values["current"][0], values["reference"][0]
        row["differs"] = [k for k in sorted(set(a) | set(b)) if struct_bits(a.get(k)) != struct_bits(b.get(k))]
        row["values"] = (a, b)
    if pools:
        row["eval, pools limited"] = statistics.median(wholes_limited)
        row["pools"] = pool_threads()
    return row


def struct_bits(v: float | None) -> str | None:
    import struct

    return None if v is None else struct.pack(">d", float(v)).hex()


def cell(row: dict, key: str, ref: bool, stage: bool = True) -> str:
    """One table cell: the current seconds, or `reference → current` with --reference."""
    get = (lambda r, k: r.get(k, {}).get(key, float("nan"))) if stage else (lambda r, k: r.get(k, float("nan")))
    now = get(row, "stages" if stage else key)
    if not ref:
        return f"{now:.3f}"
    before = get(row, "stages (reference)" if stage else key + " (reference)")
    return f"{before:.3f} → {now:.3f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--suite", type=Path, default=ROOT / "suites" / "digits-strategies.yaml")
    ap.add_argument("--adapters", default=None, help="comma-separated adapter keys (default: every adapter of the suite)")
    ap.add_argument("--strategy", default="scratch")
    ap.add_argument("--seed", type=int, default=2, help="a seed of the suite (the issue measured 2 and 3)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="override runner.threads (default: the suite's)")
    ap.add_argument("--pools", action="store_true", help="report BLAS/OpenMP pools and time the evaluation with them limited")
    ap.add_argument("--limit-pools", action="store_true", help="run everything with every pool limited to the run's threads")
    ap.add_argument(
        "--reference", action="store_true", help="time the previous implementations too (before → after) and check the values' bits"
    )
    ap.add_argument(
        "--clock", choices=list(CLOCK), default="cpu", help="cpu: this process's CPU seconds (default); wall: wall-clock seconds"
    )
    ap.add_argument(
        "--default-heap", action="store_true", help="leave glibc's malloc thresholds alone (the runner before bench/core/heap.py)"
    )
    args = ap.parse_args()
    global clock
    clock = CLOCK[args.clock]
    import baselines  # noqa: F401  (registers the bundled adapters)

    runs = suite_runs(args.suite, args.adapters.split(",") if args.adapters else None, args.strategy, args.seed, args.threads)
    from bench.core import heap

    kept = False if args.default_heap else heap.keep_freed_memory()  # as the runner does, once per process
    print(f"start: {machine()}; freed memory {'kept (bench/core/heap.py)' if kept else 'returned (glibc defaults)'}")
    print(f"suite {args.suite.name}, strategy {args.strategy}, seed {args.seed}; eval block: {runs[0].eval.num_samples} samples, "
          f"metrics {', '.join(runs[0].eval.metrics)}; median of {args.repeats} warm repeat(s); {args.clock} seconds"
          f"{'; reference → current' if args.reference else ''}\n")  # fmt: skip
    rows = []
    with tempfile.TemporaryDirectory(prefix="eval-stages-") as tmp:
        cache = Path(tmp) / ".cache"
        for run in runs:
            with limited(run.runner.threads or 1) if args.limit_pools else nullcontext():
                row = measure(run, Path(tmp) / run.adapter, cache, args.repeats, args.pools, args.reference)
            rows.append(row)
            print(f"  {run.adapter}: train {row['train']:.2f} s, warm eval {cell(row, 'eval', args.reference, False)} s", flush=True)
    adapters = [r["adapter"] for r in rows]
    names = list(dict.fromkeys(k for r in rows for k in r["stages"]))
    one_time = list(dict.fromkeys(k for r in rows for k in r if k.startswith("one-time")))
    ref = args.reference
    body = [[k, *(f"{r.get(k, float('nan')):.3f}" for r in rows)] for k in one_time]
    body += [[k, *(cell(r, k, ref) for r in rows)] for k in names]
    body += [["**warm evaluation (all metrics, one context)**", *(f"**{cell(r, 'eval', ref, False)}**" for r in rows)]]
    if args.pools:
        body += [["warm evaluation, every pool limited to runner.threads", *(f"{r['eval, pools limited']:.3f}" for r in rows)]]
    body += [["training (budget steps, harness loop)", *(f"{r['train']:.3f}" for r in rows)]]
    for label, f in (
        ("eval / train", lambda e, t: f"{e / t:.2f}"),
        ("eval share of the run: eval / (train + eval)", lambda e, t: f"{e / (t + e):.0%}"),
    ):
        now = [f(r["eval"], r["train"]) for r in rows]
        before = [f(r["eval (reference)"], r["train"]) for r in rows] if ref else None
        body += [[label, *(f"{b} → {n}" for b, n in zip(before, now, strict=True))] if ref else [label, *now]]
    if ref:
        body += [["metric values equal to the bit", *("yes" if not r["differs"] else "no: " + ", ".join(r["differs"]) for r in rows)]]
    print()
    print(table(body, ["stage (seconds)", *adapters]))
    if args.pools:
        print("\nthread pools during evaluation (threadpoolctl; torch's is the run's runner.threads):")
        for k, v in rows[-1]["pools"].items():
            print(f"  {k}: {v}")
    if args.reference:
        for r in rows:
            for k in r["differs"]:
                a, b = r["values"]
                print(f"  {r['adapter']} {k}: reference {b.get(k)!r}, current {a.get(k)!r}")
    print(f"\nend: load average {', '.join(f'{x:.1f}' for x in os.getloadavg())}; {rows[0]['threads']} torch thread(s)")


if __name__ == "__main__":
    main()
