"""SYNTHETIC run folders, for report rendering tests and timing ONLY.

Writes N structurally valid run folders (result.json, history.csv, samples.png) plus suite.yaml, with
made-up numbers drawn from a fixed random generator. Nothing is trained. Every result carries
`"synthetic": true`, the suite is named `synthetic-...` and the device reads "synthetic (nothing trained)",
so the report shows a banner and nobody can mistake these numbers for measurements.

    python benchmarks/synthetic_runs.py OUT_DIR --runs 1000 [--adapters 10] [--strategies 10]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import math
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from PIL import Image

from bench.store import runs as store

QUALITY = {"fid_domain": 40.0, "kid_domain": 0.04, "precision_domain": 0.6, "recall_domain": 0.5, "modes": 8.0, "bpd": 3.0}
STRATEGIES = ["scratch", "supervised_d", "autoencode_g", "generative", "freeze_d2", "mae_d", "external", "ar_seq", "transfer", "freeze_d4"]
FAMILIES = ["gan", "vae", "autoregressive", "dummy"]
STATUS_WEIGHTS = {"completed": 0.88, "diverged": 0.06, "failed": 0.06}


def _png(rng: np.random.Generator, tiles: int = 8, size: int = 8, scale: int = 4) -> bytes:
    """A small grid of random blobs; upscaled like bench.data.images.grid so it looks like digits-sized samples."""
    img = (rng.random((tiles * size, tiles * size)) ** 2 * 255).astype(np.uint8)
    img = np.kron(img, np.ones((scale, scale), dtype=np.uint8))
    buf = io.BytesIO()
    Image.fromarray(img, mode="L").save(buf, format="PNG")
    return buf.getvalue()


def _history(rng: np.random.Generator, steps: int, eval_every: int, base: dict[str, float], family: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    losses = ["loss_d", "loss_g"] if family == "gan" else ["loss"]
    for step in range(10, steps + 1, 10):
        decay = math.exp(-step / max(steps / 3, 1))
        row: dict[str, Any] = {"step": step, "train_seconds": round(step * 0.01, 4)}
        row.update({n: float(1.0 + decay + 0.05 * rng.standard_normal()) for n in losses})
        rows.append(row)
        if eval_every and step % eval_every == 0:
            ev = {"step": step, "train_seconds": round(step * 0.01, 4)}
            ev.update({m: float(v * (1 + 2 * decay) * (1 + 0.03 * rng.standard_normal())) for m, v in base.items() if m == "fid_domain"})
            rows.append(ev)
    return rows


def make_runs(
    out_dir: str | Path,
    n_runs: int = 24,
    n_adapters: int = 2,
    n_strategies: int = 3,
    seed: int = 0,
    name: str | None = None,
    steps: int = 300,
) -> Path:
    """Write a SYNTHETIC suite folder with about n_runs runs (adapters × strategies × seeds) and return it."""
    rng = np.random.default_rng(seed)
    pyrng = random.Random(seed)
    n_strategies = min(n_strategies, len(STRATEGIES))
    n_seeds = max(1, math.ceil(n_runs / (n_adapters * n_strategies)))
    name = name or f"synthetic-{n_runs}"
    suite_dir = Path(out_dir) / name
    suite_dir.mkdir(parents=True, exist_ok=True)
    adapters = [f"adapter{i}" for i in range(n_adapters)]
    strategies = STRATEGIES[:n_strategies]
    suite = {
        "name": name,
        "version": 1,
        "description": "SYNTHETIC runs for report rendering tests; nothing was trained, every number is made up.",
        "dataset": {"name": "digits"},
        "budget": {"steps": steps, "eval_every": steps // 2, "batch_size": 64},
        "eval": {"num_samples": 1000, "metrics": list(QUALITY)},
        "seeds": list(range(n_seeds)),
        "adapters": {a: {} for a in adapters},
        "strategies": {s: ({} if s == "scratch" else {"task": "supervised", "steps": 100}) for s in strategies},
    }
    (suite_dir / "suite.yaml").write_text(yaml.safe_dump(suite, sort_keys=False))
    protocol = {"version": "synthetic", "reference": "test split", "num_samples": 1000, "feature_space": "domain classifier"}
    clf = {"accuracy": 0.97, "arch": "synthetic", "num_classes": 10, "train_seconds": 1.0}
    effects = {s: float(rng.normal(0, 0.15)) if s != "scratch" else 0.0 for s in strategies}
    made = 0
    for ai, adapter in enumerate(adapters):
        family = FAMILIES[ai % len(FAMILIES)]
        for strategy in strategies:
            # One strategy that cannot apply to GANs, so n/a rows appear as they do in real suites.
            strategy_na = strategy == "ar_seq" and family == "gan"
            for s in range(n_seeds):
                if made >= n_runs:
                    break
                made += 1
                spec = {
                    "adapter": adapter,
                    "strategy": strategy,
                    "seed": s,
                    "suite": name,
                    "budget": suite["budget"],
                    "eval": suite["eval"],
                }
                digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:8]
                run_id = f"{adapter}-{strategy}-s{s}-{digest}"
                run_dir = suite_dir / run_id
                run_dir.mkdir(exist_ok=True)
                status = "not_applicable" if strategy_na else pyrng.choices(list(STATUS_WEIGHTS), list(STATUS_WEIGHTS.values()))[0]
                factor = 1 - effects[strategy] + 0.05 * rng.standard_normal()
                base = {m: v * (factor if m in ("fid_domain", "kid_domain", "bpd") else 2 - factor) for m, v in QUALITY.items()}
                na = {"bpd": f"not defined for {family} models (applies to: vae, autoregressive)"} if family == "gan" else {}
                metrics: dict[str, Any] = {}
                history: list[dict[str, Any]] = []
                error = None
                if status == "completed":
                    metrics = {m: v for m, v in base.items() if m not in na}
                    pre = 0.0 if strategy == "scratch" else float(rng.uniform(1, 5))
                    train = float(rng.uniform(3, 6))
                    metrics.update(pretrain_seconds=pre, train_seconds=train, eval_seconds=1.0, total_seconds=pre + train)
                    metrics.update(images_per_second=steps * 64 / train, peak_memory_mb=300.0, params=1.2e5)
                    history = _history(rng, steps, steps // 2, base, family)
                    (run_dir / "samples.png").write_bytes(_png(rng))
                elif status == "diverged":
                    history = _history(rng, steps // 3, 0, base, family)
                    error = f"non-finite or exploding loss at step {steps // 3}: loss_d=nan (synthetic)"
                elif status == "failed":
                    error = "RuntimeError: synthetic failure for report tests"
                else:
                    error = f"task 'autoregressive' needs a 'sequence' part; {adapter} has encoder, decoder (synthetic)"
                result = {
                    "run_id": run_id,
                    "suite": name,
                    "synthetic": True,
                    "adapter": adapter,
                    "family": family,
                    "strategy": strategy,
                    "task": "scratch" if strategy == "scratch" else "supervised",
                    "seed": s,
                    "status": status,
                    "error": error,
                    "traceback": "Traceback (most recent call last):\n  synthetic\nRuntimeError: synthetic" if status == "failed" else None,
                    "metrics": metrics,
                    "not_applicable": na if status == "completed" else {},
                    "metric_info": {"domain_classifier": clf} if status == "completed" else {},
                    "protocol": protocol,
                    "spec": {**spec, "adapter_config": {}, "strategy_spec": suite["strategies"][strategy]},
                    "env": {
                        "versions": {"python": "synthetic", "torch": "synthetic"},
                        "device": "synthetic (nothing trained)",
                        "git_commit": "0" * 40,
                    },
                    "timings": {"pretrain": metrics.get("pretrain_seconds", 0.0), "train": metrics.get("train_seconds", 0.0), "eval": 1.0},
                    "pretrain": {"seconds": metrics.get("pretrain_seconds", 0.0), "cached": False},
                    "first_losses": {"loss": 2.0},
                    "steps_done": steps if status == "completed" else steps // 3,
                    "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                }
                store.write_history(run_dir / "history.csv", history)
                (run_dir / "result.json").write_text(json.dumps(result, indent=2))
    return suite_dir


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("--runs", type=int, default=24)
    ap.add_argument("--adapters", type=int, default=2)
    ap.add_argument("--strategies", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--name", default=None)
    a = ap.parse_args()
    path = make_runs(a.out, a.runs, a.adapters, a.strategies, a.seed, a.name)
    print(f"wrote SYNTHETIC runs to {path}")


if __name__ == "__main__":
    main()
