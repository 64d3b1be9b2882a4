"""Run folders, atomic writes and resume.

Layout (the run folder is the unit of resume and of distribution):
    <out>/<suite>/suite.yaml                resolved copy
    <out>/<suite>/<run_id>/result.json      written atomically, last; a valid one means the run is done
    <out>/<suite>/<run_id>/history.csv
    <out>/<suite>/<run_id>/samples.png
    <out>/<suite>/<run_id>/checkpoint.pt    while running (weights_only-loadable), removed when done
    <out>/<suite>/results.csv, summary.csv
"""

from __future__ import annotations

import io
import json
import math
import os
import tempfile
import time
from pathlib import Path
from typing import Any

DONE_STATUSES = ("completed", "diverged", "not_applicable")
STATUSES = (*DONE_STATUSES, "failed")


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
    Used where a result must be written whatever it holds (a failed run's record)."""
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


def read_result(run_dir: Path) -> dict | None:
    """A run's result, or None when it is missing or not trustworthy: unparsable, another run's
    (run_id is the folder name), an unknown status, or metrics that are not a name → number mapping."""
    run_dir = Path(run_dir)
    res = read_json(run_dir / "result.json")
    if res is None or res.get("status") not in STATUSES or res.get("run_id") != run_dir.name:
        return None
    metrics = res.get("metrics")
    if not isinstance(metrics, dict) or not all(v is None or isinstance(v, int | float) for v in metrics.values()):
        return None
    return res


def is_done(run_dir: Path) -> bool:
    res = read_result(run_dir)
    return res is not None and res["status"] in DONE_STATUSES


def save_checkpoint(path: Path, state: dict) -> None:
    buf = io.BytesIO()
    import torch  # lazily: `bench report` needs no torch

    torch.save(state, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: Path) -> dict | None:
    """Load with weights_only=True (no pickled code runs); a corrupt or foreign file is ignored (the run is
    redone from the start) rather than trusted. The runner also starts over when the contents do not fit."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        import torch

        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # truncated zip, bad magic, disallowed type: all mean "not trustworthy"
        return None
    if not isinstance(state, dict) or not isinstance(state.get("step"), int):
        return None
    return state


def remove_partial_writes(run_dir: Path) -> None:
    """Delete temp files a killed writer left behind (`.<name>.*.tmp`); the real files are untouched."""
    for tmp in Path(run_dir).glob(".*.tmp"):
        tmp.unlink(missing_ok=True)


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


def list_results(suite_dir: Path) -> list[dict]:
    """Every readable result.json under a suite folder, in run_id order."""
    out = []
    for p in sorted(Path(suite_dir).glob("*/result.json")):
        res = read_result(p.parent)
        if res is not None:
            out.append(res)
    return out


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


def write_history(path: Path, rows: list[dict[str, Any]]) -> None:
    """history.csv: one row per log or eval point; columns are the union of the rows' keys, in first-seen order."""
    import csv

    cols: list[str] = []
    for r in rows:
        cols += [k for k in r if k not in cols]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols or ["step"])
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(path, buf.getvalue())
