"""One list per extension point: each bundled adapter, task and metric is registered in exactly one place, and
a bundled file that is on no list fails here (it would otherwise be silently missing from every suite)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import tomllib

from bench.adapter.base import ADAPTERS
from bench.metrics import METRICS
from bench.metrics.info import METRIC_INFO
from bench.tasks import BY_NAME

ROOT = Path(__file__).resolve().parents[1]


def _entry_points() -> dict[str, str]:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return meta["project"]["entry-points"]["bench.adapters"]


def test_every_bundled_adapter_file_is_one_entry_point() -> None:
    files = {p.stem for p in (ROOT / "baselines").glob("*.py") if not p.stem.startswith("_")}
    modules = [v.split(":")[0].removeprefix("baselines.") for v in _entry_points().values()]
    assert sorted(modules) == sorted(files), "each baselines/<name>.py needs exactly one line under [project.entry-points.'bench.adapters']"


def test_no_second_list_of_bundled_adapters() -> None:
    # baselines/__init__.py imports nothing and no baseline registers itself by decorator: the entry points are the list.
    init = ast.parse((ROOT / "baselines" / "__init__.py").read_text())
    assert not [n for n in ast.walk(init) if isinstance(n, ast.Import | ast.ImportFrom)]
    for p in (ROOT / "baselines").glob("*.py"):
        assert "@register_adapter" not in p.read_text(), f"{p.name}: registered by its entry point, not by a decorator"


def test_every_entry_point_is_registered_under_its_name() -> None:
    for key, target in _entry_points().items():
        cls = ADAPTERS.get(key)
        assert f"{cls.__module__}:{cls.__qualname__}" == target


def test_every_task_module_is_a_row_of_the_task_table() -> None:
    # A module of bench/tasks that defines `train(ctx)` is a task; it must be the table's row of that name.
    helpers = {"__init__", "cache", "common", "strategy", "weights", "vit_weights"}
    mods = {p.stem for p in (ROOT / "bench" / "tasks").glob("*.py")} - helpers
    for mod in mods:
        tree = ast.parse((ROOT / "bench" / "tasks" / f"{mod}.py").read_text())
        assert mod in BY_NAME, f"bench/tasks/{mod}.py is not a row of bench.tasks.BY_NAME"
        defines_train = any(isinstance(n, ast.FunctionDef) and n.name == "train" for n in tree.body)
        assert (BY_NAME[mod].train is not None) == defines_train


def test_task_names_are_written_nowhere_else() -> None:
    # The old drift: a hard-coded tuple of training tasks in tasks/strategy.py, and spec.TASKS beside BY_NAME.
    names = [n for n in BY_NAME if n != "scratch"]
    pattern = re.compile(r"\(\s*" + r"\s*,\s*".join(f"['\"]{n}['\"]" for n in names[:2]))
    for p in (ROOT / "bench").rglob("*.py"):
        assert not pattern.search(p.read_text()), f"{p}: a hand-kept tuple of task names"
    assert not hasattr(__import__("bench.suite.spec", fromlist=["x"]), "TASKS")


def test_every_metric_module_is_loaded_and_every_row_has_a_function() -> None:
    modules = {p.stem for p in (ROOT / "bench" / "metrics").glob("*.py")}
    registering = {m for m in modules if "@register_metric(" in (ROOT / "bench" / "metrics" / f"{m}.py").read_text()}
    names = dict(METRICS.items())
    assert names.keys() == METRIC_INFO.keys()
    import sys

    assert {m for m in registering if f"bench.metrics.{m}" not in sys.modules} == set()
