"""Shared helpers of the benchmark scripts: interleaved timing, the harness loop as a callable, the machine.

Every comparison runs its variants side by side in one process, alternating their order on each repeat, so
slow drifts in a shared machine's load hit all variants alike; the reported number is the median.
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class Timing:
    wall: float  # seconds of wall-clock time
    cpu: float  # seconds of this process's CPU time (all its threads); less sensitive to other load

    @staticmethod
    def of(fn: Callable[[], object]) -> Timing:
        w, c = time.perf_counter(), time.process_time()
        fn()
        return Timing(time.perf_counter() - w, time.process_time() - c)


def interleave(variants: dict[str, Callable[[], Timing]], repeats: int) -> dict[str, list[Timing]]:
    """Run every variant `repeats` times, in forward order on even repeats and reversed on odd ones."""
    names = list(variants)
    out: dict[str, list[Timing]] = {n: [] for n in names}
    for r in range(repeats):
        for n in names if r % 2 == 0 else names[::-1]:
            out[n].append(variants[n]())
    return out


def median_wall(ts: list[Timing]) -> float:
    return statistics.median(t.wall for t in ts)


def median_cpu(ts: list[Timing]) -> float:
    return statistics.median(t.cpu for t in ts)


def machine() -> str:
    """One line: CPU model, usable cores, load, torch and its threads, GPU if any."""
    import torch

    model = platform.processor() or platform.machine()
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True, timeout=5).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    return f"{model}; {cores} usable cores; load average {load}; torch {torch.__version__}; {gpu}"


def table(rows: list[list[str]], header: list[str]) -> str:
    """A Markdown table (pastes into the README as is)."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) + " |"  # noqa: E731
    return "\n".join([line(header), "| " + " | ".join("-" * w for w in widths) + " |", *map(line, rows)])


# --- the harness's training loop, set up once per measurement ------------------------------------------
def run_spec(adapter: str, steps: int, batch_size: int, image_size: int | None = None, runner: dict | None = None, config=None):
    """The RunSpec of a one-adapter suite on digits with no periodic evaluation."""
    from bench.suite.load import expand, load_suite

    suite = {
        "name": "bench",
        "dataset": {"name": "digits", **({"image_size": image_size} if image_size else {})},
        "budget": {"steps": steps, "eval_every": 0, "batch_size": batch_size},
        "eval": {"num_samples": 100, "metrics": ["bpd"]},
        "adapters": {adapter: config or {}},
        "runner": runner or {},
    }
    (spec,) = expand(load_suite(suite))
    return spec


def prepared(spec, device, out_dir, progress: bool = False):
    """(runner, adapter, data, generator) exactly as Runner.run() prepares them before its loop: seeded,
    and the adapter built with the run's fast path (layouts, fused Adam, TF32)."""
    from pathlib import Path

    import torch

    from bench.core import env
    from bench.data.datasets import load_dataset
    from bench.runner import Runner, build_adapter

    runner = Runner(spec, Path(out_dir), device, Path(out_dir) / ".cache", progress=progress)
    env.seed_everything(spec.seed)
    data = load_dataset(spec.dataset).to(device)
    adapter = build_adapter(spec, data, device, runner.fast)
    gen = torch.Generator(device=device).manual_seed(spec.seed)
    return runner, adapter, data, gen


def harness_loop(spec, device, out_dir, progress: bool = False) -> Timing:
    """Time Runner.train: the harness's training loop with its flushes, divergence checks and progress bar.
    The final evaluation is left out (the loops it is compared with evaluate nothing)."""
    import torch

    from bench.runner import LoopState

    runner, adapter, data, gen = prepared(spec, device, out_dir, progress)

    def go() -> None:
        runner.train(adapter, data, LoopState(), gen)
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    return Timing.of(go)


def sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)
