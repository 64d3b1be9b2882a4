"""The C heap of a process that trains or evaluates: freed tensor memory stays with the process.

glibc's malloc hands every block above its mmap threshold (128 KiB, raised on the fly up to 32 MiB) straight
back to the kernel when it is freed, and trims the top of the heap above twice that. An evaluation allocates and
frees the same few large tensors again and again (the VAE's likelihood bound: ~7 MB activations, 16 decoder
passes), so each allocation came back as fresh pages, and faulting them in (~20,000 minor faults a bound) was a
fifth of that metric's time: vae's bound took 0.091 CPU s with glibc's defaults and 0.071 with these
(benchmarks/eval_stages.py, 5 repeats, idle 2-core box). The values are the same to the bit: only where the
memory comes from changes. The cost is that a process keeps up to TRIM bytes it has freed, which it used a
moment before anyway. Other C libraries (macOS, musl) are left as they are.
"""

from __future__ import annotations

import ctypes
import functools
import platform

MMAP_THRESHOLD = 64 << 20  # blocks below this come from the heap and are reused
TRIM = 256 << 20  # free memory at the top of the heap kept rather than returned
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's malloc.h


@functools.cache
def keep_freed_memory() -> bool:
    """Set glibc's thresholds once per process; True when they were set."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM))
