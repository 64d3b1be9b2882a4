"""Bundled baselines, one file each (timm-style). They register like any plugin: through the `bench.adapters`
entry points in pyproject.toml, the one list of bundled adapters (tests/test_registries.py checks that every
file here is on it). Importing this package registers nothing."""
