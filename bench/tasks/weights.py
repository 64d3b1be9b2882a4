"""Flat tensor dicts ⇄ an adapter's parts. One format for the cache, the generative task and external files.

Keys come in two namespaces:
- `<part>.<param>`: a part's own state dict, e.g. `discriminator.stem.0.weight` (what part tasks produce).
- `module.<name>.<param>`: a whole adapter module, e.g. `module.D.head.weight`, which is exactly what
  `torch.save(adapter.state_dict())` flattens to (so an adapter checkpoint is a valid external file;
  its `optim.*` entries are ignored).
A file with neither prefix is accepted as the state dict of the single part that `parts:` selects.
Loading copies into the existing parameters in place, so the adapter's optimisers keep pointing at them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from bench.adapter.base import Adapter
from bench.core.errors import ConfigError


def flatten(obj: Mapping[str, Any], prefix: str = "") -> dict[str, torch.Tensor]:
    """Nested dicts of tensors → one flat dict with dotted keys; non-tensors (optimiser scalars) are dropped."""
    out: dict[str, torch.Tensor] = {}
    for k, v in obj.items():
        key = f"{prefix}{k}"
        if isinstance(v, torch.Tensor):
            out[key] = v
        elif isinstance(v, Mapping) and not key.startswith("optim."):
            out.update(flatten(v, f"{key}."))
    return out


def part_tensors(adapter: Adapter, names: list[str]) -> dict[str, torch.Tensor]:
    parts = adapter.parts()
    return {f"{n}.{k}": v for n in names for k, v in parts[n].module.state_dict().items()}


def module_tensors(adapter: Adapter) -> dict[str, torch.Tensor]:
    return {f"module.{n}.{k}": v for n, m in adapter.modules().items() for k, v in m.state_dict().items()}


def _sub(tensors: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}


def _module_prefix(adapter: Adapter, target: nn.Module) -> str | None:
    """Where a part's module sits inside the adapter's top-level modules, as a `module.<name>.<path>.` prefix."""
    for name, m in adapter.modules().items():
        for path, sub in m.named_modules():
            if sub is target:
                return f"module.{name}." + (f"{path}." if path else "")
    return None


def load_into(module: nn.Module, state: Mapping[str, torch.Tensor], what: str, source: str) -> None:
    """Strict, shape-checked load, with one-line messages naming the first differences."""
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    extra = [k for k in state if k not in own]
    if missing or extra:
        detail = "; ".join(
            s for s in (f"missing {', '.join(missing[:4])}" if missing else "", f"unexpected {', '.join(extra[:4])}" if extra else "") if s
        )
        raise ConfigError(f"{source}: weights do not fit {what} ({detail})", fix="the file must hold this part's state dict (same config)")
    bad = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in own.items() if tuple(state[k].shape) != tuple(v.shape)]
    if bad:
        raise ConfigError(
            f"{source}: shape mismatch for {what}: {'; '.join(bad[:3])}", fix="use weights saved for the same adapter config and data shape"
        )
    module.load_state_dict(dict(state), strict=True)


def _covered(adapter: Adapter, loaded: list[str]) -> list[str]:
    """What loading whole modules initialised, named as the adapter names it: its part names first (a part
    inside a loaded module), then weights outside every part by attribute path (e.g. `D.head`, `G_ema`)."""
    parts = adapter.parts()
    prefixes = {n: _module_prefix(adapter, p.module) for n, p in parts.items()}
    names = [n for n, pre in prefixes.items() if pre is not None and any(pre.startswith(f"module.{m}.") for m in loaded)]
    inside = [pre for pre in prefixes.values() if pre is not None]
    rest: list[str] = []
    for m in loaded:
        if not any(pre.startswith(f"module.{m}.") for pre in inside):
            rest.append(m)  # a whole module outside every part (e.g. an EMA copy of the generator)
            continue
        for key in adapter.modules()[m].state_dict():
            full = f"module.{m}.{key}"
            if not any(full.startswith(pre) for pre in inside):
                path = ".".join([m, *key.split(".")[:-1]][:2])  # the module and its first sub-module
                rest += [path] if path not in rest else []
    return names + rest


def load_weights(adapter: Adapter, tensors: Mapping[str, torch.Tensor], names: list[str] | None, source: str) -> list[str]:
    """Load `tensors` into the named parts (None: every module the file holds, or every part it holds).

    Returns what was initialised, as the adapter's part names (plus, for whole modules, the weights outside
    every part by attribute path, e.g. `D.head`).
    """
    parts, modules = adapter.parts(), adapter.modules()
    by_module = {n for n in modules if any(k.startswith(f"module.{n}.") for k in tensors)}
    by_part = {n for n in parts if any(k.startswith(f"{n}.") for k in tensors)}
    if names is None:
        if by_module:  # whole-model transfer: every module the file holds
            for n in sorted(by_module):
                load_into(modules[n], _sub(tensors, f"module.{n}."), f"module '{n}'", source)
            return _covered(adapter, sorted(by_module))
        names = sorted(by_part)
        if not names:
            raise ConfigError(
                f"{source}: no key starts with a part name ({', '.join(parts)}) or module.<name>",
                fix="set parts: [<part>] to load a single part's plain state dict",
            )
    for n in names:
        load_into(parts[n].module, part_state(adapter, tensors, n, len(names) == 1, source), f"part '{n}'", source)
    return list(names)


def part_state(adapter: Adapter, tensors: Mapping[str, torch.Tensor], name: str, only: bool, source: str) -> dict[str, torch.Tensor]:
    """The tensors meant for part `name`: under `<name>.`, under its module path, or (`only` part) the whole file."""
    parts, modules = adapter.parts(), adapter.modules()
    if any(k.startswith(f"{name}.") for k in tensors):
        return _sub(tensors, f"{name}.")
    by_module = any(k.startswith(f"module.{n}.") for n in modules for k in tensors)
    if by_module and (prefix := _module_prefix(adapter, parts[name].module)) is not None:
        return _sub(tensors, prefix)
    by_part = any(k.startswith(f"{n}.") for n in parts for k in tensors)
    if only and not by_part and not by_module:
        return dict(tensors)  # a plain state dict of the one selected part
    raise ConfigError(f"{source}: holds no weights for part '{name}'", fix=f"keys must start with '{name}.' or module.<name>.")
