"""The import graph of `bench`: no cycles, and no import that runs back up a layer.

The walker reads every module with `ast` (module-level, function-level and TYPE_CHECKING imports alike, and
`importlib.import_module("literal")`: a typing-only or dynamic import is still a dependency of the design) and resolves `from bench.x import y` to the
submodule `bench.x.y` when that is a module. Importing `bench.a.b` also runs the package `bench.a`'s
`__init__`, so that edge is added too; the root `bench/__init__.py` is lazy (PEP 562 `__getattr__`), so
its edge is not.

`python tests/test_layers.py` prints the graph's cycles and upward imports (the closing-note summary).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOTS = tuple(Path(__file__).resolve().parents[1] / name for name in ("bench", "baselines"))

# The layer map, bottom to top (docs/ARCHITECTURE.md draws it). A module belongs to the layer of the longest
# entry that is it or a package above it; `bench` alone is the package root. A module may import its own
# layer or any lower one, never a higher one. A new module must be placed here (the test says so).
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    (
        "spec",
        (
            "bench.core",  # the package, lazy; its leaves are placed one by one
            "bench.core.errors",  # BenchError: one line, exit 2
            "bench.core.seeds",  # derive_seed(seed, purpose): every random stream
            "bench.core.version",  # __version__ from the package metadata
            "bench.core.beat",  # progress beats the stall watchdog listens to
            "bench.core.interrupt",  # a real Ctrl-C told apart from adapter code's KeyboardInterrupt
            "bench.suite",  # spec, sweep, schema, yamlsafe, limits (the package is lazy: load_suite on use)
            "bench.store",  # the package, lazy
            "bench.store.result",  # RunResult: the typed result.json
        ),
    ),
    (
        "registries & leaves",
        (
            "bench.core.registry",
            "bench.core.env",  # devices, seeding, threads, versions
            "bench.adapter",  # the adapter contract: base, batch, tokens, contract checks
            "bench.data",
            "bench.metrics",
            "bench.tasks",
            "bench.store.files",  # atomic writes
            "bench.store.cachefile",  # cache entries sealed with their content hash, checked on read
            "bench.store.locks",  # lock files: imports nothing of bench above the spec
            "bench.store.fingerprint",  # the code and device part of a run's identity
            "baselines",  # the bundled adapters: registered through entry points, never imported by bench
        ),
    ),
    ("run", ("bench.runner", "bench.store.runs", "bench.store.select", "bench.store.stale", "bench.suite.load")),
    ("orchestration", ("bench.exec", "bench.store.claims", "bench.stats", "bench.report")),
    (
        "faces",
        (
            "bench.api",
            "bench.api_eval",
            "bench.validation",  # bench validate: environment, adapter contracts, n/a forecast
            "bench.api_score",
            "bench.cli",
            "bench.listing",
            "bench.planning",
            "bench.scaffold",
            "bench",
            "bench.tokens",
            "bench.batch",
            "bench.errors",
        ),
    ),  # + deprecated re-exports
]


def module_names(roots: tuple[Path, ...] = ROOTS) -> dict[str, Path]:
    out = {}
    for root in roots:
        for p in sorted(root.rglob("*.py")):
            parts = list(p.relative_to(root.parent).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = p
    return out


def _targets(node: ast.AST, mod: str, is_pkg: bool, modules: dict[str, Path]) -> list[str]:
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    elif isinstance(node, ast.ImportFrom):
        if node.level:
            base = mod.split(".") if is_pkg else mod.split(".")[:-1]
            base = base[: len(base) - (node.level - 1)]
            prefix = ".".join([*base, node.module] if node.module else base)
        else:
            prefix = node.module or ""
        # `from bench import store` imports the submodule bench.store.runs; `from bench.x import Name` imports bench.x.
        names = [f"{prefix}.{a.name}" if f"{prefix}.{a.name}" in modules else prefix for a in node.names]
    elif (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute | ast.Name)
        and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
        and node.args
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
    ):  # importlib.import_module("baselines"): an import all the same
        names = [node.args[0].value]
    else:
        return []
    out = []
    for name in names:
        # `import bench.a.b` lands on the longest known module; anything outside bench is not ours.
        while name and name not in modules:
            name = name.rpartition(".")[0]
        if name:
            out.append(name)
    return out


def import_graph(roots: tuple[Path, ...] = ROOTS) -> dict[str, set[str]]:
    """module -> the bench (and baselines) modules it imports (anywhere in its body)."""
    modules = module_names(roots)
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for mod, path in modules.items():
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            for target in _targets(node, mod, path.name == "__init__.py", modules):
                # Running bench.a.b first runs the package bench.a (but not the lazy root `bench`); importing
                # baselines.x runs baselines/__init__.py, which imports every bundled adapter. A name taken
                # from the root itself (`from bench import __version__`) is an import of the root all the same.
                chain = target.split(".")
                for i in range(1 if chain[0] != "bench" else 2, len(chain) + 1):
                    dep = ".".join(chain[:i])
                    if dep != mod and dep in modules and not mod.startswith(dep + "."):
                        graph[mod].add(dep)
                if target == "bench" and mod != "bench":
                    graph[mod].add("bench")
    return graph


def layer_of(mod: str) -> int | None:
    best: tuple[int, int] | None = None  # (length of the matching entry, layer)
    for i, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            if (mod == p or (p != "bench" and mod.startswith(p + "."))) and (best is None or len(p) > best[0]):
                best = (len(p), i)
    return None if best is None else best[1]


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted; sorted by size."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(out, key=lambda c: (-len(c), c))


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    out = []
    for mod in sorted(graph):
        lm = layer_of(mod)
        for dep in sorted(graph[mod]):
            ld = layer_of(dep)
            if lm is not None and ld is not None and ld > lm:
                out.append(f"{mod} ({LAYERS[lm][0]}) -> {dep} ({LAYERS[ld][0]})")
    return out


def summary(graph: dict[str, set[str]]) -> str:
    cyc = cycles(graph)
    up = upward_imports(graph)
    unmapped = [m for m in sorted(graph) if layer_of(m) is None]
    lines = [f"{len(graph)} modules, {sum(map(len, graph.values()))} import edges"]
    lines.append(f"cycles (strongly connected components): {len(cyc)}")
    lines += [f"  {len(c)} modules: {', '.join(c)}" for c in cyc]
    lines.append(f"upward imports: {len(up)}")
    lines += [f"  {u}" for u in up]
    lines.append(f"modules not in the layer map: {len(unmapped)}")
    lines += [f"  {m}" for m in unmapped]
    return "\n".join(lines)


GRAPH = import_graph()
DOC = Path(__file__).resolve().parents[1] / "docs" / "ARCHITECTURE.md"
BEGIN, END = (
    "<!-- layers: generated from LAYERS in tests/test_layers.py; `python tests/test_layers.py --write-docs` -->",
    "<!-- /layers -->",
)


def layer_table() -> str:
    """docs/ARCHITECTURE.md's layer table, from LAYERS: the one map of the layers."""
    rows = ["| layer | modules and packages (a package covers what is under it, unless placed apart) |", "|---|---|"]
    for i, (name, prefixes) in reversed(list(enumerate(LAYERS, 1))):
        rows.append(f"| {i} {name} | {' · '.join(f'`{p}`' for p in prefixes)} |")
    return "\n".join(rows)


def test_the_architecture_doc_shows_the_layer_map() -> None:
    text = DOC.read_text()
    assert BEGIN in text and END in text, "docs/ARCHITECTURE.md lost its generated layer table"
    block = text.split(BEGIN, 1)[1].split(END, 1)[0].strip()
    assert block == layer_table(), "run `python tests/test_layers.py --write-docs`"


def test_the_architecture_doc_names_every_module() -> None:
    # Its "where each concern lives" table names each module (or the package that holds it).
    text = DOC.read_text()
    missing = []
    for mod in GRAPH:
        if not mod.startswith("bench.") or mod in ("bench.tokens", "bench.batch", "bench.errors"):
            continue
        rel = mod.removeprefix("bench.").replace(".", "/")
        leaf, pkg = rel.rsplit("/", 1)[-1], rel.split("/")[0]
        if f"`{rel}.py`" not in text and f"`{rel}/`" not in text and f"`{leaf}`" not in text and f"`{pkg}/`" not in text:
            missing.append(mod)
    assert not missing, f"docs/ARCHITECTURE.md does not name: {missing}"


def test_the_walker_sees_function_level_and_type_checking_imports(tmp_path: Path) -> None:
    pkg = tmp_path / "bench"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from bench.sub import b\n")
    (pkg / "sub" / "__init__.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..a import f\n")
    (pkg / "sub" / "b.py").write_text("import os\nfrom . import c\n")
    (pkg / "sub" / "c.py").write_text("")
    g = import_graph((pkg,))
    assert g["bench.a"] == {"bench.sub", "bench.sub.b"}
    assert g["bench.sub"] == {"bench.a"}
    assert g["bench.sub.b"] == {"bench.sub.c"}  # its own package is not an import of itself
    assert cycles(g) == [["bench.a", "bench.sub"]]


def test_every_module_is_in_the_layer_map() -> None:
    unmapped = [m for m in GRAPH if layer_of(m) is None]
    assert not unmapped, f"place these modules in LAYERS (tests/test_layers.py) and docs/ARCHITECTURE.md: {unmapped}"


def test_no_import_cycles() -> None:
    assert cycles(GRAPH) == [], summary(GRAPH)


@pytest.mark.parametrize("mod", sorted(GRAPH))
def test_no_import_runs_up_a_layer(mod: str) -> None:
    up = upward_imports({mod: GRAPH[mod]})
    assert not up, f"{up} (the layers are in tests/test_layers.py and docs/ARCHITECTURE.md)"


def test_spec_layer_imports_nothing_above_itself() -> None:
    for mod in ("bench.suite.spec", "bench.store.result", "bench.suite.sweep"):
        spec_layer = {"bench.core", "bench.core.errors", "bench.core.seeds", "bench.suite.schema", "bench.suite.spec", "bench.suite.sweep"}
        assert GRAPH[mod] <= spec_layer, GRAPH[mod]
    assert "bench.suite.spec" not in GRAPH["bench.suite.sweep"]  # spec uses sweep: the reverse would be a cycle


def test_core_never_names_the_baselines_package() -> None:
    for mod, path in module_names(ROOTS[:1]).items():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            assert not any(n == "baselines" or n.startswith("baselines.") for n in names), f"{mod} imports baselines"


if __name__ == "__main__" and sys.argv[1:] == ["--write-docs"]:
    head, rest = DOC.read_text().split(BEGIN, 1)
    DOC.write_text(head + BEGIN + "\n" + layer_table() + "\n" + END + rest.split(END, 1)[1])
    print(f"wrote the layer table of {DOC}")
elif __name__ == "__main__":
    print(summary(GRAPH))
