"""The installed harness version, read from the package metadata (one source: pyproject.toml)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("bench-pretrain")
except PackageNotFoundError:  # a source tree on sys.path without an install: still name a version
    __version__ = "0.0.0+unknown"
