"""`bench run SUITE key=value …`: values set from the command line, applied to the suite's YAML before it is
validated, so an override is checked exactly like the file (same did-you-mean errors), changes the run ids
like an edit of the file would, and is written into the resolved suite.yaml the report shows and copies.

`budget.steps=50`, `seeds=[0,1,2]`, `adapters.cnn_gan.width=16`: the key is a dotted path into the YAML, the
value is parsed as YAML (so 50 is an int, [0, 1] a list, and `null` removes a setting's value).
"""

from __future__ import annotations

import copy

import yaml

from bench.core.errors import BenchError

WHERE = "command line"


def parse_override(text: str) -> tuple[list[str], object]:
    """'budget.steps=50' → (['budget', 'steps'], 50). One-line BenchError for a malformed one."""
    key, eq, raw = text.partition("=")
    path = key.strip().split(".")
    if not eq or not all(path):
        raise BenchError(f"override {text[:80]!r} is not key=value", file=WHERE, fix="write e.g. budget.steps=50 or seeds=[0,1]")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        raise BenchError(f"override {key}: value {raw[:80]!r} is not valid YAML", file=WHERE, fix="quote it, e.g. name='my run'") from None
    return path, value


def apply_overrides(data: dict, overrides: list[str] | tuple[str, ...]) -> dict:
    """A copy of the suite dict with each override set; a path through a non-mapping is an error."""
    out = copy.deepcopy(data)
    for text in overrides:
        path, value = parse_override(text)
        node = out
        for i, part in enumerate(path[:-1]):
            nxt = node.get(part)
            if nxt is None:
                nxt = node[part] = {}
            if not isinstance(nxt, dict):
                where = ".".join(path[: i + 1])
                raise BenchError(
                    f"override {'.'.join(path)}: {where} is {type(nxt).__name__}, not a mapping", file=WHERE, fix=f"set {where}=... instead"
                )
            node = nxt
        node[path[-1]] = value
    return out


def header(overrides: list[str] | tuple[str, ...]) -> str:
    """The comment the resolved suite.yaml starts with, so the report records what the command line changed."""
    return "".join(f"# override from the command line: {o}\n" for o in overrides)
