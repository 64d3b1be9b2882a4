"""Pretraining tasks: the registry, `run_task` (what bench.runner.pretrain.pretrain calls) and `describe_tasks`.

One flow for every training task (supervised, autoencode, autoregressive, denoise, generative):
  1. resolve `parts:` against the adapter (StrategyNotApplicable, recorded as n/a, when nothing fits);
  2. load the source converted to the target's size, channels and levels (common.source_spec);
  3. hash everything that determines the result (`cache_fields`) and look it up in the cache;
  4. on a miss, build a fresh copy of the adapter under the run's pretraining seed, train it, cache its weights;
  5. load the weights into the run's own adapter parts (shapes match: same class, config and data shape).
`external` skips 2–4: the file is its own cache.

The seed: pretraining uses `RunSpec.pretrain_seed`. By default (`pretrain_seed: per_run`) it is derived from
the run's seed, so each seed pretrains its own checkpoint and intervals over seeds include pretraining
variance; `pretrain_seed: shared` gives every seed (and suite) one checkpoint, seeded SHARED_PRETRAIN_SEED.
The seed is in the cache key, as are the settings and code that change the weights (cache_fields).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from bench.adapter.base import Adapter, set_fused_optim
from bench.store import locks
from bench.suite.schema import to_dict
from bench.suite.spec import EVAL_IDENTITY_KEYS, NO_OP_RUNNER_KEYS, RunSpec
from bench.tasks import autoencode, autoregressive, cache, denoise, external, generative, supervised
from bench.tasks.common import ALL_PARTS, Context, load_source, precision, select_parts
from bench.tasks.strategy import PretrainOutcome, StrategyNotApplicable, check_strategy
from bench.tasks.weights import load_weights

# Bump when any task's code changes the weights it produces: old cache entries then stop matching.
TASK_VERSION = 3

TrainFn = Callable[[Context], tuple[dict[str, torch.Tensor], dict[str, Any], float]]


@dataclass(frozen=True)
class Task:
    name: str
    description: str
    roles: tuple[str, ...]  # part roles the task can initialise
    train: TrainFn | None  # None: not a training task (scratch, external)
    whole_model: bool = False  # trains every module, whatever `parts:` loads afterwards


BY_NAME: dict[str, Task] = {
    t.name: t
    for t in (
        Task("scratch", "no pretraining: every part starts from its random initialisation", (), None),
        Task(
            "supervised",
            "encoder part + linear head trained on the source's labels (e.g. a GAN's D trunk)",
            supervised.ROLES,
            supervised.train,
        ),
        Task(
            "autoencode",
            "encoder or decoder part + generic partner on reconstruction; mask_ratio: MAE-style (transformers) or denoising (CNNs)",
            autoencode.ROLES,
            autoencode.train,
        ),
        Task(
            "autoregressive",
            "sequence part trained on next-token prediction over the source's pixels",
            autoregressive.ROLES,
            autoregressive.train,
        ),
        Task(
            "denoise",
            "denoiser part trained on the diffusion objective (ε-prediction, the part's alpha_bar) over the source",
            denoise.ROLES,
            denoise.train,
        ),
        Task(
            "generative",
            "whole adapter trained on the source with its own objective, then fine-tuned (Transferring GANs)",
            generative.ROLES,
            generative.train,
            whole_model=True,
        ),
        Task("external", "state dict from a file (safetensors / torch weights_only, sha256-pinned) or a timm name", external.ROLES, None),
    )
}


def describe_tasks() -> list[tuple[str, str]]:
    """(name, description) rows for `bench list strategies`, plus the options that combine with any task."""
    rows = [(t.name, t.description) for t in BY_NAME.values()]
    rows.append(("freeze: {part: N}", "option: keep the first N blocks of a part fixed during training (FreezeD)"))
    rows.append(("freeze: {part: difffit}", "option: train only the part's biases, norms and scales (DiffFit), the rest fixed"))
    rows.append(("parts: [...]", "option: what is initialised: part names, roles (encoder/decoder/sequence/denoiser) or all/both"))
    return rows


def cache_fields(
    adapter: Adapter, run: RunSpec, task: Task, parts: list[str], source_fp: str, batch_size: int, device: torch.device
) -> dict[str, Any]:
    """Everything that determines a pretrained checkpoint, and nothing else (names of things are not in it)."""
    spec = run.strategy_spec
    cls = type(adapter)
    return {
        "task_version": TASK_VERSION,
        "task": task.name,
        "adapter": run.adapter,
        "adapter_class": f"{cls.__module__}.{cls.__qualname__}",
        "adapter_config": to_dict(adapter.config),
        "data_info": dataclasses.asdict(adapter.info),
        "source": source_fp,  # ImageData.fingerprint(): the pixels and labels, not the data set's name
        "parts": "whole_model" if task.whole_model else sorted(parts),
        "steps": spec.steps,
        "lr": spec.lr,
        "batch_size": batch_size,
        "mask_ratio": spec.mask_ratio,
        "seed": run.pretrain_seed,
        "precision": precision(run, device),
        "device_type": device.type,
        # The speed switches and thread count change the weights in the last bits (fused Adam: 6.4e-3), and
        # the code fingerprint (harness and adapter source) changes them outright: all of the run's identity
        # except the target data, budget and eval, which pretraining never reads.
        "runner": {k: v for k, v in to_dict(run.runner).items() if k not in NO_OP_RUNNER_KEYS},
        "code": {k: v for k, v in run.identity.items() if k != "device_type" and k not in EVAL_IDENTITY_KEYS},  # not the metrics' code
    }


def _finite(info: dict[str, Any]) -> dict[str, Any]:
    # result.json and meta.json are strict JSON: a diverged loss is recorded as None.
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in info.items()}


@contextlib.contextmanager
def seeded(device: torch.device, seed: int) -> Iterator[None]:
    """Global RNGs seeded with the pretraining `seed` inside, and restored afterwards.

    Pretraining then draws its initialisation, noise and dropout from that seed alone (its output is a
    function of the cache key), and the run's own random stream is left exactly where it was.
    """
    devices = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def run_task(adapter: Adapter, run: RunSpec, device: torch.device, cache_dir: Path, *, fused_optim: bool = False) -> PretrainOutcome:
    """Apply the run's strategy to `adapter` in place. Raises StrategyNotApplicable when it does not apply.
    `fused_optim`: the optimiser kernel of the fresh copy, as the runner chose it for the run's own adapter."""
    spec = run.strategy_spec
    task = BY_NAME[spec.task]
    if task.name == "external":
        return external.run(adapter, run, device)
    assert task.train is not None, f"task {task.name} has no training function"
    where = f"strategies.{run.strategy}.source"
    if task.whole_model:
        load_parts = (
            None
            if spec.parts is None or any(p in ALL_PARTS for p in spec.parts)
            else select_parts(adapter, spec.parts, task.roles, task.name)
        )
        train_parts: list[str] = []
    else:
        load_parts = train_parts = select_parts(adapter, spec.parts, task.roles, task.name)
    source = load_source(spec, adapter.info, where)
    if run.style is not None and task.whole_model:  # a stylize model trains on (source content, the suite's style set)
        from bench.data.style import with_style

        source = with_style(source, run.style)
    batch_size = spec.batch_size or run.budget.batch_size
    fp = source.fingerprint() if source.style is None else f"{source.fingerprint()}+style:{source.style.fingerprint()}"
    fields = cache_fields(adapter, run, task, train_parts, fp, batch_size, device)
    key = cache.cache_key(fields)

    def _hit() -> tuple[dict[str, torch.Tensor], dict[str, Any], bool] | None:
        hit = cache.load(cache_dir, key)
        return None if hit is None else (hit[0], hit[1], True)

    def _build() -> tuple[dict[str, torch.Tensor], dict[str, Any], bool]:
        with seeded(device, run.pretrain_seed):
            # A fresh instance (same class, config and data info): the run's own adapter is only loaded into.
            fresh = type(adapter)(adapter.config, adapter.info, device)
            set_fused_optim(fresh, fused_optim)  # whole-model tasks train it with its own optimisers
            ctx = Context(fresh, run, source.to(device), train_parts, device, batch_size, seed=run.pretrain_seed)
            tensors, info, seconds = task.train(ctx)
        meta = {
            "seconds": seconds,
            "info": _finite(info),
            "fields": fields,
            "source_name": source.name,
            "source_train_size": len(source.train_y),
        }
        meta = cache.save(cache_dir, key, tensors, meta)
        return {k: v.detach() for k, v in tensors.items()}, meta, False

    # Under the entry's lock: a second launcher (or --jobs worker) that wants the same entry waits for this
    # one and loads it, instead of pretraining it again.
    tensors, meta, cached = locks.build_once(cache.lock_path(cache_dir, key), _hit, _build)
    t = time.perf_counter()
    loaded = load_weights(adapter, tensors, load_parts, f"pretrain cache {key}")
    info = {
        **meta["info"],
        "cache_key": key,
        "seed": run.pretrain_seed,
        "seed_rule": str(spec.pretrain_seed),
        "load_seconds": time.perf_counter() - t,
        "source_train_size": meta.get("source_train_size"),
    }
    return PretrainOutcome(seconds=float(meta["seconds"]), cached=cached, parts=loaded, info=info)


__all__ = [
    "BY_NAME",
    "TASK_VERSION",
    "PretrainOutcome",
    "StrategyNotApplicable",
    "Task",
    "check_strategy",
    "describe_tasks",
    "run_task",
]
