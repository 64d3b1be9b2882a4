"""The report folder is published as a whole: rendered into a fresh sibling folder, then renamed into place.

So a `kill -9` during rendering leaves the previous report intact (never one with half its pages), and two
processes rendering the same report each build their own folder and the last rename wins, instead of
deleting each other's `img/` and `runs/` mid-write. Leftover staging folders of dead renderers are
removed by the next render.

    reports/.<suite>.render-<pid>-<random>/   being built
    reports/.<suite>.old-<pid>-<random>/      the previous report, moved aside for the swap, then deleted
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from bench.core.errors import BenchError, show
from bench.report.export import FILES
from bench.store import runs as store

OWNED = frozenset({"index.html", "img", "runs", *FILES.values()})  # what a report folder may hold
STALE_SECONDS = 3600  # a staging folder this old has no live renderer even if its pid was reused
SWAP_ATTEMPTS = 50
_LINK = re.compile(r"""(?:href|src)="([^"#?]+)["#?]""")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # exists but is not ours, or not a pid at all: leave its folder alone
    return True


def remove_stale(out_dir: Path) -> None:
    """Delete staging folders left by renderers that were killed (pid gone, or older than an hour)."""
    pattern = re.compile(rf"^\.{re.escape(out_dir.name)}\.(?:render|old)-(\d+)-")
    try:
        siblings = list(out_dir.parent.iterdir())
    except OSError:
        return
    for p in siblings:
        m = pattern.match(p.name)
        if not m or p.is_symlink() or not p.is_dir():
            continue
        try:
            old = time.time() - p.stat().st_mtime > STALE_SECONDS
        except OSError:
            continue
        if old or not _pid_alive(int(m.group(1))):
            shutil.rmtree(p, ignore_errors=True)


def check_target(out_dir: Path, owned: frozenset[str] = OWNED) -> None:
    """The report replaces its folder as a whole, so that folder must hold nothing but a report."""
    if out_dir.is_symlink() or (out_dir.exists() and not out_dir.is_dir()):
        raise BenchError(f"{show(str(out_dir), 200)} is not a folder", fix="remove it, or pass another report folder (--out)")
    if not out_dir.is_dir() or (out_dir / "index.html").exists():
        return  # nothing there yet, or a report (whatever else a report of another version holds)
    foreign = sorted(p.name for p in out_dir.iterdir() if p.name not in owned and not p.name.startswith("."))
    if foreign:
        raise BenchError(
            f"report folder {show(str(out_dir), 200)} holds files a report does not own (e.g. {show(foreign[0])})",
            fix="a report replaces its folder as a whole: pass an empty or new folder (--out)",
        )


def _swap(staged: Path, out_dir: Path) -> None:
    """Move `staged` to `out_dir`, replacing what is there. Another renderer may be swapping the same
    folder at the same moment: whoever renames last wins, and each retry sees the other's result."""
    for _ in range(SWAP_ATTEMPTS):
        old = None
        if out_dir.exists():
            old = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.old-{os.getpid()}-"))
            try:
                os.rename(out_dir, old / "report")
            except FileNotFoundError:  # another renderer moved it aside first
                shutil.rmtree(old, ignore_errors=True)
                continue
        try:
            os.rename(staged, out_dir)
        except OSError as err:
            if err.errno in (errno.ENOTEMPTY, errno.EEXIST):
                continue  # another renderer put its report in place between our two renames: go again
            if old is not None:  # put the previous report back rather than lose it
                with contextlib.suppress(OSError):
                    os.rename(old / "report", out_dir)
            raise
        finally:
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        return
    raise BenchError(f"could not replace {show(str(out_dir), 200)}: other processes kept rendering into it", fix="run one render at a time")


@contextlib.contextmanager
def staged(out_dir: Path, owned: frozenset[str] = OWNED, keep: tuple[str, ...] = ()) -> Iterator[Path]:
    """A fresh folder to render into, published as `out_dir` when the block ends without error (and
    deleted when it does not). Files named in `keep` that exist in the current report are copied over
    first, so rendering some formats never drops the others."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(out_dir)
    check_target(out_dir, owned)
    tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.render-{os.getpid()}-"))
    try:
        os.chmod(tmp, store.dir_mode())  # mkdtemp gives 0700; a report is for sharing
        for name in keep:
            src = out_dir / name
            if src.is_file() and not src.is_symlink():
                shutil.copyfile(src, tmp / name)
        yield tmp
        _swap(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # gone already after a successful swap


def links_intact(index: Path) -> bool:
    """True when every relative link and image of index.html exists: a report broken by a kill or by
    hand is redrawn even if it is newer than every result."""
    try:
        html = index.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    root = index.parent
    for target in set(_LINK.findall(html)):
        if "://" in target or target.startswith(("mailto:", "data:", "/")):
            continue
        if not (root / target).is_file():
            return False
    return True


__all__ = ["OWNED", "check_target", "links_intact", "remove_stale", "staged"]
