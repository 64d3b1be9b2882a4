"""The code and environment part of a run's identity: what the suite does not say but the numbers depend on.

`stamp(run, device_type)` returns the run with
- `runner.threads` resolved to one number (null: DEFAULT_THREADS, one, on every machine and for every
  `--jobs`), so the local and the Ray executor train with the same count and the run id names it;
- `identity`: the device type, the harness version and a content hash of the harness source that can change
  a number, a content hash of the adapter's own source module(s), and a content hash of the data the run
  reads (`data`: the target's decoded pixels and labels; `source_data`: its strategy's source, converted to
  the target's shape), so an edited image folder is a new run, never a silent resume.

Why a content hash and not the git commit: a commit changes with every README edit (every run would be redone
for nothing), says nothing in an installed wheel, and "-dirty" does not say *what* is dirty, so two different
edits would share one identity. A hash of the source files that feed a number changes exactly when they do.
Which files count is decided by layer (`NUMERIC_PACKAGES`): the report, tables, statistics, CLI and this
module only present or name numbers, and locks, claims and executors only decide which process runs a run,
so they stay out of the hash.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import inspect
from collections import OrderedDict
from pathlib import Path

from bench.suite.spec import DatasetSpec, RunSpec

_HARNESS = Path(__file__).resolve().parents[1]
# The harness is hashed by layer, not by a hand-kept list of files: a sub-package counts when its code can change
# a trained model or a metric's value. The rest (store/, exec/, stats/, report/, the CLI and API, scaffold/)
# only writes, schedules, summarises or presents numbers, so editing it keeps every run id.
# tests/test_identity.py checks both sides, and that every sub-package is on one side.
NUMERIC_PACKAGES = ("core", "suite", "adapter", "data", "runner", "tasks", "metrics")
PRESENTATION_PACKAGES = ("store", "exec", "stats", "report", "scaffold")
# Of the numeric ones, the metrics change what is measured, never what is trained (periodic evaluation runs
# under env.preserved_rng()): their hash is the evaluation id's (`eval_code`), so a new or fixed metric
# re-evaluates the kept weights instead of retraining every run.
EVAL_PACKAGES = ("metrics",)
TRAINING_PACKAGES = tuple(p for p in NUMERIC_PACKAGES if p not in EVAL_PACKAGES)


def _hash_files(paths: list[Path], root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(paths):
        h.update(p.relative_to(root).as_posix().encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()[:16]


@functools.lru_cache(maxsize=1)
def harness_fingerprint() -> str:
    """`<version>+<hash16>`: the harness version and a content hash of its training source."""
    from bench.core.version import __version__

    return f"{__version__}+{harness_hash(_HARNESS)}"


@functools.lru_cache(maxsize=1)
def eval_fingerprint() -> str:
    """hash16 of the metrics' source (EVAL_PACKAGES): part of the evaluation id, not of the run id."""
    return harness_hash(_HARNESS, EVAL_PACKAGES)


def harness_hash(root: Path, packages: tuple[str, ...] = TRAINING_PACKAGES) -> str:
    """hash16 of the source of `packages` under a `bench` package folder `root` (default: what trains)."""
    files = [p for pkg in packages for p in (root / pkg).rglob("*.py")]
    return _hash_files(files, root)


def adapter_sources(cls: type) -> list[Path]:
    """The source files of an adapter class and of the classes it derives from, outside the harness itself
    (bench.Adapter is covered by the harness hash): a bundled baseline's file, a plugin's, a `module:Class`."""
    out: list[Path] = []
    for base in cls.__mro__:
        if base is object or base.__module__.split(".")[0] == "bench":
            continue
        try:
            src = inspect.getsourcefile(base)
        except TypeError:  # a built-in base: nothing of ours to hash
            continue
        if src and Path(src).is_file() and Path(src).resolve() not in out:
            out.append(Path(src).resolve())
    return out


@functools.lru_cache(maxsize=64)
def adapter_fingerprint(key: str) -> str:
    """A content hash of the adapter's own source module(s) (hash16)."""
    from bench.adapter.base import get_adapter

    cls = get_adapter(key, where=f"adapters.{key}")
    h = hashlib.sha256()
    for p in adapter_sources(cls):
        h.update(p.name.encode() + b"\0" + p.read_bytes() + b"\0")
    h.update(f"{cls.__module__}.{cls.__qualname__}".encode())
    return h.hexdigest()[:16]


def default_threads() -> int:
    """`runner.threads: null` resolved on the driver: one thread, whatever the cores or `--jobs` (bench.core.env)."""
    from bench.core.env import DEFAULT_THREADS

    return DEFAULT_THREADS


# Data set load key (the spec, and a folder's listing signature) -> (content hash, shape info): a grid stamps
# every run, and a folder signature is far cheaper than decoding and hashing its images again.
_DATA: OrderedDict[str, tuple[str, object]] = OrderedDict()
_DATA_MAX = 256


def _data_hash(spec: DatasetSpec, where: str, download: bool) -> tuple[str, object]:
    from bench.data.datasets import cache_key, load_dataset

    if spec.download and not download:  # --dry-run: the files must be there already
        spec = dataclasses.replace(spec, download=False)
    key = cache_key(spec)
    if key not in _DATA:
        data = load_dataset(spec, where=where)
        _DATA[key] = (data.content_hash(), data.info)
        while len(_DATA) > _DATA_MAX:
            _DATA.popitem(last=False)
    _DATA.move_to_end(key)
    return _DATA[key]


def data_identity(run: RunSpec, download: bool = True) -> dict[str, str]:
    """Content hashes of the data `run` reads: the target, and its strategy's source as pretraining converts it.
    Loads each data set once per process (download only when `download`); a missing one raises BenchError."""
    from bench.tasks.common import source_spec

    digest, info = _data_hash(run.dataset, "dataset", download)
    out = {"data": digest}
    source = run.strategy_spec.source
    if source is not None:
        out["source_data"] = _data_hash(source_spec(source, info), f"strategies.{run.strategy}.source", download)[0]  # type: ignore[arg-type]
    if run.style is not None:  # a stylize run's style set, as converted to the content's shape (bench.data.style)
        from bench.data.style import style_spec

        out["style_data"] = _data_hash(style_spec(run.style, info), "style", download)[0]  # type: ignore[arg-type]
    return out


def stamp(run: RunSpec, device_type: str, download: bool = True) -> RunSpec:
    """`run` with its threads resolved and its identity filled (see the module docstring). `download: False`
    (`--dry-run`) never lets a data set download: one that is not on disk yet is a DataUnavailable error."""
    runner = run.runner
    if runner.threads is None:
        runner = dataclasses.replace(runner, threads=default_threads())
    identity = {
        "device_type": device_type,
        "harness": harness_fingerprint(),
        "adapter_code": adapter_fingerprint(run.adapter),
        "eval_code": eval_fingerprint(),  # the evaluation id's, not the run id's (RunSpec.identity_fields)
    }
    identity.update(data_identity(run, download))
    return dataclasses.replace(run, runner=runner, identity=identity)


def what_changed(old: dict, new: dict) -> list[str]:
    """Why a finished run's resolved spec (`old`, from result.json) is not the current one's: short phrases."""
    out = []
    oid, nid = old.get("identity") or {}, new.get("identity") or {}
    if oid.get("adapter_code") != nid.get("adapter_code"):
        out.append(f"adapter code of {new.get('adapter')} changed")
    if oid.get("harness") != nid.get("harness"):
        out.append(f"harness code changed ({oid.get('harness') or 'unrecorded'} -> {nid.get('harness')})")
    for key, what in (("data", "data set"), ("source_data", "pretraining source"), ("style_data", "style set")):
        if oid.get(key) != nid.get(key):
            out.append(f"{what} content changed ({oid.get(key) or 'unrecorded'} -> {nid.get(key) or 'none'})")
    if oid.get("device_type") != nid.get("device_type"):
        out.append(f"device {oid.get('device_type') or 'unrecorded'} -> {nid.get('device_type')}")
    for key in sorted(set(old) | set(new)):
        # The eval block and protocol are the evaluation id's: a change there re-evaluates, never sets aside.
        if key in ("identity", "suite", "eval", "protocol_version") or old.get(key) == new.get(key):
            continue
        if isinstance(old.get(key), dict) and isinstance(new.get(key), dict):
            sub = sorted(k for k in set(old[key]) | set(new[key]) if old[key].get(k) != new[key].get(k))
            out.append(", ".join(f"{key}.{k} {old[key].get(k)!r} -> {new[key].get(k)!r}" for k in sub))
        else:
            out.append(f"{key} {old.get(key)!r} -> {new.get(key)!r}")
    return out or ["run id scheme changed"]


__all__ = [
    "EVAL_PACKAGES",
    "NUMERIC_PACKAGES",
    "TRAINING_PACKAGES",
    "PRESENTATION_PACKAGES",
    "adapter_fingerprint",
    "adapter_sources",
    "data_identity",
    "default_threads",
    "eval_fingerprint",
    "harness_fingerprint",
    "stamp",
    "what_changed",
]
