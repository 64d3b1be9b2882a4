"""ct_domain (the data-copying test C_T, bench/metrics/copying.py) on reference "models" of a few-shot suite:
where real data and obvious copiers land, so a model's value can be read against them.

On the target of suites/digits-strategies.yaml (digits 5-9, the first 100 training images), through the
harness's own metric code (EvalContext + evaluate, the suite's eval block):
- train split: the 100 training images themselves, cycled to num_samples;
- copying model: num_samples images drawn with replacement from the 100 (a memoriser);
- copying + noise: the same, each pixel moved by one grey level at random in 20% of the pixels;
- test split: the real test split (the reference itself: C_T is 0 by construction, a sanity check);
- unseen real: real images of the same classes that the model never saw (the training split beyond `limit`);

    .venv/bin/python benchmarks/copying_reference.py [--suite suites/digits-strategies.yaml] [--cache /tmp/bench-copying]
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, table  # noqa: E402


def main() -> None:
    from bench.adapter.base import Adapter, DataInfo
    from bench.data.datasets import load_dataset
    from bench.metrics import evaluate
    from bench.metrics.context import EvalContext
    from bench.metrics.copying import COPYING_THRESHOLD
    from bench.suite.load import load_suite

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    root = Path(__file__).resolve().parent.parent
    p.add_argument("--suite", type=Path, default=root / "suites" / "digits-strategies.yaml")
    p.add_argument("--cache", type=Path, default=Path("/tmp/bench-copying"))
    args = p.parse_args()
    suite = load_suite(args.suite)
    data = load_dataset(suite.dataset)
    n = suite.eval.num_samples

    class Pool(Adapter):
        """Samples from a fixed pool of images: in order (cycling), or with replacement from the eval generator."""

        family = "gan"

        @dataclass
        class Config:
            pass

        def __init__(self, pool: torch.Tensor, info: DataInfo, draw: bool = False, noise: float = 0.0):
            super().__init__(self.Config(), info, torch.device("cpu"))
            self.pool, self.draw, self.noise, self.pos = pool, draw, noise, 0

        def train_step(self, batch, step):
            raise NotImplementedError

        def sample(self, k: int, generator: torch.Generator) -> torch.Tensor:
            if self.draw:
                x = self.pool[torch.randint(0, len(self.pool), (k,), generator=generator)]
            else:
                x = self.pool[(torch.arange(k) + self.pos) % len(self.pool)]
                self.pos += k
            if self.noise:
                step = 255 // (data.levels - 1)
                move = (torch.rand(x.shape, generator=generator) < self.noise).to(torch.int16) * step
                sign = torch.randint(0, 2, x.shape, generator=generator).to(torch.int16) * 2 - 1
                x = (x.to(torch.int16) + move * sign).clamp(0, 255).to(torch.uint8)
            return x

    unseen = data.full_train[0][len(data.train_x) :] if data.full_train is not None else data.test_x[1::2]
    models = {
        "train split (the 100 seen images)": (Pool(data.train_x, data.info), n),
        "copying model (draws from the 100)": (Pool(data.train_x, data.info, draw=True), n),
        "copying + noise (20% of pixels ±1 level)": (Pool(data.train_x, data.info, draw=True, noise=0.2), n),
        "test split (the reference itself)": (Pool(data.test_x, data.info), len(data.test_x)),
        "unseen real images (train split beyond limit)": (Pool(unseen, data.info), len(unseen)),
    }
    print(machine())
    rows = []
    for name, (model, k) in models.items():
        ctx = EvalContext(model, data, suite.eval, torch.device("cpu"), args.cache, seed=0, num_samples=k)
        values, na = evaluate(["ct_domain", "fid_domain"], ctx)
        info = ctx.info.get("ct_domain", {})
        rows.append(
            [
                name,
                str(k),
                f"{values.get('ct_domain', float('nan')):.2f}",
                "yes" if info.get("copying") else "no",
                f"{values['fid_domain']:.2f}",
            ]
        )
        print(name, values, flush=True)
    print(f"\nct_domain on {suite.name}'s target ({len(data.train_x)} training images); flag: copying when < {COPYING_THRESHOLD:g}\n")
    print(table(rows, ["samples", "n", "ct_domain", "copying", "fid_domain"]))


if __name__ == "__main__":
    main()
