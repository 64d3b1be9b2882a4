"""Your own images, end to end: a flat folder of 100 PNG digits (no labels) run from a suite by `bench run`.

Writes the first 100 training digits of `mnist5k` as PNG files into OUT/digits100/ (a flat folder: one
unlabelled class) and its 1,000 test digits into OUT/reference/, then a suite that trains on the folder and
evaluates against the reference (`dataset: {name: folder, root: ..., reference: ...}`), and runs it with
`bench run` (one thread per run). Prints the wall and CPU seconds, the load average beside them, and every
metric of every run, with the reason of each one that does not apply.

    python benchmarks/folder_e2e.py [--out /tmp/folder_e2e] [--steps 200] [--metrics fid_domain,kid_domain,...]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import yaml

METRICS = "fid_domain,kid_domain,precision_domain,recall_domain,density_domain,coverage_domain,ct_domain,modes,bpd"


def write_pngs(folder: Path, images, start: int = 0) -> None:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(images):
        Image.fromarray(img[0].numpy(), "L").save(folder / f"digit{start + i:04d}.png")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("/tmp/folder_e2e"))
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--metrics", default=METRICS)
    args = ap.parse_args()
    from bench.data.datasets import load_dataset
    from bench.suite.spec import DatasetSpec

    data = load_dataset(DatasetSpec("mnist5k"))
    root, ref = args.out / "digits100", args.out / "reference"
    write_pngs(root, data.train_x[:100])
    write_pngs(ref, data.test_x)
    suite = {
        "name": "folder-e2e",
        "description": "100 unlabelled PNG digits (a flat folder), judged against 1,000 others",
        "dataset": {"name": "folder", "root": str(root), "reference": str(ref)},
        "budget": {"steps": args.steps, "batch_size": 32},
        "eval": {"num_samples": 500, "metrics": args.metrics.split(",")},
        "seeds": [0],
        "runner": {"threads": 1, "log_every": 50},
        "adapters": {"cnn_gan": {"z_dim": 32, "width": 16, "max_width": 64, "feature_dim": 64}, "dummy": {}},
        "strategies": {"scratch": {}},
    }
    path = args.out / "folder-e2e.yaml"
    path.write_text(yaml.safe_dump(suite, sort_keys=False))
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    cmd = [sys.executable, "-m", "bench.cli", "run", str(path), "--out", str(args.out / "runs"), "--reports", str(args.out / "reports")]
    proc = subprocess.run([*cmd, "--device", "cpu"], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(proc.stdout[-3000:], proc.stderr[-2000:] if proc.returncode else "")
    print(
        f"exit {proc.returncode}; {wall:.0f} s wall, {kids.ru_utime + kids.ru_stime:.0f} s CPU, one thread per run, load {load0:.1f} -> {os.getloadavg()[0]:.1f}"
    )
    for f in sorted((args.out / "runs" / "folder-e2e").glob("*/result.json")):
        r = json.loads(f.read_text())
        print(f"{r['run_id']}: {r['status']} {r.get('error') or ''}")
        for k, v in sorted(r["metrics"].items()):
            print(f"  {k:18s} {v:.4g}")
        for k, why in sorted((r.get("not_applicable") or {}).items()):
            print(f"  {k:18s} n/a: {why}")
        clf = (r.get("metric_info") or {}).get("domain_classifier")
        if clf:
            print(f"  extractor: {json.dumps(clf)[:300]}")


if __name__ == "__main__":
    main()
