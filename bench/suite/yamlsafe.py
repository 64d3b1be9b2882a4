"""Suite YAML, read defensively: `yaml.safe_load` plus three limits that safe_load alone does not give.

- Size: a file larger than MAX_FILE_BYTES is refused before parsing (a 5.9M-entry seed list otherwise
  spends minutes in PyYAML and then dies of MemoryError).
- Duplicate keys: refused. PyYAML silently keeps the last one, so `steps: 10` ... `steps: 1000` would run
  the second without a word.
- Alias expansion: aliases (`*a`) share one object, so a nine-level "billion laughs" loads in
  microseconds and only explodes later, in repr, deepcopy or JSON. The loaded tree is walked counting
  nodes as if every alias were expanded, and refused beyond MAX_NODES; the walk stops at the limit, so
  it costs at most MAX_NODES steps whatever the file holds.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

MAX_FILE_BYTES = 1 << 20  # 1 MiB: the largest bundled suite is under 4 KiB
MAX_NODES = 100_000  # values after alias expansion; a suite has a few hundred


class YamlLimit(ValueError):
    """The file passes a stated limit; the message says which and by how much."""


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys in a mapping."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                continue  # complex keys are rejected later by the schema; `<<:` merges may be overridden
            key = self.construct_object(key_node, deep=deep)
            try:
                dup = key in seen
            except TypeError:  # unhashable: the base class reports it
                continue
            if dup:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key '{str(key)[:60]}' (the last one would win silently)", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


# YAML 1.1 (PyYAML) reads `2e-4` as text: its floats need a dot (`2.0e-4`). Learning rates are written the
# first way, so suites read a mantissa without a dot as a float too, as YAML 1.2 (and JSON) do.
_Loader.add_implicit_resolver("tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+$"), list("-+0123456789"))


def read_text(path: Path, limit: int = MAX_FILE_BYTES) -> str:
    """The file's text, refused before reading when it passes `limit` bytes."""
    size = Path(path).stat().st_size
    if size > limit:
        raise YamlLimit(f"the file is {size:,} bytes; suites are limited to {limit:,} bytes")
    with open(path, "rb") as f:  # read at most limit+1: the file may grow between stat and read
        raw = f.read(limit + 1)
    if len(raw) > limit:
        raise YamlLimit(f"the file is over {limit:,} bytes; suites are limited to {limit:,} bytes")
    return raw.decode("utf-8")


def check_expansion(data: Any, limit: int = MAX_NODES) -> None:
    """Raise YamlLimit when `data`, with every shared or repeated object counted each time it appears,
    has more than `limit` values. Self-referencing structures count as unbounded."""
    count = 0
    stack = [data]
    while stack:
        node = stack.pop()
        count += 1
        if count > limit:
            raise YamlLimit(f"more than {limit:,} values after expanding aliases (&anchor/*alias); suites are limited to {limit:,}")
        if isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, list | tuple | set):
            stack.extend(node)


def load(text: str) -> Any:
    """Parse YAML text safely (no tags that build Python objects), refusing duplicate keys and bombs."""
    data = yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
    check_expansion(data)
    return data


__all__ = ["MAX_FILE_BYTES", "MAX_NODES", "YamlLimit", "check_expansion", "load", "read_text"]
