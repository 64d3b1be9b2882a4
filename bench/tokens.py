"""Deprecated path: `bench.tokens` moved to `bench.adapter.tokens` (the layout of 0.2). This re-export goes in a later release."""

import warnings

from bench.adapter.tokens import *  # noqa: F403

warnings.warn("bench.tokens moved to bench.adapter.tokens; import it from there", DeprecationWarning, stacklevel=2)
