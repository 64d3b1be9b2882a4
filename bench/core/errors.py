"""User-facing errors. Anything raised as `BenchError` is shown as one line and exits with code 2."""

from __future__ import annotations

import difflib
import errno
import reprlib
from collections.abc import Iterable
from pathlib import Path

MAX_MESSAGE = 600  # characters of one error line; a message is for reading, never a dump of the input
_REPR = reprlib.Repr()
# Bounded in depth, items and length, so a value built by a YAML alias bomb costs microseconds to show.
_REPR.maxlevel, _REPR.maxlist, _REPR.maxtuple, _REPR.maxdict, _REPR.maxset = 3, 4, 4, 4, 4
_REPR.maxstring, _REPR.maxother, _REPR.maxlong = 60, 60, 40


class BenchError(Exception):
    """Invalid input: the CLI prints `str(err)` on one line and exits 2, with no traceback."""

    def __init__(self, message: str, *, file: str | None = None, key: str | None = None, fix: str | None = None):
        self.message, self.file, self.key, self.fix = message, file, key, fix
        super().__init__(self.format())

    def format(self) -> str:
        where = ""
        if self.file and self.key:
            where = f"{self.file}: {self.key}: "
        elif self.file:
            where = f"{self.file}: "
        elif self.key:
            where = f"{self.key}: "
        text = f"{where}{self.message}"
        if self.fix:
            text += f" ({self.fix})"
        text = " ".join(text.splitlines())
        return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 3] + "..."

    def located(self, file: str) -> BenchError:
        """The same error, attributed to `file` if it had no file yet."""
        if self.file:
            return self
        return BenchError(self.message, file=file, key=self.key, fix=self.fix)


class ConfigError(BenchError):
    """A suite or adapter config value is wrong."""


class DataUnavailable(BenchError):
    """A data set or weight file is not on disk and cannot be downloaded."""


def show(value: object, limit: int = 60) -> str:
    """A value as an error message shows it: a repr bounded in depth, items and length, never the whole."""
    text = _REPR.repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# errno -> what to do about it. The path is always named beside it.
_FS_FIX = {
    errno.EROFS: "the file system is read-only: pass a writable --out/--reports folder",
    errno.EACCES: "permission denied: fix the folder's permissions or pass another --out/--reports folder",
    errno.EPERM: "permission denied: fix the folder's permissions or pass another --out/--reports folder",
    errno.ENOSPC: "the disk is full: free space or pass --out/--reports on another disk",
    errno.EDQUOT: "the disk quota is exceeded: free space or pass --out/--reports on another disk",
    errno.EISDIR: "a folder is where this file should be: remove or rename that folder",
    errno.ENOTDIR: "a file is where a folder should be: remove or rename that file",
    errno.EEXIST: "something is already there: remove or rename it",
    errno.ENAMETOOLONG: "the name is too long for the file system: use shorter suite, adapter or strategy names",
    errno.ELOOP: "too many levels of symbolic links: replace the link with a real folder",
}


def fs_error(err: OSError, path: str | Path | None = None, doing: str = "cannot write") -> BenchError:
    """One line for a file-system error: what failed, on which path, and what to do about it."""
    where = str(path if path is not None else (err.filename or "?"))
    if len(where) > 300:  # keep the end of a long path: that is the part that names the file
        where = "..." + where[-297:]
    fix = _FS_FIX.get(err.errno or -1, "check the path, its permissions and free space")
    return BenchError(f"{doing} {where}: {err.strerror or type(err).__name__}", fix=fix)


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """A ' did you mean 'x'?' hint, or a list of valid names when nothing is close."""
    choices = sorted(choices)
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.5)
    if close:
        return f"did you mean '{close[0]}'?"
    shown = ", ".join(choices[:12]) + (", ..." if len(choices) > 12 else "")
    return f"valid: {shown}" if choices else "nothing is registered"
