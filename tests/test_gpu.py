"""The fast path (bf16 autocast, TF32, channels_last, fused Adam, torch.compile, no per-step host sync).

CUDA tests skip cleanly without a GPU. Everything that can run on a CPU does, so the GPU-only decisions are
at least checked for logic here: the switches chosen for a CUDA device, the layout alignment fused Adam
needs, channels_last batches, bit-exact resume with the CPU fast path, `runner: {compile: true}`, and that
the fused-Adam choice is made per adapter and never leaks from one run to the next in a process.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import torch

from bench.adapter.base import Batch
from bench.api import run_suite
from bench.runner import FastPath, align_optimizer_state, fast_path
from bench.suite.load import expand, load_suite

CUDA = torch.cuda.is_available()


def needs_cuda(test):
    """A CUDA test: marked `gpu` (so `-m "not gpu"` deselects it) and skipped without a GPU."""
    return pytest.mark.gpu(pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")(test))


def gan_suite(name: str, **runner) -> dict:
    return {
        "name": name,
        "dataset": {"name": "digits"},
        "budget": {"steps": 12, "eval_every": 6, "batch_size": 16},
        "eval": {"num_samples": 60, "metrics": ["modes"]},
        "seeds": [0],
        "adapters": {"cnn_gan": {"width": 8, "z_dim": 8, "feature_dim": 16}},
        "runner": {"log_every": 4, "threads": 1, **runner},
    }


def results(out: Path, name: str) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((out / name).glob("*/result.json"))]


# --- logic of the GPU path, checked on any machine ------------------------------------------------
@pytest.mark.filterwarnings("ignore:CUDA is not available:UserWarning")  # building a CUDA autocast on a CPU box
def test_fast_path_switches_per_device() -> None:
    (spec,) = expand(load_suite(gan_suite("fp")))
    cuda = fast_path(spec, torch.device("cuda"), bf16_ok=True)
    assert cuda == FastPath(amp_dtype=torch.bfloat16, tf32=True, channels_last=True, fused_optim=True)
    assert fast_path(spec, torch.device("cuda"), bf16_ok=False).amp_dtype is None  # no bf16: full float32
    cpu = fast_path(spec, torch.device("cpu"))
    assert cpu.amp_dtype is None and not cpu.tf32 and cpu.channels_last and cpu.fused_optim
    assert fast_path(spec, torch.device("mps")) == FastPath(None, False, False, False)
    (off,) = expand(load_suite(gan_suite("fp", amp=False, tf32=False, channels_last=False, fused_optim=False)))
    assert fast_path(off, torch.device("cuda"), bf16_ok=True) == FastPath(None, False, False, False)
    assert isinstance(cuda.autocast(torch.device("cuda")), torch.autocast)


def test_channels_last_batch_has_same_values() -> None:
    u8 = torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8)
    plain, cl = (
        Batch(u8, torch.zeros(4, dtype=torch.long)).x,
        Batch(u8, torch.zeros(4, dtype=torch.long), memory_format=torch.channels_last).x,
    )
    assert cl.is_contiguous(memory_format=torch.channels_last) and torch.equal(plain, cl)
    flat = Batch(u8[:, 0, 0], torch.zeros(4, dtype=torch.long), memory_format=torch.channels_last).x  # not 4-D: left alone
    assert flat.shape == (4, 8)


@pytest.mark.parametrize("fused", [False, True])
def test_optimizer_state_follows_parameter_layout(fused: bool) -> None:
    """A channels_last parameter whose Adam state came back contiguous (a checkpoint written with the other
    layout) must update exactly as if the state had never left: fused CPU Adam gets it wrong otherwise."""

    class Holder:
        def __init__(self) -> None:
            torch.manual_seed(0)
            self.p = torch.nn.Parameter(torch.randn(8, 4, 3, 3).contiguous(memory_format=torch.channels_last))
            self.opt = torch.optim.Adam([self.p], lr=0.1, fused=fused)

        def optimizers(self) -> dict:
            return {"opt": self.opt}

        def step(self, seed: int) -> None:
            self.p.grad = torch.randn(8, 4, 3, 3, generator=torch.Generator().manual_seed(seed)).contiguous(
                memory_format=torch.channels_last
            )
            self.opt.step()

    ref, moved = Holder(), Holder()
    for h in (ref, moved):
        h.step(1)
    for k in ("exp_avg", "exp_avg_sq"):
        moved.opt.state[moved.p][k] = moved.opt.state[moved.p][k].contiguous()
    align_optimizer_state(moved)  # type: ignore[arg-type]
    assert moved.opt.state[moved.p]["exp_avg"].stride() == moved.p.stride()
    for h in (ref, moved):
        h.step(2)
    assert torch.equal(ref.p, moved.p)


def test_cnn_gan_resume_is_bit_exact_with_cpu_fast_path(tmp_path: Path, monkeypatch) -> None:
    """channels_last and fused Adam on the CPU, interrupted after a checkpoint, end identical to a run that
    was never interrupted (the checkpoint's optimiser state must come back in the parameters' layout)."""
    from baselines.cnn_gan import CNNGAN

    ref = run_suite(gan_suite("gan_ref"), out=tmp_path / "ref", reports=tmp_path / "rep", device="cpu", progress=False)
    assert not ref.attrs["failed"]
    original = CNNGAN.train_step

    def interrupt(self, batch, step):
        if step == 9:
            monkeypatch.setattr(CNNGAN, "train_step", original)
            _real_ctrl_c()
        return original(self, batch, step)

    monkeypatch.setattr(CNNGAN, "train_step", interrupt)
    with pytest.raises(KeyboardInterrupt):
        run_suite(gan_suite("gan_ref"), out=tmp_path / "cut", reports=tmp_path / "rep2", device="cpu", progress=False)
    assert list((tmp_path / "cut" / "gan_ref").glob("*/checkpoint.pt"))
    run_suite(gan_suite("gan_ref"), out=tmp_path / "cut", reports=tmp_path / "rep2", device="cpu", progress=False)
    (a,), (b,) = results(tmp_path / "ref", "gan_ref"), results(tmp_path / "cut", "gan_ref")
    assert b["resumed_from"] == [6]
    assert a["first_losses"] == b["first_losses"] and a["metrics"]["modes"] == b["metrics"]["modes"]
    hist = [(tmp_path / d / "gan_ref" / a["run_id"] / "history.csv").read_text().splitlines() for d in ("ref", "cut")]
    strip = lambda lines: [",".join(c for i, c in enumerate(line.split(",")) if i != 1) for line in lines]  # noqa: E731
    assert strip(hist[0]) == strip(hist[1])  # column 1 is train_seconds


def test_compile_on_cpu_records_compile_time(tmp_path: Path) -> None:
    """`runner: {compile: true}` on the CPU with the dummy adapter: the compile path runs end to end and its
    first step is timed apart. (Compiling cnn_gan's convolutions with Inductor takes minutes on a loaded
    2-core box, so the conv path is left to the CUDA test below.)"""
    pytest.importorskip("torch._dynamo")
    if shutil.which("cc") is None and shutil.which("gcc") is None:
        pytest.skip("torch.compile on CPU needs a C compiler")
    suite = {
        "name": "compiled",
        "dataset": {"name": "digits"},
        "budget": {"steps": 10, "eval_every": 0, "batch_size": 16},
        "eval": {"num_samples": 50, "metrics": ["bpd"]},
        "adapters": {"dummy": {}},
        "runner": {"compile": True, "threads": 1, "log_every": 5},
    }
    df = run_suite(suite, out=tmp_path, reports=tmp_path / "rep", device="cpu", progress=False)
    assert not df.attrs["failed"]
    (res,) = results(tmp_path, "compiled")
    assert res["status"] == "completed"
    t = res["timings"]
    assert t["compile"] > 0 and t["train"] > 0
    assert res["metrics"]["total_seconds"] == pytest.approx(t["pretrain"] + t["train"] + t["compile"])


# --- the fused-optimiser choice: explicit per adapter, nothing left behind between runs ---------------------
def _fused_flags(adapter) -> list:
    return [g["fused"] for opt in adapter.optimizers().values() for g in opt.param_groups]


def _kernels_of_one_step(adapter, data, fast, monkeypatch) -> set[str]:
    """The Adam implementations torch ran for one training step of `adapter`."""
    import torch.optim.adam as adam_impl

    used: set[str] = set()
    for name in ("_fused_adam", "_single_tensor_adam", "_multi_tensor_adam"):
        real = getattr(adam_impl, name)
        monkeypatch.setattr(adam_impl, name, lambda *a, _r=real, _n=name, **k: (used.add(_n), _r(*a, **k))[1])
    batch = Batch(data.train_x[:16], data.train_y[:16], data.levels, memory_format=fast.memory_format)
    adapter.train_step(batch, 0)
    monkeypatch.undo()
    return used


def test_fused_choice_is_per_adapter_and_never_leaks(monkeypatch) -> None:
    """Adapters built in one process with fused Adam on, off, then on again: each optimiser runs the kernel
    of its own run, whatever was built before or after it. A checkpoint's optimiser state, which brings its
    own param groups, takes the loading run's choice. The dummy's own torch Adam is the adapter's business."""
    from bench.data.datasets import load_dataset
    from bench.runner import apply_fast_path, build_adapter

    cpu = torch.device("cpu")
    (on,) = expand(load_suite(gan_suite("fused_on")))
    (off,) = expand(load_suite(gan_suite("fused_off", fused_optim=False)))
    fast_on, fast_off = fast_path(on, cpu), fast_path(off, cpu)
    assert fast_on.fused_optim and not fast_off.fused_optim
    data = load_dataset(on.dataset)
    first = build_adapter(on, data, cpu, fast_on)
    plain = build_adapter(off, data, cpu, fast_off)
    again = build_adapter(on, data, cpu, fast_on)
    assert _fused_flags(first) == _fused_flags(again) == [True, True] and _fused_flags(plain) == [None, None]
    assert _kernels_of_one_step(plain, data, fast_off, monkeypatch) == {"_single_tensor_adam"}
    assert _kernels_of_one_step(first, data, fast_on, monkeypatch) == {"_fused_adam"}  # built before `plain`
    assert _kernels_of_one_step(again, data, fast_on, monkeypatch) == {"_fused_adam"}

    # Resume across a changed switch: the loaded groups say what the saving run chose; the loader's choice wins.
    plain.load_state_dict(first.state_dict())
    assert _fused_flags(plain) == [True, True]  # what torch restores
    apply_fast_path(fast_off, plain, cpu)
    assert _fused_flags(plain) == [None, None]
    assert _kernels_of_one_step(plain, data, fast_off, monkeypatch) == {"_single_tensor_adam"}
    again.load_state_dict(plain.state_dict())
    apply_fast_path(fast_on, again, cpu)
    assert _fused_flags(again) == [True, True]
    assert _kernels_of_one_step(again, data, fast_on, monkeypatch) == {"_fused_adam"}

    dummy_run = dataclasses.replace(on, adapter="dummy", adapter_config={})
    dummy = build_adapter(dummy_run, data, cpu, fast_on)
    assert _fused_flags(dummy) == [None]


# --- on a GPU -------------------------------------------------------------------------------------
@needs_cuda
@pytest.mark.parametrize("runner", [{}, {"compile": True}, {"amp": False, "tf32": False, "channels_last": False, "fused_optim": False}])
def test_cnn_gan_on_cuda(tmp_path: Path, runner: dict) -> None:
    name = "gpu_" + "_".join(sorted(runner)) if runner else "gpu_default"
    df = run_suite(gan_suite(name, **runner), out=tmp_path, reports=tmp_path / "rep", device="cuda", progress=False)
    assert not df.attrs["failed"]
    (res,) = results(tmp_path, name)
    assert res["status"] == "completed", res.get("error")
    assert res["first_losses"] and all(torch.isfinite(torch.tensor(v)) for v in res["first_losses"].values())
    assert res["timings"]["train"] > 0
    assert (res["timings"]["compile"] > 0) == bool(runner.get("compile"))
    assert res["env"]["device"] == torch.cuda.get_device_name()


@needs_cuda
def test_cuda_fast_path_applies_layout_and_kernels(tmp_path: Path) -> None:
    from bench.data.datasets import load_dataset
    from bench.runner import Runner, build_adapter

    (spec,) = expand(load_suite(gan_suite("gpu_layout")))
    dev = torch.device("cuda")
    runner = Runner(spec, tmp_path, dev, tmp_path / ".cache", progress=False)
    data = load_dataset(spec.dataset).to(dev)
    adapter = build_adapter(spec, data, dev, runner.fast)
    conv = next(m for m in adapter.G.modules() if isinstance(m, torch.nn.ConvTranspose2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert all(g.get("fused") for g in adapter.opt_g.param_groups)
    assert torch.backends.cuda.matmul.allow_tf32 == runner.fast.tf32
    idx = torch.arange(16, device=dev)
    with runner.fast.autocast(dev):
        losses = adapter.train_step(Batch(data.train_x[idx], data.train_y[idx], data.levels, memory_format=runner.fast.memory_format), 0)
    assert all(v.device.type == "cuda" for v in losses.values())


def _real_ctrl_c() -> None:
    """A real Ctrl-C: SIGINT to this process, which run_suite's handler turns into the suite's stop (a
    KeyboardInterrupt raised by adapter code itself only fails its run; bench.core.interrupt)."""
    import os
    import signal
    import time

    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(5)  # the handler raises here, at once
