"""How many CPUs this process may use, without importing torch (`bench run` asks before its heavy imports)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

CGROUP = Path("/sys/fs/cgroup")


def usable_cores(cgroup: Path = CGROUP) -> int:
    """CPUs this process may use: its affinity set, capped by a cgroup CPU quota (containers, CI, Slurm):
    v2 `cpu.max`, or v1 `cpu/cpu.cfs_quota_us` over `cpu.cfs_period_us`. A fractional quota rounds down."""
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    with contextlib.suppress(OSError, ValueError):
        quota, period = (cgroup / "cpu.max").read_text().split()[:2]
        if quota != "max":
            n = min(n, max(1, int(quota) // int(period)))
    with contextlib.suppress(OSError, ValueError):
        quota = int((cgroup / "cpu" / "cpu.cfs_quota_us").read_text())
        if quota > 0:
            n = min(n, max(1, quota // int((cgroup / "cpu" / "cpu.cfs_period_us").read_text())))
    return max(1, n)
