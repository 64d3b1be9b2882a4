"""The real-vs-real reference rows of the results table, read from the runs folder's reference.json.

The runs folder holds, per (data, evaluation), each sample metric computed with real training images in place
of a model's samples (bench.api_score.write_references). The report shows it as the first row of the results
table, so "fid_domain 182" sits under "real data: 12.1". Pure JSON: no torch here.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from bench.report.stats import fmt_num
from bench.store.runs import REFERENCE_FILE


def read_references(suite_dir: Path) -> list[dict[str, Any]]:
    """The file's entries, or [] when it is missing or unreadable (older runs folders have none)."""
    try:
        refs = json.loads((Path(suite_dir) / REFERENCE_FILE).read_text()).get("references", [])
    except (OSError, ValueError, AttributeError):
        return []
    return [r for r in refs if isinstance(r, dict)]


def reference_rows(suite_dir: Path, metrics: list[str]) -> list[dict[str, Any]]:
    """One row per reference: a label and, per metric, {text, title} (n/a carries its reason)."""
    rows = []
    refs = read_references(suite_dir)
    for ref in refs:
        values, na = ref.get("metrics") or {}, ref.get("not_applicable") or {}
        n, name = ref.get("n"), ref.get("dataset", "")
        cells = []
        for m in metrics:
            v = values.get(m)
            if isinstance(v, (int, float)) and math.isfinite(v):
                cells.append({"text": fmt_num(float(v)), "title": f"{m} of {n} real training images against the test split"})
            elif m in na:
                cells.append({"text": "n/a", "title": str(na[m])})
            elif "error" in ref:
                cells.append({"text": "–", "title": f"not computed: {ref['error']}"})
            else:
                cells.append({"text": "–", "title": "not a sample metric"})
        label = "real data" if len(refs) == 1 else f"real data · {name}"
        rows.append({"label": label, "what": f"{n} training images vs test split" if n else "", "cells": cells})
    return rows


__all__ = ["read_references", "reference_rows"]
