"""The run environment: device choice, seeding, thread settings and provenance (versions, git commit)."""

from __future__ import annotations

import contextlib
import functools
import os
import platform
import random
import subprocess
from collections.abc import Iterator
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
import torch

from bench.core.cores import CGROUP, usable_cores  # noqa: F401  (bench.core.env is where callers look)
from bench.core.errors import BenchError

DEVICES = ("auto", "cpu", "cuda", "mps")


def pick_device(name: str = "auto") -> torch.device:
    """auto: cuda, then mps, then cpu. Asking for a device that is not there is an input error."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise BenchError("--device cuda: no CUDA device is available", fix="use --device auto or cpu")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise BenchError("--device mps: MPS is not available", fix="use --device auto or cpu")
    if name not in DEVICES:
        raise BenchError(f"--device {name}: unknown device", fix=f"use one of {', '.join(DEVICES)}")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# Threads per run when the suite does not say (`runner.threads: null`): one, on every machine. Measured with
# benchmarks/contention.py on the 2-core box: with every core per run, one busy process beside the smoke suite
# made its cnn_gan runs 6.9x slower (150 s against 22 s alone), because every op's OpenMP barrier waits for a
# descheduled thread; with one thread they slowed 1.1x. One thread also keeps CPU numbers independent of the
# core count (conv results change with it in the last bits) and keeps the run id the same on every machine and
# for every `--jobs`. A suite's runs use the cores side by side instead (`bench run --jobs auto`, the default).
DEFAULT_THREADS = 1

# What BLAS and OpenMP runtimes read when they load: a library loaded after configure_threads (scikit-learn's
# OpenMP runtime at the first k-means, scipy's BLAS) starts with the run's count too.
POOL_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def bound_pools(n: int) -> None:
    """Every BLAS and OpenMP thread pool of the process at `n` threads, not only torch's: evaluation's numpy
    and scipy (FID's eigenvalues, KID's kernels) and scikit-learn (k-means) otherwise run one thread per core
    whatever the run's count, which made evaluation 3-10x slower on a shared machine (benchmarks/eval_stages.py
    --pools). Those loaded now are set through threadpoolctl; those loaded later read the variables."""
    from threadpoolctl import threadpool_limits

    for var in POOL_VARIABLES:
        os.environ[var] = str(n)
    threadpool_limits(limits=n)


def configure_threads(threads: int | None) -> int:
    """Set a run's threads: torch's intra-op pool and every BLAS/OpenMP pool (bound_pools), `threads` capped at
    the usable cores (more only oversubscribes them), or DEFAULT_THREADS. On an idle 2-core machine 2 threads
    trained the smoke models 1.2-1.8x faster than 1, but beside one busy process 6.9x slower. Returns the number set."""
    n = min(threads, usable_cores()) if threads else DEFAULT_THREADS
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    bound_pools(n)
    # The harness never runs ops concurrently (no torch.jit.fork), so the inter-op pool would only add idle
    # threads. PyTorch allows setting it once, before any inter-op work, and raises after; torch's own count
    # says whether it is done, so no flag of ours has to remember it (reading the count starts no pool).
    if torch.get_num_interop_threads() != 1:
        with contextlib.suppress(RuntimeError):
            torch.set_num_interop_threads(1)
    return n


def rng_state() -> dict:
    """All global RNG states as tensors and plain values, loadable with torch.load(weights_only=True)."""
    py_version, py_state, py_gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    state = {
        "python": [py_version, list(py_state), py_gauss],
        "numpy": [np_name, torch.from_numpy(np_keys.astype(np.int64)), int(np_pos), int(np_has_gauss), float(np_gauss)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    v, s, g = state["python"]
    random.setstate((v, tuple(s), g))
    name, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@contextlib.contextmanager
def preserved_rng() -> Iterator[None]:
    """Run a block without moving the global RNGs. Evaluation runs inside this, so a training trajectory
    never depends on how often it is evaluated or on whether an eval cache was warm (which differs
    between a resumed run and an uninterrupted one)."""
    saved = rng_state()
    try:
        yield
    finally:
        set_rng_state(saved)


def _pkg(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


@functools.lru_cache(maxsize=1)
def git_commit() -> str | None:
    root = Path(__file__).resolve().parents[1]
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


@functools.lru_cache(maxsize=1)
def versions() -> dict[str, str | None]:
    from bench.core.version import __version__

    out: dict[str, str | None] = {"bench": __version__, "python": platform.python_version()}
    for p in ("torch", "torchvision", "timm", "torch-fidelity", "numpy", "scikit-learn"):
        out[p] = _pkg(p)
    return out


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return "Apple MPS"
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


class PeakMemory:
    """Peak memory of a run: CUDA max allocated on GPU, else the process's peak RSS since `reset()`."""

    def __init__(self, device: torch.device):
        self.device = device

    def reset(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        # Linux: writing 5 resets VmHWM, so each run in a long suite gets its own peak.
        with contextlib.suppress(OSError):
            Path("/proc/self/clear_refs").write_text("5")

    def peak_mb(self) -> float:
        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated(self.device) / 2**20
        try:
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            pass
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
