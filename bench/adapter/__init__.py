"""The adapter contract: the `Adapter` base and its registry (`base`), what an adapter is given (`batch`), the
pixel token layout (`tokens`), and the checks of the contract on a tiny batch (`contract`).

`from bench.adapter import Adapter` keeps working; the names load lazily.
"""

from __future__ import annotations

import importlib
from typing import Any

_BASE = "bench.adapter.base"
_EXPORTS = {
    **dict.fromkeys(("Adapter", "Part", "Batch", "DataInfo", "register_adapter", "adam", "to_uint8", "get_adapter"), _BASE),
    "BatchSource": "bench.adapter.batch",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'bench.adapter' has no attribute {name!r}")
