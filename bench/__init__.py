"""bench: a benchmark harness for pretraining strategies in image generative models.

Heavy modules (torch models, pandas, matplotlib) load on first use, so `import bench` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bench.core.version import __version__  # noqa: E402,F401  (one source: the package metadata)

_EXPORTS = {
    "Adapter": "bench.adapter.base",
    "Part": "bench.adapter.base",
    "Batch": "bench.adapter.base",
    "DataInfo": "bench.adapter.base",
    "BatchSource": "bench.adapter.batch",
    "register_adapter": "bench.adapter.base",
    "adam": "bench.adapter.base",
    "to_uint8": "bench.adapter.base",
    "from_levels": "bench.adapter.tokens",
    "to_levels": "bench.adapter.tokens",
    "BenchError": "bench.core.errors",
    "Splits": "bench.data.splits",  # what a `module:function` data set returns
    "DatasetSpec": "bench.suite.spec",  # what it is given
    "load_suite": "bench.suite.load",
    "run_suite": "bench.api",
    "load_results": "bench.api",
    "render_report": "bench.api",
    "plan_seeds": "bench.planning",
}

if TYPE_CHECKING:
    from bench.adapter.base import Adapter, Batch, DataInfo, Part, adam, from_levels, register_adapter, to_levels, to_uint8  # noqa: F401
    from bench.adapter.batch import BatchSource  # noqa: F401
    from bench.api import load_results, render_report, run_suite  # noqa: F401
    from bench.core.errors import BenchError  # noqa: F401
    from bench.data.splits import Splits  # noqa: F401
    from bench.planning import plan_seeds  # noqa: F401
    from bench.suite.load import load_suite  # noqa: F401
    from bench.suite.spec import DatasetSpec  # noqa: F401


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'bench' has no attribute {name!r}")


__all__ = sorted(_EXPORTS)
