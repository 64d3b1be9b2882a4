"""Kept models: a run's final weights as `<run_dir>/weights.safetensors`, and loading them back.

Only the networks (`adapter.modules()`, parameters and buffers) are kept, never the optimisers: enough to
sample and evaluate again, a fraction of a checkpoint's size, and safetensors holds no code to run on load.
Keys are `<module>.<state_dict key>` (module names are attribute names, which hold no dot).
"""

from __future__ import annotations

from pathlib import Path

import torch

from bench.adapter.base import Adapter
from bench.store import runs as store

FILE = "weights.safetensors"


def flat_state(adapter: Adapter) -> dict[str, torch.Tensor]:
    """Every module's tensors, on the CPU, each its own copy (safetensors refuses tensors that share storage)."""
    return {
        f"{name}.{key}": t.detach().to("cpu", copy=True).contiguous()
        for name, module in adapter.modules().items()
        for key, t in module.state_dict().items()
        if isinstance(t, torch.Tensor)
    }


def keep(run_dir: Path, adapter: Adapter, keep_file: bool) -> int:
    """Serialise the final weights; write them atomically when `keep_file` (`runner.keep_weights`), else make
    sure no older file stays. Returns their size in bytes either way (the `weights_bytes` cost metric)."""
    from safetensors.torch import save

    blob = save(flat_state(adapter), metadata={"format": "bench-weights-1"})
    path = Path(run_dir) / FILE
    if keep_file:
        store.atomic_write_bytes(path, blob)
    else:
        path.unlink(missing_ok=True)
    return len(blob)


def load(run_dir: Path, adapter: Adapter) -> None:
    """Load `<run_dir>/weights.safetensors` into a freshly built adapter (strict: every key, every shape).
    Raises FileNotFoundError when the run kept none, ValueError when they do not fit the adapter."""
    from safetensors.torch import load_file

    path = Path(run_dir) / FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no kept weights (the run had runner.keep_weights: false)")
    tensors = load_file(str(path), device="cpu")
    modules = adapter.modules()
    grouped: dict[str, dict[str, torch.Tensor]] = {name: {} for name in modules}
    for key, t in tensors.items():
        name, _, rest = key.partition(".")
        if name not in grouped:
            raise ValueError(f"{path}: module {name!r} is not one of the adapter's ({', '.join(modules)})")
        grouped[name][rest] = t
    for name, module in modules.items():
        try:
            module.load_state_dict(grouped[name], strict=True)
        except RuntimeError as err:  # missing or unexpected keys, wrong shapes: another model's weights
            raise ValueError(f"{path}: weights do not fit module {name!r}: {' '.join(str(err).split())[:300]}") from None
