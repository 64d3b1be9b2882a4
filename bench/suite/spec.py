"""The spec layer: plain dataclasses for suites and runs, the task names and the protocol version.

The bottom of the house: it imports nothing of bench but `errors`, `schema` and `sweep` (the sweep axis, same layer), so every other module may
import it. Validation that needs the registries (adapter configs, metric names, strategy checks) lives
one floor up in bench/suite.py; these classes only check what they can see in themselves.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from bench.core.errors import BenchError, show
from bench.core.seeds import derive_seed  # noqa: F401  (re-exported: spec.derive_seed)
from bench.suite import sweep
from bench.suite.schema import parse, to_dict

MAX_NAME_BYTES = 128  # suite and strategy names (UTF-8)
PROTOCOL_VERSION = "5"  # bump whenever evaluation changes; stored in every result, never mixed silently
# 2: the domain extractor is an ensemble (its own variance recorded), data-copying test ct_domain, modes against the
#    real data's coverage; pretraining seeded per run by default (derive_seed), independent training stream,
#    identity covers the code.
# 3: one seed scheme (derive_seed for every stream); LAPACK bounded to the run's thread count.
# 4: FID's trace term from the singular values of the cross matrix when the covariances are rank-deficient (exact;
#    +5e-7..1.5e-6 relative on digits' fid_domain); the label-free extractor's members seeded by derive_seed and
#    their features scaled to unit total variance (extractor-seed spread 7.5% -> 4.7%).
# The pretraining task names, defined here once; bench/tasks/__init__.py holds what each one does.


@dataclass
class DatasetSpec:
    """The suite's `dataset:` block (and a strategy's `source:`)."""

    name: str
    image_size: int | None = None  # None: the data set's native size
    channels: int | None = None  # None: native; 1 or 3 converts
    classes: list[int] | None = None  # keep only these labels
    limit: int | None = None  # keep only the first N training images (few-shot), after `classes`
    root: str | None = None  # where torchvision data sets live; the image folder of `folder`
    download: bool = False  # allow torchvision to download into root (`bench run` only, never validate or --dry-run)
    levels: int | None = None  # re-quantise to this many grey levels per channel
    reference: str | None = None  # `folder`: a folder of evaluation images (the test split; few-shot protocol)

    def __post_init__(self) -> None:
        if self.image_size is not None and not 4 <= self.image_size <= 256:
            raise ValueError(f"image_size must be between 4 and 256, got {self.image_size}")
        if self.channels not in (None, 1, 3):
            raise ValueError(f"channels must be 1 or 3, got {self.channels}")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit must be a positive integer, got {self.limit}")
        if self.levels is not None and not 2 <= self.levels <= 256:
            raise ValueError(f"levels must be between 2 and 256, got {self.levels}")


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
    batch_size: int = 500  # unused since protocol 5 (every evaluation stage has a fixed chunk); accepted, so old suites load
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
    # part -> N: the first N blocks stay fixed (FreezeD); part -> "difffit": only its biases, norm weights and
    # scale parameters train (DiffFit, Xie et al. 2023), every other weight of the part stays fixed.
    freeze: dict[str, int | Literal["difffit"]] = field(default_factory=dict)
    batch_size: int | None = None
    lr: float = 1e-3
    mask_ratio: float = 0.0
    path: str | None = None  # external: a .safetensors or .pt state dict
    sha256: str | None = None
    timm_model: str | None = None  # external: a timm pretrained name (online, or in the timm cache)
    # per_run: each run seed pretrains its own checkpoint (derive_seed(seed, "pretrain")), so intervals over
    # seeds include pretraining variance; shared: one checkpoint (seed SHARED_PRETRAIN_SEED) for every seed;
    # an int: that pretraining seed for every run.
    pretrain_seed: str | int = "per_run"

    def __post_init__(self) -> None:
        if isinstance(self.pretrain_seed, bool) or not (
            self.pretrain_seed in PRETRAIN_SEEDS or (isinstance(self.pretrain_seed, int) and 0 <= self.pretrain_seed < 2**63)
        ):
            raise ValueError(f"pretrain_seed must be per_run, shared or an integer >= 0, got {self.pretrain_seed!r}")
        if not 0.0 <= self.mask_ratio < 1.0:
            raise ValueError(f"mask_ratio must be in [0, 1), got {self.mask_ratio}")
        if self.steps < 0:
            raise ValueError("steps must be >= 0")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a positive number, got {self.lr}")
        if self.batch_size is not None and self.batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        bad = {k: n for k, n in self.freeze.items() if isinstance(n, int) and n < 0}
        if bad:
            raise ValueError(f"freeze counts must be >= 0, got {show(bad)}")


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
    threads: int | None = None  # CPU threads of the run and of every BLAS/OpenMP pool; None: one (bench.core.env.DEFAULT_THREADS)
    diverge_threshold: float | None = None  # |loss| above this counts as diverged
    keep_weights: bool = True  # the final weights stay in the run folder (weights.safetensors), for re-evaluation
    # The stall watchdog (bench.runner.watchdog): seconds without progress before a run is stopped as failed;
    # null: the larger of 60 s and 20x the slowest step (600 s outside the training loop); 0: off.
    stall_seconds: float | None = None
    timeout: float | None = None  # seconds a run may take in all; null: no bound

    def __post_init__(self) -> None:
        if self.threads is not None and self.threads < 1:
            raise ValueError("threads must be >= 1 (or null for one)")
        if self.log_every < 1 or self.checkpoint_every < 0:
            raise ValueError("log_every must be >= 1 and checkpoint_every >= 0")
        if self.diverge_threshold is not None and not self.diverge_threshold > 0:
            raise ValueError("diverge_threshold must be a positive number")
        if self.stall_seconds is not None and not 0 <= self.stall_seconds < float("inf"):
            raise ValueError("stall_seconds must be a number of seconds >= 0 (0 turns the watchdog off, null: the default rule)")
        if self.timeout is not None and not 0 < self.timeout < float("inf"):
            raise ValueError("timeout must be a positive number of seconds (or null: no bound)")


@dataclass
class SeedRange:
    """`seeds: {min: 3, max: 40}`: sequential seeds. Every cell starts with `min`; after each round only cells
    whose headline comparison is undecided get more, up to `max` (bench.stats.rounds), and at most `max_runs`
    runs of compared cells in all. Seeds are 0, 1, 2, … in that order."""

    min: int = 3
    max: int = 40
    max_runs: int | None = None

    def __post_init__(self) -> None:
        # 3: a difference is never called with fewer paired seeds (bench.stats.sequential.MIN_PAIRS)
        if not 3 <= self.min <= self.max:
            raise ValueError(f"seeds: need 3 <= min <= max (a call needs 3 paired seeds), got min {self.min}, max {self.max}")
        if self.max_runs is not None and self.max_runs < 1:
            raise ValueError(f"seeds.max_runs must be >= 1, got {self.max_runs}")


_PERCENT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")


@dataclass(frozen=True)
class Margin:
    """An equivalence margin: a share of the baseline mean (relative) or a number in the headline's units."""

    value: float
    relative: bool

    def on(self, metric: str, headline: str, baseline_mean: float) -> float:
        """The margin in the metric's units for one comparison (NaN: none applies)."""
        if self.relative:
            return self.value * abs(baseline_mean) if math.isfinite(baseline_mean) else math.nan
        return self.value if metric == headline else math.nan

    def __str__(self) -> str:
        return f"{100 * self.value:g}%" if self.relative else f"{self.value:g}"


def parse_margin(value: object) -> Margin | None:
    """`10%` → 10% of the baseline mean; a positive number → that many units of the headline metric; None → none.
    Raises ValueError with the reason (the suite loader turns it into a one-line error naming `margin`)."""
    if value is None:
        return None
    if isinstance(value, str):
        m = _PERCENT.match(value)
        if not m or not 0 < float(m.group(1)) < 100:
            raise ValueError(f"margin must be a percentage of the baseline mean between 0% and 100% (e.g. 10%), got {value[:40]!r}")
        return Margin(float(m.group(1)) / 100, relative=True)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"margin must be a positive number in the headline metric's units, or a percentage like 10%, got {value!r}")
    return Margin(float(value), relative=False)


@dataclass
class Suite:
    name: str
    dataset: DatasetSpec
    version: int = 1
    description: str = ""
    budget: Budget = field(default_factory=Budget)
    eval: EvalSpec = field(default_factory=EvalSpec)
    seeds: list[int] | SeedRange = field(default_factory=lambda: [0])  # a SeedRange becomes 0..max-1 and `seed_range`
    adapters: dict[str, dict[str, Any]] = field(default_factory=dict)
    strategies: dict[str, StrategySpec] = field(default_factory=lambda: {"scratch": StrategySpec()})
    runner: RunnerSpec = field(default_factory=RunnerSpec)
    include: str | None = None  # resolved at load time; kept for provenance
    # A `stylize` suite's style set (any data set spec); `dataset:` is then the content set. Needed by, and only
    # allowed with, adapters of family `stylize` (bench.suite.load checks).
    style: DatasetSpec | None = None
    # The swept values ("dataset.limit" -> [25, 100, 400]; bench/sweep.py): dataset and budget hold the first
    # value of each, expand() gives every combination. Set by bench.suite.load after validation, never by YAML.
    sweep: dict[str, list[Any]] = field(default_factory=dict, init=False)
    # What comparisons.csv measures against (None: `scratch`) and the metric the verdict leads with (None:
    # fid_domain when measured, else the first eval metric). Neither enters a run id: they change no number.
    # bench.suite.load checks that they name a strategy and a measured metric.
    baseline: str | None = None
    headline: str | None = None
    # Equivalence margin of the comparisons: "10%" of the baseline's mean, or a number in the headline's units
    # (docs/statistics.md). Like baseline and headline, it changes no run.
    margin: str | float | None = None
    # Set from `seeds: {min, max}` (or `bench run --until-resolved`): seeds are added in rounds; `seeds` is then
    # every seed up to the cap, the grid the rounds choose from.
    seed_range: SeedRange | None = field(default=None, init=False)

    @property
    def headline_metric(self) -> str:
        """The verdict's metric: `headline:`, else fid_domain when measured, else the first eval metric."""
        if self.headline:
            return self.headline
        return "fid_domain" if "fid_domain" in self.eval.metrics else self.eval.metrics[0]

    def __post_init__(self) -> None:
        if not _plain_name(self.name):
            raise ValueError(f"name must be a plain folder name, got {self.name[:80]!r}")
        if not self.adapters:
            raise ValueError("adapters: at least one adapter is needed")
        if isinstance(self.seeds, SeedRange):
            self.seed_range, self.seeds = self.seeds, list(range(self.seeds.max))
        if not self.seeds:
            raise ValueError("seeds: at least one seed is needed")
        # Seeds feed numpy (32-bit) and torch; a repeated seed would be the same run twice.
        if any(not 0 <= s < 2**32 for s in self.seeds) or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be distinct integers in [0, 2^32), got {show(self.seeds)}")
        bad = [n for n in self.strategies if not _plain_name(n)]
        if bad:  # strategy names are part of run folder names
            raise ValueError(
                f"strategy names must be plain names (at most {MAX_NAME_BYTES} UTF-8 bytes; no '/', '\\', control characters"
                f" or leading '.'), got {show(bad[0])}"
            )
        if not self.strategies:
            raise ValueError("strategies: at least one strategy is needed (scratch: {})")


PRETRAIN_SEEDS = ("per_run", "shared")  # the named forms of StrategySpec.pretrain_seed (or an int)
SHARED_PRETRAIN_SEED = 0  # `pretrain_seed: shared`: one checkpoint for every seed of every suite


def _plain_name(name: str) -> bool:
    """Usable as (part of) a folder name on every OS: short, no separators, no control characters."""
    # Bytes, not characters: 100 emoji are 400 bytes, and folder names are limited to 255 bytes.
    return (
        0 < len(name.encode("utf-8", "surrogatepass")) <= MAX_NAME_BYTES
        and not name.startswith(".")
        and not any(c in "/\\:" or not c.isprintable() for c in name)
    )


# Runner settings that only change when the host syncs or writes, or when a hung run is stopped, never a
# number (tests/test_identity.py).
NO_OP_RUNNER_KEYS = ("log_every", "checkpoint_every", "keep_weights", "stall_seconds", "timeout")
# Eval settings that change no number (batch_size: features in chunks; bench/metrics/context.py), or only
# the learning curve drawn during training, which a re-evaluation of the final weights cannot redraw.
NO_OP_EVAL_KEYS = ("batch_size", "history_metrics")
# `identity` entries that belong to the evaluation id, not the run id: the code of the metrics.
EVAL_IDENTITY_KEYS = ("eval_code",)


def eval_fields(ev: EvalSpec | dict[str, Any], identity: dict[str, Any], protocol: str = PROTOCOL_VERSION) -> dict[str, Any]:
    """What an evaluation id hashes: the eval block (metrics as a set, less NO_OP_EVAL_KEYS), the protocol
    version and the metrics' code. Also read from an old result's spec, to see whether only metrics were added."""
    d = dict(ev) if isinstance(ev, dict) else to_dict(ev)
    out = {k: v for k, v in d.items() if k not in NO_OP_EVAL_KEYS}
    out["metrics"] = sorted(set(out.get("metrics") or []))
    out["protocol_version"] = protocol
    out.update({k: identity.get(k) for k in EVAL_IDENTITY_KEYS})
    return out


def short_hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:8]


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
    # What the spec alone does not say but the numbers depend on: the device type and the code fingerprint
    # (bench.store.fingerprint.stamp fills it on the driver, before any run id is used). Part of the run id.
    identity: dict[str, Any] = field(default_factory=dict)
    # This run's point on the suite's sweep ("dataset.limit" -> 25), already inside dataset/budget; kept
    # apart only for the readable run id and the results columns, so it stays out of the hash.
    swept: dict[str, Any] = field(default_factory=dict)
    style: DatasetSpec | None = None  # the style set of a stylize run (Suite.style)

    def resolved(self) -> dict[str, Any]:
        out = to_dict(self)
        if out.get("style") is None:  # runs without a style set keep the run ids they had before the key existed
            out.pop("style", None)
        return out

    @property
    def pretrain_seed(self) -> int:
        """The seed of this run's pretraining stage (see StrategySpec.pretrain_seed and derive_seed)."""
        ps = self.strategy_spec.pretrain_seed
        if ps == "per_run":
            return derive_seed(self.seed, "pretrain")
        return SHARED_PRETRAIN_SEED if ps == "shared" else int(ps)

    @property
    def init_seed(self) -> int:
        """The global random state the adapter is built under: its initial weights (the same for every strategy)."""
        return derive_seed(self.seed, "init")

    @property
    def data_seed(self) -> int:
        """The batch generator's seed: the training data order (the same for every strategy)."""
        return derive_seed(self.seed, "data")

    @property
    def train_seed(self) -> int:
        """The seed of the training stream after pretraining: independent of every run's initialisation."""
        return derive_seed(self.seed, "train")

    def identity_fields(self) -> dict[str, Any]:
        """Everything that can change the trained model: the resolved spec, less the suite's name, the runner
        settings proven not to change a number (NO_OP_RUNNER_KEYS, each with a test in tests/test_identity.py)
        and the evaluation (the `eval` block, the protocol version and the metrics' code: the evaluation id;
        code that trains is in the harness hash, `identity["harness"]`). Evaluation cannot
        change training: every periodic evaluation runs under env.preserved_rng() and samples from its own
        generator (tests/test_reevaluate.py trains with and without periodic evaluations: same weights)."""
        ident = {k: v for k, v in self.resolved().items() if k not in ("suite", "swept", "eval", "protocol_version")}
        ident["runner"] = {k: v for k, v in ident["runner"].items() if k not in NO_OP_RUNNER_KEYS}
        ident["identity"] = {k: v for k, v in ident["identity"].items() if k not in EVAL_IDENTITY_KEYS}
        return ident

    @property
    def eval_id(self) -> str:
        """The evaluation's identity (eval_fields): a finished run whose result has another one is re-evaluated
        from its kept weights, never retrained."""
        return short_hash(eval_fields(self.eval, self.identity, self.protocol_version))

    @property
    def run_id(self) -> str:
        digest = short_hash(self.identity_fields())
        safe = self.adapter.replace(":", "_").replace(".", "_")
        point = sweep.label(self.swept)
        return f"{safe}-{self.strategy}-{point + '-' if point else ''}s{self.seed}-{digest}"


def with_seed_range(suite: Suite, plan: SeedRange) -> Suite:
    """The suite run sequentially (`bench run --until-resolved`): seeds 0..plan.max-1, added in rounds."""
    import copy

    out = copy.copy(suite)
    out.seed_range, out.seeds = plan, list(range(plan.max))
    return out


def expand(suite: Suite, only: str | None = None, stamp: Callable[[RunSpec], RunSpec] | None = None) -> list[RunSpec]:
    """The adapter × strategy × seed (× swept value) grid, in a stable order, optionally filtered by a run_id glob.
    `stamp` (bench.store.fingerprint.stamp) completes each run's identity before the filter reads its run id."""
    runs = [
        RunSpec(
            suite=suite.name,
            adapter=a,
            adapter_config=dict(cfg or {}),
            strategy=s,
            strategy_spec=spec,
            seed=seed,
            dataset=sweep.replace(suite.dataset, "dataset", point),
            budget=sweep.replace(suite.budget, "budget", point),
            eval=suite.eval,
            runner=suite.runner,
            suite_version=suite.version,
            swept=point,
            style=suite.style,
        )
        for a, cfg in suite.adapters.items()
        for s, spec in suite.strategies.items()
        for seed in suite.seeds
        for point in sweep.combinations(suite.sweep)
    ]
    if stamp is not None:
        runs = [stamp(r) for r in runs]
    if only:
        runs = [r for r in runs if fnmatch.fnmatch(r.run_id, only) or fnmatch.fnmatch(_short_id(r), only)]
        if not runs:
            raise BenchError(f"--only '{only}' matches no run", fix="run with --dry-run to list run ids, or use a glob like 'cnn_gan-*'")
    return runs


def _short_id(r: RunSpec) -> str:
    point = sweep.label(r.swept)
    return f"{r.adapter}-{r.strategy}-{point + '-' if point else ''}s{r.seed}"


def suite_to_dict(suite: Suite) -> dict:
    """The suite as YAML-ready data; swept keys are written back as their lists, so the copy loads again."""
    data = to_dict(suite)
    data.pop("sweep", None)
    plan = data.pop("seed_range", None)
    if plan is not None:  # written back in the form it was given, so the copy loads (and reports) as sequential
        data["seeds"] = {k: v for k, v in plan.items() if v is not None}
    return sweep.merge_back(data, suite.sweep)


def runspec_from_dict(d: dict) -> RunSpec:
    """Rebuild a RunSpec from `result.json`'s resolved spec (for Ray workers and reports)."""
    kw = dict(d)
    kw["strategy_spec"] = parse(StrategySpec, d["strategy_spec"], "strategy_spec")
    kw["dataset"] = parse(DatasetSpec, d["dataset"], "dataset")
    kw["budget"] = parse(Budget, d["budget"], "budget")
    kw["eval"] = parse(EvalSpec, d["eval"], "eval")
    kw["runner"] = parse(RunnerSpec, d["runner"], "runner")
    if kw.get("style") is not None:
        kw["style"] = parse(DatasetSpec, d["style"], "style")
    return RunSpec(**kw)


__all__ = [
    "EVAL_IDENTITY_KEYS",
    "NO_OP_EVAL_KEYS",
    "NO_OP_RUNNER_KEYS",
    "PRETRAIN_SEEDS",
    "PROTOCOL_VERSION",
    "Budget",
    "DatasetSpec",
    "EvalSpec",
    "RunSpec",
    "Margin",
    "RunnerSpec",
    "SeedRange",
    "StrategySpec",
    "Suite",
    "derive_seed",
    "eval_fields",
    "expand",
    "parse_margin",
    "runspec_from_dict",
    "suite_to_dict",
    "with_seed_range",
]
