"""Suites: the spec dataclasses, YAML reading and its limits, the schema, sweep expansion, loading.

`from bench.suite import load_suite` keeps working: the names load lazily, so importing a submodule (say
`bench.suite.spec`) never pulls in the loader and the registries above it.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {"load_suite": "bench.suite.load", "parse_suite": "bench.suite.load"}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'bench.suite' has no attribute {name!r}")
