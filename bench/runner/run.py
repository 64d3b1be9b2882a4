"""One run, start to end: set-up (or resume) → pretraining → training loop → final evaluation → result.json.

The harness owns the loop; the adapter only answers `train_step`, `sample` and `log_likelihood`. This module
only sequences the stages; each lives in its own module of `bench.runner`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from bench.adapter import contract
from bench.adapter.base import CONDITIONAL_FAMILIES, Adapter, get_adapter
from bench.core import env, heap
from bench.core.beat import beat
from bench.core.errors import BenchError
from bench.data.datasets import ImageData, load_dataset
from bench.data.images import save_grid
from bench.data.style import save_triplets, with_style
from bench.runner import checkpoint, result, weights
from bench.runner.build import build_adapter
from bench.runner.evaluation import Evaluator
from bench.runner.fastpath import apply_fast_path, fast_path
from bench.runner.loop import Diverged, TrainingLoop
from bench.runner.pretrain import PretrainOutcome, StrategyNotApplicable, apply_freeze, pretrain
from bench.runner.state import LoopState
from bench.runner.watchdog import Stalled, Watchdog
from bench.store import runs as store
from bench.store.result import RunResult
from bench.suite.spec import RunSpec

# Adapters (with config, data, device) whose contract check passed in this process: a suite checks each once,
# not once per seed. Bounded (oldest out first); forgetting one only costs a repeated check.
_CONTRACT_OK: dict[tuple[str, ...], None] = {}
_CONTRACT_OK_MAX = 256


class DataChanged(BenchError):
    """The data under a planned run id changed before the run loaded them."""


class Runner:
    """Executes one RunSpec into `suite_dir/<run_id>/`. Create, then call `run()` → RunResult."""

    def __init__(self, run: RunSpec, suite_dir: Path, device: torch.device, cache_dir: Path, progress: bool = True):
        self.spec, self.device, self.cache_dir = run, torch.device(device), Path(cache_dir)
        self.dir = Path(suite_dir) / run.run_id
        self.ckpt_path = self.dir / "checkpoint.pt"
        self.memory = env.PeakMemory(self.device)
        self.fast = fast_path(run, self.device)
        self.progress = progress
        self.loop = TrainingLoop(run, self.device, self.fast, progress)
        self.evaluator = Evaluator(run, self.device, self.cache_dir)

    def run(self) -> RunResult:
        run = self.spec
        watch = Watchdog(run.run_id, run.runner.stall_seconds, run.runner.timeout, alive=not self.progress)
        try:
            with watch:
                return self._run()
        except Stalled as err:  # an asynchronous one carries no text: the watchdog's reason names the stage
            raise Stalled(watch.failure(err)) from None

    def _run(self) -> RunResult:
        run = self.spec
        self.dir.mkdir(parents=True, exist_ok=True)
        store.remove_partial_writes(self.dir)  # a run is only ever written by one process at a time
        env.configure_threads(run.runner.threads)
        heap.keep_freed_memory()  # freed tensors reused, not faulted in again (core/heap.py)
        env.seed_everything(run.init_seed)
        self.memory.reset()
        data = _planned_data(run).to(self.device)
        get_adapter(run.adapter, where=f"adapters.{run.adapter}")  # the registry's imports are harness set-up
        beat("the contract check (one train_step, sample and log_likelihood on 4 images)")
        self._check_contract(data)
        beat("building the adapter")
        adapter, state, gen = self._start(data)
        if not state.resumed_from:  # a resumed run was pretrained before its checkpoint
            beat("pretraining")
            try:
                outcome = pretrain(adapter, run, self.device, self.cache_dir, fused_optim=self.fast.fused_optim)
            except StrategyNotApplicable as why:
                return self._finish(adapter, data, state, status="not_applicable", error=str(why))
            state.pretrain = _outcome_dict(outcome)
            # Training randomness independent of how much pretraining drew, and of every other run's streams
            # (seed + 1 was the next seed's initialisation stream).
            env.seed_everything(run.train_seed)
        try:
            state.pretrain["frozen"] = len(apply_freeze(adapter, run.strategy_spec.freeze))
        except StrategyNotApplicable as why:
            return self._finish(adapter, data, state, status="not_applicable", error=str(why))
        try:
            self.train(adapter, data, state, gen)
        except Diverged as d:
            return self._finish(adapter, data, state, status="diverged", error=d.reason, extra={"diverged_at": d.step})
        # Kept before the final evaluation (its cost table names their size), written before result.json:
        # a done run has its weights, so a later eval block re-evaluates them instead of retraining.
        state.weights_bytes = weights.keep(self.dir, adapter, run.runner.keep_weights)
        beat("the final evaluation")
        final = self.evaluator.final(adapter, data, state, self.memory)
        if data.style is not None and adapter.family in CONDITIONAL_FAMILIES:
            save_triplets(final.samples, self.evaluator.pairs(adapter, data), self.dir)
        else:
            save_grid(final.samples, self.dir / "samples.png")
            # The same number of real test images, drawn the same way: the report shows them beside the samples.
            save_grid(data.test_x[: len(final.samples)].cpu(), self.dir / "real.png")
        return self._finish(
            adapter,
            data,
            state,
            status="completed",
            metrics=final.metrics,
            not_applicable=final.not_applicable,
            extra={"metric_info": final.info},
        )

    def _check_contract(self, data: ImageData) -> None:
        """One train_step, sample and log_likelihood on a tiny batch, on a throwaway adapter, before any real
        work: a broken contract fails the run with one line (ContractError), not deep inside the harness.
        Once per adapter, config, data set and device in a process; the random streams are left untouched."""
        run = self.spec
        key = (run.adapter, json.dumps(run.adapter_config, sort_keys=True, default=str), repr(run.dataset), self.device.type)
        if key in _CONTRACT_OK:
            return
        contract.require(lambda: build_adapter(run, data, self.device, self.fast), data, self.device)
        _CONTRACT_OK[key] = None
        while len(_CONTRACT_OK) > _CONTRACT_OK_MAX:
            del _CONTRACT_OK[next(iter(_CONTRACT_OK))]

    def _start(self, data: ImageData) -> tuple[Adapter, LoopState, torch.Generator]:
        """A fresh adapter, loop state and batch generator, or those of the checkpoint when one fits."""
        run = self.spec
        adapter = build_adapter(run, data, self.device, self.fast)
        gen = torch.Generator(device=self.device).manual_seed(run.data_seed)  # draws the batch indices
        try:
            state = checkpoint.resume(self.ckpt_path, adapter, gen)
        except Exception:
            # It unpickled safely but does not fit this run: never trusted. Start over exactly as a fresh
            # run would, from a fresh seed and adapter.
            self.ckpt_path.unlink(missing_ok=True)
            env.seed_everything(run.init_seed)
            adapter = build_adapter(run, data, self.device, self.fast)
            return adapter, LoopState(), torch.Generator(device=self.device).manual_seed(run.data_seed)
        if state is None:
            return adapter, LoopState(), gen
        # The optimisers' param groups came back from the checkpoint: the run's own switches apply again.
        apply_fast_path(self.fast, adapter, self.device)
        return adapter, state, gen

    def train(self, adapter: Adapter, data: ImageData, state: LoopState, gen: torch.Generator) -> None:
        """The training loop with this run's periodic evaluations and checkpoints (no final evaluation)."""
        self.loop(
            adapter,
            data,
            state,
            gen,
            on_eval=lambda s: self.evaluator.periodic(adapter, data, s),
            on_checkpoint=lambda s: checkpoint.save(self.ckpt_path, adapter, s, gen),
        )

    def _finish(self, adapter: Adapter, data: ImageData, state: LoopState, *, status: str, **fields: Any) -> RunResult:
        res = result.assemble(self.spec, adapter.family, self.evaluator.protocol(data), self.device, state, status=status, **fields)
        result.write(self.dir, res, state.history, self.ckpt_path)
        return res


def _outcome_dict(o: PretrainOutcome) -> dict[str, Any]:
    return {"seconds": o.seconds, "cached": o.cached, "parts": o.parts, **o.info}


def run_one(run: RunSpec, suite_dir: Path, device: torch.device, cache_dir: Path, progress: bool = True) -> RunResult:
    return Runner(run, suite_dir, device, cache_dir, progress).run()


def _planned_data(run: RunSpec) -> ImageData:
    """The run's data set, as it was when the run id was made: an image folder edited since is a new run, so
    this one fails (one line) rather than train on pixels its id does not name."""
    data = load_dataset(run.dataset)
    planned = run.identity.get("data")
    if planned and data.content_hash() != planned:
        raise DataChanged(
            f"the data set changed since this run was planned (content {data.content_hash()}, planned {planned})",
            key="dataset",
            fix="run the suite again: the new data get new run ids",
        )
    data = with_style(data, run.style)
    planned_style = run.identity.get("style_data")
    if planned_style and data.style is not None and data.style.content_hash() != planned_style:
        raise DataChanged(
            f"the style set changed since this run was planned (content {data.style.content_hash()}, planned {planned_style})",
            key="style",
            fix="run the suite again: the new data get new run ids",
        )
    return data
