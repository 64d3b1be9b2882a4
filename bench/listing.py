"""`bench list`: cheap listings of the registries and bundled suites."""

from __future__ import annotations

from pathlib import Path

SUITE_DIRS = (Path("suites"), Path(__file__).resolve().parents[1] / "suites")


def _table(rows: list[tuple[str, ...]]) -> str:
    if not rows:
        return "(none)"
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)


def _doc(obj) -> str:
    return ((obj.__doc__ or "").strip().splitlines() or [""])[0]


def render(what: str) -> str:
    if what == "adapters":
        from bench.adapter.base import ADAPTERS

        return _table([(k, c.family, _doc(c)) for k, c in ADAPTERS.items()])
    if what == "datasets":
        from bench.data.datasets import DATASETS

        return _table([(k, _doc(f) or "torchvision data set (root, download)") for k, f in DATASETS.items()])
    if what == "metrics":
        from bench.metrics import METRICS

        return _table(
            [
                (k, "higher" if m.higher_is_better else "lower", ",".join(m.families) if m.families else "all", m.description)
                for k, m in METRICS.items()
            ]
        )
    if what == "strategies":
        from bench.tasks import describe_tasks

        return _table(describe_tasks())
    seen: dict[str, Path] = {}
    for d in SUITE_DIRS:
        for p in sorted(d.glob("*.yaml")):
            seen.setdefault(p.name, p)
    return _table([(str(p), _first_line(p)) for p in seen.values()])


def _first_line(p: Path) -> str:
    import yaml

    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError:
        return "(invalid YAML)"
    return str(data.get("description", "")) if isinstance(data, dict) else ""
