"""The code and environment part of a run's identity: what the suite does not say but the numbers depend on.

`stamp(run, device_type)` returns the run with
- `runner.threads` resolved to one number (null: the usable cores of the driver, divided by the number of
  runs that share them), so the local and the Ray executor train with the same count and the run id names it;
- `identity`: the device type, the harness version and a content hash of the harness source that can change
  a number, and a content hash of the adapter's own source module(s).

Why a content hash and not the git commit: a commit changes with every README edit (every run would be redone
for nothing), says nothing in an installed wheel, and "-dirty" does not say *what* is dirty, so two different
edits would share one identity. A hash of the source files that feed a number changes exactly when they do.
The report, tables, CLI and this module only present or name numbers, and locks, claims and executors only
decide which process runs a run, so they stay out of the hash.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import inspect
from pathlib import Path

from bench.spec import RunSpec

_HARNESS = Path(__file__).resolve().parent
# Present or name numbers, or decide which process runs a run (locks, claims, executors, the .stale/ move),
# never what a run computes: editing them must not redo every run. The thread count a run gets is resolved
# by stamp() into the spec, so the executors cannot change it.
_PRESENTATION = (
    "report/",
    "aggregate.py",
    "api.py",
    "cli.py",
    "listing.py",
    "fingerprint.py",
    "__init__.py",
    "claims.py",
    "locks.py",
    "executors.py",
    "stale.py",
)


def _hash_files(paths: list[Path], root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(paths):
        h.update(p.relative_to(root).as_posix().encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()[:16]


@functools.lru_cache(maxsize=1)
def harness_fingerprint() -> str:
    """`<version>+<hash16>`: the harness version and a content hash of its number-producing source."""
    from bench import __version__

    files = [p for p in _HARNESS.rglob("*.py") if not p.relative_to(_HARNESS).as_posix().startswith(_PRESENTATION)]
    return f"{__version__}+{_hash_files(files, _HARNESS)}"


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
    from bench.adapter import get_adapter

    cls = get_adapter(key, where=f"adapters.{key}")
    h = hashlib.sha256()
    for p in adapter_sources(cls):
        h.update(p.name.encode() + b"\0" + p.read_bytes() + b"\0")
    h.update(f"{cls.__module__}.{cls.__qualname__}".encode())
    return h.hexdigest()[:16]


def default_threads(share: int = 1) -> int:
    """`runner.threads: null` resolved on the driver: the usable cores, divided among `share` concurrent runs."""
    from bench.env import usable_cores

    return max(1, usable_cores() // max(1, share))


def stamp(run: RunSpec, device_type: str, share: int = 1) -> RunSpec:
    """`run` with its threads resolved and its identity filled (see the module docstring)."""
    runner = run.runner
    if runner.threads is None:
        runner = dataclasses.replace(runner, threads=default_threads(share))
    identity = {"device_type": device_type, "harness": harness_fingerprint(), "adapter_code": adapter_fingerprint(run.adapter)}
    return dataclasses.replace(run, runner=runner, identity=identity)


def what_changed(old: dict, new: dict) -> list[str]:
    """Why a finished run's resolved spec (`old`, from result.json) is not the current one's: short phrases."""
    out = []
    oid, nid = old.get("identity") or {}, new.get("identity") or {}
    if oid.get("adapter_code") != nid.get("adapter_code"):
        out.append(f"adapter code of {new.get('adapter')} changed")
    if oid.get("harness") != nid.get("harness"):
        out.append(f"harness code changed ({oid.get('harness') or 'unrecorded'} -> {nid.get('harness')})")
    if oid.get("device_type") != nid.get("device_type"):
        out.append(f"device {oid.get('device_type') or 'unrecorded'} -> {nid.get('device_type')}")
    for key in sorted(set(old) | set(new)):
        if key in ("identity", "suite") or old.get(key) == new.get(key):
            continue
        if isinstance(old.get(key), dict) and isinstance(new.get(key), dict):
            sub = sorted(k for k in set(old[key]) | set(new[key]) if old[key].get(k) != new[key].get(k))
            out.append(", ".join(f"{key}.{k} {old[key].get(k)!r} -> {new[key].get(k)!r}" for k in sub))
        else:
            out.append(f"{key} {old.get(key)!r} -> {new.get(key)!r}")
    return out or ["run id scheme changed"]


__all__ = ["adapter_fingerprint", "adapter_sources", "default_threads", "harness_fingerprint", "stamp", "what_changed"]
