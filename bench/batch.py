"""Deprecated path: `bench.batch` moved to `bench.adapter.batch` (the layout of 0.2). This re-export goes in a later release."""

import warnings

from bench.adapter.batch import *  # noqa: F403

warnings.warn("bench.batch moved to bench.adapter.batch; import it from there", DeprecationWarning, stacklevel=2)
