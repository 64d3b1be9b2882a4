"""Imported once by the workers' fork server (bench.exec.forkserver): torch, the runner, the bundled adapters
and every metric, so that each worker forked from the server starts with them imported.

Nothing here may stop the server: whatever fails to import (a broken plugin adapter, say) is left for the
worker, which imports it again before its run and fails that run with the usual one-line error.
"""

from __future__ import annotations

import contextlib

with contextlib.suppress(Exception):
    import bench.exec.jobs
    import bench.exec.outcome
    import bench.runner.run  # noqa: F401  (imported for the workers)

with contextlib.suppress(Exception):
    from bench.adapter.base import ADAPTERS

    ADAPTERS.keys()  # the registry's loader imports every bundled adapter (entry points)

with contextlib.suppress(Exception):
    from bench.metrics import METRICS

    METRICS.keys()  # the registry's loader imports every metric module
