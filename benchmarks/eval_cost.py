"""Evaluation cost: the domain metrics on 10,000 generated samples, next to the training they evaluate.

Part 1 (any device): cnn_gan after the smoke budget's training steps on digits, then the protocol's domain
metrics (fid_domain, kid_domain, precision_domain, recall_domain, modes) on 10,000 samples. It reports the
one-time costs (training the domain classifier, the real split's features; both cached on disk by content
hash) and, with warm caches, sampling, fake features and each metric, and the ratio of a warm evaluation to
the training run, with the training and the warm evaluations interleaved in one process.

Part 2 (CUDA only): Inception FID on 10,000 32x32 samples with the real statistics cached. It needs
torch-fidelity's Inception weights (weights-inception-2015-12-05-6726825d.pth) in torch.hub's checkpoint
folder or in --weights-path; without them, or without a GPU, it says so and is skipped.

    .venv/bin/python benchmarks/eval_cost.py [--device cpu|cuda] [--samples 10000] [--train-steps 300] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Timing, interleave, machine, median_wall, prepared, run_spec, sync, table  # noqa: E402

DOMAIN = ["fid_domain", "kid_domain", "precision_domain", "recall_domain", "modes"]


def timed(fn) -> tuple[object, float]:
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def context(adapter, data, device, cache: Path, samples: int, metrics: list[str], seed: int = 0, weights_path: str | None = None):
    from bench.metrics import EvalContext
    from bench.suite.load import EvalSpec

    spec = EvalSpec(num_samples=samples, metrics=metrics, weights_path=weights_path)
    return EvalContext(adapter, data, spec, device, cache, seed)


def train(adapter, data, gen, steps: int, device, fmt: torch.memory_format) -> Timing:
    """The bare training loop (benchmarks/runner_overhead.py shows the harness's costs the same)."""
    from bench.adapter.base import Batch

    n = data.train_x.shape[0]

    def go() -> None:
        adapter.train(True)
        for step in range(steps):
            idx = torch.randint(0, n, (64,), device=device, generator=gen)
            adapter.train_step(Batch(data.train_x[idx], data.train_y[idx], data.levels, memory_format=fmt), step)
        sync(device)

    return Timing.of(go)


def domain_part(args, device, out: Path) -> None:
    from bench.core import env
    from bench.metrics import evaluate

    cache = out / ".cache"
    spec = run_spec("cnn_gan", args.train_steps, 64, runner={"threads": args.threads})
    runner, adapter, data, gen = prepared(spec, device, out)
    fmt = runner.fast.memory_format
    first_train = train(adapter, data, gen, args.train_steps, device, fmt)

    # Cold: what the first run of a suite pays once (then cached on disk by content hash).
    ctx = context(adapter, data, device, cache, args.samples, DOMAIN)
    with env.preserved_rng():
        _, t_clf = timed(lambda: ctx.domain)
        _, t_real = timed(lambda: ctx.real_features)
    # Warm: every later evaluation, broken down.
    parts: dict[str, list[float]] = {}
    for _ in range(args.repeats):
        ctx = context(adapter, data, device, cache, args.samples, DOMAIN)
        with env.preserved_rng():
            for name, fn in (
                ("load classifier + real features (cached)", lambda c=ctx: (c.domain, c.real_features)),
                (f"sample {args.samples}", lambda c=ctx: c.samples),
                ("fake features", lambda c=ctx: c.fake_features),
                *[(m, lambda c=ctx, m=m: evaluate([m], c)) for m in DOMAIN],
            ):
                parts.setdefault(name, []).append(timed(fn)[1])

    def warm_eval() -> Timing:
        c = context(adapter, data, device, cache, args.samples, DOMAIN)
        with env.preserved_rng():
            return Timing.of(lambda: evaluate(DOMAIN, c))

    res = interleave({"train": lambda: train(adapter, data, gen, args.train_steps, device, fmt), "eval": warm_eval}, args.repeats)
    t_train, t_eval = median_wall(res["train"]), median_wall(res["eval"])
    rows = [
        ["domain classifier training (once per data set)", f"{t_clf:.2f}"],
        ["real test-split features (once per data set)", f"{t_real:.2f}"],
        *[[f"warm: {k}", f"{statistics.median(v):.2f}"] for k, v in parts.items()],
        [f"**warm evaluation, all five metrics, {args.samples} samples**", f"**{t_eval:.2f}**"],
        [f"cnn_gan training, {args.train_steps} steps x 64 (first: {first_train.wall:.2f})", f"{t_train:.2f}"],
    ]
    print(f"Domain metrics on {args.samples} samples of cnn_gan (digits 8x8), device {device}; median of {args.repeats}\n")
    print(table(rows, ["stage", "seconds"]))
    print(f"\nwarm evaluation / training ({args.train_steps} steps): {t_eval / t_train:.2f}")
    print(f"cold evaluation (+ classifier + real features) / training: {(t_eval + t_clf + t_real) / t_train:.2f}")


def inception_part(args, device, out: Path) -> None:
    from bench.metrics import NotApplicable, evaluate
    from bench.metrics.standard import INCEPTION_FILE, weights_file

    if device.type != "cuda":
        print(f"\nInception FID on {args.samples} 32x32 samples: skipped, it is the GPU part (device is {device}).")
        return
    try:
        path = weights_file(INCEPTION_FILE, args.weights_path)
    except NotApplicable as why:
        print(f"\nInception FID: skipped, {why}.")
        return
    spec = run_spec("cnn_gan", 1, 64, image_size=32)
    _, adapter, data, _ = prepared(spec, device, out)
    cache = out / ".cache-inception"
    wp = str(path.parent)
    ctx = context(adapter, data, device, cache, args.samples, ["fid"], weights_path=wp)
    cold = Timing.of(lambda: evaluate(["fid"], ctx))
    warm = []
    for _ in range(args.repeats):
        c = context(adapter, data, device, cache, args.samples, ["fid"], weights_path=wp)
        warm.append(Timing.of(lambda c=c: (evaluate(["fid"], c), sync(device))))
    print(f"\nInception FID, {args.samples} samples at 32x32 on {torch.cuda.get_device_name()}")
    print(
        table(
            [["cold (real statistics computed)", f"{cold.wall:.2f}"], ["warm (real statistics cached)", f"{median_wall(warm):.2f}"]],
            ["", "seconds"],
        )
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--samples", type=int, default=10_000)
    ap.add_argument("--train-steps", type=int, default=300, help="the smoke suite's budget")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--weights-path", default=None, help="folder holding the Inception weights file")
    args = ap.parse_args()
    from bench.core import env

    device = torch.device(args.device)
    threads = env.configure_threads(args.threads)
    print(f"machine: {machine()}; device {device}; {threads} thread(s)\n")
    with tempfile.TemporaryDirectory(prefix="bench-evalcost-") as tmp:
        domain_part(args, device, Path(tmp))
        inception_part(args, device, Path(tmp))


if __name__ == "__main__":
    main()
