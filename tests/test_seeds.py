"""One seed scheme: every random stream of a run comes from `derive_seed(seed, purpose)`, and the purposes are
listed (and described) in one place, bench.core.seeds.PURPOSES."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from bench.core.seeds import PURPOSES, derive_seed

BENCH = Path(__file__).resolve().parents[1] / "bench"


def _calls(name: str) -> list[tuple[Path, ast.Call]]:
    out = []
    for p in BENCH.rglob("*.py"):
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) == name:
                out.append((p, node))
    return out


def test_the_purposes_in_use_are_exactly_the_listed_ones() -> None:
    used = set()
    for p, call in _calls("derive_seed"):
        purpose = call.args[1] if len(call.args) > 1 else None
        assert isinstance(purpose, ast.Constant) and isinstance(purpose.value, str), f"{p}: derive_seed needs a literal purpose"
        used.add(purpose.value)
    assert used == set(PURPOSES), f"used {sorted(used)}, listed {sorted(PURPOSES)}"
    assert sorted(PURPOSES) == [
        "contract",
        "data",
        "denoise",
        "eval",
        "extractor",
        "init",
        "mask",
        "pairs",
        "pretrain",
        "style_loss",
        "train",
    ]


def test_no_stream_is_seeded_by_arithmetic_or_a_constant() -> None:
    # `manual_seed(10_000 + seed)`, `manual_seed(0)`: a stream outside the scheme, shared by accident.
    for name in ("manual_seed", "seed_everything"):
        for p, call in _calls(name):
            literals = [n for a in call.args for n in ast.walk(a) if isinstance(n, ast.Constant) and isinstance(n.value, int)]
            derived = any(isinstance(n, ast.Call) and getattr(n.func, "id", "") == "derive_seed" for a in call.args for n in ast.walk(a))
            assert derived or not literals, f"{p.relative_to(BENCH.parent)}:{call.lineno}: seed it with derive_seed(seed, purpose)"


def test_purposes_are_independent_and_unknown_ones_are_refused() -> None:
    seeds = {derive_seed(s, p) for s in range(20) for p in PURPOSES}
    assert len(seeds) == 20 * len(PURPOSES)
    assert all(0 <= s < 2**63 for s in seeds)
    with pytest.raises(ValueError, match="add it to bench.core.seeds.PURPOSES"):
        derive_seed(0, "typo")
