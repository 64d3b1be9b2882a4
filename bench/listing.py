"""`bench list`: cheap listings of the registries and bundled suites."""

from __future__ import annotations

from pathlib import Path


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

        return _table([(k, m.info.direction, ",".join(m.families) if m.families else "all", m.description) for k, m in METRICS.items()])
    if what == "strategies":
        from bench.tasks import describe_tasks

        return _table(describe_tasks())
    from bench.suite.load import bundled_suites

    # By name, which `bench run NAME` accepts; the file is where to copy it from.
    return _table([(name, _first_line(p), _shown(p)) for name, p in bundled_suites().items()])


def _shown(p: Path) -> str:
    try:
        return str(p.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(p)


def _first_line(p: Path) -> str:
    import yaml

    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError:
        return "(invalid YAML)"
    return str(data.get("description", "")) if isinstance(data, dict) else ""


def _field_comments(config: type) -> dict[str, str]:
    """field name → the comment on its line in the Config's source (`width: int = 32  # base channels`)."""
    import inspect
    import io
    import tokenize

    try:
        src = inspect.getsource(config)
    except (OSError, TypeError):  # defined in a REPL or a frozen module: no source, no comments
        return {}
    out: dict[str, str] = {}
    names: dict[int, str] = {}
    for tok in tokenize.generate_tokens(io.StringIO(src).readline):
        if tok.type == tokenize.NAME and tok.start[0] not in names and tok.line.strip().startswith(tok.string + ":"):
            names[tok.start[0]] = tok.string
        elif tok.type == tokenize.COMMENT and tok.start[0] in names:
            out[names[tok.start[0]]] = tok.string.lstrip("# ").strip()
    return out


def show_adapter(key: str) -> str:
    """`bench show ADAPTER`: its family, its docstring's first line, and every Config key with type, default
    and the comment beside it in the source: the keys a suite's `adapters: {KEY: {...}}` block accepts."""
    import dataclasses

    from bench.adapter.base import get_adapter

    cls = get_adapter(key, where="bench show")
    config = cls.Config
    comments = _field_comments(config)
    rows = [("key", "type", "default", "what it does")]
    for f in dataclasses.fields(config) if dataclasses.is_dataclass(config) else []:
        default = (
            f.default
            if f.default is not dataclasses.MISSING
            else (f.default_factory() if f.default_factory is not dataclasses.MISSING else "(required)")
        )
        kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
        rows.append((f.name, str(kind), repr(default), comments.get(f.name, "")))
    import sys

    about = _doc(cls) or _doc(sys.modules.get(cls.__module__))
    head = (
        f"{key} ({cls.family}): {about}\nsource: {cls.__module__}.{cls.__qualname__}\nConfig (suite: adapters: {{{key}: {{key: value}}}}):"
    )
    return head + "\n" + (_table(rows) if len(rows) > 1 else "(no configurable keys)")
