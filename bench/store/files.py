"""Atomic file writes and tolerant JSON reads: the one way anything in bench puts bytes on disk.

A leaf, so the caches of the metrics and the tasks can use it without reaching up to the store.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from pathlib import Path
from typing import Any

STALE_TMP_SECONDS = 120  # a temp file this old has no live writer: writes take milliseconds


def umask() -> int:
    """The process umask, read without changing it where /proc allows (os.umask can only set-and-return)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_mode() -> int:
    """The mode a plain `open(path, "w")` would give: 0666 less the umask (mkstemp alone gives 0600)."""
    return 0o666 & ~umask()


def dir_mode() -> int:
    """The mode a plain `mkdir` would give: 0777 less the umask (mkdtemp alone gives 0700)."""
    return 0o777 & ~umask()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temp file in the same folder, fsync, then rename: readers see old or new, never half.
    The file gets the umask's mode, as a plain write would, so shared folders and served reports work."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, file_mode())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def _json_default(o: Any) -> Any:
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "item"):
        return o.item()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def json_safe(obj: Any) -> Any:
    """`obj` with every non-finite float made a string ("nan", "inf"), so that strict JSON can hold it.
    Used where a record must be written whatever it holds (a failed run's result)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    return obj


def atomic_write_json(path: Path, obj: Any) -> None:
    # allow_nan=False keeps files strict JSON; non-finite numbers must be None before this.
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default, allow_nan=False) + "\n")


def read_json(path: Path) -> dict | None:
    """A parsed JSON object, or None when missing, truncated or corrupt (never trusted then)."""
    try:
        obj = json.loads(Path(path).read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return obj if isinstance(obj, dict) else None


def remove_stale_writes(folder: Path, older_than: float = STALE_TMP_SECONDS) -> int:
    """Delete `.<name>.*.tmp` files a killed writer left in a shared folder (a suite or report folder).
    Unlike a run folder, these may have a live writer in another process, so only old ones go."""
    removed = 0
    now = time.time()
    try:
        tmps = list(Path(folder).glob(".*.tmp"))
    except OSError:
        return 0
    for tmp in tmps:
        try:
            if tmp.is_file() and not tmp.is_symlink() and now - tmp.stat().st_mtime > older_than:
                tmp.unlink()
                removed += 1
        except OSError:  # gone already, or not ours to delete: leave it
            pass
    return removed


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")  # OWASP: cells a spreadsheet would run as a formula


def csv_text(frame: Any) -> str:
    """A pandas DataFrame as CSV, with every text cell that starts like a formula prefixed by `'`, as OWASP
    advises: strategy names and errors are user strings, and a cell `=HYPERLINK(...)` would run when the
    file is opened in a spreadsheet. Numbers (negative ones included) are left as they are."""

    def cell(v: Any) -> Any:
        return "'" + v if isinstance(v, str) and v.startswith(FORMULA_START) else v

    safe = frame.copy()
    for col in safe.columns:
        if safe[col].dtype.kind not in "biufcmM":  # text (object or pandas str): numbers stay numbers
            safe[col] = safe[col].map(cell)
    safe.columns = [cell(c) for c in safe.columns]
    return safe.to_csv(index=False)


def tensors_sha256(tensors: Any) -> str:
    """sha256 of a name -> tensor mapping's content: names (sorted), dtypes, shapes and bytes.

    Not of a file: safetensors writes its header (and `metadata`) in whatever order it was given, so two
    files of identical weights can hash differently. torch is imported here only: callers hold tensors."""
    import hashlib

    import torch

    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous().reshape(-1)
        h.update(f"{name}\0{t.dtype}\0{tuple(tensors[name].shape)}\0".encode())
        h.update(t.view(torch.uint8).numpy().tobytes())  # raw bytes of any dtype, bf16 included
    return h.hexdigest()
