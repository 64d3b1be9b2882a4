"""`bench`: a thin click shell over bench.api. Exit codes: 0 all runs finished, 1 some run raised,
2 invalid input (one line naming the file, the key and the fix; no traceback)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from bench.core.errors import BenchError, fs_error

LISTABLE = ("adapters", "strategies", "datasets", "metrics", "suites")


def _fail(err: BenchError) -> None:
    # One line whatever the message holds: YAML keys and values may carry \r, \x85 or U+2028.
    click.echo("error: " + " ".join(str(err).splitlines()), err=True)
    sys.exit(2)


def _closed_stdout() -> None:
    """stdout was closed under us (`bench run … | head`): nothing more can be said there. Point it at
    /dev/null so that Python's own flush at exit does not fail again, and keep the exit code of the work."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _echo(line: str = "", err: bool = False) -> None:
    """click.echo that outlives a closed stdout: the suite goes on (its files are the record) and the exit
    code stays that of the work, not exit 2 "Broken pipe"."""
    try:
        click.echo(line, err=err)
    except BrokenPipeError:
        _closed_stdout()


class _Group(click.Group):
    def invoke(self, ctx: click.Context):
        from bench.core import interrupt

        try:
            with interrupt.watch():  # a real Ctrl-C told apart from one that adapter code raises
                return super().invoke(ctx)
        except BenchError as err:
            _fail(err)
        except BrokenPipeError:  # the reader went away: not invalid input; the runs' own outcome stands
            _closed_stdout()
            sys.exit(getattr(ctx, "bench_exit", 1))
        except OSError as err:  # a file-system fault the command did not anticipate: still one line, exit 2
            _fail(fs_error(err))
        except KeyboardInterrupt as err:
            if not interrupt.is_real(err):  # adapter code raised it outside a run (e.g. at import)
                _fail(BenchError("adapter code raised KeyboardInterrupt outside a run", fix="raise an exception in the adapter instead"))
            how = "terminated" if interrupt.terminated() else "interrupted"
            _echo(f"\n{how}: finished runs are kept; rerun the same command to resume the rest", err=True)
            sys.exit(143 if interrupt.terminated() else 130)


class _Jobs(click.ParamType):
    """`--jobs auto` or a whole number >= 1 (a bad value is a usage error: exit 2, naming --jobs)."""

    name = "auto|K"

    def convert(self, value, param, ctx):
        if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
            return value
        text = str(value).strip()
        if text == "auto" or (text.isdigit() and int(text) >= 1):
            return text if text == "auto" else int(text)
        self.fail(f"{value!r} is not auto or a whole number >= 1", param, ctx)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="bench-pretrain", prog_name="bench")
def main() -> None:
    """Benchmark pretraining strategies for image generative models."""


@main.command()
@click.argument("suite", type=click.Path(path_type=Path))
@click.argument("overrides", nargs=-1, metavar="[KEY=VALUE]...")
@click.option("--out", default="runs", show_default=True, type=click.Path(path_type=Path), help="Run folders go to OUT/<suite>/.")
@click.option(
    "--reports",
    default="reports",
    show_default=True,
    type=click.Path(path_type=Path),
    help="The report goes to REPORTS/<suite>/index.html.",
)
@click.option("--device", default="auto", show_default=True, type=click.Choice(["auto", "cpu", "cuda", "mps"]))
@click.option("--executor", default="local", show_default=True, type=click.Choice(["local", "ray"]))
@click.option("--ray-address", default=None, help="Ray cluster address (with --executor ray); default starts a local one.")
@click.option("--gpus-per-run", default=None, type=float, help="Ray: GPUs per run; a fraction lets tiny models share a GPU.")
@click.option(
    "--jobs",
    default=None,
    type=_Jobs(),
    show_default="auto, or $BENCH_JOBS",
    help="Worker processes on one device (local executor): auto = the usable cores (affinity, cgroup quota) divided by "
    "runner.threads, 1 on a GPU; 1 = in this process, one run after another. Run ids never depend on it.",
)
@click.option("--only", default=None, metavar="GLOB", help="Run only run ids matching GLOB, e.g. 'cnn_gan-*'.")
@click.option("--force", is_flag=True, help="Rerun runs that are already done.")
@click.option("--dry-run", is_flag=True, help="List the runs and whether they are done; train nothing.")
@click.option(
    "--until-resolved",
    is_flag=True,
    help="Add seeds in rounds, only to cells whose headline comparison is still undecided (anytime-valid; docs/statistics.md).",
)
@click.option(
    "--max-seeds",
    default=None,
    type=click.IntRange(min=3),
    help="Sequential seeds: at most N per cell (default: the suite's seeds.max, else 40).",
)
@click.option("--max-runs", default=None, type=click.IntRange(min=1), help="Sequential seeds: at most N runs of compared cells in all.")
@click.option("--quiet", is_flag=True, help="No progress bars (a long run prints an 'alive' line every minute).")
@click.option("--wait", is_flag=True, help="Wait for runs that other live launchers hold, instead of listing them and returning.")
def run(
    suite: Path,
    overrides: tuple[str, ...],
    out: Path,
    reports: Path,
    device: str,
    executor: str,
    ray_address: str | None,
    gpus_per_run: float | None,
    jobs: int | str | None,
    only: str | None,
    force: bool,
    dry_run: bool,
    until_resolved: bool,
    max_seeds: int | None,
    max_runs: int | None,
    quiet: bool,
    wait: bool,
) -> None:
    """Train and evaluate every adapter × strategy × seed of SUITE, then write tables and the report.

    KEY=VALUE overrides a suite value (budget.steps=50, seeds=[0,1], adapters.cnn_gan.width=16): checked like
    the file, part of the run ids, recorded in the resolved suite.yaml and the report."""
    from bench.api import run_suite

    opts = {}
    if executor == "ray":
        opts = {"address": ray_address, "num_gpus": gpus_per_run}
    elif ray_address is not None or gpus_per_run is not None:  # silently ignoring them would surprise
        raise BenchError("--ray-address and --gpus-per-run only apply to the Ray executor", fix="add --executor ray")
    df = run_suite(
        suite,
        overrides=overrides,
        out=out,
        reports=reports,
        device=device,
        executor=executor,
        only=only,
        force=force,
        dry_run=dry_run,
        progress=not quiet,
        echo=_echo,
        jobs=jobs,
        wait=wait,
        until_resolved=until_resolved,
        max_seeds=max_seeds,
        max_runs=max_runs,
        **opts,
    )
    if df.attrs.get("failed"):
        _echo(f"{df.attrs['failed']} run(s) failed; see result.json 'error' and 'traceback'.", err=True)
    code = 1 if df.attrs.get("failed") or df.attrs.get("problems") else 0
    click.get_current_context().find_root().bench_exit = code  # type: ignore[attr-defined]  # kept if stdout closes
    sys.exit(code)


@main.command()
@click.argument("suite", type=click.Path(path_type=Path))
@click.argument("overrides", nargs=-1, metavar="[KEY=VALUE]...")
def validate(suite: Path, overrides: tuple[str, ...]) -> None:
    """Check SUITE (schema, adapter configs, metrics, strategies) and each adapter's contract (one
    train_step, sample and log_likelihood on a tiny batch, on the CPU) without running the suite."""
    from bench.api import check_environment, contract_violations, not_applicable
    from bench.core.errors import DataUnavailable
    from bench.suite.load import expand, load_suite

    check_environment()
    s = load_suite(suite, overrides)
    n = len(expand(s))
    try:
        violations = contract_violations(s, str(suite))
        checked = "adapter contracts checked"
    except DataUnavailable as err:  # the schema is fine; say plainly what could not be checked
        violations, checked = [], f"adapter contracts not checked: {err}"
    for line in violations:
        click.echo("error: " + " ".join(line.splitlines()), err=True)
    if violations:
        sys.exit(2)
    axes = "".join(f" × {len(v)} {k} ({', '.join(map(str, v))})" for k, v in s.sweep.items())
    seeds, most = (f"{s.seed_range.min}-{s.seed_range.max} sequential", " at most") if s.seed_range else (str(len(s.seeds)), "")
    na = {} if checked.startswith("adapter contracts not checked") else not_applicable(s)
    per_pair = n // max(1, len(s.adapters) * len(s.strategies))
    click.echo(
        f"{suite}: ok — {len(s.adapters)} adapters × {len(s.strategies)} strategies × {seeds} seeds{axes} = {n} runs{most}; {checked}"
        + (f"; {len(na) * per_pair} runs{most} will be n/a by design:" if na else "")
    )
    for (adapter, strategy), why in sorted(na.items()):
        click.echo(f"  n/a  {adapter} × {strategy}: {' '.join(why.splitlines())}")


def _names(value: str | None) -> list[str] | None:
    """`--metrics a,b c`: comma- or space-separated metric names."""
    return [m for m in value.replace(",", " ").split() if m] if value else None


@main.command(name="eval")
@click.argument("runs_dir", type=click.Path(path_type=Path))
@click.option("--metrics", default=None, metavar="NAMES", help="Metrics to measure (comma-separated); default: each run's own.")
@click.option("--num-samples", default=None, type=int, help="Generated samples per run; default: each run's own.")
@click.option("--device", default="auto", show_default=True, type=click.Choice(["auto", "cpu", "cuda", "mps"]))
@click.option(
    "--reports", default="reports", show_default=True, type=click.Path(path_type=Path), help="The report goes to REPORTS/<suite>/."
)
def eval_(runs_dir: Path, metrics: str | None, num_samples: int | None, device: str, reports: Path) -> None:
    """Re-evaluate the kept weights of every completed run in RUNS_DIR (runs/<suite>); train nothing."""
    from bench.api_eval import eval_runs

    df = eval_runs(runs_dir, _names(metrics), num_samples, device=device, reports=reports, echo=click.echo)
    if df.attrs.get("failed"):
        sys.exit(1)


@main.command()
@click.argument("samples", type=click.Path(path_type=Path))
@click.option("--reference", required=True, help="A data set name, an inline block '{name: digits, image_size: 8}', or a folder.")
@click.option("--split", default="test", show_default=True, type=click.Choice(["test", "train"]), help="The reference split.")
@click.option("--metrics", default=None, metavar="NAMES", help="Comma-separated; default: every sample metric needing no download.")
@click.option(
    "--cache",
    default="runs/.cache",
    show_default=True,
    type=click.Path(path_type=Path),
    help="Domain extractor cache (bench run's OUT/.cache).",
)
@click.option("--device", default="auto", show_default=True, type=click.Choice(["auto", "cpu", "cuda", "mps"]))
@click.option("--json", "json_out", default=None, type=click.Path(path_type=Path), help="Also write the scores to this JSON file.")
def score(samples: Path, reference: str, split: str, metrics: str | None, cache: Path, device: str, json_out: Path | None) -> None:
    """Score SAMPLES (a folder of PNG files, or an .npz) from any model with the harness's metrics."""
    from bench.api_score import score_samples
    from bench.store.files import atomic_write_json

    out = score_samples(samples, reference, split, _names(metrics), device=device, cache_dir=cache)
    click.echo(f"{out['samples']}: {out['n']} images against {out['reference']['name']} ({out['split']} split)")
    for name, value in out["metrics"].items():
        click.echo(f"  {name:<18} {value:.6g}")
    for name, why in out["not_applicable"].items():
        click.echo(f"  {name:<18} n/a: {why}")
    if json_out is not None:
        atomic_write_json(json_out, out)


@main.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path), help="An .npz file, or a folder for PNG files.")
@click.option("--num", default=None, type=click.IntRange(min=2), help="How many (default: the run's eval.num_samples).")
@click.option("--device", default="auto", show_default=True, type=click.Choice(["auto", "cpu", "cuda", "mps"]))
def sample(run_dir: Path, out: Path, num: int | None, device: str) -> None:
    """Write the samples RUN_DIR's final evaluation measured, drawn again from its kept weights."""
    from bench.api_score import export_samples

    click.echo(f"wrote {export_samples(run_dir, out, num, device)}")


@main.command()
@click.argument("source", type=click.Path(path_type=Path))
@click.option("--out", default="runs", show_default=True, type=click.Path(path_type=Path), help="Where a SUITE's runs folder is.")
def plan(source: Path, out: Path) -> None:
    """Print the seeds each headline comparison needs, from a pilot or finished run: SOURCE is a runs/<suite>
    folder, or a suite file whose runs are under --out."""
    from bench.planning import plan_seeds, plan_text

    click.echo(plan_text(plan_seeds(source, out)))


@main.group()
def new() -> None:
    """Write ready-to-edit files for a new contribution."""


@new.command(name="adapter")
@click.argument("name")
@click.option("--dir", "folder", default=".", show_default=True, type=click.Path(path_type=Path), help="Folder to write into.")
@click.option(
    "--family",
    default="gan",
    show_default=True,
    type=click.Choice(["gan", "vae", "autoregressive", "diffusion", "flow"]),
    help="Which kind of model the template is: each runs as written.",
)
def new_adapter(name: str, folder: Path, family: str) -> None:
    """Write NAME.py (an adapter of the chosen family that runs as written, the contract in its comments) and
    NAME.yaml (a suite that runs it). Never overwrites a file."""
    from bench.scaffold import new_adapter as write

    code, suite = write(name, folder, family)
    click.echo(f"wrote {code} and {suite}; next: bench validate {suite}, then bench run {suite}")


@main.command(name="list")
@click.argument("what", type=click.Choice(LISTABLE))
def list_(what: str) -> None:
    """List registered adapters, strategies (tasks), datasets, metrics, or bundled suites."""
    from bench import listing

    click.echo(listing.render(what))


@main.command()
@click.argument("runs_a", type=click.Path(path_type=Path))
@click.argument("runs_b", type=click.Path(path_type=Path))
@click.option(
    "--metric",
    "metrics",
    multiple=True,
    help="A metric to compare (repeatable); default: the first three quality metrics and total_seconds.",
)
def compare(runs_a: Path, runs_b: Path, metrics: tuple[str, ...]) -> None:
    """Put two runs folders side by side (two suites, or one before and after a change): per adapter × strategy
    in both, each metric's mean ± 95% CI in A and B, and B − A with Welch's unpaired 95% interval."""
    from bench.stats.side_by_side import compare_folders

    click.echo(compare_folders(runs_a, runs_b, list(metrics) or None))


@main.command()
@click.argument("adapter")
def show(adapter: str) -> None:
    """Print ADAPTER's Config: every key a suite may set, with its type, default and description."""
    from bench import listing

    click.echo(listing.show_adapter(adapter))


@main.command()
@click.argument("runs_dir", type=click.Path(path_type=Path))
@click.option("--out", default=None, type=click.Path(path_type=Path), help="Report folder (default reports/<suite>).")
@click.option("--format", "formats", multiple=True, type=click.Choice(["html", "md", "tex", "csv"]), default=("html",), show_default=True)
def report(runs_dir: Path, out: Path | None, formats: tuple[str, ...]) -> None:
    """Regenerate tables and the report from RUNS_DIR (runs/<suite>) without training.

    --format may be repeated: html (index.html + per-run pages), md (summary.md), tex (summary.tex,
    booktabs), csv (summary.csv: mean, 95% CI and n per metric, the paired Δ against the baseline and its
    Holm-corrected p-value)."""
    from bench.api import check_environment, render_report
    from bench.report.export import FILES

    check_environment(data=False)
    path = Path(render_report(runs_dir, out, formats=formats, warn=lambda msg: click.echo(f"warning: {msg}", err=True)))
    for f in dict.fromkeys(formats):
        shown = path if f == "html" else path.parent / FILES[f]
        _echo(f"report: {shown.resolve().as_uri()}" if f == "html" else f"{f}: {shown}")


def entry() -> None:
    """The `bench` console script: the command, then a prompt exit. Python's own finalisation of a process that
    has imported torch takes about a second (module teardown, library destructors) and waits for the workers'
    fork server to go; by then every file is written atomically and closed. So the exit handlers run and the
    streams are flushed here, and the process ends with os._exit."""
    import atexit
    import contextlib
    import os

    try:
        main()
        code: int | str | None = 0
    except SystemExit as done:
        code = done.code
    if isinstance(code, str):  # as Python itself does with a message for an exit code
        print(code, file=sys.stderr)
        code = 1
    atexit._run_exitfuncs()
    from bench.exec import forkserver

    forkserver.stop()
    for stream in (sys.stdout, sys.stderr):
        # Closed under us (`| head`): nothing more can be said there.
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code or 0)


if __name__ == "__main__":
    entry()
