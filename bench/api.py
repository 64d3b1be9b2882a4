"""The Python API. Everything the CLI does is one of these calls, so notebooks never shell out."""

from __future__ import annotations

import dataclasses
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import yaml

from bench.core.errors import BenchError, fs_error
from bench.store import locks
from bench.store import runs as store

if TYPE_CHECKING:
    from bench.store.result import RunResult
    from bench.suite.spec import RunSpec, Suite

Echo = Callable[[str], None]
TERMINAL_METRICS = 5
# Re-exported: the CLI and notebooks call them as bench.api.*
from bench.validation import check_environment, contract_violations, not_applicable  # noqa: E402, F401


def _quiet(_: str) -> None:
    pass


def run_suite(
    source: str | Path | dict,
    out: str | Path = "runs",
    reports: str | Path = "reports",
    device: str = "auto",
    executor: str = "local",
    only: str | None = None,
    force: bool = False,
    dry_run: bool = False,
    progress: bool = True,
    echo: Echo = _quiet,
    jobs: int | str | None = None,
    wait: bool = False,
    until_resolved: bool = False,
    max_seeds: int | None = None,
    max_runs: int | None = None,
    overrides: tuple[str, ...] = (),
    **executor_options: Any,
) -> pd.DataFrame:
    """Run (or resume) a suite and write results.csv, summary.csv and the HTML report.

    Sequential seeds (`seeds: {min, max}` in the suite, or `until_resolved` with at most `max_seeds` per cell
    and `max_runs` in all): rounds of runs through the same executor; after each, only cells whose headline
    comparison is undecided get more seeds (bench.exec.rounds, docs/statistics.md).

    `jobs`: worker processes sharing the device (local executor only): "auto" (one per usable core, divided by
    the runs' `runner.threads`; 1 on a GPU), a number (1: in this process, in sequence), or None: $BENCH_JOBS,
    else "auto". A run's threads and id never depend on it. Several launchers (or `jobs` workers) on one `out`
    folder split the runs through lock files; each waits for the others' runs before writing the tables.
    When all that is left are runs another live launcher holds, they are listed (holder, for how long) and
    reported as running elsewhere, and the tables cover the rest; `wait=True` waits for them instead (the
    launcher that finishes last writes complete tables either way). A real Ctrl-C stops the suite
    (KeyboardInterrupt); adapter code that exits or interrupts fails its run.

    `overrides`: `key=value` strings (`budget.steps=50`) set on the suite before validation; they change the
    run ids like an edit of the file, and the resolved suite.yaml records them.

    Returns the results table (one row per run); `.attrs` holds `summary`, `report` (the index.html path)
    and `failed` (number of runs that raised). Invalid input raises BenchError before anything runs.
    """
    from bench.core import interrupt

    with interrupt.watch():  # a real Ctrl-C stops the suite; an adapter's KeyboardInterrupt fails its run
        return _run_suite(
            source,
            out,
            reports,
            device,
            executor,
            only,
            force,
            dry_run,
            progress,
            echo,
            jobs,
            wait,
            until_resolved,
            max_seeds,
            max_runs,
            tuple(overrides),
            executor_options,
        )


def _run_suite(
    source: str | Path | dict,
    out: str | Path,
    reports: str | Path,
    device: str,
    executor: str,
    only: str | None,
    force: bool,
    dry_run: bool,
    progress: bool,
    echo: Echo,
    jobs: int | str | None,
    wait: bool,
    until_resolved: bool,
    max_seeds: int | None,
    max_runs: int | None,
    overrides: tuple[str, ...],
    executor_options: dict[str, Any],
) -> pd.DataFrame:
    from bench.exec import forkserver

    jobs = forkserver.parse_jobs(jobs)
    if executor == "local" and not dry_run:
        forkserver.warm_up(jobs)  # the workers' imports, beside this process's own (bench.exec.forkserver)

    from bench.api_eval import describe as describe_evaluations
    from bench.api_eval import reevaluate_runs
    from bench.exec.jobs import resolve_jobs
    from bench.exec.outcome import Dispatch
    from bench.exec.table import choose
    from bench.planning import sequential
    from bench.store import claims
    from bench.suite.overrides import header

    check_environment()
    suite = sequential(_load(source, tuple(overrides)), until_resolved, max_seeds, max_runs)
    choose(executor, jobs, executor_options)  # bad input fails before anything is read
    plan = _plan(suite, out, reports, device, only, force, jobs, dry_run)
    rounds = _first_round(plan, resume=not force)
    todo = plan.grid if rounds is not None else plan.todo  # under sequential seeds, later rounds reuse the row
    workers = resolve_jobs(jobs, executor, plan.device, len(todo), max((r.runner.threads or 1 for r in todo), default=1))
    row, options = choose(executor, workers, executor_options)
    packed = f", {workers} worker processes (--jobs {jobs})" if workers > 1 else ""
    to_eval = describe_evaluations(plan.reeval, plan.suite_dir)  # the whole grid's, before any round
    done_note = f"{len(plan.runs) - len(plan.todo)} already done{'; ' + to_eval if to_eval else ''}"
    echo(f"suite {suite.name}: {len(plan.runs)} runs ({done_note}), device {plan.device}{packed}")
    if rounds is not None:
        echo(f"sequential seeds: {rounds.n_min} per cell first, up to {rounds.n_max} where the {rounds.headline} comparison is undecided")
    if dry_run:
        return _dry_run(plan, echo)
    _set_aside(plan, only, jobs, echo)
    # Everything that must be writable is tried before any run starts: a read-only, full or occupied
    # --out/--reports is invalid input (exit 2), not a suite of failed runs.
    _prepare(plan.suite_dir, header(overrides) + yaml.safe_dump(_suite_dict(suite), sort_keys=False), plan.report_dir)
    tally = _Tally(len(plan.todo), echo)
    dev_name = str(plan.device) if device != "auto" else "auto"
    # Every executor claims each run's lock before running it, and deletes a forced run's folder only then.
    dispatch = Dispatch(plan.suite_dir, dev_name, plan.cache_dir, tally.on_done, progress, plan.snap, force, tally.on_other)
    tally.failed += len(plan.reeval) - len(reevaluate_runs(plan.reeval, plan.suite_dir, plan.device, plan.cache_dir, echo))
    dispatch.wait, dispatch.on_elsewhere, dispatch.echo = wait, tally.on_elsewhere, echo
    row.run(plan.todo, dispatch, **options)
    ran = {r.run_id for r in plan.todo}
    while rounds is not None:  # the next round: more seeds for the undecided cells, through the same executor
        claims.wait_for_grid(plan.runs, plan.suite_dir, echo)
        if not rounds.advance(echo):
            break
        plan.runs = rounds.selected()
        plan.todo = [r for r in plan.runs if r.run_id not in ran and (force or not store.is_done(plan.suite_dir / r.run_id))]
        ran |= {r.run_id for r in plan.todo}
        tally.total += len(plan.todo)
        options = {k: v for k, v in options.items() if k != "address"}  # Ray: joined in round 1, stays joined
        row.run(plan.todo, dispatch, **options)
    df, summary, report = _finish(plan, tally, wait)
    _print_summary(suite, summary, tally, plan, report, echo)
    df.attrs.update(summary=summary, report=report, failed=tally.failed, problems=tally.problems, elsewhere=tally.elsewhere)
    return df


def _load(source: str | Path | dict, overrides: tuple[str, ...] = ()) -> Suite:
    from bench.suite.load import load_suite

    return load_suite(source, overrides)


def _suite_dict(suite: Suite) -> dict:
    from bench.suite.load import suite_to_dict

    return suite_to_dict(suite)


@dataclasses.dataclass
class _Plan:
    """What one launcher will do: the grid (and the part of it `--only` keeps), what is left, and where."""

    suite: Suite
    runs: list[RunSpec]  # this launcher's runs (under sequential seeds: the current round's)
    todo: list[RunSpec]
    identify: Callable[[RunSpec], RunSpec]
    suite_dir: Path
    cache_dir: Path
    report_dir: Path
    snap: Any  # claims.Snapshot: the folder as this launcher found it
    device: Any  # torch.device
    grid: list[RunSpec] = dataclasses.field(default_factory=list)  # every run up to the seed cap
    reeval: list[RunSpec] = dataclasses.field(default_factory=list)  # done, kept weights, another eval id


def _first_round(plan: _Plan, resume: bool) -> Any:
    """Under sequential seeds, narrow the plan to the first round and return its SeedRounds (else None)."""
    if plan.suite.seed_range is None:
        return None
    from bench.exec.rounds import SeedRounds

    rounds = SeedRounds.of(plan.suite, plan.grid, plan.suite_dir, resume)
    chosen = {r.run_id for r in rounds.selected()}
    plan.runs = [r for r in plan.grid if r.run_id in chosen]
    plan.todo = [r for r in plan.todo if r.run_id in chosen]
    return rounds


def _plan(
    suite: Suite, out: str | Path, reports: str | Path, device: str, only: str | None, force: bool, jobs: int | str, dry_run: bool = False
) -> _Plan:
    from bench.api_eval import split_done
    from bench.core.env import pick_device
    from bench.core.errors import DataUnavailable
    from bench.store import claims
    from bench.store.fingerprint import stamp
    from bench.suite.load import expand

    dev = pick_device(device)

    def identify(run: RunSpec) -> RunSpec:  # threads resolved, code and data fingerprinted before any run id is read
        # Never from --jobs: launchers with different --jobs share the ids. Stamping loads every data set (fail
        # fast, exit 2, before any run starts) and hashes its pixels; a dry run never downloads one.
        return stamp(run, dev.type, download=not dry_run)

    try:
        runs = expand(suite, only, stamp=identify)
    except DataUnavailable as err:
        if not dry_run:
            raise
        fix = "--dry-run never downloads: run `bench run` without it once (with dataset.download: true), or place the files"
        raise DataUnavailable(err.message, file=err.file, key=err.key, fix=fix) from None
    suite_dir = Path(out) / suite.name
    snap = claims.snapshot(runs, suite_dir)  # before anything: a result that changes later is another launcher's
    todo = [r for r in runs if force or not store.is_done(suite_dir / r.run_id)]
    reeval, retrain = split_done(runs, suite_dir, todo)  # another eval block: re-evaluate, or retrain if no weights
    todo += retrain
    return _Plan(suite, runs, todo, identify, suite_dir, Path(out) / ".cache", Path(reports) / suite.name, snap, dev, list(runs), reeval)


def _dry_run(plan: _Plan, echo: Echo) -> pd.DataFrame:
    from bench.core.errors import BenchError

    try:
        na = not_applicable(plan.suite)
    except BenchError:  # no data on disk to build the adapters: the list is still useful without the forecast
        na = {}
    rows = []
    for r in plan.runs:
        why = na.get((r.adapter, r.strategy))
        state = "run " if r in plan.todo else "eval" if r in plan.reeval else "done"
        echo(f"  {state}  {r.run_id}" + (f"  (n/a: {why})" if why and r in plan.todo else ""))
        rows.append({"run_id": r.run_id, "adapter": r.adapter, "strategy": r.strategy, "seed": r.seed, "todo": r in plan.todo, "na": why})
    if na:
        echo(
            f"{sum(1 for r in plan.runs if (r.adapter, r.strategy) in na)} runs will be n/a by design (the strategy needs a part the adapter lacks)"
        )
    return pd.DataFrame(rows)


def _set_aside(plan: _Plan, only: str | None, jobs: int | str, echo: Echo) -> None:
    """Runs of an earlier version of the suite or of the code (ids not in the whole grid) go aside, said aloud."""
    from bench.store import claims
    from bench.store.stale import set_aside
    from bench.suite.load import expand

    def busy(run_id: str) -> bool:  # a live launcher (maybe on other code) holds this run
        return locks.is_held(claims.run_lock(plan.suite_dir, run_id))

    grid = expand(plan.suite, stamp=plan.identify) if only else plan.grid
    for line in set_aside(plan.suite_dir, grid, busy):
        echo(line)


class _Tally:
    """The launcher's running count of finished runs, and the problems to report once at the end."""

    def __init__(self, total: int, echo: Echo) -> None:
        self.total, self.echo = total, echo
        self.failed = self.done = self.ran_here = 0
        self.problems: list[str] = []  # bookkeeping that could not be written
        self.elsewhere: list[str] = []  # run ids another live launcher still holds (not waited for)
        self.start = time.perf_counter()

    def on_done(self, run: RunSpec, res: RunResult, by: str = "") -> None:
        self.done += 1
        self.ran_here += not by
        try:
            self.failed += res.status == "failed"
            unrecorded = getattr(res, "unrecorded", "")  # UnrecordedFailure: even the failure could not be written
            if unrecorded:
                self.problems.append(f"{run.run_id}: failed, and the failure could not be recorded: {unrecorded}")
            note = f" — {res.error}" if res.status != "completed" else ""
            self.echo(f"[{self.done}/{self.total}] {run.run_id}: {res.status}{by}{note}"[:400])
        except Exception as err:  # a progress line must never stop the suite
            self.failed += 1
            self.problems.append(f"{run.run_id}: {_one_line(err)}")

    def on_other(self, run: RunSpec, res: RunResult) -> None:
        self.on_done(run, res, by=" (by another launcher)")

    def on_elsewhere(self, run: RunSpec, holder: str) -> None:
        if run.run_id not in self.elsewhere:
            self.elsewhere.append(run.run_id)
            self.echo(f"running elsewhere: {run.run_id} (held by {holder})"[:400])


def _finish(plan: _Plan, tally: _Tally, wait: bool = False) -> tuple[pd.DataFrame, pd.DataFrame, Path]:
    """Write the tables under a lock, one launcher at a time. With `wait`, first wait for the runs others still
    hold, so every launcher ends with the complete tables; without, the last launcher to finish writes them
    complete (the others' tables say what was still running elsewhere)."""
    from bench.api_score import write_references
    from bench.report import render_report as _render
    from bench.store import claims

    if wait:
        claims.wait_for_grid(plan.runs, plan.suite_dir, tally.echo)
    with locks.held(claims.tables_lock(plan.suite_dir)):
        for folder in (plan.suite_dir / claims.LOCKS, *(plan.cache_dir / sub for sub in ("pretrain", "domain", "features"))):
            locks.sweep(folder)  # locks a killed launcher left on work that is done
        df, summary = _tables(plan.suite_dir, tally.problems)
        # The real-vs-real scale of the runs as they are now, once per (data, evaluation id): a new eval block
        # (a re-evaluation) gets its own, and the file keeps only the current ones.
        write_references(plan.runs, plan.suite_dir, plan.device, plan.cache_dir)
        report = plan.report_dir / "index.html"
        if tally.ran_here or not _report_is_current(plan.suite_dir, report):
            try:  # the tables are written above; the report layer only draws
                report = _render(plan.suite_dir, plan.report_dir)["html"]
            except Exception as err:  # the runs are done and recorded; a report that cannot be drawn is one problem
                tally.problems.append(f"report {plan.report_dir}: {_one_line(err)}")
    claims.tidy(plan.suite_dir)
    return df, summary, report


def _print_summary(suite: Suite, summary: pd.DataFrame, tally: _Tally, plan: _Plan, report: Path, echo: Echo) -> None:
    """The terminal gets the headline columns and the report's cost column (pretrain + train seconds), so the
    two never disagree; every metric is in summary.csv and the report."""
    from bench.stats.aggregate import terminal_table
    from bench.stats.compare import pick_baseline

    shown = [*suite.eval.metrics[:TERMINAL_METRICS], "total_seconds"]
    baseline = pick_baseline(list(suite.strategies), suite.baseline, {n: s.task for n, s in suite.strategies.items()})
    echo("")
    echo(terminal_table(summary, shown, baseline))
    hidden = len(suite.eval.metrics) - TERMINAL_METRICS
    if hidden > 0:
        echo(f"(mean ± 95% CI over seeds; {hidden} more metrics in summary.csv and the report)")
    done, here = tally.done, tally.ran_here
    others = f" ({done - here} of them by other launchers)" if done > here else ""
    echo(f"\n{done} runs in {time.perf_counter() - tally.start:.1f}s{others}; results: {plan.suite_dir / 'results.csv'}")
    echo(f"comparisons against the baseline (paired; decisions within each metric's family): {plan.suite_dir / 'comparisons.csv'}")
    echo(f"report: {report.resolve().as_uri()}")
    if tally.elsewhere:
        n = len(tally.elsewhere)
        echo(
            f"{n} run(s) still running elsewhere, not in these tables: the launcher that finishes last writes them whole (or rerun with --wait)"
        )
    for p in tally.problems:
        echo(f"error: {p}"[:800])


def _one_line(err: BaseException) -> str:
    if isinstance(err, BenchError):
        return str(err)
    if isinstance(err, OSError):
        return str(fs_error(err))
    return f"{type(err).__name__}: {' '.join(str(err).splitlines())}"[:600]


def _prepare(suite_dir: Path, suite_yaml: str, report_dir: Path) -> None:
    """Create the suite folder, write its suite.yaml and probe the report folder; any file-system error
    becomes one BenchError naming the path and the fix. Temp files of killed writers are swept."""
    from bench.report.folder import check_target

    try:
        suite_dir.mkdir(parents=True, exist_ok=True)
        store.remove_stale_writes(suite_dir)
        store.atomic_write_text(suite_dir / "suite.yaml", suite_yaml)
    except OSError as err:
        raise fs_error(err, err.filename or suite_dir) from None
    try:
        report_dir.parent.mkdir(parents=True, exist_ok=True)
        check_target(report_dir)
        if report_dir.is_dir():
            store.remove_stale_writes(report_dir)  # left by an older, non-staged render
    except OSError as err:
        raise fs_error(err, err.filename or report_dir) from None
    try:  # the report is published by a rename in its parent folder: that is what must be writable
        fd, probe = tempfile.mkstemp(dir=report_dir.parent, prefix=f".{report_dir.name}.probe-", suffix=".tmp")
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise fs_error(err, report_dir.parent) from None


def _tables(suite_dir: Path, problems: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """results.csv and summary.csv; when they cannot be written, the tables are still returned (and shown)."""
    from bench.stats.aggregate import results_frame, summary_frame, write_tables

    try:
        return write_tables(suite_dir)
    except Exception as err:
        problems.append(f"tables in {suite_dir}: {_one_line(err)}")
    try:
        df = results_frame(store.list_results(suite_dir))
        return df, summary_frame(df)
    except Exception as err:
        problems.append(f"results in {suite_dir}: {_one_line(err)}")
        return pd.DataFrame(), pd.DataFrame()


def _report_is_current(suite_dir: Path, report: Path) -> bool:
    """True when the report is newer than every result and whole (every link resolves): a rerun of a
    finished suite need not redraw it, but a report broken by a kill or by hand is redrawn."""
    from bench.report.folder import links_intact

    try:
        if not report.is_file():
            return False
        newest = max((p.stat().st_mtime for p in suite_dir.glob("*/result.json")), default=0.0)
        return report.stat().st_mtime >= newest and links_intact(report)
    except OSError:
        return False


def load_results(runs_dir: str | Path) -> pd.DataFrame:
    """The results table of a suite folder (runs/<suite>), or of every suite under a runs folder."""
    from bench.stats.aggregate import results_frame

    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        raise BenchError("runs folder not found", file=str(runs_dir), fix="pass runs/<suite> as written by `bench run`")
    results = store.list_results(runs_dir) or [r for d in sorted(runs_dir.iterdir()) if d.is_dir() for r in store.list_results(d)]
    return results_frame(results)


def render_report(suite_dir: str | Path, out: str | Path | None = None, formats: tuple[str, ...] = ("html",), warn: Echo = _quiet) -> Path:
    """Re-render the report of a run folder without training anything.

    formats: any of html (index.html, per-run pages, figures), md (summary.md), tex (summary.tex, booktabs)
    and csv (summary.csv with Δ vs scratch and Welch p-values), all written into `out`
    (default reports/<suite>). Returns index.html when html is asked for, else the first file written.
    A result.json that is not a valid RunResult is left out, and `warn` gets one line naming it.
    """
    from bench.report import render_report as _render
    from bench.stats.aggregate import write_tables

    suite_dir = Path(suite_dir)
    if not suite_dir.is_dir() or not any(suite_dir.glob("*/result.json")):
        raise BenchError("no results here", file=str(suite_dir), fix="pass the runs/<suite> folder of a suite that has run")
    unknown = [f for f in formats if f not in ("html", "md", "tex", "csv")]
    if unknown or not formats:
        raise BenchError(f"unknown report format {', '.join(unknown) or '(none)'}", fix="use html, md, tex or csv")
    store.list_results(suite_dir, warn)  # only to name the results that tables and report leave out
    try:
        write_tables(suite_dir)
        written = _render(suite_dir, Path(out) if out else Path("reports") / suite_dir.name, tuple(formats))
    except OSError as err:  # read-only, full, or a folder where a file should be: one line, exit 2
        raise fs_error(err) from None
    return written.get("html") or next(iter(written.values()))
