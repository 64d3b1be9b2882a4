"""Shared fixtures. Tests run on CPU with few threads so the suite stays fast and deterministic on 2 cores."""

from __future__ import annotations

import os

import pytest
import torch

torch.set_num_threads(min(2, torch.get_num_threads()))
# `bench run` and run_suite pack runs into worker processes by default (--jobs auto); the tests run them in
# their own process, in sequence, unless a test passes jobs itself (in-process patches must reach the runs).
os.environ["BENCH_JOBS"] = "1"


@pytest.fixture
def tiny_suite() -> dict:
    """A suite dict small enough to run in a second or two with the dummy adapter."""
    return {
        "name": "tiny",
        "dataset": {"name": "digits"},
        "budget": {"steps": 20, "eval_every": 10, "batch_size": 32},
        "eval": {"num_samples": 100, "metrics": ["bpd"]},
        "seeds": [0],
        "adapters": {"dummy": {}},
        "strategies": {"scratch": {}},
    }
