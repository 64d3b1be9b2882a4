"""Runner overhead: the harness's training loop against a bare hand-written loop over the same adapter.

Both loops draw the same batch indices from the same seeded generator on the data's device, build the same
`Batch`, and call the same adapter's `train_step` for the same number of steps; the adapter is built and
set up (fused optimiser, memory layout) identically for both. The bare loop does nothing else: it never
reads a loss. The harness loop adds what a run needs: losses kept on the device and synced every
`runner.log_every` steps, the divergence check, history rows and the progress bar. Its final evaluation
is left out. Target: harness throughput / bare throughput >= 0.97.

A second table compares 1 and 2 intra-op threads for the same loops.

    .venv/bin/python benchmarks/runner_overhead.py [--device cpu|cuda] [--repeats 5]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Timing, harness_loop, interleave, machine, median_cpu, median_wall, prepared, run_spec, sync, table  # noqa: E402


def bare_loop(spec, device, out_dir) -> Timing:
    from bench.adapter.base import Batch

    _, adapter, data, gen = prepared(spec, device, out_dir)
    fast = _fast(spec, device)
    n, bs = data.train_x.shape[0], spec.budget.batch_size

    def go() -> None:
        adapter.train(True)
        for step in range(spec.budget.steps):
            idx = torch.randint(0, n, (bs,), device=device, generator=gen)
            with fast.autocast(device):
                adapter.train_step(Batch(data.train_x[idx], data.train_y[idx], data.levels, memory_format=fast.memory_format), step)
        sync(device)

    return Timing.of(go)


def _fast(spec, device):
    from bench.runner import fast_path

    return fast_path(spec, device)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--steps-cnn", type=int, default=60, help="cnn_gan steps per measurement")
    ap.add_argument("--steps-dummy", type=int, default=600, help="dummy steps per measurement")
    ap.add_argument("--threads", type=int, default=None, help="intra-op threads (default: the harness default)")
    ap.add_argument(
        "--progress", action=argparse.BooleanOptionalAction, default=True, help="the harness's progress bar, on as in `bench run`"
    )
    ap.add_argument("--skip-threads", action="store_true", help="skip the 1-vs-2 threads table")
    ap.add_argument("--sweep-fraction", type=float, default=0.34, help="the threads table's steps, as a fraction of the above")
    args = ap.parse_args()
    from bench.core import env

    device = torch.device(args.device)
    threads = env.configure_threads(args.threads)
    print(f"machine: {machine()}; device {device}; {threads} thread(s)\n")
    out = Path(tempfile.mkdtemp(prefix="bench-overhead-"))
    rows = []
    sweep: dict[str, dict[int, float]] = {}
    for key, steps in (("dummy", args.steps_dummy), ("cnn_gan", args.steps_cnn)):
        spec = run_spec(key, steps, args.batch_size, runner={"threads": threads})
        harness_loop(spec, device, out, args.progress)  # warm-up: first-call costs (kernels, allocator, imports)
        bare_loop(spec, device, out)
        res = interleave(
            {"bare": lambda s=spec: bare_loop(s, device, out), "harness": lambda s=spec: harness_loop(s, device, out, args.progress)},
            args.repeats,
        )
        bw, hw = median_wall(res["bare"]), median_wall(res["harness"])
        bc, hc = median_cpu(res["bare"]), median_cpu(res["harness"])
        rows.append([key, str(steps), f"{steps / bw:.1f}", f"{steps / hw:.1f}", f"**{bw / hw:.3f}**", f"{bc / hc:.3f}", str(args.repeats)])
        if device.type == "cpu" and not args.skip_threads:
            per: dict[str, Callable[[], Timing]] = {}
            short = run_spec(key, max(1, int(steps * args.sweep_fraction)), args.batch_size, runner={"threads": threads})
            for t in (1, 2):

                def timed(t=t, s=short) -> Timing:
                    torch.set_num_threads(t)
                    try:
                        return bare_loop(s, device, out)
                    finally:
                        torch.set_num_threads(threads)

                per[str(t)] = timed
            tr = interleave(per, args.repeats)
            sweep[key] = {t: short.budget.steps / median_wall(tr[str(t)]) for t in (1, 2)}
    print("Runner overhead (throughput ratio = bare seconds / harness seconds; median of interleaved repeats)\n")
    header = ["adapter", "steps", "bare steps/s", "harness steps/s", "harness/bare (wall)", "harness/bare (CPU time)", "repeats"]
    print(table(rows, header))
    if sweep:
        print("\nIntra-op threads, bare loop (steps/s; ratio > 1: two threads faster)\n")
        print(
            table(
                [[k, f"{v[1]:.1f}", f"{v[2]:.1f}", f"{v[2] / v[1]:.2f}"] for k, v in sweep.items()],
                ["adapter", "1 thread", "2 threads", "2 threads / 1 thread"],
            )
        )


if __name__ == "__main__":
    main()
