"""The training loop: stepping, the eval/checkpoint schedule, loss flushing, divergence, the progress bar and
compile timing. It never evaluates or writes files itself; it calls the `on_eval` and `on_checkpoint` hooks.

Losses stay on the device and are synced every `runner.log_every` steps (and at every eval or checkpoint), so
the loop never waits on the host per step.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch

from bench.adapter.base import Adapter
from bench.adapter.batch import BatchSource
from bench.core.beat import beat
from bench.data.datasets import ImageData
from bench.runner.fastpath import FastPath
from bench.runner.state import LoopState
from bench.suite.spec import RunSpec

Hook = Callable[[LoopState], None]


class Diverged(Exception):
    def __init__(self, step: int, reason: str):
        super().__init__(reason)
        self.step, self.reason = step, reason


def sync(device: torch.device) -> None:
    """Wait for the device, so a wall-clock reading covers the work queued before it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def compile_modules(adapter: Adapter) -> None:
    # nn.Module.compile() compiles in place, so state_dict keys (and checkpoints) stay the same.
    # Compilation is lazy; its cost is paid in the first step, which the loop times as compile_seconds
    # (sampling in eval mode compiles once more, inside the first evaluation's time).
    for m in adapter.modules().values():
        m.compile()


class TrainingLoop:
    """Runs `run.budget.steps` training steps of one adapter, from `state.step` (0, or a resumed step)."""

    def __init__(self, run: RunSpec, device: torch.device, fast: FastPath, progress: bool = True):
        self.run, self.device, self.fast, self.progress = run, torch.device(device), fast, progress

    def __call__(
        self, adapter: Adapter, data: ImageData, state: LoopState, gen: torch.Generator, on_eval: Hook, on_checkpoint: Hook
    ) -> None:
        """Train until the budget is spent. Raises Diverged at the first non-finite (or exploding) loss."""
        run = self.run
        steps, bs = run.budget.steps, run.budget.batch_size
        eval_every, log_every = run.budget.eval_every, max(1, run.runner.log_every)
        ckpt_every = run.runner.checkpoint_every
        if run.runner.compile:  # also after a resume: the restored modules are fresh, uncompiled ones
            compile_modules(adapter)
        if eval_every and state.step == 0 and not state.history:
            on_eval(state)
        pending: list[tuple[int, dict[str, torch.Tensor]]] = []
        bar = self._bar(steps, state.step)
        adapter.train(True)
        fast = self.fast
        # Nothing in this loop waits on the device: the source draws indices with a generator on the data's
        # device, and losses are only read at a flush. `batch.next()` draws from the same source and seed.
        style = (
            None if data.style is None else BatchSource(data.style.train_x, data.style.train_y, data.levels, bs, gen, fast.memory_format)
        )
        source = BatchSource(data.train_x, data.train_y, data.levels, bs, gen, fast.memory_format, style=style)
        compiling = run.runner.compile
        t0 = time.perf_counter()
        while state.step < steps:
            source.drawn = 0
            beat(f"train_step at step {state.step + 1} of {steps}", step=True)  # the stall watchdog's step counter
            batch = source()
            with fast.autocast(self.device):
                losses = adapter.train_step(batch, state.step)
            state.step += 1
            pending.append((state.step, losses))
            if not compiling:  # batches drawn with batch.next() in a timed step count in images/s
                state.extra_images += (source.drawn - 1) * bs
            if compiling:  # also after a resume, which compiles afresh
                sync(self.device)
                now = time.perf_counter()
                state.compile_seconds += now - t0
                state.compile_steps += 1
                compiling, t0 = False, now
            at_eval = bool(eval_every) and state.step % eval_every == 0 and state.step < steps
            at_ckpt = bool(ckpt_every) and state.step % ckpt_every == 0
            if state.step == 1 or state.step % log_every == 0 or state.step == steps or at_eval or at_ckpt:
                sync(self.device)
                t1 = time.perf_counter()
                state.train_seconds += t1 - t0
                self._flush(pending, state, bar)
                state.train_seconds += time.perf_counter() - t1  # the host transfer and checks are loop cost too
                pending = []
                if at_eval:
                    beat(f"the evaluation at step {state.step}")
                    on_eval(state)
                if at_eval or at_ckpt:
                    on_checkpoint(state)
                t0 = time.perf_counter()
        if bar is not None:
            bar.close()

    def _flush(self, pending: list[tuple[int, dict[str, torch.Tensor]]], state: LoopState, bar: Any) -> None:
        if not pending:
            return
        names = sorted(pending[0][1])
        # One stack and one host transfer for the whole window: a (steps × losses) matrix. Stacking promotes
        # mixed dtypes (bf16 and float32 losses) to the wider one, which holds both exactly.
        flat = [torch.as_tensor(ls[n], device=self.device).detach().reshape(()) for _, ls in pending for n in names]
        mat = torch.stack(flat).float().view(len(pending), len(names)).cpu()
        thr = self.run.runner.diverge_threshold
        bad = ~torch.isfinite(mat).all(dim=1)
        if thr is not None:
            bad |= (mat.abs() > thr).any(dim=1)
        if bad.any():
            i = int(bad.nonzero()[0])
            step = pending[i][0]
            vals = ", ".join(f"{n}={v:.4g}" for n, v in zip(names, mat[i].tolist(), strict=True))
            raise Diverged(step, f"non-finite or exploding loss at step {step}: {vals}")
        if not state.first_losses and pending[0][0] == 1:
            state.first_losses = dict(zip(names, mat[0].tolist(), strict=True))
        means = mat.mean(dim=0).tolist()
        state.log(dict(zip(names, means, strict=True)))
        if bar is not None:
            bar.update(state.step - bar.n)
            bar.set_postfix({n: f"{v:.3g}" for n, v in zip(names, means, strict=True)}, refresh=False)

    def _bar(self, total: int, initial: int) -> Any:
        if not self.progress:
            return None
        from tqdm.auto import tqdm

        return tqdm(total=total, initial=initial, desc=self.run.run_id[:48], unit="step", leave=False, dynamic_ncols=True)
