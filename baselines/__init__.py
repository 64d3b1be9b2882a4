"""Bundled baselines. Importing this package registers every adapter in it (timm-style: one file each)."""

from baselines import dummy  # noqa: F401

