"""Suite YAML: reading (with `include:`) and validation against the registries.

The dataclasses and grid expansion live in bench/spec.py (the bottom layer); they are re-exported here so
`from bench.suite.load import RunSpec` keeps working. This module sits above the registries it validates against.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import yaml

from bench.core.errors import BenchError, ConfigError, did_you_mean
from bench.suite import limits, sweep, yamlsafe
from bench.suite.schema import parse
from bench.suite.spec import (
    PROTOCOL_VERSION,
    Budget,
    DatasetSpec,
    EvalSpec,
    RunnerSpec,
    RunSpec,
    SeedRange,
    StrategySpec,
    Suite,
    expand,
    parse_margin,
    runspec_from_dict,
    suite_to_dict,
    with_seed_range,
)

MAX_RUN_ID_BYTES = 200  # a run folder's name; file systems allow 255 bytes, temp and page names add a few
_SUITE_KEYS = frozenset(f.name for f in dataclasses.fields(Suite))


def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


def read_yaml(path: Path, seen: tuple[Path, ...] = ()) -> dict:
    """Read a suite file, overlaying it on its `include:` base (paths relative to the file)."""
    if not path.is_file():
        raise BenchError("suite file not found", file=str(path), fix="check the path; `bench list suites` shows the bundled ones")
    try:
        data = yamlsafe.load(yamlsafe.read_text(path))
    except yamlsafe.YamlLimit as err:
        raise BenchError(str(err), file=str(path), fix="split the suite or shorten its lists") from None
    except OSError as err:
        raise BenchError(
            f"cannot read the suite file ({err.strerror or err})", file=str(path), fix="check the path and its permissions"
        ) from None
    except (ValueError, OverflowError) as err:  # a scalar YAML could not build, e.g. the date 2024-13-01
        raise BenchError(f"invalid YAML value: {str(err).splitlines()[0][:120]}", file=str(path), fix="quote the value") from None
    except RecursionError:
        raise BenchError("invalid YAML: nested too deeply", file=str(path), fix="flatten the file") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise BenchError(f"invalid YAML: {where}{problem}", file=str(path), fix="fix the YAML syntax") from None
    except UnicodeDecodeError:
        raise BenchError("not a text file", file=str(path), fix="pass a suite .yaml file") from None
    if not isinstance(data, dict):
        raise BenchError("a suite must be a YAML mapping", file=str(path), fix="start with `name: my-suite`")
    if data and not any(isinstance(k, str) and k in _SUITE_KEYS for k in data):
        # Not a suite at all (e.g. `include: /etc/shadow`): say so without echoing any of its content.
        raise BenchError("not a suite file: none of its top-level keys is a suite key", file=str(path), fix="pass a suite .yaml file")
    inc = data.get("include")
    if inc is not None:
        if not isinstance(inc, str):
            raise BenchError("expected a file path string", file=str(path), key="include")
        base_path = (path.parent / inc).resolve()
        if not base_path.is_file():  # name the including file: that is where the fix goes
            raise BenchError(f"included file not found: {base_path}", file=str(path), key="include", fix="paths are relative to this file")
        if base_path in seen:
            raise BenchError("include cycle", file=str(path), key="include", fix="remove the circular include")
        base = read_yaml(base_path, (*seen, path.resolve()))
        base.pop("name", None)
        data = _merge(base, data)
    return data


def parse_suite(data: dict, file: str = "<dict>") -> Suite:
    """Validate a suite dict, including each adapter's block against that adapter's Config."""
    from bench.adapter.base import get_adapter
    from bench.metrics import METRICS
    from bench.tasks import BY_NAME
    from bench.tasks.strategy import check_strategy

    search = suite_folders(file)
    try:
        data, axes = sweep.split(data, {"dataset": DatasetSpec, "budget": Budget})
        suite = parse(Suite, data)
        suite.sweep = axes
        for key, block in suite.adapters.items():
            try:
                cls = get_adapter(key, where=f"adapters.{key}", search=search)
            except BenchError:
                raise
            except Exception as err:  # importing a user's `module:Class` may raise anything
                raise ConfigError(f"cannot load adapter: {type(err).__name__}: {err}", key=f"adapters.{key}") from None
            parse(cls.Config, block or {}, f"adapters.{key}")
        for i, m in enumerate(suite.eval.metrics + (suite.eval.history_metrics or [])):
            METRICS.get(m, where=f"eval.metrics[{i}]")
        _check_datasets(suite, search)
        for name, strat in suite.strategies.items():
            if strat.task not in BY_NAME:  # the task table (bench/tasks/__init__.py) is the one list of tasks
                raise ConfigError(f"unknown task '{strat.task}' ({did_you_mean(strat.task, BY_NAME)})", key=f"strategies.{name}.task")
            check_strategy(name, strat, trains=BY_NAME[strat.task].train is not None)
        _check_run_id_length(suite)
        limits.check_suite(suite)
        _check_baseline_and_headline(suite)
    except BenchError as err:  # same class (callers catch ConfigError), now naming the file
        raise type(err)(err.message, file=err.file or file, key=err.key, fix=err.fix) from None
    return suite


def _check_datasets(suite: Suite, search: tuple[str, ...]) -> None:
    """Data set names resolve (a `module:function` is imported, from the suite's folder first) and image
    folders are sound, without loading any pixels: that happens before any run starts."""
    from bench.data.datasets import check_dataset

    try:
        check_dataset(suite.dataset, "dataset", search)
        for name, strat in suite.strategies.items():
            if strat.source is not None:
                check_dataset(strat.source, f"strategies.{name}.source", search)
    except BenchError:
        raise
    except Exception as err:  # importing a user's `module:function` may raise anything
        raise ConfigError(f"cannot load data set: {type(err).__name__}: {err}", key="dataset.name") from None


def _check_run_id_length(suite: Suite) -> None:
    """Every run folder name (adapter-strategy-s<seed>-<hash8>) must fit the file system's name limit."""
    for key in suite.adapters:
        for name in suite.strategies:
            probe = f"{key}-{name}-s{max(suite.seeds)}-00000000"
            size = len(probe.encode("utf-8", "surrogatepass"))
            if size > MAX_RUN_ID_BYTES:
                raise ConfigError(
                    f"run folder names would be {size} bytes (limit {MAX_RUN_ID_BYTES})",
                    key=f"strategies.{name[:40]}",
                    fix="shorten the strategy name or the adapter key",
                )


def _check_baseline_and_headline(suite: Suite) -> None:
    """`baseline:` names a strategy of the suite; `headline:` is a registered metric the suite measures."""
    from bench.core.errors import did_you_mean
    from bench.metrics import METRICS
    from bench.metrics.info import COST_METRICS

    if suite.baseline is not None and suite.baseline not in suite.strategies:
        raise ConfigError(
            f"baseline '{suite.baseline}' is not a strategy of this suite",
            key="baseline",
            fix=did_you_mean(suite.baseline, suite.strategies),
        )
    try:
        parse_margin(suite.margin)
    except ValueError as err:
        raise ConfigError(str(err), key="margin", fix="write e.g. margin: 10% (of the baseline's mean) or margin: 2.5") from None
    if suite.headline is None:
        return
    METRICS.get(suite.headline, where="headline")
    if suite.headline not in suite.eval.metrics and suite.headline not in COST_METRICS:
        raise ConfigError(
            f"headline metric '{suite.headline}' is not measured by this suite", key="headline", fix=f"add {suite.headline} to eval.metrics"
        )


def suite_folders(file: str) -> tuple[str, ...]:
    """Where a suite's `module:Class` adapters are looked for first: the suite file's own folder."""
    return () if file == "<dict>" else (str(Path(file).resolve().parent),)


def load_suite(source: str | Path | dict) -> Suite:
    if isinstance(source, dict):
        try:
            yamlsafe.check_expansion(source)  # a dict from Python may share objects just as YAML aliases do
        except yamlsafe.YamlLimit as err:
            raise BenchError(str(err), file="<dict>", fix="pass a smaller suite") from None
        return parse_suite(copy.deepcopy(source))
    path = Path(source)
    return parse_suite(read_yaml(path), str(path))


# The spec names, re-exported: `from bench.suite.load import RunSpec` keeps working.
__all__ = [
    "PROTOCOL_VERSION",
    "Budget",
    "DatasetSpec",
    "EvalSpec",
    "RunSpec",
    "RunnerSpec",
    "SeedRange",
    "StrategySpec",
    "Suite",
    "expand",
    "load_suite",
    "parse_suite",
    "read_yaml",
    "runspec_from_dict",
    "suite_to_dict",
    "with_seed_range",
]
