"""The sweep axis: a list in place of a `dataset:` or `budget:` value expands the grid over that value.

`dataset: {limit: [25, 100, 400]}` gives three runs per adapter × strategy × seed, each with one concrete
limit. A key whose value is a list by nature (`dataset.classes`) sweeps only when written as a list of
lists (`classes: [[5, 6], [5, 6, 7, 8, 9]]`); a plain list there is the value itself. Every other block
(eval, runner, strategies) holds no sweeps: a list on one of its scalar keys is an error naming the key.

This module works on the suite's raw dict before schema validation (it splits the lists out and validates
each element as the scalar would be), and on finished dataclasses for the grid (`replace`). It sits in
the spec layer and imports only `errors` and `schema`, so bench.suite.spec can use it without a cycle.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import re
import types
from collections.abc import Iterator
from typing import Any, Union, get_args, get_origin, get_type_hints

from bench.core.errors import ConfigError
from bench.suite.schema import parse

SWEEPABLE = ("dataset", "budget")  # the suite blocks whose values may be lists
FIXED = ("eval", "runner")  # blocks whose scalar keys may not be lists (a clear error, not a type error)

Axes = dict[str, list[Any]]  # "dataset.limit" -> [25, 100, 400], in the order the suite wrote them


def _is_list_type(tp: Any) -> bool:
    """Whether a field's own value is a list (so only a list of lists sweeps it)."""
    if get_origin(tp) in (Union, types.UnionType):
        return any(_is_list_type(a) for a in get_args(tp))
    return get_origin(tp) in (list, tuple) or tp in (list, tuple)


def _is_sweep(value: Any, tp: Any) -> bool:
    if not isinstance(value, list):
        return False
    if _is_list_type(tp):  # `classes: [0, 1]` is a value; `classes: [[0, 1], [0, 1, 2]]` is a sweep
        return bool(value) and all(isinstance(v, list) for v in value)
    return True


def split(data: dict[str, Any], classes: dict[str, type]) -> tuple[dict[str, Any], Axes]:
    """(the suite dict with each swept value replaced by its first element, the axes).

    `classes` maps each sweepable block to its dataclass (DatasetSpec, Budget); every element of a sweep is
    validated by building that dataclass with it, so `limit: [25, 0]` fails like `limit: 0` would, naming
    `dataset.limit[1]`. An empty list, a repeated value, or a list on a key of a fixed block is an error."""
    out = dict(data)
    axes: Axes = {}
    for block, cls in classes.items():
        raw = data.get(block)
        if not isinstance(raw, dict):
            continue  # missing or malformed: the schema reports it
        hints = get_type_hints(cls)
        swept = {}
        for key, value in raw.items():
            if key in hints and isinstance(value, list) and not value:
                raise ConfigError("an empty list sweeps nothing", key=f"{block}.{key}", fix=f"give one {key}, or a list of values to sweep")
            if key in hints and _is_sweep(value, hints[key]):
                swept[key] = value
        base = {**raw, **{k: v[0] for k, v in swept.items()}}
        for key, values in swept.items():
            seen: set[str] = set()
            for i, v in enumerate(values):
                where = f"{block}.{key}[{i}]"
                _check_element(cls, {**base, key: v}, block, key, where)
                tag = json.dumps(v, sort_keys=True)
                if tag in seen:
                    raise ConfigError(f"the value {tag} is repeated (the same runs twice)", key=where, fix="list each value once")
                seen.add(tag)
            axes[f"{block}.{key}"] = list(values)
        out[block] = base
    _reject_fixed(data)
    return out, axes


def _check_element(cls: type, block_dict: dict, block: str, key: str, where: str) -> None:
    """Validate one element of a sweep as the scalar would be; a message about it names the element."""
    try:
        parse(cls, block_dict, block)
    except ConfigError as err:
        if err.key not in (block, f"{block}.{key}"):
            raise  # about another key of the block (a typo, say): reported as the schema words it
        raise ConfigError(err.message, key=where, fix=err.fix) from None


def _reject_fixed(data: dict[str, Any]) -> None:
    for block in FIXED:
        raw = data.get(block)
        if not isinstance(raw, dict):
            continue
        for key, value in raw.items():
            if isinstance(value, list) and key not in _LIST_KEYS.get(block, ()):
                raise ConfigError(
                    f"a list here would be a sweep, but {block}: values cannot be swept",
                    key=f"{block}.{key}",
                    fix=f"give one value; only {' and '.join(b + ':' for b in SWEEPABLE)} values can be lists that expand the grid",
                )


_LIST_KEYS = {"eval": ("metrics", "history_metrics")}  # keys of the fixed blocks that are lists by nature


def combinations(axes: Axes) -> Iterator[dict[str, Any]]:
    """Every combination of the swept values ({} once when nothing is swept), first axis slowest."""
    keys = list(axes)
    for values in itertools.product(*(axes[k] for k in keys)):
        yield dict(zip(keys, values, strict=True))


def replace(obj: Any, block: str, point: dict[str, Any]) -> Any:
    """`obj` (the suite's DatasetSpec or Budget) with this block's swept values of `point` set."""
    changes = {path.split(".", 1)[1]: v for path, v in point.items() if path.split(".", 1)[0] == block}
    return dataclasses.replace(obj, **changes) if changes else obj


def label(point: dict[str, Any]) -> str:
    """The readable run-id part of a sweep point, e.g. `limit25` or `limit25-steps800` ('' when nothing is swept)."""
    return "-".join(f"{path.rsplit('.', 1)[-1]}{_word(v)}" for path, v in point.items())


def _word(v: Any) -> str:
    """A swept value as a folder-name-safe word: lists join with '.', anything odd becomes '_'."""
    text = ".".join(str(x) for x in v) if isinstance(v, list) else str(v).lower() if isinstance(v, bool) else str(v)
    return re.sub(r"[^A-Za-z0-9_.+]", "_", text)[:32]


def column_value(v: Any) -> Any:
    """A swept value as a results.csv cell: scalars as they are, lists as JSON (hashable for grouping)."""
    return json.dumps(v) if isinstance(v, (list, dict)) else v


def merge_back(data: dict[str, Any], axes: Axes) -> dict[str, Any]:
    """A suite dict with each swept key written back as its list: the resolved suite.yaml loads again."""
    out = dict(data)
    for path, values in axes.items():
        block, key = path.split(".", 1)
        out[block] = {**out.get(block, {}), key: list(values)}
    return out


__all__ = ["FIXED", "SWEEPABLE", "Axes", "column_value", "combinations", "label", "merge_back", "replace", "split"]
