"""Shared fixtures. Tests run on CPU with few threads so the suite stays fast and deterministic on 2 cores."""

from __future__ import annotations

import pytest
import torch

torch.set_num_threads(min(2, torch.get_num_threads()))


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
