"""`Splits`: what a data set function returns, built-in or out-of-tree (`dataset: {name: my_data:load}`).

The contract (README, "Use your own data"), checked by `check_splits` so a wrong return is one line, never a
traceback deep in a run:
- `train_x`, `test_x`: uint8 tensors N×C×H×W on the 0..255 scale, C 1 or 3, H == W, the same C, H, W in both.
  The test split is the real reference of every metric; keep it disjoint from the training split.
- `train_y`, `test_y`: int64 labels of length N in 0..num_classes-1, or None (or -1 entries) when unknown.
- `levels`: the grey levels per channel the pixels lie on (256 for 8-bit images; 17 for sklearn's digits).
- `num_classes`: None infers it (largest label + 1; 0 when nothing is labelled).
- `eval_x`, `eval_y`: optional, what the evaluators (the domain classifier or label-free extractor) learn
  from; None: the training split before `limit`. A folder with `reference:` sets them to the reference.
- `meta`: optional facts shown with the data (e.g. how many reference images equal a training image).

The field order of the first six is the old 6-tuple's, so `Splits(*old_tuple)` still works.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import torch

from bench.adapter.tokens import from_levels, to_levels
from bench.core.errors import ConfigError

SPLIT_SEED = 20240601  # fixed forever: changing it changes every reference statistic (every bundled split uses it)
CONTRACT = "see 'Use your own data' in README.md: uint8 N×C×H×W tensors, C 1 or 3, H == W"


@dataclass(frozen=True)
class Splits:
    train_x: torch.Tensor
    train_y: torch.Tensor | None
    test_x: torch.Tensor
    test_y: torch.Tensor | None
    levels: int = 256
    num_classes: int | None = None
    eval_x: torch.Tensor | None = None
    eval_y: torch.Tensor | None = None
    meta: dict[str, Any] = field(default_factory=dict)


def check_splits(out: Any, name: str, where: str = "dataset") -> Splits:
    """`out` (a Splits, or the legacy 6-tuple) checked against the contract and normalised: labels int64
    with -1 where unknown, num_classes resolved. Raises ConfigError naming the data set and what is wrong."""

    def bad(what: str) -> ConfigError:
        return ConfigError(f"data set '{name}' returned {what}", key=f"{where}.name", fix=CONTRACT)

    if isinstance(out, tuple) and len(out) == 6:
        out = Splits(*out)
    if not isinstance(out, Splits):
        raise bad(f"a {type(out).__name__}, not bench.Splits")
    levels = out.levels
    if isinstance(levels, bool) or not isinstance(levels, int) or not 2 <= levels <= 256:
        raise bad(f"levels={levels!r}; it must be an int in 2..256")
    shape = None
    for split in ("train", "test", "eval"):
        x = getattr(out, f"{split}_x")
        if x is None and split == "eval":
            continue
        if not isinstance(x, torch.Tensor) or x.dtype != torch.uint8 or x.ndim != 4:
            got = f"{x.dtype} {tuple(x.shape)}" if isinstance(x, torch.Tensor) else type(x).__name__
            raise bad(f"{split}_x as {got}; it must be a uint8 tensor N×C×H×W")
        if x.shape[1] not in (1, 3) or x.shape[2] != x.shape[3]:
            raise bad(f"{split}_x of shape {tuple(x.shape)}; C must be 1 or 3 and H == W")
        if shape is not None and tuple(x.shape[1:]) != shape:
            raise bad(f"{split}_x of image shape {tuple(x.shape[1:])}, train_x has {shape}")
        shape = tuple(x.shape[1:])
        if len(x) < (2 if split == "test" else 1):
            raise bad(f"{len(x)} {split} images; it needs at least {2 if split == 'test' else 1}")
        if levels < 256 and not torch.equal(from_levels(to_levels(x, levels), levels), x):
            raise bad(
                f"{split}_x pixels off the {levels}-level grid; snap them with bench.from_levels(bench.to_levels(x, {levels}), {levels})"
            )
    labels = {}
    for split in ("train", "test", "eval"):
        x, y = getattr(out, f"{split}_x"), getattr(out, f"{split}_y")
        if x is None:
            labels[split] = None
            continue
        if y is None:
            y = torch.full((len(x),), -1, dtype=torch.long)
        if not isinstance(y, torch.Tensor) or y.dtype.is_floating_point or y.dtype == torch.bool or tuple(y.shape) != (len(x),):
            got = f"{y.dtype} {tuple(y.shape)}" if isinstance(y, torch.Tensor) else type(y).__name__
            raise bad(f"{split}_y as {got}; it must be None or an integer tensor of shape ({len(x)},)")
        labels[split] = y.long()
    top = max(int(y.max()) for y in labels.values() if y is not None and len(y))
    low = min(int(y.min()) for y in labels.values() if y is not None and len(y))
    num_classes = out.num_classes if out.num_classes is not None else top + 1
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 0:
        raise bad(f"num_classes={num_classes!r}; it must be an int >= 0 (0: unlabelled)")
    if low < -1 or top >= num_classes:
        raise bad(f"labels in {low}..{top}; they must lie in 0..{num_classes - 1}, or be -1 where unknown")
    return replace(out, train_y=labels["train"], test_y=labels["test"], eval_y=labels["eval"], num_classes=num_classes, meta=dict(out.meta))


__all__ = ["SPLIT_SEED", "Splits", "check_splits"]
