"""How much fid_domain depends on the domain extractor's own training seed, and which extractor removes it.

Fixed samples: every smoke adapter is trained once the smoke way (suites/smoke.yaml, through the harness's
Runner) and its 1,000 evaluation samples are kept in a .pt file (--samples; made on the first call, reused
after). On those fixed samples, each candidate extractor is trained with 5 extractor seeds, and for every
seed fid_domain of every (adapter, run seed) is computed against the real test split. Printed per candidate:

- fid_domain per adapter and extractor seed;
- the extractor-seed spread per adapter (std/mean over the 5 seeds; the target is < 5% for every adapter);
- Kendall's tau between the rankings of every pair of extractor seeds (the target is >= 0.8 for all), over the
  (adapter, run seed) sample sets and over the adapters (fid_domain averaged over run seeds);
- the training seconds of one extractor (CPU, one thread; meaningless under load, shown for scale only).
Extractors are the harness's own (bench.metrics.domain.get_domain_classifier with the candidate's TrainConfig),
cached on disk under --cache, so a rerun only recomputes features.

An ensemble candidate with K members uses disjoint member seeds per extractor seed: extractor seed e has
members derive_seed(K*e + j, "extractor") for j < K (bench.metrics.domain_net.member_seeds), so the 5 extractor seeds share no network.

Label-free candidates (SSL_CANDIDATES, `ssl<K>[-objective][-normalisation]`: bench.metrics.ssl.get_ssl_extractor,
what an unlabelled target is measured with) are trained on the same training split's pixels, never its labels:
SimCLR ensembles of 10, 16 or 20 members, longer training (`-long`), a denoising-autoencoder ensemble (`-dae`), an
untrained ensemble (`-none`, the control), each member's features as trained, scaled to unit total variance on
the training split (`-scale`; `ssl10-scale` is the protocol's) or L2-normalised per image (`-l2`). With
--references, the summary also says whether each extractor seed orders the graded noisy real sets truly. When
`ens10` (the labelled protocol's classifier) is among the candidates, the script also prints how far each
other candidate agrees with it: Kendall's tau between their rankings at extractor seed 0 (each protocol's
own extractor), and the least over all 25 pairs of extractor seeds.

    .venv/bin/python benchmarks/extractor_stability.py [--samples /tmp/bench-extractor-samples.pt] [--seeds 0,1]
        [--candidates today,long,ens5,long-ens5]
"""

from __future__ import annotations

import argparse
import itertools
import math
import statistics
import sys
from dataclasses import replace
from pathlib import Path

import torch
from scipy.stats import kendalltau

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, table  # noqa: E402

# name -> (TrainConfig overrides, ensemble members K). "today" is the extractor before this study.
CANDIDATES: dict[str, tuple[dict, int]] = {
    "today": ({"steps": 150}, 1),
    "long": ({"steps": 1000}, 1),
    "ens5": ({"steps": 150}, 5),
    "long-ens5": ({"steps": 1000}, 5),
    "ens10": ({"steps": 150}, 10),
}
# name -> SSLConfig overrides (bench.metrics.ssl_net); the defaults are the label-free protocol's extractor.
SSL_CANDIDATES: dict[str, dict] = {
    "ssl10": {"normalise": "none"},
    "ssl10-scale": {"normalise": "scale"},
    "ssl10-l2": {"normalise": "l2"},
    "ssl16": {"members": 16, "normalise": "none"},
    "ssl20": {"members": 20, "normalise": "none"},
    "ssl16-scale": {"members": 16, "normalise": "scale"},
    "ssl10-long": {"steps": 400, "normalise": "none"},
    "ssl10-dae": {"objective": "dae", "normalise": "none"},
    "ssl10-dae-scale": {"objective": "dae", "normalise": "scale"},
    "ssl10-none": {"objective": "none", "normalise": "none"},
}
EXTRACTOR_SEEDS = range(5)
AGREE_WITH = "ens10"  # the labelled protocol's extractor


def make_samples(path: Path, seeds: list[int], work: Path, train: bool = True, only: list[str] | None = None) -> dict[str, torch.Tensor]:
    """{'<adapter>-s<seed>': uint8 samples}: the smoke runs' own evaluation samples, trained once."""
    from bench.core import env
    from bench.runner import Runner
    from bench.runner.evaluation import Evaluator, FinalEval
    from bench.store.fingerprint import stamp
    from bench.suite.load import load_suite
    from bench.suite.spec import expand

    store: dict[str, torch.Tensor] = torch.load(path, weights_only=True) if path.exists() else {}

    class Capture(Evaluator):
        """The smoke run's evaluation reduced to drawing the samples (the same context, generator and chunks as
        the harness's final evaluation), so no extractor is trained while the samples are made. Skipping the
        periodic evaluations changes no training step: they run under preserved RNG."""

        def periodic(self, adapter, data, state) -> None:
            pass

        def final(self, adapter, data, state, memory) -> FinalEval:
            ctx = self._context(adapter, data)
            with env.preserved_rng():
                self.samples = ctx.samples.cpu().clone()
            return FinalEval({}, {}, {}, self.samples[:64])

        def protocol(self, data) -> dict:
            return {}

    root = Path(__file__).resolve().parent.parent
    for run in expand(load_suite(root / "suites" / "smoke.yaml"), stamp=lambda r: stamp(r, "cpu")):  # as `bench run` does
        key = f"{run.adapter}-s{run.seed}"
        if run.seed not in seeds or key in store or not train or (only and run.adapter not in only):
            continue
        runner = Runner(run, work, torch.device("cpu"), work / ".cache", progress=False)
        runner.evaluator = capture = Capture(run, runner.device, runner.cache_dir)
        if runner.run().status != "completed":
            print(f"{key}: not completed, left out", flush=True)
            continue
        store[key] = capture.samples
        torch.save(store, path)
        print(f"samples of {key} kept", flush=True)
    return {k: v for k, v in store.items() if int(k.rsplit("-s", 1)[1]) in seeds}


def references(n: int = 1000) -> dict[str, torch.Tensor]:
    """Graded stand-ins for models, when training every smoke adapter is too slow: n real training images with
    a share p of their pixels moved by ±2 grey levels (p = 0.05, 0.2, 0.5), seeded. Their true order is known."""
    from bench.data.datasets import DatasetSpec, load_dataset

    data = load_dataset(DatasetSpec("digits"))
    gen = torch.Generator().manual_seed(100)
    x = data.train_x[torch.randint(0, len(data.train_x), (n,), generator=gen)].to(torch.int16)
    step = 2 * 255 // (data.levels - 1)
    out = {}
    for p in (0.05, 0.2, 0.5):
        move = (torch.rand(x.shape, generator=gen) < p).to(torch.int16) * step
        sign = torch.randint(0, 2, x.shape, generator=gen).to(torch.int16) * 2 - 1
        out[f"real+noise{p:g}"] = (x + move * sign).clamp(0, 255).to(torch.uint8)
    return out


def by_adapter(fids: dict[str, float]) -> dict[str, float]:
    """{'<adapter>-s<seed>': fid} → {adapter: fid averaged over its run seeds}, in adapter order."""
    groups: dict[str, list[float]] = {}
    for key, v in sorted(fids.items()):
        groups.setdefault(key.rsplit("-s", 1)[0], []).append(v)
    return {a: statistics.mean(v) for a, v in groups.items()}


def extractor(name: str, seed: int, data, cache: Path) -> tuple[object, dict, int]:
    """(the harness's own extractor of this candidate at this extractor seed, its overrides, its members K);
    trained once and cached on disk by content hash."""
    from bench.metrics.domain import TrainConfig, get_domain_classifier
    from bench.metrics.ssl import get_ssl_extractor
    from bench.metrics.ssl_net import SSLConfig

    if name in SSL_CANDIDATES:
        cfg = replace(SSLConfig(), **SSL_CANDIDATES[name], seed=seed)
        over = {"objective": cfg.objective, "steps": cfg.steps, "normalise": cfg.normalise}
        return get_ssl_extractor(data, torch.device("cpu"), cache, cfg), over, cfg.members
    over, k = CANDIDATES[name]
    return get_domain_classifier(data, torch.device("cpu"), cache, replace(TrainConfig(), **over, members=k, seed=seed)), over, k


def _tau_runs(x: dict[str, float], y: dict[str, float], keys: list[str]) -> float:
    return float(kendalltau([x[k] for k in keys], [y[k] for k in keys]).statistic)


def _tau_adapters(x: dict[str, float], y: dict[str, float]) -> float:
    return float(kendalltau(list(by_adapter(x).values()), list(by_adapter(y).values())).statistic)


def agreement(concat: dict[str, dict[int, dict[str, float]]], keys: list[str]) -> None:
    """Kendall's tau between each candidate's ranking and the labelled protocol's (AGREE_WITH)."""
    ref = concat[AGREE_WITH]
    pairs = list(itertools.product(EXTRACTOR_SEEDS, EXTRACTOR_SEEDS))
    rows = [
        [
            name,
            f"{_tau_runs(ref[0], out[0], keys):.2f}",
            f"{min(_tau_runs(ref[a], out[b], keys) for a, b in pairs):.2f}",
            f"{_tau_adapters(ref[0], out[0]):.2f}",
            f"{min(_tau_adapters(ref[a], out[b]) for a, b in pairs):.2f}",
        ]
        for name, out in concat.items()
        if name != AGREE_WITH
    ]
    print(f"\n### agreement with {AGREE_WITH} (the labelled protocol's extractor)\n")
    print(table(rows, ["extractor", "tau runs (seed 0 vs 0)", "min tau runs (25 pairs)", "tau adapters (0 vs 0)", "min tau adapters"]))


GRADED = ("real+noise0.05", "real+noise0.2", "real+noise0.5")  # references(): their true order is known


def graded(out: dict[int, dict[str, float]]) -> tuple[str, str]:
    """Sensitivity on the graded noisy real sets (--references): at how many extractor seeds their fids are in
    the true order, and the mean gap fid(0.5)/fid(0.05) - 1. Stability alone would reward an extractor that
    sees nothing; this says whether it sees a known, small change."""
    if not all(g in out[e] for g in GRADED for e in out):
        return "-", "-"
    ok = sum(out[e][GRADED[0]] < out[e][GRADED[1]] < out[e][GRADED[2]] for e in out)
    gap = statistics.mean(out[e][GRADED[2]] / out[e][GRADED[0]] - 1 for e in out)
    return f"{ok}/{len(out)}", f"{100 * gap:.1f}%"


def study(samples: dict[str, torch.Tensor], candidates: list[str], cache: Path) -> None:
    from bench.data.datasets import DatasetSpec, load_dataset
    from bench.metrics.fidelity import fid_from_features, member_fids

    data = load_dataset(DatasetSpec("digits")).reference()
    keys = sorted(samples)
    summary = []
    concat: dict[str, dict[int, dict[str, float]]] = {}  # candidate -> extractor seed -> run -> fid (what the harness reports)
    for name in candidates:
        k = SSL_CANDIDATES[name].get("members", 10) if name in SSL_CANDIDATES else CANDIDATES[name][1]
        # variant -> extractor seed -> run -> fid. An ensemble is scored two ways: the members' fids averaged
        # (each one torch-fidelity's own number), and one fid on the members' features side by side (what
        # the harness registers with torch-fidelity).
        fids: dict[str, dict[int, dict[str, float]]] = {c: {} for c in (("mean", "concat") if k > 1 else ("single",))}
        seconds, cpu = [], []
        for e in EXTRACTOR_SEEDS:
            # The harness's own extractor, trained once and cached on disk by content hash.
            clf, over, k = extractor(name, e, data, cache)
            seconds.append(float(clf.info.get("train_seconds") or math.nan))
            cpu.append(float(clf.info.get("train_cpu_seconds") or math.nan))
            real = clf.real_features(data.test_x, cache)["features"]
            fake = {key: clf.features(samples[key])["features"] for key in keys}
            for variant, out in fids.items():
                if variant == "mean":
                    out[e] = {key: statistics.mean(member_fids(fake[key], real, k)) for key in keys}
                else:
                    out[e] = {key: fid_from_features(fake[key], real) for key in keys}
                print(f"{name}/{variant} extractor seed {e}: " + ", ".join(f"{key} {v:.3f}" for key, v in out[e].items()), flush=True)
        concat[name] = fids["concat" if k > 1 else "single"]
        for combine, out in fids.items():
            label = f"{name}/{combine}"
            vals = {key: [out[e][key] for e in EXTRACTOR_SEEDS] for key in keys}
            spread = {key: statistics.stdev(v) / statistics.mean(v) for key, v in vals.items()}
            pairs = itertools.combinations(EXTRACTOR_SEEDS, 2)
            taus = [kendalltau([out[a][key] for key in keys], [out[b][key] for key in keys]).statistic for a, b in pairs]
            # The ranking a reader sees: adapters by their fid_domain averaged over the run seeds.
            ranked = {e: by_adapter(out[e]) for e in EXTRACTOR_SEEDS}
            pairs = itertools.combinations(EXTRACTOR_SEEDS, 2)
            adapter_taus = [kendalltau(list(ranked[a].values()), list(ranked[b].values())).statistic for a, b in pairs]
            rows = [[key, *(f"{v:.3g}" for v in vals[key]), f"{100 * spread[key]:.1f}%"] for key in keys]
            print(f"\n### {label} ({over}, K={k})\n")
            print(table(rows, ["run", *(f"ext seed {e}" for e in EXTRACTOR_SEEDS), "std/mean"]))
            worst, mean_spread = 100 * max(spread.values()), 100 * statistics.mean(spread.values())
            in_order, gap = graded(out)
            summary.append(
                [
                    label,
                    str(k),
                    str(over.get("steps")),
                    f"{worst:.1f}%",
                    f"{mean_spread:.1f}%",
                    f"{min(taus):.2f}",
                    f"{statistics.mean(taus):.2f}",
                    f"{min(adapter_taus):.2f}",
                    f"{statistics.median(seconds):.1f}",
                    f"{statistics.median(cpu):.1f}",
                    in_order,
                    gap,
                ]
            )
    print("\n### summary (target: max spread < 5%, min tau >= 0.8)\n")
    print(
        table(
            summary,
            [
                "extractor",
                "K",
                "steps",
                "max spread",
                "mean spread",
                "min tau (runs)",
                "mean tau (runs)",
                "min tau (adapters)",
                "train s (median)",
                "train CPU s (median)",
                "graded sets in order",
                "graded gap",
            ],
        )
    )
    if AGREE_WITH in concat and len(concat) > 1:
        agreement(concat, keys)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--samples", type=Path, default=Path("/tmp/bench-extractor-samples.pt"))
    p.add_argument("--work", type=Path, default=Path("/tmp/bench-extractor-runs"))
    p.add_argument("--cache", type=Path, default=Path("/tmp/bench-extractor-cache"), help="trained extractors, by content hash")
    p.add_argument("--seeds", default="0", help="smoke run seeds whose samples are studied, comma-separated")
    p.add_argument("--candidates", default=",".join(CANDIDATES), help=f"of {', '.join([*CANDIDATES, *SSL_CANDIDATES])}")
    p.add_argument("--no-train", action="store_true", help="study only the samples already in --samples")
    p.add_argument("--adapters", default="", help="train only these smoke adapters (comma-separated; default all)")
    p.add_argument("--samples-only", action="store_true", help="make the samples, skip the study")
    p.add_argument("--references", action="store_true", help="also study graded noisy real images (see references())")
    args = p.parse_args()
    torch.set_num_threads(1)
    print(machine())
    only = [a for a in args.adapters.split(",") if a]
    samples = make_samples(args.samples, [int(s) for s in args.seeds.split(",")], args.work, train=not args.no_train, only=only)
    if args.samples_only:
        return
    if args.references:
        samples.update(references())
    study(samples, args.candidates.split(","), args.cache)


if __name__ == "__main__":
    main()
