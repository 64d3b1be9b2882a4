"""One run: data → pretraining → training loop (budget, periodic eval, checkpoints) → metrics → result.json.

The harness owns the loop; the adapter only answers `train_step`, `sample` and `log_likelihood`.
Losses stay on the device and are synced every `runner.log_every` steps, so the loop never waits on the
host per step. A checkpoint (models, optimisers, RNG states, history) is written atomically at every
evaluation and every `runner.checkpoint_every` steps; an interrupted run resumes from it.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from bench import adapter as adapter_mod
from bench import env, store
from bench.adapter import Adapter, Batch, get_adapter
from bench.data import ImageData, load_dataset
from bench.metrics import EvalContext, evaluate
from bench.pretrain import PretrainOutcome, StrategyNotApplicable, apply_freeze, pretrain
from bench.result import RunResult
from bench.schema import parse
from bench.spec import RunSpec


@dataclass
class LoopState:
    step: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    train_seconds: float = 0.0
    eval_seconds: float = 0.0
    compile_seconds: float = 0.0  # the first step after each compile(): tracing and code generation
    compile_steps: int = 0  # steps timed as compile_seconds, so not in train_seconds
    first_losses: dict[str, float] = field(default_factory=dict)
    pretrain: dict[str, Any] = field(default_factory=dict)
    resumed_from: list[int] = field(default_factory=list)  # the step of each resume, for provenance


class Diverged(Exception):
    def __init__(self, step: int, reason: str):
        super().__init__(reason)
        self.step, self.reason = step, reason


def build_adapter(run: RunSpec, data: ImageData, device: torch.device) -> Adapter:
    cls = get_adapter(run.adapter, where=f"adapters.{run.adapter}")
    config = parse(cls.Config, run.adapter_config, f"adapters.{run.adapter}")
    return cls(config, data.info, device)


@dataclass(frozen=True)
class FastPath:
    """The speed switches that apply to one run on one device, decided once before the loop.

    Pure data, so the CUDA decisions can be checked on a CPU-only machine (tests/test_gpu.py)."""

    amp_dtype: torch.dtype | None  # autocast dtype, or None for full float32
    tf32: bool
    channels_last: bool
    fused_optim: bool

    def autocast(self, device: torch.device) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device.type, dtype=self.amp_dtype)

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format


def fast_path(run: RunSpec, device: torch.device, bf16_ok: bool | None = None) -> FastPath:
    """What `run.runner` turns on for `device`. bf16 autocast and TF32 are CUDA-only: on the CPU, bf16 would
    change the numbers far beyond float rounding. channels_last also helps the CPU's oneDNN convolutions
    (cnn_gan 1.25x, vae 1.07x faster on the 2-core dev box), and fused Adam has CPU and CUDA kernels (one pass
    over all parameters instead of a loop of small ops per tensor). MPS keeps the plain path."""
    r, cuda = run.runner, device.type == "cuda"
    if bf16_ok is None:  # pre-Ampere GPUs have no bf16; fp16 would need a GradScaler the adapters do not run
        bf16_ok = cuda and torch.cuda.is_bf16_supported()
    return FastPath(
        amp_dtype=torch.bfloat16 if (cuda and r.amp and bf16_ok) else None,
        tf32=cuda and r.tf32,
        channels_last=r.channels_last and device.type in ("cuda", "cpu"),
        fused_optim=r.fused_optim and device.type in ("cuda", "cpu"),
    )


def _has_conv(m: torch.nn.Module) -> bool:
    return any(isinstance(x, torch.nn.Conv2d | torch.nn.ConvTranspose2d) for x in m.modules())


def apply_fast_path(fp: FastPath, adapter: Adapter, device: torch.device) -> None:
    """Process-wide backend flags and the adapter's memory layout. Called after a checkpoint is loaded."""
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = fp.tf32
        torch.backends.cudnn.allow_tf32 = fp.tf32
    for m in adapter.modules().values():
        if _has_conv(m):
            # Either way, so a run with channels_last off after one with it on gets plain layouts back.
            m.to(memory_format=fp.memory_format)
    align_optimizer_state(adapter)


def align_optimizer_state(adapter: Adapter) -> None:
    """Give every per-parameter optimiser state tensor its parameter's strides.

    Fused Adam walks params and states as flat memory: a channels_last parameter with a contiguous
    `exp_avg` (restored from a checkpoint written with another layout, or made before the layout
    change) is updated with the wrong elements, silently (seen with the CPU kernel). The copy is exact."""
    for opt in adapter.optimizers().values():
        for p, st in opt.state.items():
            for k, v in list(st.items()):
                if isinstance(v, torch.Tensor) and v.shape == p.shape and v.stride() != p.stride():
                    st[k] = torch.empty_like(p, dtype=v.dtype).copy_(v)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Runner:
    """Executes one RunSpec into `suite_dir/<run_id>/`. Create, then call `run()` → RunResult."""

    def __init__(self, run: RunSpec, suite_dir: Path, device: torch.device, cache_dir: Path, progress: bool = True):
        self.spec, self.device, self.cache_dir, self.progress = run, torch.device(device), Path(cache_dir), progress
        self.dir = Path(suite_dir) / run.run_id
        self.ckpt_path = self.dir / "checkpoint.pt"
        self.memory = env.PeakMemory(self.device)
        self.fast = fast_path(run, self.device)

    # --- the whole run ----------------------------------------------------------------------------
    def run(self) -> RunResult:
        run = self.spec
        self.dir.mkdir(parents=True, exist_ok=True)
        store.remove_partial_writes(self.dir)  # a run is only ever written by one process at a time
        env.configure_threads(run.runner.threads)
        env.seed_everything(run.seed)
        self.memory.reset()
        # Before any adapter is built: adapters build their optimisers in __init__ through bench.adapter.adam.
        adapter_mod.FUSED_OPTIM["enabled"] = self.fast.fused_optim
        data = load_dataset(run.dataset).to(self.device)
        adapter = build_adapter(run, data, self.device)
        state = LoopState()
        gen = torch.Generator(device=self.device).manual_seed(run.seed)  # draws the batch indices
        ckpt = store.load_checkpoint(self.ckpt_path)
        if ckpt is not None:
            try:
                adapter.load_state_dict(ckpt["adapter"])
                gen.set_state(ckpt["data_rng"])
                state = self._restore(ckpt)
            except Exception:
                # It unpickled safely but does not fit this run (missing keys, wrong shapes): never
                # trusted. Start over exactly as a fresh run would, from a fresh seed and adapter.
                ckpt, state = None, LoopState()
                gen = torch.Generator(device=self.device).manual_seed(run.seed)
                self.ckpt_path.unlink(missing_ok=True)
                env.seed_everything(run.seed)
                adapter = build_adapter(run, data, self.device)
        apply_fast_path(self.fast, adapter, self.device)
        base = self._base_result(adapter)
        if ckpt is None:
            try:
                outcome = pretrain(adapter, run, self.device, self.cache_dir)
            except StrategyNotApplicable as why:
                return self._finish(base, state, status="not_applicable", error=str(why))
            state.pretrain = _outcome_dict(outcome)
            env.seed_everything(run.seed + 1)  # training randomness independent of how much pretraining drew
        try:
            state.pretrain["frozen"] = len(apply_freeze(adapter, run.strategy_spec.freeze))
        except StrategyNotApplicable as why:
            return self._finish(base, state, status="not_applicable", error=str(why))
        try:
            final_metrics, na, ctx_info, samples = self._loop(adapter, data, state, gen)
        except Diverged as d:
            base["diverged_at"] = d.step
            return self._finish(base, state, status="diverged", error=d.reason)
        base.update(metric_info=ctx_info)
        self._save_samples(samples, data.levels)
        return self._finish(base, state, status="completed", metrics=final_metrics, na=na)

    # --- training loop ----------------------------------------------------------------------------
    def _loop(self, adapter: Adapter, data: ImageData, state: LoopState, gen: torch.Generator):
        run = self.spec
        steps, bs = run.budget.steps, run.budget.batch_size
        eval_every, log_every = run.budget.eval_every, max(1, run.runner.log_every)
        ckpt_every = run.runner.checkpoint_every
        if run.runner.compile:  # also after a resume: the restored modules are fresh, uncompiled ones
            self._compile(adapter)
        if eval_every and state.step == 0 and not state.history:
            self._periodic_eval(adapter, data, state)
        pending: list[tuple[int, dict[str, torch.Tensor]]] = []
        bar = self._bar(steps, state.step)
        adapter.train(True)
        n_train = data.train_x.shape[0]
        fast = self.fast
        fmt = fast.memory_format
        compiling = run.runner.compile
        t0 = time.perf_counter()
        while state.step < steps:
            # Nothing in this loop waits on the device: the indices are drawn by a generator on the data's
            # device, index_select never checks bounds on the host, and losses are only read at a flush.
            idx = torch.randint(0, n_train, (bs,), device=self.device, generator=gen)
            batch = Batch(data.train_x.index_select(0, idx), data.train_y.index_select(0, idx), data.levels, memory_format=fmt)
            with fast.autocast(self.device):
                losses = adapter.train_step(batch, state.step)
            state.step += 1
            pending.append((state.step, losses))
            if compiling:  # also after a resume, which compiles afresh
                _sync(self.device)
                now = time.perf_counter()
                state.compile_seconds += now - t0
                state.compile_steps += 1
                compiling, t0 = False, now
            at_eval = bool(eval_every) and state.step % eval_every == 0 and state.step < steps
            at_ckpt = bool(ckpt_every) and state.step % ckpt_every == 0
            if state.step == 1 or state.step % log_every == 0 or state.step == steps or at_eval or at_ckpt:
                _sync(self.device)
                t1 = time.perf_counter()
                state.train_seconds += t1 - t0
                self._flush(pending, state, bar)
                state.train_seconds += time.perf_counter() - t1  # the host transfer and checks are loop cost too
                pending = []
                if at_eval:
                    self._periodic_eval(adapter, data, state)
                if at_eval or at_ckpt:
                    self._checkpoint(adapter, state, gen)
                t0 = time.perf_counter()
        if bar is not None:
            bar.close()
        return self._final_eval(adapter, data, state)

    def _flush(self, pending: list[tuple[int, dict[str, torch.Tensor]]], state: LoopState, bar) -> None:
        if not pending:
            return
        names = sorted(pending[0][1])
        # One stack and one host transfer for the whole window: a (steps × losses) matrix. Stacking promotes
        # mixed dtypes (bf16 and float32 losses) to the wider one, which holds both exactly.
        flat = [torch.as_tensor(ls[n], device=self.device).detach().reshape(()) for _, ls in pending for n in names]
        mat = torch.stack(flat).float().view(len(pending), len(names)).cpu()
        thr = self.spec.runner.diverge_threshold
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
        row = {"step": state.step, "train_seconds": round(state.train_seconds, 4), **dict(zip(names, means, strict=True))}
        state.history.append(row)
        if bar is not None:
            bar.update(state.step - bar.n)
            bar.set_postfix({n: f"{v:.3g}" for n, v in zip(names, means, strict=True)}, refresh=False)

    def _bar(self, total: int, initial: int):
        if not self.progress:
            return None
        from tqdm.auto import tqdm

        return tqdm(total=total, initial=initial, desc=self.spec.run_id[:48], unit="step", leave=False, dynamic_ncols=True)

    def _compile(self, adapter: Adapter) -> None:
        # nn.Module.compile() compiles in place, so state_dict keys (and checkpoints) stay the same.
        # Compilation is lazy; its cost is paid in the first step, which the loop times as compile_seconds
        # (sampling in eval mode compiles once more, inside the first evaluation's time).
        for m in adapter.modules().values():
            m.compile()

    # --- evaluation -------------------------------------------------------------------------------
    def _context(self, adapter: Adapter, data: ImageData) -> EvalContext:
        return EvalContext(adapter, data, self.spec.eval, self.device, self.cache_dir, self.spec.seed)

    def _periodic_names(self) -> list[str]:
        from bench.metrics import METRICS

        ev = self.spec.eval
        names = ev.history_metrics if ev.history_metrics is not None else [m for m in ev.metrics if METRICS.get(m).periodic]
        return names

    def _periodic_eval(self, adapter: Adapter, data: ImageData, state: LoopState) -> None:
        t = time.perf_counter()
        with env.preserved_rng():
            values, _ = evaluate(self._periodic_names(), self._context(adapter, data))
        _sync(self.device)
        state.eval_seconds += time.perf_counter() - t
        state.history.append({"step": state.step, "train_seconds": round(state.train_seconds, 4), **values})

    def _final_eval(self, adapter: Adapter, data: ImageData, state: LoopState):
        t = time.perf_counter()
        ctx = self._context(adapter, data)
        with env.preserved_rng():
            values, na = evaluate(self.spec.eval.metrics, ctx)
        samples = ctx.samples[:64]
        _sync(self.device)
        state.eval_seconds += time.perf_counter() - t
        state.history.append({"step": state.step, "train_seconds": round(state.train_seconds, 4), **values})
        values.update(self._cost(adapter, state))
        return values, na, ctx.info, samples

    def _cost(self, adapter: Adapter, state: LoopState) -> dict[str, float]:
        b = self.spec.budget
        pre = float(state.pretrain.get("seconds", 0.0))
        timed = (b.steps - state.compile_steps) * b.batch_size  # compile steps are timed apart
        return {
            "pretrain_seconds": pre,
            "train_seconds": state.train_seconds,
            "eval_seconds": state.eval_seconds,
            "total_seconds": pre + state.train_seconds + state.compile_seconds,
            "images_per_second": (timed / state.train_seconds) if state.train_seconds > 0 else math.nan,
            "peak_memory_mb": self.memory.peak_mb(),
            "params": float(adapter.num_params()),
        }

    # --- files ------------------------------------------------------------------------------------
    def _checkpoint(self, adapter: Adapter, state: LoopState, gen: torch.Generator) -> None:
        store.save_checkpoint(
            self.ckpt_path,
            {
                "step": state.step,
                "adapter": adapter.state_dict(),
                "history": state.history,
                "loop": {k: v for k, v in vars(state).items() if k not in ("history",)},
                "rng": env.rng_state(),
                "data_rng": gen.get_state(),
            },
        )

    def _restore(self, ckpt: dict) -> LoopState:
        state = LoopState(**ckpt["loop"])
        state.history = ckpt["history"]
        if state.step != ckpt["step"]:
            raise ValueError("checkpoint step does not match its loop state")
        state.resumed_from.append(state.step)
        env.set_rng_state(ckpt["rng"])
        return state

    def _save_samples(self, samples: torch.Tensor, levels: int) -> None:
        from bench.images import save_grid

        save_grid(samples, self.dir / "samples.png")

    def _base_result(self, adapter: Adapter) -> dict[str, Any]:
        """The RunResult fields known before training (keyword arguments; `_finish` adds the outcome)."""
        from bench.metrics.protocol import describe

        run = self.spec
        data = load_dataset(run.dataset)
        return {
            "run_id": run.run_id,
            "suite": run.suite,
            "adapter": run.adapter,
            "family": adapter.family,
            "strategy": run.strategy,
            "task": run.strategy_spec.task,
            "seed": run.seed,
            "protocol": describe(run.eval, data, self.cache_dir),
            "spec": run.resolved(),
            "env": {"versions": env.versions(), "device": env.device_name(self.device), "git_commit": env.git_commit()},
        }

    def _finish(self, base: dict, state: LoopState, *, status: str, error: str | None = None, metrics=None, na=None) -> RunResult:
        fields = dict(base)
        if status == "completed":  # the evaluator now exists, so the protocol can name its accuracy
            from bench.metrics.protocol import describe

            fields["protocol"] = describe(self.spec.eval, load_dataset(self.spec.dataset), self.cache_dir)
        result = RunResult(
            **fields,
            status=status,
            error=error,
            metrics=dict(metrics or {}),  # non-finite values become null (RunResult)
            not_applicable=na or {},
            first_losses=state.first_losses,
            pretrain=state.pretrain,
            timings={
                "pretrain": float(state.pretrain.get("seconds", 0.0)),
                "pretrain_cached": bool(state.pretrain.get("cached", False)),
                "train": state.train_seconds,
                "eval": state.eval_seconds,
                "compile": state.compile_seconds,
            },
            steps_done=state.step,
            resumed_from=state.resumed_from,
            finished_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        )
        store.write_history(self.dir / "history.csv", state.history)
        store.write_result(self.dir, result)  # last: its presence means done
        self.ckpt_path.unlink(missing_ok=True)
        return result


def _outcome_dict(o: PretrainOutcome) -> dict[str, Any]:
    return {"seconds": o.seconds, "cached": o.cached, "parts": o.parts, **o.info}


def run_one(run: RunSpec, suite_dir: Path, device: torch.device, cache_dir: Path, progress: bool = True) -> RunResult:
    return Runner(run, suite_dir, device, cache_dir, progress).run()
