"""The fault sweep's kit: the base suite, a case and its outcome, and `bench` run in this process or as a real
one. Used by benchmarks/fault_sweep.py (the cases and the driver) and benchmarks/_faults_fs.py."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

BENCH = [sys.executable, "-m", "bench.cli"]
SUBPROCESS = False  # set by --subprocess
BASE = {
    "name": "sweep",
    "dataset": {"name": "digits"},
    "budget": {"steps": 3, "eval_every": 0, "batch_size": 8},
    "eval": {"num_samples": 20, "metrics": ["bpd"]},
    "seeds": [0, 1],
    "adapters": {"dummy": {}},
    "strategies": {"scratch": {}, "other": {}},
    "runner": {"threads": 1},
}


@dataclass
class Outcome:
    code: int | None
    output: str

    @property
    def traceback(self) -> bool:
        return "Traceback (most recent call last)" in self.output


@dataclass
class Case:
    name: str
    body: Callable[[Path], tuple[Outcome, str | None]]  # (outcome, problem with the outcome or None)
    expect: tuple[int, ...] = (2,)
    results: list = field(default_factory=list)


def bench(*args: str, cwd: Path, timeout: float = 600) -> Outcome:
    """`bench ARGS` in `cwd`: in this process through click's runner (an uncaught exception is exactly
    what would print a traceback), or as a real process with --subprocess (slower: torch is imported
    once per case). Kills and concurrent renders always use real processes."""
    if SUBPROCESS:
        try:
            p = subprocess.run([*BENCH, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as err:
            return Outcome(None, f"timed out after {timeout}s: {err.stdout or ''}{err.stderr or ''}")
        return Outcome(p.returncode, p.stdout + p.stderr)
    import traceback

    from click.testing import CliRunner

    from bench.cli import main as cli

    here = os.getcwd()
    os.chdir(cwd)
    try:
        res = CliRunner().invoke(cli, list(args))
    finally:
        os.chdir(here)
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        return Outcome(1, res.output + "".join(traceback.format_exception(*res.exc_info)))
    return Outcome(res.exit_code, res.output)


def write_suite(tmp: Path, data: dict | str, name: str = "s.yaml") -> Path:
    path = tmp / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def run(tmp: Path, data: dict | str, *extra: str) -> Outcome:
    path = write_suite(tmp, data)
    return bench("run", str(path), "--out", "runs", "--reports", "rep", "--quiet", "--device", "cpu", *extra, cwd=tmp)


def validate(data: dict | str) -> Callable[[Path], tuple[Outcome, str | None]]:
    return lambda tmp: (bench("validate", str(write_suite(tmp, data)), cwd=tmp), None)


def with_(path: str, value: object) -> dict:
    data = json.loads(json.dumps(BASE))
    *parents, last = path.split(".")
    node = data
    for p in parents:
        node = node.setdefault(p, {})
    node[last] = value
    return data


def links_ok(index: Path) -> str | None:
    """None when index.html exists and every relative link in it resolves (checked here, not with the
    harness's own helper, so the sweep also judges older code)."""
    if not index.is_file():
        return f"no report at {index}"
    links = set(re.findall(r"""(?:href|src)="([^"#?:]+)["#?]""", index.read_text(encoding="utf-8", errors="replace")))
    broken = sorted(t for t in links if not t.startswith("/") and not (index.parent / t).is_file())
    return f"{len(broken)} of {len(links)} links broken in {index}" if broken else None


def finished(tmp: Path) -> Path:
    """A finished copy of the base suite under tmp (built once, copied per case)."""
    cache = Path(tempfile.gettempdir()) / f"fault_sweep_finished_{os.getpid()}"
    if not cache.exists():
        cache.mkdir()
        out = run(cache, BASE)
        assert out.code == 0, out.output
    shutil.copytree(cache, tmp, dirs_exist_ok=True)
    return tmp / "runs" / "sweep"
