"""What every pretraining task shares: part selection, the source data, the training loop and linear probes.

Seed: a task runs on a *fresh* copy of the adapter built under the run's pretraining seed
(`RunSpec.pretrain_seed`: by default derived from the run's seed, so each seed pretrains its own checkpoint;
`pretrain_seed: shared` gives every seed one), with its own data generator seeded the same way, so its
output is a pure function of the cache key, which includes that seed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bench.adapter.base import ROLES, Adapter, Batch, DataInfo
from bench.adapter.batch import BatchSource
from bench.core.beat import beat
from bench.data.datasets import ImageData, load_dataset
from bench.suite.spec import DatasetSpec, RunSpec, StrategySpec
from bench.tasks.strategy import StrategyNotApplicable

ALL_PARTS = ("all", "both")  # `parts: [both]` (a GAN's generator and discriminator) = every part that applies


def describe_parts(adapter: Adapter) -> str:
    # An adapter with no part (a flow: no generic role fits a coupling net) can still be transferred whole.
    return ", ".join(f"{n} ({p.role})" for n, p in adapter.parts().items()) or "none; only whole-model transfer, task generative, applies"


def select_parts(adapter: Adapter, requested: list[str] | None, roles: tuple[str, ...], task: str) -> list[str]:
    """Resolve `parts:` (part names, roles, or all/both) to part names whose role this task can train.

    Raises StrategyNotApplicable naming the adapter's parts when nothing (or something unfitting) is asked.
    """
    parts = adapter.parts()
    fits = [n for n, p in parts.items() if p.role in roles]
    wanted = ", ".join(roles)
    if requested is None or any(r in ALL_PARTS for r in requested):
        if not fits:
            raise StrategyNotApplicable(f"{task} needs a part with role {wanted}; {adapter.key} has {describe_parts(adapter)}")
        return fits
    out: list[str] = []
    for r in requested:
        if r in parts:
            if parts[r].role not in roles:
                raise StrategyNotApplicable(f"{task} trains {wanted} parts; {adapter.key}'s '{r}' is a {parts[r].role}")
            names = [r]
        elif r in ROLES:
            if r not in roles:
                raise StrategyNotApplicable(f"{task} trains {wanted} parts, not {r} parts")
            names = [n for n, p in parts.items() if p.role == r]
            if not names:
                raise StrategyNotApplicable(f"{task}: {adapter.key} has no {r} part (parts: {describe_parts(adapter)})")
        else:
            raise StrategyNotApplicable(f"{task}: {adapter.key} has no part or role '{r}' (parts: {describe_parts(adapter)})")
        out += [n for n in names if n not in out]
    return out


def source_spec(source: DatasetSpec, info: DataInfo) -> DatasetSpec:
    """The source converted to the target's image size, channels and grey levels, so every shape matches.

    Classes, limit, root and download stay as the suite wrote them: `source: {name: digits, classes: [0..4]}`
    pretrains on digits 0–4 whatever the target is.
    """
    return dataclasses.replace(source, image_size=info.image_size, channels=info.channels, levels=info.levels)


def load_source(spec: StrategySpec, info: DataInfo, where: str) -> ImageData:
    assert spec.source is not None  # check_strategy guarantees a source for the training tasks
    return load_dataset(source_spec(spec.source, info), where=where)


@dataclass
class Context:
    """Everything a task needs: the fresh adapter it trains, the (converted) source and the settings."""

    fresh: Adapter  # built under `seed`; the run's own adapter is only loaded afterwards
    run: RunSpec
    source: ImageData  # on `device`
    parts: list[str]
    device: torch.device
    batch_size: int
    seed: int = 0  # the pretraining seed (RunSpec.pretrain_seed): initialisation, noise and batches

    @property
    def spec(self) -> StrategySpec:
        return self.run.strategy_spec

    @property
    def info(self) -> DataInfo:
        return self.fresh.info

    def autocast(self) -> contextlib.AbstractContextManager:
        # The runner's own precision rule (bf16 autocast on CUDA when runner.amp), so pretraining costs what training costs.
        if self.device.type == "cuda" and self.run.runner.amp:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def batches(self, steps: int, labels: bool = True) -> Iterator[Batch]:
        """`steps` random batches (with replacement) from the source's training split, deterministic in the pretraining seed."""
        gen = torch.Generator(device=self.device).manual_seed(self.seed)
        # batch.next() (an adapter's inner steps under `generative`) draws from the same seeded source.
        st = self.source.style  # a stylize adapter's whole-model transfer: source content, the run's style set
        style = None if st is None else BatchSource(st.train_x, st.train_y, st.levels, self.batch_size, gen, labels=False)
        source = BatchSource(self.source.train_x, self.source.train_y, self.source.levels, self.batch_size, gen, labels=labels, style=style)
        for _ in range(steps):
            yield source()


def precision(run: RunSpec, device: torch.device) -> str:
    return "bf16" if device.type == "cuda" and run.runner.amp else "fp32"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class LoopResult:
    seconds: float
    loss_first: float
    loss_final: float  # mean over the last tenth of the steps: one batch's loss is too noisy to compare


def fit(ctx: Context, params: list[nn.Parameter], loss_fn: Callable[[Batch, int], torch.Tensor], desc: str) -> LoopResult:
    """Adam on `params` for `spec.steps` source batches, with a short linear warm-up and gradient clipping.

    Warm-up and clipping are generic safety for transformers, whose early steps at lr 1e-3 can blow up;
    they cost nothing for the convolutional parts. Losses stay on the device until the end.
    """
    from tqdm.auto import tqdm

    steps, lr = ctx.spec.steps, ctx.spec.lr
    opt = torch.optim.Adam(params, lr=lr)
    warmup = max(1, min(100, steps // 10))
    losses: list[torch.Tensor] = []
    _sync(ctx.device)
    t0 = time.perf_counter()
    bar = tqdm(ctx.batches(steps), total=steps, desc=desc, unit="step", leave=False, dynamic_ncols=True, disable=None)
    for step, batch in enumerate(bar):
        beat(f"pretraining ({desc}) at step {step + 1} of {steps}")
        for g in opt.param_groups:
            g["lr"] = lr * min(1.0, (step + 1) / warmup)
        with ctx.autocast():
            loss = loss_fn(batch, step)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        losses.append(loss.detach().float())
        if (step + 1) % 50 == 0:  # a host sync every 50 steps only, to keep the device busy
            bar.set_postfix(loss=f"{float(losses[-1]):.4g}", refresh=False)
    bar.close()
    _sync(ctx.device)
    seconds = time.perf_counter() - t0
    hist = torch.stack(losses).cpu()
    tail = max(1, steps // 10)
    return LoopResult(seconds, float(hist[0]), float(hist[-tail:].mean()))


def as_input(u8: torch.Tensor) -> torch.Tensor:
    """uint8 pixels → [-1, 1] floats, the input convention of every encoder part (Batch.x)."""
    return u8.float().div(127.5).sub(1.0)


@contextlib.contextmanager
def eval_mode(module: nn.Module) -> Iterator[None]:
    was = module.training
    module.eval()
    try:
        yield
    finally:
        module.train(was)


@torch.no_grad()
def encode_all(module: nn.Module, u8: torch.Tensor, batch: int = 512) -> torch.Tensor:
    with eval_mode(module):
        return torch.cat([module(as_input(chunk)).float().flatten(1) for chunk in u8.split(batch)])


def linear_probe(module: nn.Module, data: ImageData, max_train: int = 10000, ridge: float = 10.0) -> float:
    """Test accuracy of a linear classifier fitted on the frozen features of the source's training split.

    The standard measure of a representation (as in MAE/iGPT), here as a ridge-regression (least-squares)
    classifier on standardised features: one linear solve, deterministic, well under a second for digits,
    where an iterative logistic fit would cost more than the pretraining it measures.
    """
    if data.num_classes < 2:
        return math.nan

    def design(u8: torch.Tensor, mu: torch.Tensor | None = None, sd: torch.Tensor | None = None):
        f = encode_all(module, u8[:max_train])
        f = f if f.device.type == "mps" else f.double()  # MPS has no float64; elsewhere it steadies the solve
        if mu is None or sd is None:
            mu, sd = f.mean(0), f.std(0).clamp_min(1e-6)
        return torch.cat([(f - mu) / sd, torch.ones_like(f[:, :1])], 1), mu, sd  # standardised + bias column

    a, mu, sd = design(data.train_x)
    b, _, _ = design(data.test_x, mu, sd)
    ytr, yte = data.train_y[:max_train], data.test_y[:max_train]
    targets = F.one_hot(ytr, data.num_classes).double()
    eye = torch.eye(a.shape[1], dtype=a.dtype, device=a.device)
    w = torch.linalg.solve(a.T @ a + ridge * eye, a.T @ targets)
    return float(((b @ w).argmax(1) == yte).double().mean())
