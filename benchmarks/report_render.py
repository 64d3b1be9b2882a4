"""Time `bench report` on a SYNTHETIC runs folder (default 1,000 runs), in-process.

    python benchmarks/report_render.py [--runs 1000] [--adapters 10] [--strategies 10] [--formats html,md,tex,csv]

Prints the seconds for imports, for generating the synthetic runs (not part of the report), and for
rendering (wall and CPU time: on a shared machine CPU time is the steadier number).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--adapters", type=int, default=10)
    ap.add_argument("--strategies", type=int, default=10)
    ap.add_argument("--formats", default="html,md,tex,csv")
    ap.add_argument("--keep", type=Path, default=None, help="write runs and report here instead of a temp folder")
    a = ap.parse_args()
    t = time.perf_counter()
    from synthetic_runs import make_runs

    from bench.api import render_report

    import_s = time.perf_counter() - t
    root = a.keep or Path(tempfile.mkdtemp(prefix="bench-report-"))
    t = time.perf_counter()
    suite_dir = make_runs(root / "runs", a.runs, a.adapters, a.strategies)
    gen_s = time.perf_counter() - t
    t, c = time.perf_counter(), time.process_time()
    out = render_report(suite_dir, root / "report", tuple(a.formats.split(",")))
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    n_files = sum(1 for _ in (root / "report").rglob("*") if _.is_file())
    print(f"SYNTHETIC runs: {a.runs} ({a.adapters} adapters x {a.strategies} strategies) in {suite_dir}")
    print(f"imports {import_s:.2f}s; generating runs {gen_s:.2f}s (not part of the report)")
    print(f"render_report({a.formats}): {wall:.2f}s wall, {cpu:.2f}s CPU; {n_files} files; {out}")


if __name__ == "__main__":
    main()
