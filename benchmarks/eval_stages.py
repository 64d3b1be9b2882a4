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

`--pools` also reports the thread pools that evaluation's numeric libraries run with (threadpoolctl) beside
torch's, and times the warm evaluation with and without every pool limited to the run's thread count,
interleaved, so the effect of pools that escape `runner.threads` shows as a ratio measured side by side.

A shared machine's load changes from minute to minute: compare only ratios printed by one invocation, and
read the load average printed at the start and the end.

    .venv/bin/python benchmarks/eval_stages.py [--suite suites/digits-strategies.yaml] [--adapters cnn_gan,vae]
        [--seed 2] [--repeats 3] [--threads 1] [--pools]
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

ROOT = Path(__file__).resolve().parents[1]


def timed(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


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

    def whole(self) -> float:
        from bench.core import env
        from bench.metrics import evaluate

        ctx = self.context()
        with env.preserved_rng():
            return timed(lambda: evaluate(self.metrics, ctx))


def measure(run, out: Path, cache: Path, repeats: int, pools: bool) -> dict:
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
    splits = [stages.split() for _ in range(repeats)]
    row["stages"] = {k: statistics.median(s[k] for s in splits) for k in splits[0]}
    wholes, wholes_limited = [], []
    for r in range(repeats):
        order = (False, True) if r % 2 == 0 else (True, False)
        for lim in order if pools else (False,):
            with limited(run.runner.threads or 1) if lim else nullcontext():
                (wholes_limited if lim else wholes).append(stages.whole())
    row["eval"] = statistics.median(wholes)
    if pools:
        row["eval, pools limited"] = statistics.median(wholes_limited)
        row["pools"] = pool_threads()
    return row


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
    args = ap.parse_args()
    import baselines  # noqa: F401  (registers the bundled adapters)

    runs = suite_runs(args.suite, args.adapters.split(",") if args.adapters else None, args.strategy, args.seed, args.threads)
    print(f"start: {machine()}")
    print(f"suite {args.suite.name}, strategy {args.strategy}, seed {args.seed}; eval block: {runs[0].eval.num_samples} samples, "
          f"metrics {', '.join(runs[0].eval.metrics)}; median of {args.repeats} warm repeat(s)\n")  # fmt: skip
    rows = []
    with tempfile.TemporaryDirectory(prefix="eval-stages-") as tmp:
        cache = Path(tmp) / ".cache"
        for run in runs:
            with limited(run.runner.threads or 1) if args.limit_pools else nullcontext():
                row = measure(run, Path(tmp) / run.adapter, cache, args.repeats, args.pools)
            rows.append(row)
            print(f"  {run.adapter}: train {row['train']:.2f} s, warm eval {row['eval']:.2f} s", flush=True)
    adapters = [r["adapter"] for r in rows]
    names = list(dict.fromkeys(k for r in rows for k in r["stages"]))
    one_time = list(dict.fromkeys(k for r in rows for k in r if k.startswith("one-time")))
    body = [[k, *(f"{r.get(k, float('nan')):.3f}" for r in rows)] for k in one_time]
    body += [[k, *(f"{r['stages'].get(k, float('nan')):.3f}" for r in rows)] for k in names]
    body += [["**warm evaluation (all metrics, one context)**", *(f"**{r['eval']:.3f}**" for r in rows)]]
    if args.pools:
        body += [["warm evaluation, every pool limited to runner.threads", *(f"{r['eval, pools limited']:.3f}" for r in rows)]]
    body += [["training (budget steps, harness loop)", *(f"{r['train']:.3f}" for r in rows)]]
    body += [["eval / train", *(f"{r['eval'] / r['train']:.2f}" for r in rows)]]
    body += [["eval share of the run: eval / (train + eval)", *(f"{r['eval'] / (r['train'] + r['eval']):.0%}" for r in rows)]]
    print()
    print(table(body, ["stage (seconds)", *adapters]))
    if args.pools:
        print("\nthread pools during evaluation (threadpoolctl; torch's is the run's runner.threads):")
        for k, v in rows[-1]["pools"].items():
            print(f"  {k}: {v}")
    print(f"\nend: load average {', '.join(f'{x:.1f}' for x in os.getloadavg())}; {rows[0]['threads']} torch thread(s)")


if __name__ == "__main__":
    main()
