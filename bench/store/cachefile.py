"""Cache entries that check themselves: every tensor file and record a cache keeps is sealed with the sha256
of its content when written, and verified against it on every read. An entry that is missing reads as None,
silently; one that is present but does not verify (truncated, bit-flipped, hand-edited, written by an older
bench without a seal) reads as None too, and says so in one warning line naming the file, so the caller
rebuilds it (and its atomic write replaces the bad one).

The seal is of the content (tensors_sha256: names, dtypes, shapes, bytes; for JSON, its canonical text), never
of the file's bytes: safetensors writes its header in whatever order it is given.

A leaf beside bench.store.files: the metric and task caches use it without reaching up to the store.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from bench.store.files import _json_default, atomic_write_bytes, tensors_sha256

SEAL = "content_sha256"  # the key of the seal, in safetensors metadata and in JSON records
_WARNED: set[tuple[str, str]] = set()  # (path, why) said once per process: a load is often tried twice


def warn(path: Path, what: str, why: str) -> None:
    """One line on stderr: which entry failed its check, why, and that it is rebuilt."""
    key = (str(path), why)
    if key in _WARNED:
        return
    _WARNED.add(key)
    print(f"warning: cache entry {path} ({what}) failed its content check ({why}); rebuilding it", file=sys.stderr, flush=True)


def _written(path: Path) -> None:
    for key in [k for k in _WARNED if k[0] == str(path)]:
        _WARNED.discard(key)  # a later corruption of the rebuilt entry is said again


def save_tensors(path: Path, tensors: dict[str, Any], metadata: dict[str, str] | None = None) -> str:
    """Write tensors atomically, sealed with their content sha256 (returned)."""
    from safetensors.torch import save as st_save

    flat = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    digest = tensors_sha256(flat)
    atomic_write_bytes(Path(path), st_save(flat, metadata={**(metadata or {}), SEAL: digest}))
    _written(Path(path))
    return digest


def load_tensors(path: Path, what: str, expect: str | None = None, unsealed_ok: bool = False) -> dict[str, Any] | None:
    """The tensors of a sealed file, or None when missing or when they do not match their seal (or
    `expect`, a sha256 recorded elsewhere), with one warning line in the second case. `unsealed_ok`: a file
    without a seal passes (the caller pins it another way, e.g. a hash in its own record)."""
    from safetensors.torch import load as st_load

    path = Path(path)
    if not path.is_file():
        return None
    try:
        raw = path.read_bytes()
        tensors = st_load(raw)
        meta = _metadata(raw)
    except Exception as err:  # truncated, bad header, unreadable
        warn(path, what, f"unreadable: {type(err).__name__}")
        return None
    seal = expect or meta.get(SEAL)
    if seal is None:
        if unsealed_ok:
            return tensors
        warn(path, what, "no content hash: written by an older bench")
        return None
    if tensors_sha256(tensors) != seal:
        warn(path, what, "content hash mismatch")
        return None
    return tensors


def _metadata(raw: bytes) -> dict[str, str]:
    """The `__metadata__` of safetensors bytes (the format: an 8-byte little-endian header length, then the
    JSON header), read from the same bytes as the tensors."""
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + n])
    meta = header.get("__metadata__") or {}
    return meta if isinstance(meta, dict) else {}


def json_sha256(record: dict[str, Any]) -> str:
    body = {k: v for k, v in record.items() if k != SEAL}
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


def seal_record(record: dict[str, Any]) -> dict[str, Any]:
    """`record` as JSON will give it back (numbers from tensors, paths as text), with its seal added; write
    it with bench.store.files.atomic_write_json."""
    plain = json.loads(json.dumps(record, default=_json_default))
    return {**plain, SEAL: json_sha256(plain)}


def check_record(path: Path, record: dict[str, Any] | None, what: str, required: bool = True) -> dict[str, Any] | None:
    """A read JSON record if its seal verifies, else None with a warning (silently None when missing). An
    unsealed record passes when not `required` (records whose content is re-derived or pinned elsewhere)."""
    if record is None:
        if Path(path).is_file():
            warn(Path(path), what, "unreadable JSON")
        return None
    if SEAL not in record:
        if required:
            warn(Path(path), what, "no content hash: written by an older bench")
            return None
        return record
    if record[SEAL] != json_sha256(record):
        warn(Path(path), what, "content hash mismatch")
        return None
    return record


__all__ = ["SEAL", "check_record", "json_sha256", "load_tensors", "save_tensors", "seal_record", "warn"]
