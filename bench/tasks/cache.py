"""The pretrained-checkpoint cache: content-hashed, tensors in safetensors, atomic, shared across seeds and suites.

Layout: `<cache_dir>/pretrain/<key>/weights.safetensors` + `meta.json` (cost, losses, probe accuracy,
the hashed fields for provenance, and the weights' content sha256: names, dtypes, shapes and bytes, never
the file's header order).

- The key is a hash of everything that determines the weights (see `tasks.cache_fields`); a name never is,
  so two suites that pretrain the same thing share one entry, and changing any input misses.
- One process builds a missing entry while others wait: `run_task` holds `lock_path(key)` (bench.store.locks)
  around load-or-build, so concurrent launchers never pretrain the same entry twice.
- An entry is built in a private temp folder and moved into place with one `os.replace`, so readers see a
  whole entry or none. Two concurrent writers of the same key both succeed: the loser finds a valid entry
  there, discards its own copy and uses the winner's (their contents are the same function of the key).
- An entry whose meta is unreadable, whose key differs or whose weights do not match the recorded sha256
  (truncated, bit-flipped, half-deleted) counts as missing: it is moved aside and rebuilt.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

import torch

from bench.store import files

WEIGHTS, META = "weights.safetensors", "meta.json"


def cache_key(fields: dict[str, Any]) -> str:
    blob = json.dumps(fields, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def entry_dir(cache_dir: Path, key: str) -> Path:
    return Path(cache_dir) / "pretrain" / key


def lock_path(cache_dir: Path, key: str) -> Path:
    """The lock that lets one process build the entry while others wait for it (see bench.store.locks)."""
    return Path(cache_dir) / "pretrain" / f"{key}.lock"


def load(cache_dir: Path, key: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]] | None:
    """(tensors on CPU, meta) for a valid entry, else None. Never trusts a file it cannot verify."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = entry_dir(cache_dir, key)
    meta = files.read_json(folder / META)
    if meta is None or meta.get("key") != key or not (folder / WEIGHTS).is_file():
        return None
    try:
        tensors = load_file(str(folder / WEIGHTS), device="cpu")
    except (OSError, SafetensorError, ValueError):
        return None
    # The content hash (files.tensors_sha256), not the file's: safetensors' header order may vary.
    return (tensors, meta) if files.tensors_sha256(tensors) == meta.get("weights_sha256") else None


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _discard(path: Path) -> None:
    """Move a folder aside atomically, then delete it: a concurrent reader never sees it half-deleted."""
    trash = path.parent / f".trash-{path.name}-{uuid.uuid4().hex[:8]}"
    try:
        os.replace(path, trash)
    except FileNotFoundError:
        return  # someone else moved it first
    shutil.rmtree(trash, ignore_errors=True)


def save(cache_dir: Path, key: str, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    """Write an entry atomically and return the meta that ended up stored (the winner's, under a race)."""
    from safetensors.torch import save_file

    final = entry_dir(cache_dir, key)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".tmp-{key}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        # clone(): safetensors refuses tensors that share storage (tied weights); a copy each is simplest.
        flat = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in tensors.items()}
        save_file(flat, str(tmp / WEIGHTS))
        _fsync_file(tmp / WEIGHTS)
        meta = {**meta, "key": key, "weights_sha256": files.tensors_sha256(flat), "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        files.atomic_write_json(tmp / META, meta)  # last inside the folder: a folder without meta is never valid
        for _ in range(3):
            try:
                os.replace(tmp, final)  # atomic; fails if `final` exists and is not empty
                return meta
            except OSError:
                existing = load(cache_dir, key)
                if existing is not None:
                    return existing[1]  # a concurrent writer won with an equivalent entry
                _discard(final)  # a corrupt entry: move it aside and try again
        raise OSError(f"could not place pretraining cache entry {final}")
    finally:
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(tmp)
