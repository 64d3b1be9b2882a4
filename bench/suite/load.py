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


# Where bundled suites are found by name (`bench run smoke`): the working directory's suites/, then the ones
# beside the installed package (a source checkout or an editable install), then the copies a wheel carries as
# package data (bench/suite/bundled is a link to the top-level suites/, followed when the wheel is built).
SUITE_DIRS = (Path("suites"), Path(__file__).resolve().parents[2] / "suites", Path(__file__).resolve().parent / "bundled")


def bundled_suites() -> dict[str, Path]:
    """name (the file's stem) → path, first folder of SUITE_DIRS wins."""
    seen: dict[str, Path] = {}
    for d in SUITE_DIRS:
        for p in sorted(d.glob("*.yaml")) if d.is_dir() else []:
            seen.setdefault(p.stem, p)
    return seen


def resolve_suite(source: Path) -> Path:
    """A suite file, or the name of a bundled one (`smoke` → suites/smoke.yaml) when no such file exists."""
    if source.is_file() or source.suffix or len(source.parts) > 1:
        return source
    return bundled_suites().get(source.name, source)


MAX_INCLUDE_DEPTH = 32  # files in one include chain: far beyond any real suite, far below Python's recursion limit


def _not_utf8(path: Path) -> str:
    """What kind of file a suite that is not UTF-8 is: UTF-16 (a BOM, or NULs between ASCII), or binary."""
    try:
        head = Path(path).read_bytes()[:4096]
    except OSError:
        head = b""
    if head.startswith((b"\xff\xfe", b"\xfe\xff")) or (head[1:2] == b"\0" and head[:1].isascii()):
        return "the file is UTF-16 text, not UTF-8 (saved by a Windows editor?)"
    if b"\0" in head:
        return "the file is binary, not YAML text"
    return "the file is not UTF-8 text (another encoding, or binary)"


def read_yaml(path: Path, seen: tuple[Path, ...] = ()) -> dict:
    """Read a suite file, overlaying it on its `include:` base (paths relative to the file)."""
    try:
        found = path.is_file()
    except (OSError, ValueError) as err:  # a NUL byte, a name too long for the file system
        raise BenchError(f"not a usable path ({err})", file=repr(str(path))[:200], fix="check the path") from None
    if not found:
        raise BenchError("suite file not found", file=str(path), fix="check the path; `bench list suites` shows the bundled ones")
    try:
        data = yamlsafe.load(yamlsafe.read_text(path))
    except yamlsafe.YamlLimit as err:
        raise BenchError(str(err), file=str(path), fix="split the suite or shorten its lists") from None
    except OSError as err:
        raise BenchError(
            f"cannot read the suite file ({err.strerror or err})", file=str(path), fix="check the path and its permissions"
        ) from None
    except UnicodeDecodeError:  # before ValueError, its base: the file, not a value, is the problem
        raise BenchError(_not_utf8(path), file=str(path), fix="save the suite as UTF-8 text (a .yaml file)") from None
    except (ValueError, OverflowError) as err:  # a scalar YAML could not build, e.g. the date 2024-13-01
        raise BenchError(f"invalid YAML value: {str(err).splitlines()[0][:120]}", file=str(path), fix="quote the value") from None
    except RecursionError:
        raise BenchError("invalid YAML: nested too deeply", file=str(path), fix="flatten the file") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise BenchError(f"invalid YAML: {where}{problem}", file=str(path), fix="fix the YAML syntax") from None
    if not isinstance(data, dict):
        raise BenchError("a suite must be a YAML mapping", file=str(path), fix="start with `name: my-suite`")
    if data and not any(isinstance(k, str) and k in _SUITE_KEYS for k in data):
        # Not a suite at all (e.g. `include: /etc/shadow`): say so without echoing any of its content.
        raise BenchError("not a suite file: none of its top-level keys is a suite key", file=str(path), fix="pass a suite .yaml file")
    inc = data.get("include")
    if inc is not None:
        if not isinstance(inc, str):
            raise BenchError("expected a file path string", file=str(path), key="include")
        try:  # a NUL byte or a name longer than the file system allows is not a path at all
            base_path = (path.parent / inc).resolve()
            found = base_path.is_file()
        except (OSError, ValueError) as err:
            raise BenchError(
                f"include is not a usable path ({err})", file=str(path), key="include", fix="name a suite file next to this one"
            ) from None
        if not found:  # name the including file: that is where the fix goes
            raise BenchError(f"included file not found: {base_path}", file=str(path), key="include", fix="paths are relative to this file")
        if base_path in seen:
            raise BenchError("include cycle", file=str(path), key="include", fix="remove the circular include")
        if len(seen) + 1 >= MAX_INCLUDE_DEPTH:  # name the chain's top, where it starts, not a file deep inside
            top = seen[0] if seen else path
            raise BenchError(
                f"include chain longer than {MAX_INCLUDE_DEPTH} files (from {top.name} down to {path.name})",
                file=str(top),
                key="include",
                fix="include the base suite directly instead of through a chain",
            )
        base = read_yaml(base_path, (*seen, path.resolve()))
        base.pop("name", None)
        data = _merge(base, data)
    return data


def parse_suite(data: dict, file: str = "<dict>") -> Suite:
    """Validate a suite dict, including each adapter's block against that adapter's Config."""
    from bench.adapter.base import get_adapter
    from bench.core import interrupt
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
                parse(cls.Config, block or {}, f"adapters.{key}")
            except BenchError:
                raise
            except BaseException as err:  # a user's `module:Class` may raise anything at import, exit included
                if interrupt.passes(err):
                    raise
                if isinstance(err, Exception):
                    raise ConfigError(f"cannot load adapter: {type(err).__name__}: {err}", key=f"adapters.{key}") from None
                raise ConfigError(
                    f"cannot load adapter: its code raised {type(err).__name__}({getattr(err, 'code', '')!r}) while loading",
                    key=f"adapters.{key}",
                    fix="an adapter module must import without calling sys.exit() or raising KeyboardInterrupt",
                ) from None
        for i, m in enumerate(suite.eval.metrics + (suite.eval.history_metrics or [])):
            METRICS.get(m, where=f"eval.metrics[{i}]")
        _check_datasets(suite, search)
        _check_style(suite, search)
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


def _check_style(suite: Suite, search: tuple[str, ...]) -> None:
    """`style:` goes with adapters of family stylize, and only with them: a stylize adapter without a style set
    has nothing to take a style from, and a generator given one would ignore it."""
    from bench.adapter.base import CONDITIONAL_FAMILIES, get_adapter
    from bench.data.datasets import check_dataset

    fams = {key: get_adapter(key, where=f"adapters.{key}", search=search).family for key in suite.adapters}
    conditional = [k for k, f in fams.items() if f in CONDITIONAL_FAMILIES]
    if suite.style is None and conditional:
        raise ConfigError(
            f"adapter '{conditional[0]}' is a stylize adapter and needs a style set",
            key="style",
            fix="add style: {name: photos} (any data set spec, a folder of images included)",
        )
    if suite.style is not None:
        plain = [k for k in fams if k not in conditional]
        if plain:
            raise ConfigError(
                f"style: is only for stylize adapters; '{plain[0]}' is a {fams[plain[0]]} model",
                key="style",
                fix="remove style:, or run that adapter in a suite of its own",
            )
        check_dataset(suite.style, "style", search)


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


def load_suite(source: str | Path | dict, overrides: tuple[str, ...] | list[str] = ()) -> Suite:
    """The suite from a file or a dict, with `overrides` (`key=value`, bench.suite.overrides) set before
    validation, so they are checked like the file's own values."""
    from bench.suite.overrides import apply_overrides

    if isinstance(source, dict):
        try:
            yamlsafe.check_expansion(source)  # a dict from Python may share objects just as YAML aliases do
        except yamlsafe.YamlLimit as err:
            raise BenchError(str(err), file="<dict>", fix="pass a smaller suite") from None
        return parse_suite(apply_overrides(source, overrides))
    path = resolve_suite(Path(source))
    data = read_yaml(path)
    if overrides:
        return parse_suite(apply_overrides(data, overrides), f"{path} (with {' '.join(overrides)})")
    return parse_suite(data, str(path))


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
