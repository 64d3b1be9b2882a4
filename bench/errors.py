"""Deprecated path: `bench.errors` moved to `bench.core.errors` (the layout of 0.2). This re-export goes in a later release."""

import warnings

from bench.core.errors import *  # noqa: F403

warnings.warn("bench.errors moved to bench.core.errors; import it from there", DeprecationWarning, stacklevel=2)
