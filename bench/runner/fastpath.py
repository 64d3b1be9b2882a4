"""The speed switches of one run (`runner:` in the suite), decided once per run and applied to its adapter.

Nothing here is process-wide state that outlives a run: the switches are data (`FastPath`), and every
switch is set both ways on every adapter, so a run with a switch off after one with it on gets the plain
path back. The one process-wide setting, TF32 on CUDA, is likewise written by every CUDA run.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from bench.adapter.base import Adapter, set_fused_optim
from bench.suite.spec import RunSpec


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
    """Backend flags, the adapter's memory layout and its optimisers' kernels. `build_adapter` calls it, and
    the runner calls it again after loading a checkpoint, whose optimiser state brings its own param groups."""
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = fp.tf32
        torch.backends.cudnn.allow_tf32 = fp.tf32
    for m in adapter.modules().values():
        if _has_conv(m):
            # Either way, so a run with channels_last off after one with it on gets plain layouts back.
            m.to(memory_format=fp.memory_format)
    set_fused_optim(adapter, fp.fused_optim)
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
