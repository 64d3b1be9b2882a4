"""bench: a benchmark harness for pretraining strategies in image generative models.

Heavy modules (torch models, pandas, matplotlib) load on first use, so `import bench` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "Adapter": "bench.adapter",
    "Part": "bench.adapter",
    "Batch": "bench.adapter",
    "DataInfo": "bench.adapter",
    "BatchSource": "bench.batch",
    "register_adapter": "bench.adapter",
    "adam": "bench.adapter",
    "to_uint8": "bench.adapter",
    "from_levels": "bench.tokens",
    "to_levels": "bench.tokens",
    "BenchError": "bench.errors",
    "load_suite": "bench.suite",
    "run_suite": "bench.api",
    "load_results": "bench.api",
    "render_report": "bench.api",
}

if TYPE_CHECKING:
    from bench.adapter import Adapter, Batch, DataInfo, Part, adam, from_levels, register_adapter, to_levels, to_uint8  # noqa: F401
    from bench.api import load_results, render_report, run_suite  # noqa: F401
    from bench.batch import BatchSource  # noqa: F401
    from bench.errors import BenchError  # noqa: F401
    from bench.suite import load_suite  # noqa: F401


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'bench' has no attribute {name!r}")


__all__ = sorted(_EXPORTS)
