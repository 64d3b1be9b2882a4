"""User-facing errors. Anything raised as `BenchError` is shown as one line and exits with code 2."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


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
        return text.replace("\n", " ")

    def located(self, file: str) -> BenchError:
        """The same error, attributed to `file` if it had no file yet."""
        if self.file:
            return self
        return BenchError(self.message, file=file, key=self.key, fix=self.fix)


class ConfigError(BenchError):
    """A suite or adapter config value is wrong."""


class DataUnavailable(BenchError):
    """A data set or weight file is not on disk and cannot be downloaded."""


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """A ' did you mean 'x'?' hint, or a list of valid names when nothing is close."""
    choices = sorted(choices)
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.5)
    if close:
        return f"did you mean '{close[0]}'?"
    shown = ", ".join(choices[:12]) + (", ..." if len(choices) > 12 else "")
    return f"valid: {shown}" if choices else "nothing is registered"
