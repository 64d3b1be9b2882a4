"""`RunResult`: what one run produced, as one typed object. It is `result.json` on disk.

Built by the runner (completed, diverged, not_applicable) and by the executors' failure path (failed);
read by the store, aggregation, the report and the API through attributes. `to_json()` writes the same
keys today's files hold, and `from_json()` reads them back, checking every field's type, so a hand-edited
or foreign file fails with one clear `InvalidResult` instead of a KeyError three layers up.

In the spec layer: it imports nothing of bench but errors.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from bench.core.errors import BenchError

DONE_STATUSES = ("completed", "diverged", "not_applicable")  # a run with one of these is not redone
STATUSES = (*DONE_STATUSES, "failed")


class InvalidResult(BenchError):
    """A result.json that does not have the shape of a RunResult. The run is treated as unfinished."""


@dataclass
class RunResult:
    run_id: str
    suite: str
    adapter: str
    strategy: str
    task: str
    seed: int
    status: str  # one of STATUSES
    error: str | None = None  # why it diverged, failed or does not apply
    family: str | None = None  # None when the run failed before the adapter was built
    protocol: dict[str, Any] | None = None  # bench.metrics.protocol.describe()
    spec: dict[str, Any] = field(default_factory=dict)  # the resolved RunSpec
    env: dict[str, Any] = field(default_factory=dict)  # versions, device, git commit
    diverged_at: int | None = None
    metric_info: dict[str, Any] | None = None  # e.g. the domain classifier's accuracy
    metrics: dict[str, float | None] = field(default_factory=dict)  # name -> number (None: non-finite)
    not_applicable: dict[str, str] = field(default_factory=dict)  # metric -> why it does not apply
    first_losses: dict[str, float] | None = None
    pretrain: dict[str, Any] | None = None  # seconds, cached, parts and the task's own info
    timings: dict[str, Any] | None = None  # pretrain, pretrain_cached, train, eval, compile
    steps_done: int | None = None
    resumed_from: list[int] | None = None  # the step of each resume
    finished_at: str | None = None
    traceback: str | None = None  # failed runs only
    synthetic: bool = False  # rendering fixtures (benchmarks/synthetic_runs.py): nothing was trained
    # The evaluation id its metrics were measured under (RunSpec.eval_id); another one in the suite means the
    # kept weights are re-evaluated. `evaluations`: one entry per re-evaluation (eval_id, metrics, seconds, at).
    eval_id: str | None = None
    evaluations: list[dict[str, Any]] | None = None

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise InvalidResult(f"status {self.status!r} is not one of {', '.join(STATUSES)}", key="status")
        # result.json is strict JSON: a non-finite metric is recorded as null, in memory as on disk.
        self.metrics = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in self.metrics.items()}

    @property
    def done(self) -> bool:
        return self.status in DONE_STATUSES

    def to_json(self) -> dict[str, Any]:
        """The result.json object. Optional fields that are unset stay out, as in files written before the
        type existed (a failed run has no family, protocol or timings)."""
        out: dict[str, Any] = {}
        for name in _ORDER:
            value = getattr(self, name)
            if name in _OMIT_WHEN_UNSET and (value is None or value is False):
                continue
            out[name] = value
        return out

    @classmethod
    def from_json(cls, obj: Any) -> RunResult:
        """Check every field's type and build the result; raises InvalidResult naming the first bad key."""
        if not isinstance(obj, dict):
            raise InvalidResult(f"a result must be a JSON object, got {type(obj).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        missing = sorted(_REQUIRED - obj.keys())
        if missing:
            raise InvalidResult("missing", key=missing[0])
        kwargs = {}
        for key, value in obj.items():
            if key not in names:
                continue  # a field from a newer writer: ignored, never fatal
            check = _CHECKS[key]
            if not check(value):
                raise InvalidResult(f"expected {_EXPECTED[key]}, got {type(value).__name__} {str(value)[:40]!r}", key=key)
            kwargs[key] = value
        return cls(**kwargs)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _optional(check):
    return lambda v: v is None or check(v)


def _mapping(value_check):
    return lambda v: isinstance(v, dict) and all(isinstance(k, str) and value_check(k, x) for k, x in v.items())


_is_str = lambda v: isinstance(v, str)  # noqa: E731
_is_dict = lambda v: isinstance(v, dict)  # noqa: E731
_CHECKS = {
    "run_id": _is_str,
    "suite": _is_str,
    "adapter": _is_str,
    "strategy": _is_str,
    "task": _is_str,
    "seed": _is_int,
    "status": _is_str,
    "error": _optional(_is_str),
    "family": _optional(_is_str),
    "protocol": _optional(_is_dict),
    "spec": _is_dict,
    "env": _is_dict,
    "diverged_at": _optional(_is_int),
    "metric_info": _optional(_is_dict),
    "metrics": _mapping(lambda _, x: x is None or _is_number(x)),
    "not_applicable": _mapping(lambda _, x: isinstance(x, str)),
    "first_losses": _optional(_mapping(lambda _, x: x is None or _is_number(x))),
    "pretrain": _optional(_is_dict),
    "timings": _optional(_mapping(lambda _, x: x is None or isinstance(x, int | float))),  # pretrain_cached is a bool
    "steps_done": _optional(_is_int),
    "resumed_from": _optional(lambda v: isinstance(v, list) and all(map(_is_int, v))),
    "finished_at": _optional(_is_str),
    "traceback": _optional(_is_str),
    "synthetic": lambda v: isinstance(v, bool),
    "eval_id": _optional(_is_str),
    "evaluations": _optional(lambda v: isinstance(v, list) and all(map(_is_dict, v))),
}
_EXPECTED = {
    "seed": "an integer",
    "diverged_at": "an integer or null",
    "steps_done": "an integer or null",
    "metrics": "a mapping of name -> number or null",
    "not_applicable": "a mapping of metric -> reason",
    "first_losses": "a mapping of loss -> number, or null",
    "timings": "a mapping of name -> seconds, or null",
    "resumed_from": "a list of integers, or null",
    "evaluations": "a list of mappings, or null",
    "synthetic": "true or false",
    **{k: "a mapping" for k in ("spec", "env")},
    **{k: "a mapping or null" for k in ("protocol", "metric_info", "pretrain")},
    **{k: "a string" for k in ("run_id", "suite", "adapter", "strategy", "task", "status")},
    **{k: "a string or null" for k in ("error", "family", "finished_at", "traceback", "eval_id")},
}
# The key order of the files the runner wrote before this type existed (identity, then outcome).
_ORDER = (
    "run_id",
    "suite",
    "adapter",
    "family",
    "strategy",
    "task",
    "seed",
    "protocol",
    "spec",
    "env",
    "diverged_at",
    "metric_info",
    "status",
    "error",
    "traceback",
    "metrics",
    "not_applicable",
    "first_losses",
    "pretrain",
    "timings",
    "steps_done",
    "resumed_from",
    "finished_at",
    "synthetic",
    "eval_id",
    "evaluations",
)
_REQUIRED = {"run_id", "suite", "adapter", "strategy", "task", "seed", "status"}
_OMIT_WHEN_UNSET = {
    "family",
    "protocol",
    "diverged_at",
    "metric_info",
    "first_losses",
    "pretrain",
    "timings",
    "steps_done",
    "resumed_from",
    "traceback",
    "synthetic",
    "eval_id",
    "evaluations",
}

__all__ = ["DONE_STATUSES", "STATUSES", "InvalidResult", "RunResult"]
