"""Sequential seeds as rounds of ordinary run specs (`seeds: {min, max}` or `bench run --until-resolved`).

The grid holds every seed up to `max`; a round is the subset each cell (group × strategy) has seeds for.
After a round, the headline family's calls are made from the results on disk (bench.stats.calls, with the
anytime-valid confidence sequence) and bench.stats.rounds says which cells get more. The next round's runs
go through the same executor as any run, so resume, locks, `--jobs` and Ray work across rounds unchanged,
and several launchers on one folder compute the same rounds from the same results.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.stats.rounds import Cell, cap_note, next_counts
from bench.store import runs as store
from bench.suite.spec import RunSpec, Suite
from bench.suite.sweep import column_value


@dataclass
class SeedRounds:
    grid: list[RunSpec]  # every run up to the cap, in the executor's order
    suite_dir: Path
    headline: str
    baseline: str | None
    margin: object  # bench.stats.calls.Margin | None
    n_min: int
    n_max: int
    max_runs: int | None = None
    order: list[int] = field(default_factory=list)  # the seed order cells take seeds in
    counts: dict[Cell, int] = field(default_factory=dict)
    round: int = 1

    @classmethod
    def of(cls, suite: Suite, grid: list[RunSpec], suite_dir: Path, resume: bool = True) -> SeedRounds:
        from bench.stats.calls import parse_margin

        plan = suite.seed_range
        assert plan is not None
        self = cls(grid, suite_dir, suite.headline_metric, suite.baseline, parse_margin(suite.margin), plan.min, plan.max, plan.max_runs)
        self.order = list(suite.seeds)
        self.counts = {self.cell(r): plan.min for r in grid}
        if resume:  # a rerun starts where the last one stopped: each cell's leading seeds that are done
            rank = {seed: i for i, seed in enumerate(self.order)}
            done: dict[Cell, set[int]] = {}
            for r in grid:
                if store.is_done(suite_dir / r.run_id):
                    done.setdefault(self.cell(r), set()).add(rank[r.seed])
            for key, have in done.items():
                k = 0
                while k in have:
                    k += 1
                self.counts[key] = max(self.counts[key], min(k, plan.max))
        return self

    def cell(self, run: RunSpec) -> Cell:
        """(adapter, swept values in the results table's column order, strategy): the comparisons' keys."""
        return (run.adapter, *(column_value(run.swept[k]) for k in sorted(run.swept)), run.strategy)

    def selected(self) -> list[RunSpec]:
        rank = {s: i for i, s in enumerate(self.order)}
        return [r for r in self.grid if rank.get(r.seed, len(rank)) < self.counts[self.cell(r)]]

    def advance(self, echo: Callable[[str], None]) -> bool:
        """Decide the next round from the results on disk; False when nothing more is to be run."""
        from bench.stats.aggregate import metric_directions, results_frame
        from bench.stats.compare import comparisons_frame, group_columns

        df = results_frame(store.list_results(self.suite_dir))
        if df.empty or self.headline not in df.columns:
            return False
        ids = {r.run_id for r in self.grid}
        df = df[df["run_id"].isin(ids)]
        comp = comparisons_frame(
            df, [self.headline], metric_directions([self.headline]), self.baseline, self.headline, self.margin, sequential=True
        )
        groups = [g for g in group_columns(df) if g != "adapter"]
        cols = ["adapter", *sorted(groups)]
        base = str(comp["baseline"].iloc[0]) if not comp.empty else (self.baseline or "scratch")
        new = next_counts(comp, cols, self.counts, base, self.headline, self.n_max, self.max_runs)
        decided = int((comp["decision"] != "inconclusive").sum()) if not comp.empty else 0
        echo(f"round {self.round}: {decided} of {len(comp)} {self.headline} comparisons decided; {cap_note(self.n_max, self.counts)}")
        if new == self.counts:
            return False
        self.counts, self.round = new, self.round + 1
        return True


__all__ = ["SeedRounds"]
