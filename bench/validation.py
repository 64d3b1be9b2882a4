"""What `bench validate` checks beyond the schema, and what every command checks first: the environment
variables the harness reads, each adapter's contract on a tiny batch, and which pairs will be n/a."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from bench.core.errors import BenchError

if TYPE_CHECKING:
    from bench.suite.spec import Suite


def check_environment(data: bool = True) -> None:
    """Every environment variable the harness reads, checked before anything runs: one line, exit 2.
    `data=False` (bench report) leaves out BENCH_DATA: checking it imports the data layer, and with it torch."""
    from bench.store.locks import stale_seconds
    from bench.suite.limits import ceilings

    stale_seconds()
    ceilings()
    if data:
        from bench.data.datasets import data_root

        data_root(None)


def contract_violations(suite: Suite, file: str = "<dict>") -> list[str]:
    """Run the adapter contract check (bench.adapter.contract) for every adapter of `suite`, on the CPU, on the
    suite's data: one line per violation, naming the file and the adapter's key ([] when all pass).
    Raises BenchError (DataUnavailable) when the data set is not on disk, so nothing can be checked."""
    from bench.adapter.base import get_adapter
    from bench.adapter.contract import check_adapter
    from bench.core import interrupt
    from bench.data.datasets import load_dataset
    from bench.data.style import with_style
    from bench.suite.schema import parse

    # Never a download from `validate`: a check must stay cheap and offline.
    style = None if suite.style is None else dataclasses.replace(suite.style, download=False)
    data = with_style(load_dataset(dataclasses.replace(suite.dataset, download=False)), style)
    lines = []
    for key, block in suite.adapters.items():
        cls = get_adapter(key, where=f"adapters.{key}")
        config = parse(cls.Config, block or {}, f"adapters.{key}")
        try:
            found = check_adapter(lambda cls=cls, config=config: cls(config, data.info, "cpu"), data, "cpu")
        except BaseException as err:  # building it (or a resource limit) raised: the contributor's first command
            if interrupt.passes(err):
                raise
            found = [_building_failed(cls.__name__, err)]
        lines += [f"{file}: adapters.{key}: {line}" for line in found]
    return lines


def not_applicable(suite: Suite) -> dict[tuple[str, str], str]:
    """(adapter, strategy) → why its runs will be n/a, from the adapter's parts alone: the checks a run makes
    before it trains (`parts:` against the task's roles, `freeze:` against the parts' blocks), on a throwaway
    adapter built on the CPU. A task can still find out later (e.g. a decoder's output size), so this is a
    forecast for `bench validate` and `--dry-run`. Raises DataUnavailable when the data set is not on disk."""
    from bench.adapter.base import get_adapter
    from bench.data.datasets import load_dataset
    from bench.runner.pretrain import apply_freeze
    from bench.suite.schema import parse
    from bench.tasks import BY_NAME
    from bench.tasks.common import ALL_PARTS, select_parts
    from bench.tasks.strategy import StrategyNotApplicable

    data = load_dataset(dataclasses.replace(suite.dataset, download=False))
    out: dict[tuple[str, str], str] = {}
    for key, block in suite.adapters.items():
        cls = get_adapter(key, where=f"adapters.{key}")
        config = parse(cls.Config, block or {}, f"adapters.{key}")
        for name, spec in suite.strategies.items():
            task = BY_NAME[spec.task]
            adapter = cls(config, data.info, "cpu")
            try:
                if task.train is not None and not (task.whole_model and (spec.parts is None or any(p in ALL_PARTS for p in spec.parts))):
                    select_parts(adapter, spec.parts, task.roles, task.name)
                apply_freeze(adapter, spec.freeze)
            except StrategyNotApplicable as why:
                out[(key, name)] = str(why)
    return out


def _building_failed(name: str, err: BaseException) -> str:
    """One line for an adapter whose construction or check raised (a ValueError of its own, an allocation
    too large for this machine, an exit): what raised, and the fix."""
    text = " ".join(str(err).split())[:300]
    if isinstance(err, BenchError):  # the adapter named the key itself
        return text
    if isinstance(err, SystemExit):
        return f"{name} called sys.exit({err.code!r}); an adapter must raise an exception instead"
    if isinstance(err, MemoryError) or "allocate" in text.lower():
        return f"{name} could not allocate its memory on the CPU ({type(err).__name__}: {text}); lower its size keys (dim, depth, channels)"
    return f"{name}(config, data, device) or its check raised {type(err).__name__}: {text}"
