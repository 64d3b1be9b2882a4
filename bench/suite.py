"""Suite YAML: schema, loading (with `include:`), validation and expansion into the run grid."""

from __future__ import annotations

import copy
import fnmatch
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bench.data import DatasetSpec
from bench.errors import BenchError, ConfigError
from bench.schema import parse, to_dict

PROTOCOL_VERSION = "1"  # bump whenever evaluation changes; stored in every result, never mixed silently
TASKS = ("scratch", "supervised", "autoencode", "autoregressive", "generative", "external")


@dataclass
class Budget:
    steps: int = 300
    eval_every: int = 0  # 0: evaluate only at the end
    batch_size: int = 64

    def __post_init__(self) -> None:
        if self.steps < 0 or self.batch_size < 1 or self.eval_every < 0:
            raise ValueError("steps and eval_every must be >= 0 and batch_size >= 1")


@dataclass
class EvalSpec:
    num_samples: int = 1000
    metrics: list[str] = field(default_factory=lambda: ["fid_domain"])
    batch_size: int = 500  # only changes speed, never the numbers
    kid_subset_size: int = 1000
    weights_path: str | None = None  # a folder holding Inception/VGG weights for fid/kid/isc/precision/recall
    history_metrics: list[str] | None = None  # metrics at periodic evals; None: the cheap ones in `metrics`

    def __post_init__(self) -> None:
        if self.num_samples < 2 or self.batch_size < 1 or self.kid_subset_size < 2:
            raise ValueError("num_samples must be >= 2, batch_size >= 1 and kid_subset_size >= 2")


@dataclass
class StrategySpec:
    """How parts are pretrained before training. `task: scratch` (or `{}`) does nothing."""

    task: str = "scratch"
    source: DatasetSpec | None = None
    parts: list[str] | None = None  # None: every part the task applies to
    steps: int = 0
    freeze: dict[str, int] = field(default_factory=dict)
    batch_size: int | None = None
    lr: float = 1e-3
    mask_ratio: float = 0.0
    path: str | None = None  # external: a .safetensors or .pt state dict
    sha256: str | None = None
    timm_model: str | None = None  # external: a timm pretrained name (online, or in the timm cache)

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            from bench.errors import did_you_mean

            raise ValueError(f"unknown task '{self.task}' ({did_you_mean(self.task, TASKS)})")
        if not 0.0 <= self.mask_ratio < 1.0:
            raise ValueError(f"mask_ratio must be in [0, 1), got {self.mask_ratio}")
        if self.steps < 0:
            raise ValueError("steps must be >= 0")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a positive number, got {self.lr}")
        if self.batch_size is not None and self.batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        bad = {k: n for k, n in self.freeze.items() if n < 0}
        if bad:
            raise ValueError(f"freeze counts must be >= 0, got {bad}")


@dataclass
class RunnerSpec:
    """Speed switches; none of them may change what a run measures beyond float rounding."""

    amp: bool = True  # bf16 autocast on CUDA
    tf32: bool = True
    channels_last: bool = True
    compile: bool = False
    fused_optim: bool = True
    log_every: int = 25  # steps between host syncs for losses and divergence checks
    checkpoint_every: int = 0  # 0: only at eval points
    threads: int | None = None  # CPU threads; None: every usable core. Pin it (e.g. 1) on a shared host or for cross-machine repeatability
    diverge_threshold: float | None = None  # |loss| above this counts as diverged

    def __post_init__(self) -> None:
        if self.threads is not None and self.threads < 1:
            raise ValueError("threads must be >= 1 (or null for every usable core)")
        if self.log_every < 1 or self.checkpoint_every < 0:
            raise ValueError("log_every must be >= 1 and checkpoint_every >= 0")
        if self.diverge_threshold is not None and not self.diverge_threshold > 0:
            raise ValueError("diverge_threshold must be a positive number")


@dataclass
class Suite:
    name: str
    dataset: DatasetSpec
    version: int = 1
    description: str = ""
    budget: Budget = field(default_factory=Budget)
    eval: EvalSpec = field(default_factory=EvalSpec)
    seeds: list[int] = field(default_factory=lambda: [0])
    adapters: dict[str, dict[str, Any]] = field(default_factory=dict)
    strategies: dict[str, StrategySpec] = field(default_factory=lambda: {"scratch": StrategySpec()})
    runner: RunnerSpec = field(default_factory=RunnerSpec)
    include: str | None = None  # resolved at load time; kept for provenance
    # What comparisons.csv measures against (None: `scratch`) and the metric the verdict leads with (None:
    # fid_domain when measured, else the first eval metric). Neither enters a run id: they change no number.
    baseline: str | None = None
    headline: str | None = None

    def __post_init__(self) -> None:
        if not _plain_name(self.name):
            raise ValueError(f"name must be a plain folder name, got {self.name[:80]!r}")
        if not self.adapters:
            raise ValueError("adapters: at least one adapter is needed")
        if not self.seeds:
            raise ValueError("seeds: at least one seed is needed")
        # Seeds feed numpy (32-bit) and torch; a repeated seed would be the same run twice.
        if any(not 0 <= s < 2**32 for s in self.seeds) or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be distinct integers in [0, 2^32), got {self.seeds}")
        bad = [n for n in self.strategies if not _plain_name(n)]
        if bad:  # strategy names are part of run folder names
            raise ValueError(f"strategy names must be plain names (no '/', '\\', control characters or leading '.'), got {bad[0][:80]!r}")
        if not self.strategies:
            raise ValueError("strategies: at least one strategy is needed (scratch: {})")
        if self.baseline is not None and self.baseline not in self.strategies:
            from bench.errors import did_you_mean

            raise ConfigError(
                f"baseline '{self.baseline}' is not a strategy of this suite",
                key="baseline",
                fix=did_you_mean(self.baseline, self.strategies),
            )

    @property
    def headline_metric(self) -> str:
        """The verdict's metric: `headline:`, else fid_domain when measured, else the first eval metric."""
        if self.headline:
            return self.headline
        return "fid_domain" if "fid_domain" in self.eval.metrics else self.eval.metrics[0]


def _plain_name(name: str) -> bool:
    """Usable as (part of) a folder name on every OS: short, no separators, no control characters."""
    return 0 < len(name) <= 128 and not name.startswith(".") and not any(c in "/\\:" or not c.isprintable() for c in name)


@dataclass
class RunSpec:
    """One cell of the grid: adapter × strategy × seed, fully resolved."""

    suite: str
    adapter: str
    adapter_config: dict[str, Any]
    strategy: str
    strategy_spec: StrategySpec
    seed: int
    dataset: DatasetSpec
    budget: Budget
    eval: EvalSpec
    runner: RunnerSpec
    suite_version: int = 1
    protocol_version: str = PROTOCOL_VERSION

    def resolved(self) -> dict[str, Any]:
        return to_dict(self)

    @property
    def run_id(self) -> str:
        # The runner block only changes speed, so it stays out of the identity: a rerun with
        # compile on resumes the same runs.
        ident = {k: v for k, v in self.resolved().items() if k not in ("runner", "suite")}
        digest = hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:8]
        safe = self.adapter.replace(":", "_").replace(".", "_")
        return f"{safe}-{self.strategy}-s{self.seed}-{digest}"


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
        data = yaml.safe_load(path.read_text())
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
    from bench.adapter import get_adapter
    from bench.metrics import METRICS
    from bench.pretrain import check_strategy

    try:
        suite = parse(Suite, data)
        for key, block in suite.adapters.items():
            try:
                cls = get_adapter(key, where=f"adapters.{key}")
            except BenchError:
                raise
            except Exception as err:  # importing a user's `module:Class` may raise anything
                raise ConfigError(f"cannot load adapter: {type(err).__name__}: {err}", key=f"adapters.{key}") from None
            parse(cls.Config, block or {}, f"adapters.{key}")
        for i, m in enumerate(suite.eval.metrics + (suite.eval.history_metrics or [])):
            METRICS.get(m, where=f"eval.metrics[{i}]")
        _check_headline(suite)
        for name, strat in suite.strategies.items():
            check_strategy(name, strat)
    except BenchError as err:  # same class (callers catch ConfigError), now naming the file
        raise type(err)(err.message, file=err.file or file, key=err.key, fix=err.fix) from None
    return suite


def _check_headline(suite: Suite) -> None:
    from bench.metrics import METRICS
    from bench.metrics.cost import COST_METRICS

    if suite.headline is None:
        return
    METRICS.get(suite.headline, where="headline")
    if suite.headline not in suite.eval.metrics and suite.headline not in COST_METRICS:
        raise ConfigError(
            f"headline metric '{suite.headline}' is not measured by this suite", key="headline", fix=f"add {suite.headline} to eval.metrics"
        )


def load_suite(source: str | Path | dict) -> Suite:
    if isinstance(source, dict):
        return parse_suite(copy.deepcopy(source))
    path = Path(source)
    return parse_suite(read_yaml(path), str(path))


def expand(suite: Suite, only: str | None = None) -> list[RunSpec]:
    """The adapter × strategy × seed grid, in a stable order, optionally filtered by a run_id glob."""
    runs = [
        RunSpec(
            suite=suite.name,
            adapter=a,
            adapter_config=dict(cfg or {}),
            strategy=s,
            strategy_spec=spec,
            seed=seed,
            dataset=suite.dataset,
            budget=suite.budget,
            eval=suite.eval,
            runner=suite.runner,
            suite_version=suite.version,
        )
        for a, cfg in suite.adapters.items()
        for s, spec in suite.strategies.items()
        for seed in suite.seeds
    ]
    if only:
        runs = [r for r in runs if fnmatch.fnmatch(r.run_id, only) or fnmatch.fnmatch(f"{r.adapter}-{r.strategy}-s{r.seed}", only)]
        if not runs:
            raise BenchError(f"--only '{only}' matches no run", fix="run with --dry-run to list run ids, or use a glob like 'cnn_gan-*'")
    return runs


def suite_to_dict(suite: Suite) -> dict:
    return to_dict(suite)


def runspec_from_dict(d: dict) -> RunSpec:
    """Rebuild a RunSpec from `result.json`'s resolved spec (for Ray workers and reports)."""
    kw = dict(d)
    kw["strategy_spec"] = parse(StrategySpec, d["strategy_spec"], "strategy_spec")
    kw["dataset"] = parse(DatasetSpec, d["dataset"], "dataset")
    kw["budget"] = parse(Budget, d["budget"], "budget")
    kw["eval"] = parse(EvalSpec, d["eval"], "eval")
    kw["runner"] = parse(RunnerSpec, d["runner"], "runner")
    return RunSpec(**kw)


__all__ = ["Suite", "RunSpec", "Budget", "EvalSpec", "StrategySpec", "RunnerSpec", "load_suite", "expand", "PROTOCOL_VERSION"]
