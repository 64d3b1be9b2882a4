"""Is the stylize score independent of the training loss? An optimiser that minimises the loss directly,
image by image, against the adapters that were trained on it, all scored by the harness's metrics.

The adapters of suites/digits-style.yaml train against bench.adapter.style_loss (a fixed random CNN: content +
style_weight · mean/std style loss). If the scoring networks were that loss network, the images that minimise
the loss would win every score by construction. Here each evaluation pair's output is optimised directly
(pixels through tanh, Adam, started from the content image as in Gatys et al.) to minimise the same loss with
the same weight, then quantised to the data's grey levels like any output, and scored on the same fixed pairs
as the runs. Rows: the direct optimum, every completed run of the suite (from its kept weights), and the two
trivial outputs. The loss column is the training loss on these pairs; the rest are the suite's metrics.

    .venv/bin/python benchmarks/stylize_loss_vs_score.py --runs /tmp/h27/full/digits-style [--steps 300]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, table  # noqa: E402

METRICS = ["content_acc", "content_ssim", "style_fid", "style_stats", "style_diversity"]


def main() -> None:
    from bench.adapter.base import to_uint8
    from bench.adapter.style_loss import StyleLoss
    from bench.data.datasets import load_dataset
    from bench.data.style import eval_pairs, with_style
    from bench.metrics import evaluate
    from bench.metrics.context import EvalContext
    from bench.runner.score import draw
    from bench.suite.spec import runspec_from_dict

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", required=True, help="the suite's run folder (runs/digits-style)")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--lr", type=float, default=0.05)
    args = ap.parse_args()
    torch.set_num_threads(1)
    runs = Path(args.runs)
    results = [json.loads(p.read_text()) for p in sorted(runs.glob("*/result.json"))]
    results = [r for r in results if r["status"] == "completed"]
    spec = runspec_from_dict(results[0]["spec"])
    cache = runs.parent / ".cache"
    data = with_style(load_dataset(spec.dataset), spec.style)
    n = spec.eval.num_samples
    pairs = eval_pairs(data, n)
    weight = float(results[0]["spec"]["adapter_config"].get("style_weight", 0.3))
    loss_net = StyleLoss(data.info.channels)
    c, s = (t.float() / 127.5 - 1 for t in (pairs.content, pairs.style))

    def loss_of(u8: torch.Tensor) -> float:
        with torch.no_grad():
            lc, ls = loss_net(u8.float() / 127.5 - 1, c, s)
        return float(lc + weight * ls)

    # The direct optimum of the training loss, per image (the loss is a mean over the batch: per-image gradients).
    z = torch.atanh(c.clamp(-0.99, 0.99)).clone().requires_grad_(True)
    opt = torch.optim.Adam([z], lr=args.lr)
    for _ in range(args.steps):
        lc, ls = loss_net(torch.tanh(z), c, s)
        opt.zero_grad()
        (lc + weight * ls).backward()
        opt.step()
    optimum = to_uint8(torch.tanh(z.detach()), data.levels)

    def score(u8: torch.Tensor) -> dict[str, float]:
        ctx = EvalContext(types_adapter(data), data, spec.eval, torch.device("cpu"), cache, 0)
        ctx.__dict__["samples"] = u8  # the cached_property's slot: these outputs, scored as a run's are
        values, _ = evaluate(METRICS, ctx)
        return {"loss": loss_of(u8), **values}

    rows: dict[str, list[dict[str, float]]] = defaultdict(list)
    rows["direct optimum of the loss"].append(score(optimum))
    for r in results:
        run = runspec_from_dict(r["spec"])
        outputs = draw(run, runs / r["run_id"], "cpu", cache, n)
        rows[f"{r['adapter']} {r['strategy']}"].append(score(outputs))
    rows["output = content"].append(score(pairs.content))
    rows["output = style"].append(score(pairs.style))
    header = ["outputs", "n", "loss (trained on)", *METRICS]
    out = []
    for name, vals in rows.items():
        cells = [name, str(len(vals))]
        for m in ["loss", *METRICS]:
            xs = [v[m] for v in vals]
            cells.append(f"{statistics.mean(xs):.4g}" + (f" ± {statistics.stdev(xs):.2g}" if len(xs) > 1 else ""))
        out.append(cells)
    print(machine())
    print(f"{n} fixed pairs; loss = content + {weight} · style in the fixed random loss network; direct optimum: {args.steps} Adam steps")
    print(table(out, header))


def types_adapter(data):
    """A stand-in with the stylize family: EvalContext only reads `family` before samples are set."""
    import types

    return types.SimpleNamespace(family="stylize", info=data.info, train=lambda mode=True: None)


if __name__ == "__main__":
    main()
